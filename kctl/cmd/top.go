package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
)

// metricsAPI is the resource metrics API kubectl top reads.
var metricsAPI = metricsv1beta1.SchemeGroupVersion

type topOptions struct {
	selector      string
	fieldSelector string
	allNamespaces bool
	noHeaders     bool
	sortBy        string
	containers    bool
}

func newTopCommand(f *Factory, s Streams) *cobra.Command {
	c := &cobra.Command{
		Use:   "top nodes|pods",
		Short: "Show the CPU and memory use of nodes or pods (the resource metrics API, metrics.k8s.io)",
		Long: "Show the CPU and memory use of nodes or pods, as the apiserver's resource metrics API (metrics.k8s.io/v1beta1) " +
			"has it from the node agents: CPU in millicores averaged over the last scrape window, memory as the working set.",
	}
	c.AddCommand(newTopNodeCommand(f, s), newTopPodCommand(f, s))
	return c
}

func (o *topOptions) addFlags(c *cobra.Command) {
	c.Flags().StringVarP(&o.selector, "selector", "l", "", "label selector to filter on (e.g. -l app=web)")
	c.Flags().BoolVar(&o.noHeaders, "no-headers", false, "print no header line")
	c.Flags().StringVar(&o.sortBy, "sort-by", "", "sort by cpu or memory (highest first) instead of by name")
}

func (o *topOptions) validate() error {
	if o.sortBy != "" && o.sortBy != "cpu" && o.sortBy != "memory" {
		return fmt.Errorf("--sort-by takes cpu or memory, not %q", o.sortBy)
	}
	if _, err := labels.Parse(o.selector); err != nil {
		return fmt.Errorf("-l %q: %w", o.selector, err)
	}
	if _, err := fields.ParseSelector(o.fieldSelector); err != nil {
		return fmt.Errorf("--field-selector %q: %w", o.fieldSelector, err)
	}
	return nil
}

// checkMetricsAPI fails unless discovery lists metrics.k8s.io/v1beta1.
func checkMetricsAPI(f *Factory) error {
	disc, err := f.Discovery()
	if err != nil {
		return err
	}
	groups, err := disc.ServerGroups()
	if err != nil {
		return err
	}
	for _, g := range groups.Groups {
		if g.Name != metricsAPI.Group {
			continue
		}
		for _, v := range g.Versions {
			if v.Version == metricsAPI.Version {
				return nil
			}
		}
	}
	return errors.New("Metrics API not available")
}

// metricsClient is the k8s.io/metrics clientset kubectl top uses, on the
// factory's connection.
func metricsClient(f *Factory) (metricsclient.Interface, error) {
	if err := f.init(); err != nil {
		return nil, err
	}
	return metricsclient.NewForConfig(f.cfg)
}

// cpuCell and memoryCell format usage as kubectl top does.
func cpuCell(q resource.Quantity) string    { return fmt.Sprintf("%dm", q.MilliValue()) }
func memoryCell(q resource.Quantity) string { return fmt.Sprintf("%dMi", q.Value()/(1024*1024)) }

func percentCell(used, avail resource.Quantity) string {
	if avail.MilliValue() == 0 {
		return "<unknown>"
	}
	return fmt.Sprintf("%d%%", int64(float64(used.MilliValue())/float64(avail.MilliValue())*100))
}

func newTopNodeCommand(f *Factory, s Streams) *cobra.Command {
	o := &topOptions{}
	c := &cobra.Command{
		Use:     "nodes [NAME | -l SELECTOR]",
		Aliases: []string{"node", "no"},
		Short:   "Show the CPU and memory use of nodes, and their share of what is allocatable",
		Example: "  kctl top nodes\n  kctl top node node-1",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			if err := checkMetricsAPI(f); err != nil {
				return err
			}
			cs, err := f.Clientset()
			if err != nil {
				return err
			}
			mc, err := metricsClient(f)
			if err != nil {
				return err
			}
			ctx := c.Context()
			var items []metricsv1beta1.NodeMetrics
			var nodes []corev1.Node
			if len(args) == 1 {
				m, err := mc.MetricsV1beta1().NodeMetricses().Get(ctx, args[0], metav1.GetOptions{})
				if err != nil {
					return err
				}
				items = []metricsv1beta1.NodeMetrics{*m}
				n, err := cs.CoreV1().Nodes().Get(ctx, args[0], metav1.GetOptions{})
				if err != nil {
					return err
				}
				nodes = []corev1.Node{*n}
			} else {
				l, err := mc.MetricsV1beta1().NodeMetricses().List(ctx, metav1.ListOptions{LabelSelector: o.selector})
				if err != nil {
					return err
				}
				items = l.Items
				nl, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: o.selector})
				if err != nil {
					return err
				}
				nodes = nl.Items
			}
			return printNodeMetrics(s.Out, o, items, nodes)
		},
	}
	o.addFlags(c)
	return c
}

// printNodeMetrics prints a row per node; a node the metrics API has no
// figures for (not Ready, not answering) shows <unknown>, as kubectl does.
func printNodeMetrics(out io.Writer, o *topOptions, items []metricsv1beta1.NodeMetrics, nodes []corev1.Node) error {
	byName := map[string]*metricsv1beta1.NodeMetrics{}
	for i := range items {
		byName[items[i].Name] = &items[i]
	}
	sortByUsage(o.sortBy, items, func(m *metricsv1beta1.NodeMetrics) corev1.ResourceList { return m.Usage })
	w := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	if !o.noHeaders {
		fmt.Fprintln(w, "NAME\tCPU(cores)\tCPU%\tMEMORY(bytes)\tMEMORY%")
	}
	alloc := map[string]corev1.ResourceList{}
	for _, n := range nodes {
		alloc[n.Name] = n.Status.Allocatable
		if len(n.Status.Allocatable) == 0 {
			alloc[n.Name] = n.Status.Capacity
		}
	}
	for _, m := range items {
		a := alloc[m.Name]
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", m.Name, cpuCell(*m.Usage.Cpu()), percentCell(*m.Usage.Cpu(), *a.Cpu()),
			memoryCell(*m.Usage.Memory()), percentCell(*m.Usage.Memory(), *a.Memory()))
	}
	var missing []string
	for _, n := range nodes {
		if byName[n.Name] == nil {
			missing = append(missing, n.Name)
		}
	}
	sort.Strings(missing)
	for _, name := range missing {
		fmt.Fprintf(w, "%s\t<unknown>\t<unknown>\t<unknown>\t<unknown>\n", name)
	}
	return w.Flush()
}

// sortByUsage sorts items by --sort-by, highest first (stable, so the
// server's name order breaks ties); "" keeps them as they are.
func sortByUsage[T any](by string, items []T, usage func(*T) corev1.ResourceList) {
	if by == "" {
		return
	}
	name := corev1.ResourceName(by)
	sort.SliceStable(items, func(i, j int) bool {
		qi, qj := usage(&items[i])[name], usage(&items[j])[name]
		return qi.Cmp(qj) > 0
	})
}

func newTopPodCommand(f *Factory, s Streams) *cobra.Command {
	o := &topOptions{}
	c := &cobra.Command{
		Use:     "pods [NAME | -l SELECTOR] [-n NS | -A] [--containers]",
		Aliases: []string{"pod", "po"},
		Short:   "Show the CPU and memory use of pods (the sum of their containers)",
		Example: "  kctl top pods -l app=web\n  kctl top pods -A --sort-by cpu\n  kctl top pod web-7d9c-abcde --containers",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			if err := checkMetricsAPI(f); err != nil {
				return err
			}
			mc, err := metricsClient(f)
			if err != nil {
				return err
			}
			ctx := c.Context()
			ns := f.DefaultNamespace()
			var items []metricsv1beta1.PodMetrics
			if len(args) == 1 {
				m, err := mc.MetricsV1beta1().PodMetricses(ns).Get(ctx, args[0], metav1.GetOptions{})
				if err != nil {
					return err
				}
				items = []metricsv1beta1.PodMetrics{*m}
			} else {
				listNS := ns
				if o.allNamespaces {
					listNS = ""
				}
				l, err := mc.MetricsV1beta1().PodMetricses(listNS).List(ctx, metav1.ListOptions{LabelSelector: o.selector, FieldSelector: o.fieldSelector})
				if err != nil {
					return err
				}
				items = l.Items
			}
			if len(items) == 0 {
				return noPodMetrics(ctx, f, s, o, ns)
			}
			return printPodMetrics(s.Out, o, items)
		},
	}
	o.addFlags(c)
	c.Flags().StringVar(&o.fieldSelector, "field-selector", "", "field selector (metadata.name, metadata.namespace)")
	c.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "pods of every namespace")
	c.Flags().BoolVar(&o.containers, "containers", false, "a row per container")
	return c
}

// noPodMetrics explains an empty answer: pods that exist but have no
// metrics yet are an error (as kubectl says), no pods at all is not.
func noPodMetrics(ctx context.Context, f *Factory, s Streams, o *topOptions, ns string) error {
	cs, err := f.Clientset()
	if err != nil {
		return err
	}
	listNS := ns
	if o.allNamespaces {
		listNS = ""
	}
	pods, err := cs.CoreV1().Pods(listNS).List(ctx, metav1.ListOptions{LabelSelector: o.selector, FieldSelector: o.fieldSelector})
	if err != nil {
		return err
	}
	if len(pods.Items) > 0 {
		return errors.New("metrics not available yet")
	}
	if o.allNamespaces {
		fmt.Fprintln(s.ErrOut, "No resources found")
	} else {
		fmt.Fprintf(s.ErrOut, "No resources found in %s namespace.\n", ns)
	}
	return nil
}

func podUsage(m *metricsv1beta1.PodMetrics) corev1.ResourceList {
	var cpu, mem resource.Quantity
	for _, c := range m.Containers {
		cpu.Add(*c.Usage.Cpu())
		mem.Add(*c.Usage.Memory())
	}
	return corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem}
}

func printPodMetrics(out io.Writer, o *topOptions, items []metricsv1beta1.PodMetrics) error {
	sortByUsage(o.sortBy, items, podUsage)
	w := tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)
	if !o.noHeaders {
		var head []string
		if o.allNamespaces {
			head = append(head, "NAMESPACE")
		}
		if o.containers {
			head = append(head, "POD")
		}
		head = append(head, "NAME", "CPU(cores)", "MEMORY(bytes)")
		fmt.Fprintln(w, strings.Join(head, "\t"))
	}
	for i := range items {
		m := &items[i]
		var prefix []string
		if o.allNamespaces {
			prefix = append(prefix, m.Namespace)
		}
		if !o.containers {
			u := podUsage(m)
			fmt.Fprintln(w, strings.Join(append(prefix, m.Name, cpuCell(u[corev1.ResourceCPU]), memoryCell(u[corev1.ResourceMemory])), "\t"))
			continue
		}
		for _, c := range m.Containers {
			fmt.Fprintln(w, strings.Join(append(append([]string{}, prefix...), m.Name, c.Name, cpuCell(*c.Usage.Cpu()), memoryCell(*c.Usage.Memory())), "\t"))
		}
	}
	return w.Flush()
}

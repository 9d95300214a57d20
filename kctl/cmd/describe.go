package cmd

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

func newDescribeCommand(f *Factory, s Streams) *cobra.Command {
	var selector string
	c := &cobra.Command{
		Use:   "describe KIND [NAME...] | KIND/NAME",
		Short: "Show an object for a person: spec, status, conditions, owner and recent events",
		Example: `  kctl describe pod web-7d9c-abcde
  kctl describe deploy web`,
		RunE: func(c *cobra.Command, args []string) error {
			targets, err := parseTargets(f, args)
			if err != nil {
				return err
			}
			dyn, err := f.Dynamic()
			if err != nil {
				return err
			}
			cs, err := f.Clientset()
			if err != nil {
				return err
			}
			ns := f.DefaultNamespace()
			first := true
			for _, t := range targets {
				rc := resourceClient(dyn, t.mapping, ns)
				var objs []unstructured.Unstructured
				if len(t.names) == 0 {
					list, err := rc.List(c.Context(), metav1.ListOptions{LabelSelector: selector})
					if err != nil {
						return err
					}
					objs = list.Items
				}
				for _, n := range t.names {
					obj, err := rc.Get(c.Context(), n, metav1.GetOptions{})
					if err != nil {
						return err
					}
					objs = append(objs, *obj)
				}
				for i := range objs {
					if !first {
						fmt.Fprintln(s.Out)
					}
					first = false
					if err := describe(c.Context(), s.Out, cs, &objs[i], time.Now()); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&selector, "selector", "l", "", "describe the objects of KIND with these labels")
	return c
}

// describe writes obj as kubectl describe lays it out: a header of
// metadata, what matters for the kind, the rest of spec and status, the
// conditions and the object's recent events.
func describe(ctx context.Context, out io.Writer, cs kubernetes.Interface, obj *unstructured.Unstructured, now time.Time) error {
	w := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	line := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, v) }
	line("Name", obj.GetName())
	if obj.GetNamespace() != "" {
		line("Namespace", obj.GetNamespace())
	}
	multi(w, "Labels", obj.GetLabels())
	ann := obj.GetAnnotations()
	delete(ann, lastApplied)
	multi(w, "Annotations", ann)
	ct := obj.GetCreationTimestamp()
	line("CreationTimestamp", fmt.Sprintf("%s (%s ago)", ct.UTC().Format(time.RFC1123Z), duration.HumanDuration(now.Sub(ct.Time))))
	if dt := obj.GetDeletionTimestamp(); dt != nil {
		line("Terminating since", dt.UTC().Format(time.RFC1123Z))
	}
	for _, ref := range obj.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller {
			line("Controlled By", ref.Kind+"/"+ref.Name)
		}
	}
	if f := obj.GetFinalizers(); len(f) > 0 {
		line("Finalizers", strings.Join(f, ", "))
	}
	skipSpec := map[string]bool{}
	switch obj.GetKind() {
	case "Pod":
		var p corev1.Pod
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &p); err == nil {
			describePod(w, &p, now)
			skipSpec["containers"] = true
		}
	case "Deployment":
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &d); err == nil {
			describeDeployment(ctx, w, cs, &d)
		}
	}
	if spec, ok := obj.Object["spec"].(map[string]any); ok {
		rest := map[string]any{}
		for k, v := range spec {
			if !skipSpec[k] {
				rest[k] = v
			}
		}
		block(w, "Spec", rest)
	}
	for _, k := range []string{"data", "subsets", "endpoints"} {
		if v, ok := obj.Object[k]; ok {
			block(w, strings.ToUpper(k[:1])+k[1:], v)
		}
	}
	var conditions []any
	if status, ok := obj.Object["status"].(map[string]any); ok {
		rest := map[string]any{}
		for k, v := range status {
			if k == "conditions" {
				conditions, _ = v.([]any)
				continue
			}
			if obj.GetKind() == "Pod" && (k == "containerStatuses" || k == "initContainerStatuses") {
				continue
			}
			rest[k] = v
		}
		block(w, "Status", rest)
	}
	if len(conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		fmt.Fprintln(w, "  Type\tStatus\tReason\tMessage")
		fmt.Fprintln(w, "  ----\t------\t------\t-------")
		for _, c := range conditions {
			m, _ := c.(map[string]any)
			fmt.Fprintf(w, "  %v\t%v\t%v\t%v\n", m["type"], m["status"], orNone(m["reason"]), orNone(m["message"]))
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return describeEvents(ctx, out, cs, obj, now)
}

func orNone(v any) string {
	if v == nil || v == "" {
		return ""
	}
	return fmt.Sprint(v)
}

func multi(w io.Writer, key string, m map[string]string) {
	if len(m) == 0 {
		fmt.Fprintf(w, "%s:\t<none>\n", key)
		return
	}
	for i, k := range sortedKeys(m) {
		label := key + ":"
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(w, "%s\t%s=%s\n", label, k, m[k])
	}
}

// block prints v as indented YAML under key.
func block(w io.Writer, key string, v any) {
	if m, ok := v.(map[string]any); ok && len(m) == 0 {
		return
	}
	data, err := yaml.Marshal(v)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "%s:\n", key)
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		// No tabs in the YAML, so the tabwriter leaves it alone.
		fmt.Fprintf(w, "  %s\n", l)
	}
}

func describePod(w io.Writer, p *corev1.Pod, now time.Time) {
	fmt.Fprintf(w, "Node:\t%s\n", none(p.Spec.NodeName))
	fmt.Fprintf(w, "Status:\t%s\n", p.Status.Phase)
	fmt.Fprintf(w, "IP:\t%s\n", none(p.Status.PodIP))
	fmt.Fprintln(w, "Containers:")
	statuses := map[string]corev1.ContainerStatus{}
	for _, cs := range p.Status.ContainerStatuses {
		statuses[cs.Name] = cs
	}
	for _, c := range p.Spec.Containers {
		fmt.Fprintf(w, "  %s:\n", c.Name)
		fmt.Fprintf(w, "    Image:\t%s\n", c.Image)
		var ports []string
		for _, port := range c.Ports {
			ports = append(ports, fmt.Sprintf("%d/%s", port.ContainerPort, port.Protocol))
		}
		fmt.Fprintf(w, "    Ports:\t%s\n", none(strings.Join(ports, ", ")))
		cs, ok := statuses[c.Name]
		if !ok {
			fmt.Fprintf(w, "    State:\tWaiting\n")
			continue
		}
		switch {
		case cs.State.Running != nil:
			fmt.Fprintf(w, "    State:\tRunning (started %s ago)\n", duration.HumanDuration(now.Sub(cs.State.Running.StartedAt.Time)))
		case cs.State.Terminated != nil:
			fmt.Fprintf(w, "    State:\tTerminated (%s, exit code %d)\n", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
		case cs.State.Waiting != nil:
			fmt.Fprintf(w, "    State:\tWaiting (%s)\n", cs.State.Waiting.Reason)
		}
		fmt.Fprintf(w, "    Ready:\t%v\n", cs.Ready)
		fmt.Fprintf(w, "    Restart Count:\t%d\n", cs.RestartCount)
	}
}

func describeDeployment(ctx context.Context, w io.Writer, cs kubernetes.Interface, d *appsv1.Deployment) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	fmt.Fprintf(w, "Replicas:\t%d desired | %d updated | %d total | %d available | %d unavailable\n",
		want, st.UpdatedReplicas, st.Replicas, st.AvailableReplicas, st.UnavailableReplicas)
	fmt.Fprintf(w, "StrategyType:\t%s\n", d.Spec.Strategy.Type)
	if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil {
		fmt.Fprintf(w, "Selector:\t%s\n", sel)
	}
	var images []string
	for _, c := range d.Spec.Template.Spec.Containers {
		images = append(images, c.Name+"="+c.Image)
	}
	fmt.Fprintf(w, "Images:\t%s\n", strings.Join(images, ", "))
	rss, err := ownedReplicaSets(ctx, cs, d)
	if err == nil && len(rss) > 0 {
		newest := rss[len(rss)-1]
		fmt.Fprintf(w, "NewReplicaSet:\t%s (%d/%d replicas created, revision %d)\n", newest.rs.Name, newest.rs.Status.Replicas, ptrOr(newest.rs.Spec.Replicas, 1), newest.revision)
		var old []string
		for _, r := range rss[:len(rss)-1] {
			if ptrOr(r.rs.Spec.Replicas, 1) > 0 || r.rs.Status.Replicas > 0 {
				old = append(old, fmt.Sprintf("%s (%d/%d replicas created)", r.rs.Name, r.rs.Status.Replicas, ptrOr(r.rs.Spec.Replicas, 1)))
			}
		}
		fmt.Fprintf(w, "OldReplicaSets:\t%s\n", none(strings.Join(old, ", ")))
	}
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

func describeEvents(ctx context.Context, out io.Writer, cs kubernetes.Interface, obj *unstructured.Unstructured, now time.Time) error {
	sel := fields.Set{"involvedObject.name": obj.GetName(), "involvedObject.kind": obj.GetKind()}
	ns := obj.GetNamespace()
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	list, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: sel.AsSelector().String()})
	if err != nil {
		return err
	}
	var events []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.UID == "" || e.InvolvedObject.UID == obj.GetUID() {
			events = append(events, e)
		}
	}
	if len(events) == 0 {
		fmt.Fprintln(out, "Events:  <none>")
		return nil
	}
	sort.SliceStable(events, func(i, j int) bool {
		a, _ := eventTimes(&events[i])
		b, _ := eventTimes(&events[j])
		return a.Before(&b)
	})
	fmt.Fprintln(out, "Events:")
	w := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "  Type\tReason\tAge\tFrom\tMessage")
	fmt.Fprintln(w, "  ----\t------\t----\t----\t-------")
	for i := range events {
		e := &events[i]
		last, first := eventTimes(e)
		age := duration.HumanDuration(now.Sub(last.Time))
		if e.Count > 1 {
			age = fmt.Sprintf("%s (x%d over %s)", age, e.Count, duration.HumanDuration(now.Sub(first.Time)))
		}
		from := e.Source.Component
		if from == "" {
			from = e.ReportingController
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", e.Type, e.Reason, age, from, strings.TrimSpace(e.Message))
	}
	return w.Flush()
}

// eventTimes is when an event was last and first seen, with the same
// fallbacks as the server's Table.
func eventTimes(e *corev1.Event) (last, first metav1.Time) {
	last, first = e.LastTimestamp, e.FirstTimestamp
	if first.IsZero() {
		first = metav1.Time{Time: e.EventTime.Time}
	}
	if first.IsZero() {
		first = e.CreationTimestamp
	}
	if last.IsZero() {
		if e.Series != nil {
			last = metav1.Time{Time: e.Series.LastObservedTime.Time}
		} else {
			last = first
		}
	}
	return last, first
}

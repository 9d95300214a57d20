package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

type getOptions struct {
	output        string
	selector      string
	fieldSelector string
	allNamespaces bool
	watch         bool
	watchOnly     bool
	showLabels    bool
	noHeaders     bool
}

// target is one kind and the names asked for (none: all).
type target struct {
	mapping *meta.RESTMapping
	names   []string
}

// parseTargets reads "pods", "po web-1 web-2", "deploy/web", "pods,svc".
func parseTargets(f *Factory, args []string) ([]target, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("you must specify the type of resource to get, e.g. kctl get pods")
	}
	if strings.Contains(args[0], "/") {
		var out []target
		for _, a := range args {
			kind, name, ok := strings.Cut(a, "/")
			if !ok || name == "" {
				return nil, fmt.Errorf("arguments in resource/name form must all have a resource and a name: %q", a)
			}
			m, err := f.ResourceFor(kind)
			if err != nil {
				return nil, err
			}
			out = append(out, target{mapping: m, names: []string{name}})
		}
		return out, nil
	}
	var out []target
	for _, kind := range strings.Split(args[0], ",") {
		m, err := f.ResourceFor(kind)
		if err != nil {
			return nil, err
		}
		out = append(out, target{mapping: m, names: args[1:]})
	}
	if len(out) > 1 && len(args) > 1 {
		return nil, fmt.Errorf("names cannot be given with several kinds; use KIND/NAME instead")
	}
	return out, nil
}

func newGetCommand(f *Factory, s Streams) *cobra.Command {
	o := &getOptions{}
	c := &cobra.Command{
		Use:   "get KIND[,KIND...] [NAME...] | KIND/NAME...",
		Short: "Show objects as a table, or as yaml, json or names",
		Example: `  kctl get pods
  kctl get deploy web -o yaml
  kctl get po -A -o wide
  kctl get pods -l app=web -w
  kctl get events`,
		RunE: func(c *cobra.Command, args []string) error {
			return runGet(c.Context(), f, s, o, args)
		},
	}
	fl := c.Flags()
	fl.StringVarP(&o.output, "output", "o", "", "output format: wide, yaml, json, name or jsonpath=TEMPLATE (default: a table)")
	fl.StringVarP(&o.selector, "selector", "l", "", "label selector, e.g. app=web,tier!=db")
	fl.StringVar(&o.fieldSelector, "field-selector", "", "field selector, e.g. status.phase=Running")
	fl.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list across all namespaces")
	fl.BoolVarP(&o.watch, "watch", "w", false, "after listing, watch for changes")
	fl.BoolVar(&o.watchOnly, "watch-only", false, "watch for changes without listing first")
	fl.BoolVar(&o.showLabels, "show-labels", false, "add a LABELS column")
	fl.BoolVar(&o.noHeaders, "no-headers", false, "leave out the table header")
	return c
}

func runGet(ctx context.Context, f *Factory, s Streams, o *getOptions, args []string) error {
	if err := validOutput(o.output); err != nil {
		return err
	}
	targets, err := parseTargets(f, args)
	if err != nil {
		return err
	}
	if (o.watch || o.watchOnly) && len(targets) > 1 {
		return fmt.Errorf("watch is only supported on one kind at a time")
	}
	ns := f.DefaultNamespace()
	if o.allNamespaces {
		ns = ""
	}
	table := o.output == "" || o.output == "wide"
	found := 0
	var firstErr error
	for i, t := range targets {
		var n int
		var err error
		if table {
			p := newTablePrinter(s.Out)
			p.wide, p.showLabels, p.noHeaders = o.output == "wide", o.showLabels, o.noHeaders
			p.namespace = o.allNamespaces && namespaced(t.mapping)
			if len(targets) > 1 {
				p.kindPrefix = mappingName(t.mapping) + "/"
				if found > 0 && i > 0 {
					fmt.Fprintln(s.Out)
				}
			}
			n, err = getTable(ctx, f, s, o, t, ns, p)
		} else {
			n, err = getObjects(ctx, f, s, o, t, ns)
		}
		found += n
		if err != nil {
			if len(t.names) == 0 || firstErr != nil {
				return err
			}
			// kubectl goes on with the other names and fails at the end.
			firstErr = err
		}
	}
	if firstErr != nil {
		return firstErr
	}
	if found == 0 && !o.watch && !o.watchOnly && table {
		if ns == "" || !namespaced(targets[0].mapping) {
			fmt.Fprintln(s.ErrOut, "No resources found")
		} else {
			fmt.Fprintf(s.ErrOut, "No resources found in %s namespace.\n", ns)
		}
	}
	return nil
}

// tableRequest is a GET of a Table for path.
func tableRequest(rc rest.Interface, path string, o *getOptions) *rest.Request {
	req := rc.Get().AbsPath(path).SetHeader("Accept", tableAccept)
	if o.selector != "" {
		req = req.Param("labelSelector", o.selector)
	}
	if o.fieldSelector != "" {
		req = req.Param("fieldSelector", o.fieldSelector)
	}
	return req
}

func getTable(ctx context.Context, f *Factory, s Streams, o *getOptions, t target, ns string, p *tablePrinter) (int, error) {
	rc, err := f.REST()
	if err != nil {
		return 0, err
	}
	found := 0
	if len(t.names) > 0 {
		var firstErr error
		for _, name := range t.names {
			tab, err := fetchTable(ctx, tableRequest(rc, resourcePath(t.mapping, ns, name), o))
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				fmt.Fprintln(s.ErrOut, "error: "+errorMessage(err))
				continue
			}
			found += len(tab.Rows)
			if err := p.print(tab); err != nil {
				return found, err
			}
		}
		if o.watch && firstErr == nil && len(t.names) == 1 {
			return found, watchTable(ctx, rc, o, t, ns, "", p)
		}
		if firstErr != nil {
			return found, exitCode(1)
		}
		return found, nil
	}
	rv := ""
	if !o.watchOnly {
		tab, err := fetchTable(ctx, tableRequest(rc, resourcePath(t.mapping, ns, ""), o))
		if err != nil {
			return 0, err
		}
		if t.mapping.GroupVersionKind.Kind == "Event" {
			sortEventRows(tab)
		}
		found = len(tab.Rows)
		rv = tab.ResourceVersion
		if found > 0 || o.watch {
			if found == 0 {
				p.printed = true // kubectl prints no header for an empty list being watched
				p.columns = tab.ColumnDefinitions
				if o.watch && ns != "" && namespaced(t.mapping) {
					fmt.Fprintf(s.ErrOut, "No resources found in %s namespace.\n", ns)
				}
			}
			if err := p.print(tab); err != nil {
				return found, err
			}
		}
	}
	if o.watch || o.watchOnly {
		return found, watchTable(ctx, rc, o, t, ns, rv, p)
	}
	return found, nil
}

func fetchTable(ctx context.Context, req *rest.Request) (*metav1.Table, error) {
	res := req.Do(ctx)
	// Error, not Raw's error: it decodes the server's Status.
	if err := res.Error(); err != nil {
		return nil, err
	}
	data, err := res.Raw()
	if err != nil {
		return nil, err
	}
	var tab metav1.Table
	if err := json.Unmarshal(data, &tab); err != nil {
		return nil, fmt.Errorf("decoding the server's Table: %w", err)
	}
	if tab.Kind != "Table" {
		return nil, fmt.Errorf("the server answered a %s, not a Table; kctl needs server-side printing", tab.Kind)
	}
	return &tab, nil
}

// watchTable prints a row for every change, until ctx ends.
func watchTable(ctx context.Context, rc rest.Interface, o *getOptions, t target, ns, rv string, p *tablePrinter) error {
	req := tableRequest(rc, resourcePath(t.mapping, ns, ""), o).Param("watch", "true")
	if rv != "" {
		req = req.Param("resourceVersion", rv)
	}
	if len(t.names) == 1 {
		fs := "metadata.name=" + t.names[0]
		if o.fieldSelector != "" {
			fs += "," + o.fieldSelector
		}
		req = req.Param("fieldSelector", fs)
	}
	stream, err := req.Stream(ctx)
	if err != nil {
		return err
	}
	defer stream.Close()
	sc := bufio.NewScanner(stream)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ev struct {
			Type   watch.EventType `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("decoding a watch event: %w", err)
		}
		switch ev.Type {
		case watch.Bookmark:
			continue
		case watch.Error:
			var st metav1.Status
			_ = json.Unmarshal(ev.Object, &st)
			return fmt.Errorf("watch ended: %s", st.Message)
		}
		var tab metav1.Table
		if err := json.Unmarshal(ev.Object, &tab); err != nil {
			return err
		}
		if err := p.print(&tab); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

func getObjects(ctx context.Context, f *Factory, s Streams, o *getOptions, t target, ns string) (int, error) {
	dyn, err := f.Dynamic()
	if err != nil {
		return 0, err
	}
	rc := resourceClient(dyn, t.mapping, ns)
	opts := metav1.ListOptions{LabelSelector: o.selector, FieldSelector: o.fieldSelector}
	rv := ""
	if len(t.names) > 0 {
		var items []unstructured.Unstructured
		var firstErr error
		for _, name := range t.names {
			obj, err := rc.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				fmt.Fprintln(s.ErrOut, "error: "+errorMessage(err))
				continue
			}
			items = append(items, *obj)
			rv = obj.GetResourceVersion()
		}
		if len(items) == 1 && len(t.names) == 1 {
			if err := printObject(s.Out, o.output, &items[0]); err != nil {
				return 1, err
			}
		} else if len(items) > 0 {
			if err := printList(s.Out, o.output, items); err != nil {
				return len(items), err
			}
		}
		if firstErr != nil {
			return len(items), exitCode(1)
		}
		if o.watch && len(t.names) == 1 {
			opts.FieldSelector = "metadata.name=" + t.names[0]
			return 1, watchObjects(ctx, rc, o, opts, rv, s)
		}
		return len(items), nil
	}
	if !o.watchOnly {
		list, err := rc.List(ctx, opts)
		if err != nil {
			return 0, err
		}
		rv = list.GetResourceVersion()
		if o.watch {
			for i := range list.Items {
				if err := printWatched(s, o.output, &list.Items[i]); err != nil {
					return 0, err
				}
			}
		} else if err := printList(s.Out, o.output, list.Items); err != nil {
			return 0, err
		}
		if !o.watch {
			return len(list.Items), nil
		}
	}
	return 0, watchObjects(ctx, rc, o, opts, rv, s)
}

// printWatched prints one object of a watch stream; yaml documents are
// separated by ---.
func printWatched(s Streams, format string, obj *unstructured.Unstructured) error {
	if format == "yaml" {
		fmt.Fprintln(s.Out, "---")
	}
	return printObject(s.Out, format, obj)
}

type watcher interface {
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

func watchObjects(ctx context.Context, rc watcher, o *getOptions, opts metav1.ListOptions, rv string, s Streams) error {
	opts.ResourceVersion = rv
	w, err := rc.Watch(ctx, opts)
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil
			}
			if ev.Type == watch.Error {
				return fmt.Errorf("watch ended: %v", ev.Object)
			}
			if u, ok := ev.Object.(*unstructured.Unstructured); ok && ev.Type != watch.Bookmark {
				if err := printWatched(s, o.output, u); err != nil {
					return err
				}
			}
		}
	}
}

// sortEventRows orders events oldest first, as people read them; the
// server lists them by name, which is random.
func sortEventRows(t *metav1.Table) {
	created := func(r metav1.TableRow) time.Time {
		var m metav1.PartialObjectMetadata
		_ = json.Unmarshal(r.Object.Raw, &m)
		return m.CreationTimestamp.Time
	}
	sort.SliceStable(t.Rows, func(i, j int) bool { return created(t.Rows[i]).Before(created(t.Rows[j])) })
}

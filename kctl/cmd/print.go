package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"k8s.io/client-go/util/jsonpath"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// tableAccept asks for a server-side Table, falling back to plain JSON
// from servers that have no Table for the kind, as kubectl does.
const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"

// tablePrinter prints server Tables as aligned columns, like kubectl.
type tablePrinter struct {
	w          *tabwriter.Writer
	wide       bool
	namespace  bool // a NAMESPACE column first (-A)
	showLabels bool
	noHeaders  bool
	kindPrefix string // "pod/" when several kinds are printed together
	columns    []metav1.TableColumnDefinition
	printed    bool // the header is out
}

func newTablePrinter(out io.Writer) *tablePrinter {
	return &tablePrinter{w: tabwriter.NewWriter(out, 6, 4, 3, ' ', 0)}
}

// print writes t's rows, with a header the first time (or when the
// columns change).
func (p *tablePrinter) print(t *metav1.Table) error {
	if len(t.ColumnDefinitions) > 0 {
		if p.printed && !sameColumns(p.columns, t.ColumnDefinitions) {
			p.printed = false
		}
		p.columns = t.ColumnDefinitions
	}
	if len(p.columns) == 0 {
		return fmt.Errorf("the server sent a Table without columns")
	}
	if !p.printed && !p.noHeaders {
		var head []string
		if p.namespace {
			head = append(head, "NAMESPACE")
		}
		for _, c := range p.columns {
			if p.wide || c.Priority == 0 {
				head = append(head, strings.ToUpper(c.Name))
			}
		}
		if p.showLabels {
			head = append(head, "LABELS")
		}
		fmt.Fprintln(p.w, strings.Join(head, "\t"))
	}
	p.printed = true
	for _, row := range t.Rows {
		var m metav1.PartialObjectMetadata
		if len(row.Object.Raw) > 0 {
			_ = json.Unmarshal(row.Object.Raw, &m)
		}
		var cells []string
		if p.namespace {
			cells = append(cells, m.Namespace)
		}
		for i, c := range p.columns {
			if !(p.wide || c.Priority == 0) {
				continue
			}
			var v any
			if i < len(row.Cells) {
				v = row.Cells[i]
			}
			s := formatCell(v)
			if c.Format == "name" && p.kindPrefix != "" {
				s = p.kindPrefix + s
			}
			cells = append(cells, s)
		}
		if p.showLabels {
			cells = append(cells, none(labels.FormatLabels(m.Labels)))
		}
		fmt.Fprintln(p.w, strings.Join(cells, "\t"))
	}
	return p.w.Flush()
}

func sameColumns(a, b []metav1.TableColumnDefinition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name {
			return false
		}
	}
	return true
}

func formatCell(v any) string {
	switch x := v.(type) {
	case nil:
		return "<none>"
	case string:
		return x
	case float64:
		if x == math.Trunc(x) {
			return fmt.Sprintf("%d", int64(x))
		}
		return fmt.Sprint(x)
	}
	return fmt.Sprint(v)
}

func none(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// outputFormats is what -o takes, for messages.
const outputFormats = "wide, yaml, json, name or jsonpath=TEMPLATE"

// validOutput tells whether -o names a format kctl prints.
func validOutput(format string) error {
	switch {
	case format == "" || format == "wide" || format == "yaml" || format == "json" || format == "name":
		return nil
	case strings.HasPrefix(format, "jsonpath="):
		_, err := parseJSONPath(format)
		return err
	}
	return fmt.Errorf("unknown output format %q: use %s", format, outputFormats)
}

// parseJSONPath parses kubectl's -o jsonpath=TEMPLATE (quotes around the
// template are optional; missing keys print nothing, as kubectl's default
// --allow-missing-template-keys does).
func parseJSONPath(format string) (*jsonpath.JSONPath, error) {
	tmpl := strings.TrimPrefix(format, "jsonpath=")
	if len(tmpl) >= 2 && (tmpl[0] == '\'' || tmpl[0] == '"') && tmpl[len(tmpl)-1] == tmpl[0] {
		tmpl = tmpl[1 : len(tmpl)-1]
	}
	jp := jsonpath.New("output").AllowMissingKeys(true)
	if err := jp.Parse(tmpl); err != nil {
		return nil, fmt.Errorf("error parsing jsonpath %s: %w", tmpl, err)
	}
	return jp, nil
}

// printObject prints one object as yaml, json, name or a jsonpath template.
func printObject(out io.Writer, format string, obj *unstructured.Unstructured) error {
	if strings.HasPrefix(format, "jsonpath=") {
		jp, err := parseJSONPath(format)
		if err != nil {
			return err
		}
		return jp.Execute(out, obj.Object)
	}
	switch format {
	case "yaml":
		data, err := yaml.Marshal(obj.Object)
		if err != nil {
			return err
		}
		_, err = out.Write(data)
		return err
	case "json":
		data, err := json.MarshalIndent(obj.Object, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", data)
		return err
	case "name":
		_, err := fmt.Fprintln(out, objectName(obj))
		return err
	}
	return fmt.Errorf("unknown output format %q: use %s", format, outputFormats)
}

// printList prints several objects: as a List for yaml and json, one name
// a line for name.
func printList(out io.Writer, format string, items []unstructured.Unstructured) error {
	if format == "name" {
		for i := range items {
			if err := printObject(out, format, &items[i]); err != nil {
				return err
			}
		}
		return nil
	}
	list := make([]any, 0, len(items))
	for _, it := range items {
		list = append(list, it.Object)
	}
	return printObject(out, format, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "List", "items": list, "metadata": map[string]any{"resourceVersion": ""},
	}})
}

// objectName is kubectl's kind.group/name, e.g. deployment.apps/web.
func objectName(obj *unstructured.Unstructured) string {
	gvk := obj.GroupVersionKind()
	kind := strings.ToLower(gvk.Kind)
	if gvk.Group != "" {
		kind += "." + gvk.Group
	}
	return kind + "/" + obj.GetName()
}

// mappingName is the kind.group of a mapping, for messages.
func mappingName(m *meta.RESTMapping) string {
	kind := strings.ToLower(m.GroupVersionKind.Kind)
	if m.GroupVersionKind.Group != "" {
		kind += "." + m.GroupVersionKind.Group
	}
	return kind
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

// resourcePath is the URL path of a resource collection, or of one object
// when name is set.
func resourcePath(m *meta.RESTMapping, ns, name string) string {
	gv := m.Resource.GroupVersion()
	p := "/api/" + gv.Version
	if gv.Group != "" {
		p = "/apis/" + gv.Group + "/" + gv.Version
	}
	if namespaced(m) && ns != "" {
		p += "/namespaces/" + ns
	}
	p += "/" + m.Resource.Resource
	if name != "" {
		p += "/" + name
	}
	return p
}

func namespaced(m *meta.RESTMapping) bool {
	return m.Scope.Name() == meta.RESTScopeNameNamespace
}

// resourceClient is the dynamic client for m in ns (ignored for
// cluster-scoped kinds; "" for all namespaces).
func resourceClient(dyn dynamic.Interface, m *meta.RESTMapping, ns string) dynamic.ResourceInterface {
	if namespaced(m) {
		return dyn.Resource(m.Resource).Namespace(ns)
	}
	return dyn.Resource(m.Resource)
}

// readManifests reads every object in the files named (a file, a
// directory of .yaml/.yml/.json files, or - for stdin), in order. In a
// directory, a file that holds no Kubernetes object at all (manifests/
// keeps prometheus.yml beside the examples) is skipped with a note on
// warn; named explicitly, it is an error.
func readManifests(paths []string, stdin io.Reader, warn io.Writer) ([]*unstructured.Unstructured, error) {
	if len(paths) == 0 {
		return nil, errors.New("must give -f FILE, DIR or - (stdin)")
	}
	var out []*unstructured.Unstructured
	for _, p := range paths {
		var files []string
		inDir := false
		if p == "-" {
			files = []string{"-"}
		} else {
			st, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("the path %q does not exist", p)
			}
			if st.IsDir() {
				entries, err := os.ReadDir(p)
				if err != nil {
					return nil, err
				}
				for _, e := range entries {
					ext := strings.ToLower(filepath.Ext(e.Name()))
					if !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
						files = append(files, filepath.Join(p, e.Name()))
					}
				}
				sort.Strings(files)
				inDir = true
			} else {
				files = []string{p}
			}
		}
		for _, file := range files {
			var data []byte
			var err error
			if file == "-" {
				data, err = io.ReadAll(stdin)
			} else {
				data, err = os.ReadFile(file)
			}
			if err != nil {
				return nil, err
			}
			objs, err := decodeManifests(data)
			if inDir && errors.Is(err, errNotObject) && !hasAnyObject(data) {
				fmt.Fprintf(warn, "skipping %s: not a Kubernetes manifest (no apiVersion or kind)\n", file)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			out = append(out, objs...)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no objects passed")
	}
	return out, nil
}

// errNotObject is a document without apiVersion or kind.
var errNotObject = errors.New("an object has no apiVersion or kind")

// hasAnyObject tells whether any document in data names an apiVersion or
// a kind: a file with none is not a manifest at all, while one with some
// is a manifest with a mistake, which must be reported.
func hasAnyObject(data []byte) bool {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return false
		}
		if m["apiVersion"] != nil || m["kind"] != nil {
			return true
		}
	}
}

// decodeManifests splits multi-document YAML (or JSON) into objects;
// a v1 List is flattened into its items.
func decodeManifests(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		if obj.GetKind() == "" || obj.GetAPIVersion() == "" {
			return nil, fmt.Errorf("%w: %v", errNotObject, m)
		}
		if obj.IsList() {
			items, _, _ := unstructured.NestedSlice(m, "items")
			for _, it := range items {
				if im, ok := it.(map[string]any); ok {
					out = append(out, &unstructured.Unstructured{Object: im})
				}
			}
			continue
		}
		out = append(out, obj)
	}
}

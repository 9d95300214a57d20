package server

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubeish/kubeish/apiserver/registry"
)

// OpenAPI v3, as much of it as kubectl reads: /openapi/v3 lists one
// document per group version; each document has the paths of its
// resources (the PATCH operation names the kind and takes
// fieldValidation, which is how kubectl learns that the server validates
// fields itself) and the schemas of its kinds, generated from the Go types
// with their doc strings and patch merge keys (kubectl apply and explain
// read those).

// openAPIDocs are the served documents, built once.
type openAPIDocs struct {
	once  sync.Once
	index []byte
	docs  map[string][]byte // "api/v1", "apis/apps/v1" → document
	hash  map[string]string
}

func (s *Server) openAPI() *openAPIDocs {
	d := &s.openapi
	d.once.Do(func() {
		d.docs, d.hash = map[string][]byte{}, map[string]string{}
		gvs := append([]schema.GroupVersion{{Version: "v1"}}, s.res.GroupVersions()...)
		paths := map[string]any{}
		for _, gv := range gvs {
			key := strings.TrimPrefix(basePath(gv), "/")
			doc, err := json.Marshal(s.openAPIDoc(gv))
			if err != nil {
				// The document is built from Go types only; failing
				// here is a programming error.
				panic(err)
			}
			sum := sha512.Sum512(doc)
			d.docs[key], d.hash[key] = doc, strings.ToUpper(hex.EncodeToString(sum[:]))
			paths[key] = map[string]string{"serverRelativeURL": "/openapi/v3/" + key + "?hash=" + d.hash[key]}
		}
		d.index, _ = json.Marshal(map[string]any{"paths": paths})
	})
	return d
}

func (s *Server) openAPIIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", mediaJSON)
	_, _ = w.Write(s.openAPI().index)
}

func (s *Server) openAPIGroupVersion(w http.ResponseWriter, r *http.Request) {
	d := s.openAPI()
	key := strings.TrimPrefix(r.URL.Path, "/openapi/v3/")
	doc, ok := d.docs[key]
	if !ok {
		s.writeError(w, r, &notFoundError{path: r.URL.Path})
		return
	}
	if h := r.URL.Query().Get("hash"); h != "" && h == d.hash[key] {
		// A hashed URL never changes for a given build: cache it.
		w.Header().Set("Cache-Control", "public, immutable")
	}
	w.Header().Set("Content-Type", mediaJSON)
	w.Header().Set("Etag", `"`+d.hash[key]+`"`)
	_, _ = w.Write(doc)
}

type notFoundError struct{ path string }

func (e *notFoundError) Error() string { return "no OpenAPI document at " + e.path }

func (e *notFoundError) Status() metav1.Status {
	return metav1.Status{Status: metav1.StatusFailure, Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound, Message: e.Error()}
}

// openAPIDoc is the OpenAPI 3.0 document of one group version.
func (s *Server) openAPIDoc(gv schema.GroupVersion) map[string]any {
	g := &schemaGen{schemas: map[string]any{}}
	paths := map[string]any{}
	query := func(name, desc string) map[string]any {
		return map[string]any{"name": name, "in": "query", "description": desc, "schema": map[string]any{"type": "string", "uniqueItems": true}}
	}
	writeParams := []any{
		query("dryRun", "When present, modifications are not persisted. The only valid value is All."),
		query("fieldManager", "A name for the actor making the change; accepted and not tracked by kubeish."),
		query("fieldValidation", "What to do with unknown or duplicate fields: Ignore, Warn or Strict (the default)."),
	}
	listParams := []any{query("labelSelector", "Label selector."), query("fieldSelector", "Field selector."),
		query("resourceVersion", "Resource version."), query("limit", "Page size."), query("continue", "Continue token."),
		query("watch", "Watch for changes.")}
	body := func(ref map[string]any, types ...string) map[string]any {
		content := map[string]any{}
		for _, t := range types {
			content[t] = map[string]any{"schema": ref}
		}
		return map[string]any{"content": content, "required": true}
	}
	resp := func(ref map[string]any, codes ...string) map[string]any {
		out := map[string]any{}
		for _, c := range codes {
			out[c] = map[string]any{"description": http.StatusText(atoi(c)), "content": map[string]any{mediaJSON: map[string]any{"schema": ref}, mediaYAML: map[string]any{"schema": ref}}}
		}
		return out
	}
	patchRef := g.ref(reflect.TypeOf(metav1.Patch{}))
	for _, res := range s.res.All() {
		if res.GroupVersion() != gv {
			continue
		}
		obj, list := res.New(), res.NewList()
		gvk := map[string]any{"group": gv.Group, "version": gv.Version, "kind": res.Kind}
		ref := g.ref(reflect.TypeOf(obj).Elem())
		g.markKind(reflect.TypeOf(obj).Elem(), gv.WithKind(res.Kind))
		listRef := g.ref(reflect.TypeOf(list).Elem())
		g.markKind(reflect.TypeOf(list).Elem(), gv.WithKind(res.Kind+"List"))
		op := func(action, id string, params []any) map[string]any {
			return map[string]any{"operationId": id, "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
				"tags": []string{tag(gv)}, "parameters": params}
		}
		base := basePath(gv)
		if res.Namespaced {
			base += "/namespaces/{namespace}"
		}
		name := opName(gv, res)
		coll := map[string]any{
			"get":  with(op("list", "list"+name, listParams), "responses", resp(listRef, "200")),
			"post": with(with(op("post", "create"+name, writeParams), "requestBody", body(ref, mediaJSON, mediaYAML)), "responses", resp(ref, "200", "201")),
		}
		item := map[string]any{
			"get":    with(op("get", "read"+name, nil), "responses", resp(ref, "200")),
			"put":    with(with(op("put", "replace"+name, writeParams), "requestBody", body(ref, mediaJSON, mediaYAML)), "responses", resp(ref, "200", "201")),
			"patch":  with(with(op("patch", "patch"+name, writeParams), "requestBody", body(patchRef, "application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json")), "responses", resp(ref, "200")),
			"delete": with(op("delete", "delete"+name, writeParams[:1]), "responses", resp(g.ref(reflect.TypeOf(metav1.Status{})), "200", "202")),
		}
		paths[base+"/"+res.Resource] = coll
		paths[base+"/"+res.Resource+"/{name}"] = item
	}
	g.ref(reflect.TypeOf(metav1.Status{}))
	return map[string]any{
		"openapi": "3.0.0",
		"info":    map[string]any{"title": "Kubernetes (kubeish)", "version": s.cfg.Version.GitVersion},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         g.schemas,
			"securitySchemes": map[string]any{},
		},
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func with(m map[string]any, k string, v any) map[string]any {
	m[k] = v
	return m
}

// tag is Kubernetes' operation tag, e.g. core_v1, apps_v1.
func tag(gv schema.GroupVersion) string {
	g := gv.Group
	if g == "" {
		g = "core"
	}
	return strings.ReplaceAll(strings.Split(g, ".")[0], "-", "") + "_" + gv.Version
}

// opName is the middle of Kubernetes' operation ids, e.g. CoreV1NamespacedPod.
func opName(gv schema.GroupVersion, res *registry.Resource) string {
	g := strings.Split(gv.Group, ".")[0]
	if g == "" {
		g = "core"
	}
	scope := ""
	if res.Namespaced {
		scope = "Namespaced"
	}
	return upper(g) + upper(gv.Version) + scope + res.Kind
}

func upper(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// schemaGen builds OpenAPI schemas from Go types by reflection, the way
// Kubernetes' openapi-gen reads the same types: json tags for names,
// SwaggerDoc for descriptions, patchStrategy/patchMergeKey tags for the
// strategic merge extensions.
type schemaGen struct {
	schemas map[string]any
}

var (
	timeType      = reflect.TypeOf(metav1.Time{})
	microTimeType = reflect.TypeOf(metav1.MicroTime{})
	durationType  = reflect.TypeOf(metav1.Duration{})
	quantityType  = reflect.TypeOf(resource.Quantity{})
	intOrStrType  = reflect.TypeOf(intstr.IntOrString{})
	rawExtType    = reflect.TypeOf(runtime.RawExtension{})
	fieldsV1Type  = reflect.TypeOf(metav1.FieldsV1{})
	patchType_    = reflect.TypeOf(metav1.Patch{})
)

// schemaName is the definition name Kubernetes uses, e.g.
// io.k8s.api.core.v1.Pod for k8s.io/api/core/v1.Pod.
func schemaName(t reflect.Type) string {
	p := t.PkgPath()
	if rest, ok := strings.CutPrefix(p, "k8s.io/"); ok {
		p = "io.k8s." + rest
	}
	return strings.ReplaceAll(p, "/", ".") + "." + t.Name()
}

func (g *schemaGen) markKind(t reflect.Type, gvk schema.GroupVersionKind) {
	if s, ok := g.schemas[schemaName(t)].(map[string]any); ok {
		s["x-kubernetes-group-version-kind"] = []any{map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}}
	}
}

// ref returns the schema of a value of type t: inline for scalars, lists
// and maps, a $ref to a named definition for structs.
func (g *schemaGen) ref(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case timeType, microTimeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case durationType, quantityType:
		return map[string]any{"type": "string"}
	case intOrStrType:
		return map[string]any{"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": true}
	case rawExtType, fieldsV1Type, patchType_:
		return map[string]any{"type": "object"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int32, reflect.Uint32, reflect.Int16, reflect.Uint16, reflect.Int8, reflect.Uint8:
		return map[string]any{"type": "integer", "format": "int32"}
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64:
		return map[string]any{"type": "integer", "format": "int64"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number", "format": "double"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "format": "byte"}
		}
		return map[string]any{"type": "array", "items": g.ref(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.ref(t.Elem())}
	case reflect.Interface:
		return map[string]any{"type": "object"}
	case reflect.Struct:
		name := schemaName(t)
		if _, ok := g.schemas[name]; !ok {
			g.schemas[name] = map[string]any{} // breaks cycles
			g.schemas[name] = g.structSchema(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

type swaggerDoc interface{ SwaggerDoc() map[string]string }

func docOf(t reflect.Type) map[string]string {
	if d, ok := reflect.New(t).Elem().Interface().(swaggerDoc); ok {
		return d.SwaggerDoc()
	}
	return nil
}

func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	g.fields(t, props)
	out := map[string]any{"type": "object", "properties": props}
	if d := docOf(t)[""]; d != "" {
		out["description"] = d
	}
	return out
}

func (g *schemaGen) fields(t reflect.Type, props map[string]any) {
	doc := docOf(t)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && (name == "" || strings.Contains(opts, "inline")) {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				g.fields(ft, props)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		p := g.ref(f.Type)
		if d := doc[name]; d != "" {
			if _, isRef := p["$ref"]; isRef {
				// As Kubernetes does: a described reference is an allOf.
				p = map[string]any{"allOf": []any{p}, "description": d}
			} else {
				p["description"] = d
			}
		}
		if s := f.Tag.Get("patchStrategy"); s != "" {
			p["x-kubernetes-patch-strategy"] = s
		}
		if k := f.Tag.Get("patchMergeKey"); k != "" {
			p["x-kubernetes-patch-merge-key"] = k
		}
		props[name] = p
	}
}

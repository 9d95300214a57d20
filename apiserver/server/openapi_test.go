package server_test

import (
	"net/http"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/openapi3"

	"github.com/kubeish/kubeish/pkg/testenv"
)

// TestOpenAPIV3 reads the documents with client-go's OpenAPI v3 client,
// as kubectl does, and checks what kubectl relies on: the PATCH operation
// of each kind takes fieldValidation (so kubectl leaves validation to the
// server), the kinds' schemas are marked with their GVK, and the patch
// merge keys are there (kubectl apply computes its strategic merge patch
// from them).
func TestOpenAPIV3(t *testing.T) {
	e := testenv.Start(t)
	root := openapi3.NewRoot(e.Client.Discovery().OpenAPIV3())
	gvs, err := root.GroupVersions()
	if err != nil {
		t.Fatal(err)
	}
	if len(gvs) < 2 || gvs[len(gvs)-1].String() != "v1" || gvs[0].String() != "apps/v1" {
		t.Fatalf("group versions %v", gvs)
	}
	for _, tc := range []struct {
		gv         schema.GroupVersion
		path, kind string
	}{
		{schema.GroupVersion{Version: "v1"}, "/api/v1/namespaces/{namespace}/pods/{name}", "Pod"},
		{schema.GroupVersion{Version: "v1"}, "/api/v1/nodes/{name}", "Node"},
		{schema.GroupVersion{Group: "apps", Version: "v1"}, "/apis/apps/v1/namespaces/{namespace}/deployments/{name}", "Deployment"},
	} {
		doc, err := root.GVSpec(tc.gv)
		if err != nil {
			t.Fatalf("%s: %v", tc.gv, err)
		}
		item, ok := doc.Paths.Paths[tc.path]
		if !ok || item.Patch == nil {
			t.Fatalf("%s: no PATCH at %s", tc.gv, tc.path)
		}
		gvk, _ := item.Patch.Extensions["x-kubernetes-group-version-kind"].(map[string]any)
		if gvk["kind"] != tc.kind || gvk["group"] != tc.gv.Group {
			t.Fatalf("PATCH %s is for %v", tc.path, gvk)
		}
		found := false
		for _, p := range item.Patch.Parameters {
			found = found || (p.Name == "fieldValidation" && p.In == "query")
		}
		if _, smp := item.Patch.RequestBody.Content["application/strategic-merge-patch+json"]; !found || !smp {
			t.Fatalf("PATCH %s: fieldValidation %v, strategic merge %v", tc.path, found, smp)
		}
	}

	doc, err := root.GVSpec(schema.GroupVersion{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	pod := doc.Components.Schemas["io.k8s.api.core.v1.Pod"]
	if pod == nil || !strings.Contains(pod.Description, "Pod is a collection of containers") {
		t.Fatalf("Pod schema %+v", pod)
	}
	if gvks, _ := pod.Extensions["x-kubernetes-group-version-kind"].([]any); len(gvks) != 1 {
		t.Fatalf("Pod GVK extension %v", pod.Extensions)
	}
	containers := doc.Components.Schemas["io.k8s.api.core.v1.PodSpec"].Properties["containers"]
	if containers.Extensions["x-kubernetes-patch-merge-key"] != "name" || containers.Extensions["x-kubernetes-patch-strategy"] != "merge" {
		t.Fatalf("containers extensions %v", containers.Extensions)
	}

	// kubectl apply's patch, computed from these schemas, keeps a
	// container the manifest never had.
	meta := strategicpatch.PatchMetaFromOpenAPIV3{Schema: pod, SchemaList: doc.Components.Schemas}
	original := `{"spec":{"containers":[{"name":"web","image":"web:1"}]}}`
	current := `{"spec":{"containers":[{"name":"web","image":"web:1"},{"name":"sidecar","image":"sidecar:1"}]}}`
	modified := `{"spec":{"containers":[{"name":"web","image":"web:2"}]}}`
	patch, err := strategicpatch.CreateThreeWayMergePatch([]byte(original), []byte(modified), []byte(current), meta, true)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(patch), "sidecar") || !strings.Contains(string(patch), `"$setElementOrder/containers"`) {
		t.Fatalf("patch %s", patch)
	}

	a := newAPI(t, e)
	if r := a.do("GET", "/openapi/v3/apis/nope/v1", "", nil); r.code != http.StatusNotFound {
		t.Fatalf("unknown group version: %d", r.code)
	}
}

// TestDeleteOptionsGroups: kubectl labels its DeleteOptions
// meta.k8s.io/v1, client-go v1; both are read.
func TestDeleteOptionsGroups(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	for _, v := range []string{"meta.k8s.io/v1", "v1", ""} {
		createCM(a, "x", "")
		body := `{"propagationPolicy":"Background"`
		if v != "" {
			body += `,"kind":"DeleteOptions","apiVersion":"` + v + `"`
		}
		a.must(http.StatusOK, "DELETE", "/api/v1/namespaces/default/configmaps/x", jsonType, body+"}")
	}
	createCM(a, "x", "")
	a.must(http.StatusBadRequest, "DELETE", "/api/v1/namespaces/default/configmaps/x", jsonType, `{"kind":"Pod","apiVersion":"v1"}`)
}

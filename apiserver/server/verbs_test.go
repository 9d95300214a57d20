package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubeish/kubeish/pkg/testenv"
)

// kinds lists one valid object of every kind served, by collection path.
var kinds = []struct {
	path string // collection path for namespace "default" (or cluster-scoped)
	kind string
	obj  string // JSON without metadata.name
}{
	{"/api/v1/namespaces/default/pods", "Pod", `{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"c","image":"echo:v1"}]}}`},
	{"/api/v1/namespaces/default/services", "Service", `{"apiVersion":"v1","kind":"Service","spec":{"selector":{"app":"x"},"ports":[{"port":80}]}}`},
	{"/api/v1/namespaces/default/endpoints", "Endpoints", `{"apiVersion":"v1","kind":"Endpoints","subsets":[{"addresses":[{"ip":"10.244.0.5"}],"ports":[{"port":80}]}]}`},
	{"/api/v1/nodes", "Node", `{"apiVersion":"v1","kind":"Node","spec":{"podCIDR":"10.244.1.0/24"}}`},
	{"/api/v1/namespaces/default/configmaps", "ConfigMap", `{"apiVersion":"v1","kind":"ConfigMap","data":{"k":"v"}}`},
	{"/api/v1/namespaces/default/secrets", "Secret", `{"apiVersion":"v1","kind":"Secret","stringData":{"k":"v"}}`},
	{"/api/v1/namespaces/default/events", "Event", `{"apiVersion":"v1","kind":"Event","involvedObject":{"kind":"Pod","name":"p","namespace":"default"},"reason":"Test","message":"m","type":"Normal"}`},
	{"/apis/apps/v1/namespaces/default/deployments", "Deployment", `{"apiVersion":"apps/v1","kind":"Deployment","spec":{"selector":{"matchLabels":{"app":"x"}},"template":{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"c","image":"echo:v1"}]}}}}`},
	{"/apis/apps/v1/namespaces/default/replicasets", "ReplicaSet", `{"apiVersion":"apps/v1","kind":"ReplicaSet","spec":{"selector":{"matchLabels":{"app":"x"}},"template":{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"c","image":"echo:v1"}]}}}}`},
	{"/apis/coordination.k8s.io/v1/namespaces/default/leases", "Lease", `{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","spec":{"holderIdentity":"me","leaseDurationSeconds":15}}`},
	{"/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", "EndpointSlice", `{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","addressType":"IPv4","endpoints":[{"addresses":["10.244.0.5"]}],"ports":[{"port":80}]}`},
	{"/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers", "HorizontalPodAutoscaler", `{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},"maxReplicas":5}}`},
}

func withName(obj, name string, labels map[string]string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(obj), &m); err != nil {
		panic(err)
	}
	md := map[string]any{"name": name}
	if labels != nil {
		md["labels"] = labels
	}
	m["metadata"] = md
	return m
}

func objMeta(t testing.TB, r response) metav1.ObjectMeta {
	t.Helper()
	var o struct {
		Kind     string            `json:"kind"`
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	r.into(t, &o)
	return o.Metadata
}

// TestVerbs runs every verb on every kind, with the answers Kubernetes gives.
func TestVerbs(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	for _, k := range kinds {
		t.Run(k.kind, func(t *testing.T) {
			a := &api{t: t, base: a.base, c: a.c}
			name := strings.ToLower(k.kind) + "-1"
			item := k.path + "/" + name

			// create, and the server-set fields
			r := a.must(http.StatusCreated, "POST", k.path, jsonType, withName(k.obj, name, map[string]string{"app": "x"}))
			m := objMeta(t, r)
			if m.UID == "" || m.ResourceVersion == "" || m.CreationTimestamp.IsZero() {
				t.Fatalf("server did not set uid, resourceVersion, creationTimestamp: %+v", m)
			}
			// create again: AlreadyExists
			if s := a.must(http.StatusConflict, "POST", k.path, jsonType, withName(k.obj, name, nil)).status(t); s.Reason != metav1.StatusReasonAlreadyExists {
				t.Fatalf("second create: reason %s", s.Reason)
			}
			// get
			got := objMeta(t, a.must(http.StatusOK, "GET", item, "", nil))
			if got.UID != m.UID || got.ResourceVersion != m.ResourceVersion {
				t.Fatalf("get returned %+v, created %+v", got, m)
			}
			// list, with and without a matching label selector
			var list unstructured.UnstructuredList
			a.must(http.StatusOK, "GET", k.path+"?labelSelector=app%3Dx", "", nil).into(t, &list.Object)
			if items, _ := list.Object["items"].([]any); len(items) != 1 {
				t.Fatalf("list app=x: %d items", len(items))
			}
			a.must(http.StatusOK, "GET", k.path+"?labelSelector=app%3Dnope", "", nil).into(t, &list.Object)
			if items, _ := list.Object["items"].([]any); len(items) != 0 {
				t.Fatalf("list app=nope: %d items", len(items))
			}

			// update with the current resourceVersion, then a stale one
			var obj map[string]any
			a.must(http.StatusOK, "GET", item, "", nil).into(t, &obj)
			obj["metadata"].(map[string]any)["labels"] = map[string]any{"app": "x", "step": "put"}
			r = a.must(http.StatusOK, "PUT", item, jsonType, obj)
			if m2 := objMeta(t, r); m2.ResourceVersion == m.ResourceVersion || m2.Labels["step"] != "put" {
				t.Fatalf("update: %+v", m2)
			}
			if s := a.must(http.StatusConflict, "PUT", item, jsonType, obj).status(t); s.Reason != metav1.StatusReasonConflict {
				t.Fatalf("stale update: reason %s", s.Reason)
			}

			// the three patch types
			a.must(http.StatusOK, "PATCH", item, mergeType, `{"metadata":{"labels":{"merge":"1"}}}`)
			a.must(http.StatusOK, "PATCH", item, smpType, `{"metadata":{"labels":{"smp":"1"}}}`)
			r = a.must(http.StatusOK, "PATCH", item, jpType, `[{"op":"add","path":"/metadata/labels/jp","value":"1"}]`)
			if l := objMeta(t, r).Labels; l["merge"] != "1" || l["smp"] != "1" || l["jp"] != "1" || l["step"] != "put" {
				t.Fatalf("labels after patches: %v", l)
			}
			// a patch that fails its JSON-patch test changes nothing
			a.must(http.StatusBadRequest, "PATCH", item, jpType, `[{"op":"test","path":"/metadata/labels/jp","value":"2"}]`)

			// delete, then it is gone
			a.must(http.StatusOK, "DELETE", item, "", nil)
			a.must(http.StatusNotFound, "GET", item, "", nil)
			a.must(http.StatusNotFound, "DELETE", item, "", nil)
		})
	}
}

// TestCreateOnUpdate: kinds that Kubernetes lets a PUT create.
func TestCreateOnUpdate(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	a.must(http.StatusCreated, "PUT", "/apis/coordination.k8s.io/v1/namespaces/default/leases/l1", jsonType,
		withName(`{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","spec":{"holderIdentity":"a"}}`, "l1", nil))
	a.must(http.StatusNotFound, "PUT", "/api/v1/namespaces/default/configmaps/c1", jsonType,
		withName(`{"apiVersion":"v1","kind":"ConfigMap"}`, "c1", nil))
}

func TestDeleteCollection(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	for i := range 6 {
		app := "a"
		if i%2 == 1 {
			app = "b"
		}
		a.must(http.StatusCreated, "POST", "/api/v1/namespaces/default/configmaps", jsonType,
			withName(`{"apiVersion":"v1","kind":"ConfigMap"}`, fmt.Sprintf("cm-%d", i), map[string]string{"app": app}))
	}
	a.must(http.StatusOK, "DELETE", "/api/v1/namespaces/default/configmaps?labelSelector=app%3Da", "", nil)
	var list unstructured.UnstructuredList
	a.must(http.StatusOK, "GET", "/api/v1/namespaces/default/configmaps", "", nil).into(t, &list.Object)
	items, _ := list.Object["items"].([]any)
	if len(items) != 3 {
		t.Fatalf("after deleting app=a: %d configmaps left, want 3", len(items))
	}
	for _, it := range items {
		if l := it.(map[string]any)["metadata"].(map[string]any)["labels"].(map[string]any); l["app"] != "b" {
			t.Fatalf("left %v", l)
		}
	}
	// A deletecollection of namespaces never removes the system ones.
	a.must(http.StatusOK, "DELETE", "/api/v1/namespaces", "", nil)
	for _, ns := range []string{"default", "kube-system", "kube-public"} {
		r := a.must(http.StatusOK, "GET", "/api/v1/namespaces/"+ns, "", nil)
		if objMeta(t, r).DeletionTimestamp != nil {
			t.Fatalf("namespace %s is being deleted", ns)
		}
	}
}

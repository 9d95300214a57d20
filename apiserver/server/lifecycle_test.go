package server_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubeish/kubeish/pkg/testenv"
)

const pods = "/api/v1/namespaces/default/pods"

func bind(a *api, name, node string) response {
	return a.do("POST", pods+"/"+name+"/binding", jsonType,
		fmt.Sprintf(`{"apiVersion":"v1","kind":"Binding","metadata":{"name":%q},"target":{"kind":"Node","name":%q}}`, name, node))
}

func TestPodGracefulDeletion(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)

	// An unbound pod goes at once.
	a.must(http.StatusCreated, "POST", pods, jsonType, pod("unbound"))
	a.must(http.StatusOK, "DELETE", pods+"/unbound", "", nil)
	a.must(http.StatusNotFound, "GET", pods+"/unbound", "", nil)

	// A bound pod gets deletionTimestamp and its grace period, and stays
	// until its node deletes it with gracePeriodSeconds=0.
	var p corev1.Pod
	a.must(http.StatusCreated, "POST", pods, jsonType, pod("bound")).into(t, &p)
	if r := bind(a, "bound", "node-1"); r.code != http.StatusCreated {
		t.Fatalf("bind: %d %s", r.code, r.body)
	}
	var got corev1.Pod
	a.must(http.StatusOK, "GET", pods+"/bound", "", nil).into(t, &got)
	if got.Spec.NodeName != "node-1" || len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Type != corev1.PodScheduled {
		t.Fatalf("after binding: node %q conditions %+v", got.Spec.NodeName, got.Status.Conditions)
	}
	if r := bind(a, "bound", "node-2"); r.code != http.StatusConflict {
		t.Fatalf("second bind: %d, want 409", r.code)
	}
	a.must(http.StatusOK, "DELETE", pods+"/bound", "", nil).into(t, &got)
	if got.DeletionTimestamp == nil || got.DeletionGracePeriodSeconds == nil || *got.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("graceful delete: %+v", got.ObjectMeta)
	}
	a.must(http.StatusOK, "GET", pods+"/bound", "", nil)
	// A pod being deleted cannot be bound, and writes keep its deletion.
	a.must(http.StatusOK, "PATCH", pods+"/bound", mergeType, `{"metadata":{"labels":{"a":"b"}}}`).into(t, &got)
	if got.DeletionTimestamp == nil {
		t.Fatal("an update dropped deletionTimestamp")
	}
	// A longer grace period does not extend; a shorter one shortens.
	a.must(http.StatusOK, "DELETE", pods+"/bound?gracePeriodSeconds=60", "", nil).into(t, &got)
	if *got.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("grace period extended to %d", *got.DeletionGracePeriodSeconds)
	}
	// The node confirms with a uid precondition.
	stale := fmt.Sprintf(`{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":0,"preconditions":{"uid":"%s"}}`, "not-the-uid")
	a.must(http.StatusConflict, "DELETE", pods+"/bound", jsonType, stale)
	body := fmt.Sprintf(`{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":0,"preconditions":{"uid":"%s"}}`, p.UID)
	a.must(http.StatusOK, "DELETE", pods+"/bound", jsonType, body)
	a.must(http.StatusNotFound, "GET", pods+"/bound", "", nil)
}

func TestFinalizers(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	cms := "/api/v1/namespaces/default/configmaps"
	a.must(http.StatusCreated, "POST", cms, jsonType, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"f","finalizers":["example.com/hold"]}}`)
	var cm corev1.ConfigMap
	a.must(http.StatusOK, "DELETE", cms+"/f", "", nil).into(t, &cm)
	if cm.DeletionTimestamp == nil {
		t.Fatal("delete with a finalizer did not set deletionTimestamp")
	}
	a.must(http.StatusOK, "GET", cms+"/f", "", nil)
	// New finalizers cannot be added to an object being deleted, but
	// removing the last one removes the object.
	a.must(http.StatusOK, "PATCH", cms+"/f", mergeType, `{"metadata":{"finalizers":null}}`)
	a.must(http.StatusNotFound, "GET", cms+"/f", "", nil)

	// propagationPolicy=Foreground and Orphan leave the garbage collector's finalizers.
	for policy, fin := range map[string]string{"Foreground": "foregroundDeletion", "Orphan": "orphan"} {
		name := strings.ToLower(policy)
		a.must(http.StatusCreated, "POST", cms, jsonType, fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":%q}}`, name))
		a.must(http.StatusOK, "DELETE", cms+"/"+name+"?propagationPolicy="+policy, "", nil).into(t, &cm)
		if len(cm.Finalizers) != 1 || cm.Finalizers[0] != fin {
			t.Fatalf("%s: finalizers %v", policy, cm.Finalizers)
		}
	}
}

func TestNamespaceLifecycle(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	a.must(http.StatusCreated, "POST", "/api/v1/namespaces", jsonType, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"}}`)
	a.must(http.StatusCreated, "POST", "/api/v1/namespaces/team/configmaps", jsonType, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`)
	var ns corev1.Namespace
	a.must(http.StatusOK, "DELETE", "/api/v1/namespaces/team", "", nil).into(t, &ns)
	if ns.Status.Phase != corev1.NamespaceTerminating {
		t.Fatalf("phase %s after delete", ns.Status.Phase)
	}
	// Nothing new goes into a terminating namespace.
	if r := a.do("POST", "/api/v1/namespaces/team/configmaps", jsonType, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"}}`); r.code != http.StatusForbidden {
		t.Fatalf("create in terminating namespace: %d", r.code)
	}
	// The namespace controller empties it, then finalizes.
	a.must(http.StatusOK, "DELETE", "/api/v1/namespaces/team/configmaps/c", "", nil)
	a.must(http.StatusOK, "PUT", "/api/v1/namespaces/team/finalize", jsonType, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"},"spec":{"finalizers":[]}}`)
	a.must(http.StatusNotFound, "GET", "/api/v1/namespaces/team", "", nil)
}

func TestStatusSubresource(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	var p corev1.Pod
	a.must(http.StatusCreated, "POST", pods, jsonType,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"s"},"spec":{"containers":[{"name":"c","image":"echo:v1"}]},"status":{"phase":"Running"}}`).into(t, &p)
	if p.Status.Phase != corev1.PodPending {
		t.Fatalf("status in a create body was kept: %s", p.Status.Phase)
	}
	// status on the main resource is ignored ...
	a.must(http.StatusOK, "PATCH", pods+"/s", mergeType, `{"status":{"phase":"Running"}}`).into(t, &p)
	if p.Status.Phase != corev1.PodPending {
		t.Fatalf("status changed through the main resource: %s", p.Status.Phase)
	}
	gen := p.Generation
	// ... and spec on /status.
	a.must(http.StatusOK, "PATCH", pods+"/s/status", mergeType, `{"status":{"phase":"Running","podIP":"10.244.0.9"},"spec":{"containers":[{"name":"c","image":"other:v2"}]}}`).into(t, &p)
	if p.Status.Phase != corev1.PodRunning || p.Spec.Containers[0].Image != "echo:v1" || p.Generation != gen {
		t.Fatalf("after /status patch: phase %s image %s generation %d->%d", p.Status.Phase, p.Spec.Containers[0].Image, gen, p.Generation)
	}
	// generation moves on spec changes only
	a.must(http.StatusOK, "PATCH", pods+"/s", mergeType, `{"metadata":{"labels":{"a":"b"}}}`).into(t, &p)
	if p.Generation != gen {
		t.Fatalf("a label change bumped generation to %d", p.Generation)
	}
	a.must(http.StatusOK, "PATCH", pods+"/s", smpType, `{"spec":{"containers":[{"name":"c","image":"echo:v2"}]}}`).into(t, &p)
	if p.Generation != gen+1 {
		t.Fatalf("an image change left generation at %d", p.Generation)
	}
	a.must(http.StatusOK, "GET", pods+"/s/status", "", nil)
}

func TestScaleSubresource(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	deploys := "/apis/apps/v1/namespaces/default/deployments"
	a.must(http.StatusCreated, "POST", deploys, jsonType, withName(kinds[7].obj, "web", nil))
	var sc autoscalingv1.Scale
	a.must(http.StatusOK, "GET", deploys+"/web/scale", "", nil).into(t, &sc)
	if sc.Kind != "Scale" || sc.APIVersion != "autoscaling/v1" || sc.Spec.Replicas != 1 || sc.Status.Selector != "app=x" {
		t.Fatalf("scale: %+v", sc)
	}
	sc.Spec.Replicas = 5
	a.must(http.StatusOK, "PUT", deploys+"/web/scale", jsonType, sc)
	a.must(http.StatusConflict, "PUT", deploys+"/web/scale", jsonType, sc) // stale resourceVersion
	a.must(http.StatusOK, "PATCH", deploys+"/web/scale", mergeType, `{"spec":{"replicas":7}}`)
	a.must(http.StatusUnprocessableEntity, "PATCH", deploys+"/web/scale", mergeType, `{"spec":{"replicas":-1}}`)
	var d appsv1.Deployment
	a.must(http.StatusOK, "GET", deploys+"/web", "", nil).into(t, &d)
	if *d.Spec.Replicas != 7 || d.Generation != 3 {
		t.Fatalf("deployment after scale: replicas %d generation %d", *d.Spec.Replicas, d.Generation)
	}
	a.must(http.StatusNotFound, "GET", "/api/v1/namespaces/default/configmaps/x/scale", "", nil)
}

// TestPodLog: the apiserver proxies pods/log to the pod's node agent.
func TestPodLog(t *testing.T) {
	var gotPath, gotQuery string
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotQuery = r.URL.Path, r.URL.RawQuery
		fmt.Fprint(w, "line 1\nline 2\n")
	}))
	defer node.Close()
	host, port, _ := net.SplitHostPort(node.Listener.Addr().String())
	portN, _ := strconv.Atoi(port)

	e := testenv.Start(t)
	a := newAPI(t, e)
	a.must(http.StatusCreated, "POST", "/api/v1/nodes", jsonType, fmt.Sprintf(`{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-1"},"status":{"addresses":[{"type":"InternalIP","address":%q}],"daemonEndpoints":{"kubeletEndpoint":{"Port":%d}}}}`, host, portN))
	a.must(http.StatusCreated, "POST", pods, jsonType, pod("p"))
	a.must(http.StatusBadRequest, "GET", pods+"/p/log", "", nil) // not scheduled yet
	bind(a, "p", "node-1")
	r := a.must(http.StatusOK, "GET", pods+"/p/log?tailLines=2&follow=true", "", nil)
	if string(r.body) != "line 1\nline 2\n" || gotPath != "/containerLogs/default/p/c" || !strings.Contains(gotQuery, "tailLines=2") {
		t.Fatalf("log %q via %s?%s", r.body, gotPath, gotQuery)
	}
	a.must(http.StatusBadRequest, "GET", pods+"/p/log?container=nope", "", nil)
	a.must(http.StatusUnprocessableEntity, "GET", pods+"/p/log?tailLines=-3", "", nil)
	node.Close()
	a.must(http.StatusServiceUnavailable, "GET", pods+"/p/log", "", nil)
}

package server_test

import (
	"net/http"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubeish/kubeish/pkg/testenv"
)

// TestBodyWithoutTypeMeta: a body that leaves apiVersion and kind out takes
// them from the endpoint, as in Kubernetes (curl users often do this), for
// create, update and a grouped kind alike; a body whose kind disagrees with
// the endpoint is still refused.
func TestBodyWithoutTypeMeta(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	cms := "/api/v1/namespaces/default/configmaps"

	var cm corev1.ConfigMap
	a.must(http.StatusCreated, "POST", cms, jsonType, `{"metadata":{"name":"bare"},"data":{"a":"1"}}`).into(t, &cm)
	if cm.Kind != "ConfigMap" || cm.APIVersion != "v1" || cm.Data["a"] != "1" {
		t.Fatalf("created %s %s %v", cm.APIVersion, cm.Kind, cm.Data)
	}
	a.must(http.StatusOK, "PUT", cms+"/bare", yamlType, "metadata:\n  name: bare\ndata:\n  a: \"2\"\n").into(t, &cm)
	if cm.Data["a"] != "2" {
		t.Fatalf("update without type meta: data %v", cm.Data)
	}

	var d appsv1.Deployment
	a.must(http.StatusCreated, "POST", "/apis/apps/v1/namespaces/default/deployments", jsonType,
		`{"metadata":{"name":"web"},"spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"echo:v1"}]}}}}`).into(t, &d)
	if d.Kind != "Deployment" || d.APIVersion != "apps/v1" {
		t.Fatalf("created %s %s", d.APIVersion, d.Kind)
	}

	// Only a missing kind is filled in: a different one is an error.
	r := a.do("POST", cms, jsonType, `{"kind":"Secret","metadata":{"name":"other"}}`)
	if r.code != http.StatusBadRequest {
		t.Fatalf("kind Secret at configmaps: got %d: %s", r.code, r.body)
	}
	a.must(http.StatusNotFound, "GET", cms+"/other", "", nil)
}

package server_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/yaml"

	"github.com/kubeish/kubeish/apiserver/registry"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// TestEncodings: YAML and protobuf in and out, as Content-Type and Accept
// say; JSON by default.
func TestEncodings(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yml\ndata:\n  k: v\n"
	a.must(http.StatusCreated, "POST", "/api/v1/namespaces/default/configmaps", yamlType, manifest)

	r := a.do("GET", "/api/v1/namespaces/default/configmaps/yml", "", nil, "Accept", "application/yaml")
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(r.body, &cm); err != nil || cm.Data["k"] != "v" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/yaml") {
		t.Fatalf("yaml get: %v %q %s", err, r.header.Get("Content-Type"), r.body)
	}

	codecs := serializer.NewCodecFactory(registry.NewScheme())
	info, _ := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	r = a.do("GET", "/api/v1/namespaces/default/configmaps/yml", "", nil, "Accept", "application/vnd.kubernetes.protobuf, application/json")
	obj, _, err := info.Serializer.Decode(r.body, nil, nil)
	if err != nil || obj.(*corev1.ConfigMap).Data["k"] != "v" {
		t.Fatalf("protobuf get: %v", err)
	}
	// A protobuf body in.
	var buf bytes.Buffer
	pb := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: "pb"}, Data: map[string]string{"a": "b"}}
	if err := info.Serializer.Encode(pb, &buf); err != nil {
		t.Fatal(err)
	}
	a.must(http.StatusCreated, "POST", "/api/v1/namespaces/default/configmaps", runtime.ContentTypeProtobuf, buf.Bytes())
	// A list in protobuf (what Prometheus' discovery asks for).
	r = a.do("GET", "/api/v1/namespaces/default/configmaps", "", nil, "Accept", "application/vnd.kubernetes.protobuf")
	if obj, _, err = info.Serializer.Decode(r.body, nil, nil); err != nil || len(obj.(*corev1.ConfigMapList).Items) != 2 {
		t.Fatalf("protobuf list: %v", err)
	}
	if r := a.do("GET", "/api/v1/namespaces/default/configmaps", "", nil, "Accept", "text/html"); r.code != http.StatusNotAcceptable {
		t.Fatalf("Accept text/html: %d", r.code)
	}
}

func TestDiscoveryAndHealth(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	var groups metav1.APIGroupList
	a.must(http.StatusOK, "GET", "/apis", "", nil).into(t, &groups)
	names := map[string]bool{}
	for _, g := range groups.Groups {
		names[g.Name] = true
	}
	for _, g := range []string{"apps", "coordination.k8s.io", "discovery.k8s.io", "autoscaling"} {
		if !names[g] {
			t.Errorf("group %s missing from /apis: %v", g, names)
		}
	}
	var core metav1.APIResourceList
	a.must(http.StatusOK, "GET", "/api/v1", "", nil).into(t, &core)
	found := map[string]metav1.APIResource{}
	for _, r := range core.APIResources {
		found[r.Name] = r
	}
	for _, n := range []string{"pods", "pods/status", "pods/binding", "pods/log", "services", "nodes", "namespaces", "endpoints", "configmaps", "secrets", "events"} {
		if _, ok := found[n]; !ok {
			t.Errorf("%s missing from /api/v1", n)
		}
	}
	if p := found["pods"]; p.Kind != "Pod" || !p.Namespaced || len(p.ShortNames) == 0 || len(p.Verbs) < 8 {
		t.Errorf("pods: %+v", p)
	}
	var apps metav1.APIResourceList
	a.must(http.StatusOK, "GET", "/apis/apps/v1", "", nil).into(t, &apps)
	for _, r := range apps.APIResources {
		if r.Name == "deployments/scale" && (r.Group != "autoscaling" || r.Kind != "Scale") {
			t.Errorf("deployments/scale: %+v", r)
		}
	}
	a.must(http.StatusOK, "GET", "/healthz", "", nil)
	a.must(http.StatusOK, "GET", "/readyz", "", nil)
	a.must(http.StatusOK, "GET", "/version", "", nil)
	a.must(http.StatusOK, "GET", "/api/v1/namespaces/default/pods", "", nil)
	m := string(a.must(http.StatusOK, "GET", "/metrics", "", nil).body)
	for _, want := range []string{`apiserver_request_total{code="200",resource="pods",subresource="",verb="LIST"}`, "apiserver_request_duration_seconds_bucket", "etcd_request_duration_seconds_bucket"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

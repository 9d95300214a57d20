package server_test

import (
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/pkg/testenv"
)

const podJSON = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"NAME"},"spec":{"containers":[{"name":"c","image":"echo:v1"}]}}`

func pod(name string) string { return strings.Replace(podJSON, "NAME", name, 1) }

// TestErrors: every refusal is a Status with the right code and reason, and
// changes nothing.
func TestErrors(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	pods := "/api/v1/namespaces/default/pods"
	big := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"k":"` + strings.Repeat("x", 4<<20) + `"}}`
	cases := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		code        int
		reason      metav1.StatusReason
		field       string // a cause must name this field
	}{
		{"missing namespace", "POST", "/api/v1/namespaces/nope/pods", jsonType, pod("p"), 404, metav1.StatusReasonNotFound, ""},
		{"unknown field", "POST", pods, jsonType, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"bogus":1,"containers":[{"name":"c","image":"x:1"}]}}`, 400, metav1.StatusReasonBadRequest, "spec.bogus"},
		{"not JSON", "POST", pods, jsonType, `{"apiVersion":`, 400, metav1.StatusReasonBadRequest, ""},
		{"wrong kind", "POST", pods, jsonType, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"p"}}`, 400, metav1.StatusReasonBadRequest, ""},
		{"bad name", "POST", pods, jsonType, pod("Not_A_Name"), 422, metav1.StatusReasonInvalid, "metadata.name"},
		{"no image", "POST", pods, jsonType, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}`, 422, metav1.StatusReasonInvalid, "spec.containers[0].image"},
		{"unsupported volume", "POST", pods, jsonType, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"volumes":[{"name":"v","persistentVolumeClaim":{"claimName":"c"}}],"containers":[{"name":"c","image":"x:1"}]}}`, 422, metav1.StatusReasonInvalid, "spec.volumes[0].persistentVolumeClaim"},
		{"bad port", "POST", "/api/v1/namespaces/default/services", jsonType, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"ports":[{"port":70000}]}}`, 422, metav1.StatusReasonInvalid, "spec.ports[0].port"},
		{"selector does not match", "POST", "/apis/apps/v1/namespaces/default/deployments", jsonType, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"selector":{"matchLabels":{"app":"a"}},"template":{"metadata":{"labels":{"app":"b"}},"spec":{"containers":[{"name":"c","image":"x:1"}]}}}}`, 422, metav1.StatusReasonInvalid, "spec.template.metadata.labels"},
		{"negative replicas", "POST", "/apis/apps/v1/namespaces/default/replicasets", jsonType, `{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"r"},"spec":{"replicas":-1,"selector":{"matchLabels":{"app":"a"}},"template":{"metadata":{"labels":{"app":"a"}},"spec":{"containers":[{"name":"c","image":"x:1"}]}}}}`, 422, metav1.StatusReasonInvalid, "spec.replicas"},
		{"too large", "POST", "/api/v1/namespaces/default/configmaps", jsonType, big, 413, metav1.StatusReasonRequestEntityTooLarge, ""},
		{"unsupported media type", "POST", pods, "application/xml", pod("p"), 415, metav1.StatusReasonUnsupportedMediaType, ""},
		{"apply patch", "PATCH", "/api/v1/namespaces/default/services/kubernetes", "application/apply-patch+yaml", `{}`, 415, metav1.StatusReasonUnsupportedMediaType, ""},
		{"bad label selector", "GET", pods + "?labelSelector=a%3D%3D%3Db", "", "", 400, metav1.StatusReasonBadRequest, ""},
		{"unknown field selector", "GET", pods + "?fieldSelector=spec.bogus%3D1", "", "", 400, metav1.StatusReasonBadRequest, ""},
		{"bad continue", "GET", pods + "?limit=1&continue=zzz", "", "", 400, metav1.StatusReasonBadRequest, ""},
		{"unknown resource", "GET", "/api/v1/namespaces/default/widgets", "", "", 404, metav1.StatusReasonNotFound, ""},
		{"unknown subresource", "GET", "/api/v1/namespaces/default/services/kubernetes/nope", "", "", 404, metav1.StatusReasonNotFound, ""},
		{"protected namespace", "DELETE", "/api/v1/namespaces/default", "", "", 403, metav1.StatusReasonForbidden, ""},
		{"name mismatch", "PUT", pods + "/a", jsonType, pod("b"), 400, metav1.StatusReasonBadRequest, ""},
		{"create in all namespaces", "POST", "/api/v1/pods", jsonType, pod("p"), 405, metav1.StatusReasonMethodNotAllowed, ""},
		{"bad dryRun", "POST", pods + "?dryRun=Maybe", jsonType, pod("p"), 400, metav1.StatusReasonBadRequest, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &api{t: t, base: a.base, c: a.c}
			var body any
			if c.body != "" {
				body = c.body
			}
			r := a.do(c.method, c.path, c.contentType, body)
			if r.code != c.code {
				t.Fatalf("got %d, want %d: %.300s", r.code, c.code, r.body)
			}
			s := r.status(t)
			if s.Reason != c.reason || s.Status != metav1.StatusFailure || int(s.Code) != c.code {
				t.Fatalf("status %+v, want reason %s code %d", s, c.reason, c.code)
			}
			if c.field != "" {
				found := false
				for _, cause := range s.Details.Causes {
					found = found || cause.Field == c.field
				}
				if !found {
					t.Fatalf("no cause names %s: %+v", c.field, s.Details)
				}
			}
		})
	}
	// Nothing was created by any refused request.
	var list corev1.PodList
	a.must(http.StatusOK, "GET", pods, "", nil).into(t, &list)
	if len(list.Items) != 0 {
		t.Fatalf("refused creates left %d pods", len(list.Items))
	}
}

func TestDryRun(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	pods := "/api/v1/namespaces/default/pods"
	a.must(http.StatusCreated, "POST", pods+"?dryRun=All", jsonType, pod("dry"))
	a.must(http.StatusNotFound, "GET", pods+"/dry", "", nil)
	a.must(http.StatusCreated, "POST", pods, jsonType, pod("wet"))
	a.must(http.StatusOK, "PATCH", pods+"/wet?dryRun=All", mergeType, `{"metadata":{"labels":{"a":"b"}}}`)
	a.must(http.StatusOK, "DELETE", pods+"/wet?dryRun=All", "", nil)
	var p corev1.Pod
	a.must(http.StatusOK, "GET", pods+"/wet", "", nil).into(t, &p)
	if p.Labels["a"] != "" || p.DeletionTimestamp != nil {
		t.Fatalf("dry-run changed the pod: %+v", p.ObjectMeta)
	}
}

// TestWarnings: an advisory field kubeish ignores is accepted with a Warning.
func TestWarnings(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	r := a.must(http.StatusCreated, "POST", "/api/v1/namespaces/default/pods", jsonType,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"w"},"spec":{"priorityClassName":"high","containers":[{"name":"c","image":"x:1"}]}}`)
	if w := r.header.Get("Warning"); !strings.Contains(w, "priorityClassName") {
		t.Fatalf("no warning for priorityClassName: %q", w)
	}
}

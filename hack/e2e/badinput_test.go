//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// testBadInput: invalid manifests, through kctl and through plain HTTP,
// are refused with an error that names the problem (a Status with reason,
// code and the offending field) and change nothing.
func testBadInput(c *realCluster) {
	t := c.t
	ctx := ctxFor(t)
	const ns = "bad-input"
	c.mustKctl("apiVersion: v1\nkind: Namespace\nmetadata: {name: bad-input}\n", "apply", "-f", "-")
	// An object that bad updates must leave alone.
	steady := echoDeployment(ns, "steady", 1, "v1")
	steady, err := c.client.AppsV1().Deployments(ns).Create(ctx, steady, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A newer version, so that steady's resourceVersion is stale for the
	// optimistic-concurrency case.
	if _, err := c.client.AppsV1().Deployments(ns).Patch(ctx, "steady", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"e2e":"touched"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}

	const deploymentHead = `apiVersion: apps/v1
kind: Deployment
metadata: {name: %s, namespace: bad-input}
spec:
  replicas: %s
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
%s      containers:
      - {name: echo, image: kubeish.local/echo:v1, imagePullPolicy: Never}
`
	deployment := func(name, replicas, app, specExtra string) string {
		return fmt.Sprintf(deploymentHead, name, replicas, app, app, specExtra)
	}
	kctlCases := []struct {
		name     string
		manifest string
		// want are the parts the error must name.
		want []string
		// gone is the object that must not exist afterwards (kind/name).
		gone string
	}{
		{"negative replicas", deployment("bad-replicas", "-1", "bad", ""),
			[]string{"spec.replicas", "must be greater than or equal to 0"}, "deployment/bad-replicas"},
		{"unknown field", "apiVersion: v1\nkind: Pod\nmetadata: {name: bad-field, namespace: bad-input}\nspec:\n  containers:\n  - {name: echo, imagee: kubeish.local/echo:v1}\n",
			[]string{"imagee"}, "pod/bad-field"},
		{"port out of range", "apiVersion: v1\nkind: Service\nmetadata: {name: bad-port, namespace: bad-input}\nspec:\n  selector: {app: x}\n  ports:\n  - {port: 70000}\n",
			[]string{"spec.ports[0].port"}, "service/bad-port"},
		{"unsupported field (hostPID)", deployment("bad-hostpid", "1", "hostpid", "      hostPID: true\n"),
			[]string{"spec.template.spec.hostPID"}, "deployment/bad-hostpid"},
		{"selector not matching the labels", strings.Replace(deployment("bad-selector", "1", "a", ""), "labels: {app: a}", "labels: {app: b}", 1),
			[]string{"spec.template.metadata.labels"}, "deployment/bad-selector"},
		{"not YAML", "kind: Pod\nmetadata: [name: x\n", nil, ""},
		{"no kind", "apiVersion: v1\nmetadata: {name: no-kind}\n", []string{"kind"}, ""},
		{"update: negative replicas", deployment("steady", "-1", "steady", ""), []string{"spec.replicas"}, ""},
		{"update: selector is immutable", strings.ReplaceAll(deployment("steady", "1", "steady", ""), "app: steady", "app: other"),
			[]string{"spec.selector", "immutable"}, ""},
	}
	dir := t.TempDir()
	for i, tc := range kctlCases {
		file := filepath.Join(dir, fmt.Sprintf("%d.yaml", i))
		if err := os.WriteFile(file, []byte(tc.manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := c.kctl("", "apply", "-f", file)
		switch {
		case err == nil:
			t.Errorf("%s: kctl apply succeeded: %s", tc.name, out)
		case !strings.HasPrefix(errOut, "error: "):
			t.Errorf("%s: kctl's error %q does not start with \"error: \"", tc.name, errOut)
		default:
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("%s: kctl's error %q does not name %q", tc.name, strings.TrimSpace(errOut), w)
				}
			}
			t.Logf("%s: %s", tc.name, strings.TrimSpace(errOut))
		}
		if tc.gone != "" {
			if out, _, err := c.kctl("", "get", tc.gone, "-n", ns); err == nil {
				t.Errorf("%s: %s exists after the refusal: %s", tc.name, tc.gone, out)
			}
		}
	}

	// Plain HTTP, as curl sends it.
	httpCases := []struct {
		name, method, path, body string
		code                     int
		reason                   metav1.StatusReason
		field                    string // a details.causes[].field, or "" for none required
		message                  string // a part of the message
	}{
		{"malformed JSON", "POST", "/api/v1/namespaces/bad-input/pods", `{"apiVersion":"v1","kind":"Pod",`,
			400, metav1.StatusReasonBadRequest, "", ""},
		{"no containers", "POST", "/api/v1/namespaces/bad-input/pods",
			`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"raw-empty"},"spec":{"containers":[]}}`,
			422, metav1.StatusReasonInvalid, "spec.containers", ""},
		{"unknown field, strict", "POST", "/api/v1/namespaces/bad-input/pods?fieldValidation=Strict",
			`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"raw-unknown"},"spec":{"containers":[{"name":"c","image":"kubeish.local/echo:v1"}],"colour":"red"}}`,
			400, metav1.StatusReasonBadRequest, "", "colour"},
		{"invalid name", "POST", "/api/v1/namespaces/bad-input/configmaps",
			`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}`,
			422, metav1.StatusReasonInvalid, "metadata.name", ""},
		{"node port out of range", "POST", "/api/v1/namespaces/bad-input/services",
			`{"apiVersion":"v1","kind":"Service","metadata":{"name":"raw-nodeport"},"spec":{"type":"NodePort","selector":{"app":"x"},"ports":[{"port":80,"nodePort":80}]}}`,
			422, metav1.StatusReasonInvalid, "spec.ports[0].nodePort", ""},
		{"kind does not match the path", "POST", "/api/v1/namespaces/bad-input/configmaps",
			`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"raw-kind"}}`,
			400, metav1.StatusReasonBadRequest, "", ""},
		{"no such namespace", "POST", "/api/v1/namespaces/no-such-ns/configmaps",
			`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"raw-nons"}}`,
			404, metav1.StatusReasonNotFound, "", ""},
		{"update: negative replicas", "PATCH", "/apis/apps/v1/namespaces/bad-input/deployments/steady",
			`{"spec":{"replicas":-1}}`, 422, metav1.StatusReasonInvalid, "spec.replicas", ""},
		{"update: stale resourceVersion", "PUT", "/apis/apps/v1/namespaces/bad-input/deployments/steady",
			staleUpdate(t, steady), 409, metav1.StatusReasonConflict, "", ""},
	}
	hc := httpClient(t, c.config, 30*time.Second)
	for _, tc := range httpCases {
		req, err := http.NewRequestWithContext(ctx, tc.method, c.apiURL+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if tc.method == "PATCH" {
			req.Header.Set("Content-Type", "application/merge-patch+json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var st metav1.Status
		if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" {
			t.Errorf("%s: %d answer %q is not a Status (%v)", tc.name, resp.StatusCode, body, err)
			continue
		}
		var fields []string
		if st.Details != nil {
			for _, cause := range st.Details.Causes {
				fields = append(fields, cause.Field)
			}
		}
		switch {
		case resp.StatusCode != tc.code || int(st.Code) != tc.code || st.Status != metav1.StatusFailure || st.Reason != tc.reason:
			t.Errorf("%s: HTTP %d, Status %s/%s code %d; want %d %s\n%s", tc.name, resp.StatusCode, st.Status, st.Reason, st.Code, tc.code, tc.reason, body)
		case tc.field != "" && !slices.Contains(fields, tc.field):
			t.Errorf("%s: causes name fields %v, want %s\n%s", tc.name, fields, tc.field, body)
		case tc.message != "" && !strings.Contains(st.Message, tc.message):
			t.Errorf("%s: message %q does not name %q", tc.name, st.Message, tc.message)
		case st.Message == "":
			t.Errorf("%s: Status without a message: %s", tc.name, body)
		default:
			t.Logf("%s: %d %s %v: %s", tc.name, st.Code, st.Reason, fields, st.Message)
		}
	}

	// Nothing changed: no object was made, the Deployment is as it was.
	for _, get := range []struct {
		kind string
		err  func() error
	}{
		{"pods", func() error {
			_, err := c.client.CoreV1().Pods(ns).Get(ctx, "raw-empty", metav1.GetOptions{})
			return err
		}},
		{"pods", func() error {
			_, err := c.client.CoreV1().Pods(ns).Get(ctx, "raw-unknown", metav1.GetOptions{})
			return err
		}},
		{"services", func() error {
			_, err := c.client.CoreV1().Services(ns).Get(ctx, "raw-nodeport", metav1.GetOptions{})
			return err
		}},
		{"secrets", func() error {
			_, err := c.client.CoreV1().Secrets(ns).Get(ctx, "raw-kind", metav1.GetOptions{})
			return err
		}},
		{"configmaps", func() error {
			_, err := c.client.CoreV1().ConfigMaps(ns).Get(ctx, "raw-kind", metav1.GetOptions{})
			return err
		}},
		{"namespaces", func() error {
			_, err := c.client.CoreV1().Namespaces().Get(ctx, "no-such-ns", metav1.GetOptions{})
			return err
		}},
	} {
		if err := get.err(); !apierrors.IsNotFound(err) {
			t.Errorf("%s: a refused object exists (or: %v)", get.kind, err)
		}
	}
	pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app!=steady"})
	if err != nil || len(pods.Items) != 0 {
		t.Errorf("pods made by refused input: %v (%v)", pods, err)
	}
	svcs, err := c.client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(svcs.Items) != 0 {
		t.Errorf("services made by refused input: %v (%v)", svcs, err)
	}
	ds, err := c.client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(ds.Items) != 1 {
		t.Errorf("deployments after refused input: %d, want only steady (%v)", len(ds.Items), err)
	}
	got, err := c.client.AppsV1().Deployments(ns).Get(ctx, "steady", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != steady.Generation || ptr.Deref(got.Spec.Replicas, 0) != 1 || got.Spec.Selector.MatchLabels["app"] != "steady" {
		t.Errorf("deployment steady changed by refused updates: generation %d→%d, replicas %d, selector %v",
			steady.Generation, got.Generation, ptr.Deref(got.Spec.Replicas, 0), got.Spec.Selector.MatchLabels)
	}
}

// staleUpdate is d changed, as JSON, keeping d's resourceVersion.
func staleUpdate(t *testing.T, d any) string {
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.Replace(b, []byte(`"replicas":1`), []byte(`"replicas":2`), 1))
}

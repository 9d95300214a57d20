//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeish/kubeish/pkg/pki"
	"github.com/kubeish/kubeish/pkg/poll"
)

// testSecurity checks the secured cluster from outside, with the real
// binaries: nobody gets in without credentials, a viewer reads but neither
// writes nor reads Secrets, a node's own credentials (the ones its agent
// runs with) cannot touch another node, and a node agent's API answers
// only the apiserver's certificate.
func testSecurity(c *realCluster) {
	t := c.t
	ctx := ctxFor(t)

	t.Run("anonymous is refused", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AddCert(c.pki.ca.Cert)
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		for path, want := range map[string]int{"/api/v1/pods": 401, "/api/v1/namespaces/default/secrets": 401, "/readyz": 200, "/version": 200} {
			resp, err := hc.Get(c.apiURL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("anonymous GET %s: %d, want %d", path, resp.StatusCode, want)
			}
		}
	})

	t.Run("viewer", func(t *testing.T) {
		viewer := kubernetes.NewForConfigOrDie(c.pki.restConfig(t, c.apiURL, "e2e-viewer", "e2e-viewers"))
		if _, err := viewer.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("an unbound user listing pods: %v, want Forbidden", err)
		}
		binding := `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-viewers}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: e2e-viewers}]
`
		if out, errOut, err := c.kctl(binding, "apply", "-f", "-"); err != nil {
			t.Fatalf("binding the viewers: %v\n%s%s", err, out, errOut)
		}
		poll.Until(t, 10*time.Second, "the binding to take effect", func() (bool, error) {
			_, err := viewer.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
			return err == nil, err
		})
		_, err := viewer.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `User "e2e-viewer" cannot list resource "secrets"`) {
			t.Fatalf("a viewer listing secrets: %v, want Forbidden naming the user, verb and resource", err)
		}
		_, err = viewer.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "viewer-was-here"}}, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("a viewer creating a ConfigMap: %v, want Forbidden", err)
		}
	})

	t.Run("a node cannot touch another node", func(t *testing.T) {
		if len(c.nodes) < 2 {
			t.Skip("needs two nodes")
		}
		a, b := c.nodes[0], c.nodes[1]
		// The very credentials node A's agent runs with, reached through
		// the test's forwarder.
		cfg, err := clientcmd.BuildConfigFromFlags(c.apiURL, filepath.Join(c.pki.dir, a.name+".kubeconfig"))
		if err != nil {
			t.Fatal(err)
		}
		node := kubernetes.NewForConfigOrDie(cfg)
		patch := []byte(`{"metadata":{"labels":{"e2e-touched":"yes"}}}`)
		if _, err := node.CoreV1().Nodes().Patch(ctx, b.name, types.MergePatchType, patch, metav1.PatchOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("%s patching node %s: %v, want Forbidden", a.name, b.name, err)
		}
		if _, err := node.CoreV1().Nodes().Patch(ctx, a.name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatalf("%s patching its own node: %v", a.name, err)
		}
		if _, err := node.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("%s listing secrets: %v, want Forbidden", a.name, err)
		}
		pods, err := c.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + b.name})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			p.Status.Message = "forged by " + a.name
			if _, err := node.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, &p, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
				t.Fatalf("%s updating the status of %s's pod %s: %v, want Forbidden", a.name, b.name, p.Name, err)
			}
			break
		}
	})

	t.Run("node agent API wants the apiserver's certificate", func(t *testing.T) {
		n := c.nodes[0]
		pool := x509.NewCertPool()
		pool.AddCert(c.pki.ca.Cert)
		call := func(cert *pki.Pair) int {
			t.Helper()
			tc := &tls.Config{RootCAs: pool}
			if cert != nil {
				kp, err := cert.TLSCertificate()
				if err != nil {
					t.Fatal(err)
				}
				tc.Certificates = []tls.Certificate{kp}
			}
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: c.cp.DialContext, TLSClientConfig: tc}}
			resp, err := hc.Get(fmt.Sprintf("https://%s:%d/containerLogs/kube-system/nope/nope", n.ip, kubeletPort))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := call(nil); code != http.StatusUnauthorized {
			t.Errorf("no certificate: %d, want 401", code)
		}
		stranger := c.pki.issue(t, pki.Spec{CommonName: "e2e-viewer", Organizations: []string{"e2e-viewers"}, Usage: pki.Client})
		if code := call(stranger); code != http.StatusForbidden {
			t.Errorf("a user's certificate: %d, want 403", code)
		}
		apiserver := c.pki.issue(t, pki.Spec{CommonName: pki.APIServerKubeletClientUser, Organizations: []string{pki.MastersGroup}, Usage: pki.Client})
		if code := call(apiserver); code != http.StatusNotFound {
			t.Errorf("the apiserver's identity: %d, want 404 (authorized; no such pod)", code)
		}
	})
}

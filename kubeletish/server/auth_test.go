package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/kubeletish/stats"
	"github.com/kubeish/kubeish/pkg/metrics"
	"github.com/kubeish/kubeish/pkg/pki"
)

// logPods has one pod, default/web, whose container app logged one line.
type logPods struct{ dir string }

func (p logPods) GetPod(ns, name string) *v1.Pod {
	if ns != "default" || name != "web" {
		return nil
	}
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: "u1"}}
}

func (p logPods) LogPath(pod *v1.Pod, container string, attempt int) string {
	return filepath.Join(p.dir, container, strconv.Itoa(attempt)+".log")
}

type someStats struct{}

func (someStats) Summary(context.Context) (*stats.Summary, error) {
	return &stats.Summary{Node: stats.NodeStats{NodeName: "n1"}}, nil
}
func (someStats) Gatherer() prometheus.Gatherer { return prometheus.NewRegistry() }

// pkiFixture is a cluster CA, a foreign one, and files for the agent.
type pkiFixture struct {
	ca, foreign               *pki.CA
	dir                       string
	certFile, keyFile, caFile string
}

func newPKI(t *testing.T) *pkiFixture {
	t.Helper()
	f := &pkiFixture{dir: t.TempDir()}
	var err error
	if f.ca, err = pki.NewCA("kubeish-ca"); err != nil {
		t.Fatal(err)
	}
	if f.foreign, err = pki.NewCA("someone-else"); err != nil {
		t.Fatal(err)
	}
	if err := f.ca.Write(f.dir); err != nil {
		t.Fatal(err)
	}
	f.caFile = filepath.Join(f.dir, pki.CACertFile)
	f.certFile, f.keyFile = filepath.Join(f.dir, "kubelet.crt"), filepath.Join(f.dir, "kubelet.key")
	serving, err := f.ca.Issue(pki.Spec{CommonName: "n1", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Usage: pki.Server})
	if err != nil {
		t.Fatal(err)
	}
	if err := serving.Write(f.certFile, f.keyFile); err != nil {
		t.Fatal(err)
	}
	return f
}

// serve starts the agent's server as app.Run does: TLS and WithAuth.
func (f *pkiFixture) serve(t *testing.T, metricsAnonymous bool) string {
	t.Helper()
	ms := metrics.NewServer()
	ms.EnableProfiling()
	logDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(logDir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(logDir, "app", "0.log"), []byte("2026-01-02T03:04:05.000000000Z stdout F hello from web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	Install(ms, logPods{dir: logDir}, someStats{})
	cfg, err := TLSConfig(f.certFile, f.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cas, err := ClientCAFile(f.caFile)
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	auth := AuthConfig{NodeName: "n1", ClientCAs: cas, AuthorizedUsers: []string{pki.APIServerKubeletClientUser},
		MetricsAnonymous: metricsAnonymous, Log: log}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addr, err := ms.ServeWith(ctx, "127.0.0.1:0", log, metrics.ServeOptions{TLS: cfg,
		Wrap: func(h http.Handler) http.Handler { return WithAuth(h, auth) }})
	if err != nil {
		t.Fatal(err)
	}
	return "https://" + addr.String()
}

// client trusts the cluster CA and presents the certificate spec issued by
// ca (nil: none).
func (f *pkiFixture) client(t *testing.T, ca *pki.CA, spec *pki.Spec) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(f.ca.Cert)
	cfg := &tls.Config{RootCAs: roots}
	if spec != nil {
		pair, err := ca.Issue(*spec)
		if err != nil {
			t.Fatal(err)
		}
		c, err := pair.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func TestAuth(t *testing.T) {
	f := newPKI(t)
	strict, anonMetrics := f.serve(t, false), f.serve(t, true)

	apiserver := pki.Spec{CommonName: pki.APIServerKubeletClientUser, Organizations: []string{pki.MastersGroup}, Usage: pki.Client}
	clients := map[string]*http.Client{
		"none":      f.client(t, nil, nil),
		"apiserver": f.client(t, f.ca, &apiserver),
		// The authorized name alone is enough, as is system:masters alone.
		"apiserver-no-group": f.client(t, f.ca, &pki.Spec{CommonName: pki.APIServerKubeletClientUser, Usage: pki.Client}),
		"admin":              f.client(t, f.ca, &pki.Spec{CommonName: "alice", Organizations: []string{pki.MastersGroup}, Usage: pki.Client}),
		"foreign":            f.client(t, f.foreign, &apiserver),
		"expired": f.client(t, f.ca, &pki.Spec{CommonName: pki.APIServerKubeletClientUser, Organizations: []string{pki.MastersGroup},
			Usage: pki.Client, NotBefore: time.Now().Add(-2 * time.Hour), Validity: time.Hour}),
		"not-yet-valid": f.client(t, f.ca, &pki.Spec{CommonName: pki.APIServerKubeletClientUser, Organizations: []string{pki.MastersGroup},
			Usage: pki.Client, NotBefore: time.Now().Add(time.Hour)}),
		"server-usage": f.client(t, f.ca, &pki.Spec{CommonName: pki.APIServerKubeletClientUser, Organizations: []string{pki.MastersGroup}, Usage: pki.Server}),
		"node":         f.client(t, f.ca, &pki.Spec{CommonName: pki.NodeUserPrefix + "n2", Organizations: []string{pki.NodesGroup}, Usage: pki.Client}),
		"bob":          f.client(t, f.ca, &pki.Spec{CommonName: "bob", Usage: pki.Client}),
	}
	const logs = "/containerLogs/default/web/app"
	for _, tc := range []struct {
		name, server, client, path string
		code                       int
		// contains is a part of the body (the Status' message on 401/403).
		contains string
	}{
		{"logs for the apiserver", strict, "apiserver", logs, 200, "hello from web"},
		{"logs for the authorized name without groups", strict, "apiserver-no-group", logs + "?timestamps=true", 200, "2026-01-02T03:04:05"},
		{"logs for system:masters", strict, "admin", logs, 200, "hello from web"},
		{"logs without a certificate", strict, "none", logs, 401, "no client certificate"},
		{"logs with a foreign CA's certificate", strict, "foreign", logs, 401, "unknown authority"},
		{"logs with an expired certificate", strict, "expired", logs, 401, "expired"},
		{"logs with a certificate not valid yet", strict, "not-yet-valid", logs, 401, "not yet valid"},
		{"logs with a serving certificate", strict, "server-usage", logs, 401, "incompatible key usage"},
		{"logs for another node", strict, "node", logs, 403, `user "system:node:n2" (groups ["system:nodes"]) cannot get nodes/proxy`},
		{"logs for another user", strict, "bob", logs, 403, `user "bob"`},
		{"not found still needs a caller", strict, "none", "/containerLogs/default/gone/app", 401, ""},
		{"not found for the apiserver", strict, "apiserver", "/containerLogs/default/gone/app", 404, "not found on this node"},
		{"unknown path needs a caller", strict, "none", "/nothing-here", 401, ""},
		{"summary for the apiserver", strict, "apiserver", "/stats/summary", 200, `"nodeName":"n1"`},
		{"summary anonymous", strict, "none", "/stats/summary", 401, ""},
		{"summary for another user", strict, "bob", "/stats/summary", 403, "cannot get nodes/stats"},
		{"summary anonymous stays refused with --metrics-anonymous", anonMetrics, "none", "/stats/summary", 401, ""},
		{"healthz anonymous", strict, "none", "/healthz", 200, "ok"},
		{"livez anonymous", strict, "none", "/livez", 200, "ok"},
		{"readyz anonymous", strict, "none", "/readyz", 200, "ok"},
		{"healthz with a foreign certificate", strict, "foreign", "/healthz", 200, "ok"},
		{"metrics anonymous", strict, "none", "/metrics", 401, ""},
		{"metrics for another user", strict, "bob", "/metrics", 403, "cannot get nodes/metrics"},
		{"metrics for the apiserver", strict, "apiserver", "/metrics", 200, "go_goroutines"},
		{"cadvisor anonymous", strict, "none", "/metrics/cadvisor", 401, ""},
		{"metrics anonymous with --metrics-anonymous", anonMetrics, "none", "/metrics", 200, "go_goroutines"},
		{"cadvisor anonymous with --metrics-anonymous", anonMetrics, "none", "/metrics/cadvisor", 200, ""},
		{"logs stay refused with --metrics-anonymous", anonMetrics, "none", logs, 401, ""},
		{"pprof anonymous", strict, "none", "/debug/pprof/", 401, ""},
		{"pprof for another user", strict, "bob", "/debug/pprof/", 403, "cannot get nodes/proxy"},
		{"pprof for the apiserver", strict, "apiserver", "/debug/pprof/", 200, "goroutine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := clients[tc.client].Get(tc.server + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.code, b)
			}
			got := string(b)
			if tc.code == 401 || tc.code == 403 {
				var s metav1.Status
				if err := json.Unmarshal(b, &s); err != nil || s.Kind != "Status" || s.Code != int32(tc.code) ||
					(tc.code == 401) != (s.Reason == metav1.StatusReasonUnauthorized) || (tc.code == 403) != (s.Reason == metav1.StatusReasonForbidden) {
					t.Errorf("want a %d Status, got %s (%v)", tc.code, b, err)
				}
				got = s.Message
			}
			if !strings.Contains(got, tc.contains) {
				t.Errorf("answer lacks %q: %s", tc.contains, got)
			}
		})
	}
}

func TestTLSConfigReloads(t *testing.T) {
	f := newPKI(t)
	cfg, err := TLSConfig(f.certFile, f.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	serial := func() string {
		t.Helper()
		c, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.SerialNumber.String()
	}
	first := serial()
	renewed, err := f.ca.Issue(pki.Spec{CommonName: "n1", Usage: pki.Server})
	if err != nil {
		t.Fatal(err)
	}
	// Half written: the new certificate with the old key is not used.
	if err := os.WriteFile(f.certFile, renewed.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != first {
		t.Errorf("serving a certificate whose key is not written yet")
	}
	if err := renewed.Write(f.certFile, f.keyFile); err != nil {
		t.Fatal(err)
	}
	second := serial()
	if second == first {
		t.Errorf("the renewed certificate is not served")
	}
	if err := os.Remove(f.keyFile); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != second {
		t.Errorf("a missing key file dropped the certificate in use")
	}

	// The client CAs too: a new CA's certificates are accepted once the
	// file names it.
	cas, err := ClientCAFile(f.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := f.foreign.Issue(pki.Spec{CommonName: "x", Usage: pki.Client})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := pair.TLSCertificate()
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	verify := func() error {
		pool, err := cas()
		if err != nil {
			t.Fatal(err)
		}
		_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return err
	}
	if verify() == nil {
		t.Fatal("a foreign CA's certificate verified")
	}
	if err := os.WriteFile(f.caFile, append(append([]byte{}, f.ca.CertPEM...), f.foreign.CertPEM...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := verify(); err != nil {
		t.Errorf("after adding its CA to the file: %v", err)
	}
}

func TestServingFilesRefused(t *testing.T) {
	f := newPKI(t)
	garbage := filepath.Join(f.dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not PEM"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(f.dir, "missing")
	for name, err := range map[string]error{
		"missing cert":        second(TLSConfig(missing, f.keyFile)),
		"key of another cert": second(TLSConfig(f.certFile, filepath.Join(f.dir, pki.CAKeyFile))),
		"garbage key":         second(TLSConfig(f.certFile, garbage)),
		"missing client CAs":  second(ClientCAFile(missing)),
		"client CAs not PEM":  second(ClientCAFile(garbage)),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func second[T any](_ T, err error) error { return err }

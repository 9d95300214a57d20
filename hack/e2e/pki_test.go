//go:build e2e

package e2e

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/kubeish/kubeish/pkg/pki"
)

// clusterPKI is a test cluster's CA, in the folder the apiserver gets as
// --cert-dir (it issues its own serving certificate from it), and the
// credentials the suite hands out: the admin's (system:masters), the
// components' and every node's, as `make up` does with `kctl pki`.
type clusterPKI struct {
	dir string
	ca  *pki.CA
}

func newClusterPKI(t *testing.T, dir string) *clusterPKI {
	t.Helper()
	ca, _, err := pki.LoadOrCreateCA(dir, "kubeish-e2e-ca")
	if err != nil {
		t.Fatal(err)
	}
	keys := "key1:" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n" // 32 bytes, test only
	if err := os.WriteFile(filepath.Join(dir, "encryption.keys"), []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	return &clusterPKI{dir: dir, ca: ca}
}

// apiserverArgs are the apiserver's security flags for this PKI.
func (p *clusterPKI) apiserverArgs() []string {
	return []string{"--cert-dir", p.dir, "--encryption-key-file", filepath.Join(p.dir, "encryption.keys"), "--metrics-anonymous"}
}

func (p *clusterPKI) caFile() string { return filepath.Join(p.dir, pki.CACertFile) }

func (p *clusterPKI) issue(t *testing.T, spec pki.Spec) *pki.Pair {
	t.Helper()
	pair, err := p.ca.Issue(spec)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// restConfig is a client-go config for user (in groups) against server.
func (p *clusterPKI) restConfig(t *testing.T, server, user string, groups ...string) *rest.Config {
	t.Helper()
	pair := p.issue(t, pki.Spec{CommonName: user, Organizations: groups, Usage: pki.Client})
	return &rest.Config{Host: server, QPS: -1, TLSClientConfig: rest.TLSClientConfig{
		CAData: p.ca.CertPEM, CertData: pair.CertPEM, KeyData: pair.KeyPEM}}
}

// httpClient is a plain HTTP client for cfg's user (raw requests).
func httpClient(t *testing.T, cfg *rest.Config, timeout time.Duration) *http.Client {
	t.Helper()
	c := *cfg
	c.Timeout = timeout
	hc, err := rest.HTTPClientFor(&c)
	if err != nil {
		t.Fatal(err)
	}
	return hc
}

// kubeconfig writes a kubeconfig for user (in groups) against server into
// the PKI folder and returns its path.
func (p *clusterPKI) kubeconfig(t *testing.T, name, server, user string, groups ...string) string {
	t.Helper()
	pair := p.issue(t, pki.Spec{CommonName: user, Organizations: groups, Usage: pki.Client})
	data, err := pki.Kubeconfig("e2e", server, p.ca.CertPEM, pki.Credentials{Pair: pair})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(p.dir, name+".kubeconfig")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// nodeArgs are a node agent's credentials as flags: its kubeconfig
// (system:node:NAME), its serving certificate for ip, the CA its callers'
// certificates must chain to.
func (p *clusterPKI) nodeArgs(t *testing.T, name, ip, server string) []string {
	t.Helper()
	kc := p.kubeconfig(t, name, server, pki.NodeUserPrefix+name, pki.NodesGroup)
	serving := p.issue(t, pki.Spec{CommonName: name, DNSNames: []string{name}, IPs: []net.IP{net.ParseIP(ip)}, Usage: pki.Server})
	cert, key := filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	if err := serving.Write(cert, key); err != nil {
		t.Fatal(err)
	}
	return []string{"--kubeconfig", kc, "--tls-cert-file", cert, "--tls-private-key-file", key,
		"--client-ca-file", p.caFile(), "--metrics-anonymous"}
}

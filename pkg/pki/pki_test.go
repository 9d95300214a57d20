package pki

import (
	"crypto/x509"
	"net"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

func TestIssueVerifies(t *testing.T) {
	ca, err := NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("other-ca")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)

	tests := []struct {
		name    string
		signer  *CA
		spec    Spec
		usage   x509.ExtKeyUsage
		dnsName string
		wantErr bool
	}{
		{name: "client", signer: ca, spec: Spec{CommonName: "alice", Organizations: []string{"dev"}, Usage: Client}, usage: x509.ExtKeyUsageClientAuth},
		{name: "server", signer: ca, spec: Spec{CommonName: "apiserver", DNSNames: []string{"kubernetes"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: Server}, usage: x509.ExtKeyUsageServerAuth, dnsName: "kubernetes"},
		{name: "server cert used as client", signer: ca, spec: Spec{CommonName: "apiserver", Usage: Server}, usage: x509.ExtKeyUsageClientAuth, wantErr: true},
		{name: "wrong name", signer: ca, spec: Spec{CommonName: "apiserver", DNSNames: []string{"kubernetes"}, Usage: Server}, usage: x509.ExtKeyUsageServerAuth, dnsName: "evil", wantErr: true},
		{name: "foreign CA", signer: other, spec: Spec{CommonName: "mallory", Usage: Client}, usage: x509.ExtKeyUsageClientAuth, wantErr: true},
		{name: "expired", signer: ca, spec: Spec{CommonName: "bob", Usage: Client, NotBefore: time.Now().Add(-48 * time.Hour), Validity: time.Hour}, usage: x509.ExtKeyUsageClientAuth, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pair, err := tt.signer.Issue(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			tc, err := pair.TLSCertificate()
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(tc.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: tt.dnsName, KeyUsages: []x509.ExtKeyUsage{tt.usage}})
			if (err != nil) != tt.wantErr {
				t.Fatalf("verify: err = %v, want error %v", err, tt.wantErr)
			}
			if user, groups := Identity(cert); user != tt.spec.CommonName || len(groups) != len(tt.spec.Organizations) {
				t.Fatalf("identity = %q %v, want %q %v", user, groups, tt.spec.CommonName, tt.spec.Organizations)
			}
		})
	}
}

func TestLoadOrCreateCAKeepsFiles(t *testing.T) {
	dir := t.TempDir()
	ca1, created, err := LoadOrCreateCA(dir, "c")
	if err != nil || !created {
		t.Fatalf("first: created=%v err=%v", created, err)
	}
	ca2, created, err := LoadOrCreateCA(dir, "c")
	if err != nil || created {
		t.Fatalf("second: created=%v err=%v", created, err)
	}
	if !ca1.Cert.Equal(ca2.Cert) {
		t.Fatal("the CA changed on the second load")
	}
	cert, key := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	issued, err := ca2.EnsurePair(cert, key, Spec{CommonName: "a", Usage: Client})
	if err != nil || !issued {
		t.Fatalf("EnsurePair: issued=%v err=%v", issued, err)
	}
	issued, err = ca2.EnsurePair(cert, key, Spec{CommonName: "a", Usage: Client})
	if err != nil || issued {
		t.Fatalf("EnsurePair again: issued=%v err=%v (a valid pair must stay)", issued, err)
	}
}

func TestKubeconfigLoads(t *testing.T) {
	ca, err := NewCA("c")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := ca.Issue(Spec{CommonName: "alice", Usage: Client})
	if err != nil {
		t.Fatal(err)
	}
	data, err := Kubeconfig("kubeish", "https://127.0.0.1:6443", ca.CertPEM, Credentials{Pair: pair})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:6443" || len(cfg.CertData) == 0 || len(cfg.CAData) == 0 {
		t.Fatalf("config = host %q, cert %d bytes, CA %d bytes", cfg.Host, len(cfg.CertData), len(cfg.CAData))
	}
	if _, err := Kubeconfig("k", "https://x", ca.CertPEM, Credentials{}); err == nil {
		t.Fatal("a kubeconfig without credentials must be refused")
	}
}

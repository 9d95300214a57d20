package cmd_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeish/kubeish/kctl/cmd"
	"github.com/kubeish/kubeish/pkg/pki"
)

func runKctl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cmd.Execute(context.Background(), cmd.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, args)
	return out.String(), errOut.String(), code
}

func TestPKIIssuesWhatItSays(t *testing.T) {
	dir := t.TempDir()
	if _, errOut, code := runKctl(t, "pki", "kubeconfig", "--ca-dir", dir, "--user", "alice", "--server", "https://127.0.0.1:6443"); code == 0 || !strings.Contains(errOut, "kctl pki init") {
		t.Fatalf("without a CA: code %d, stderr %q; want an error naming `kctl pki init`", code, errOut)
	}
	if _, errOut, code := runKctl(t, "pki", "init", "--ca-dir", dir); code != 0 {
		t.Fatalf("init: %s", errOut)
	}
	ca, err := pki.LoadCA(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	out, errOut, code := runKctl(t, "pki", "kubeconfig", "--ca-dir", dir, "--user", "alice", "--group", "dev", "--group", "ops", "--server", "https://127.0.0.1:6443")
	if code != 0 {
		t.Fatalf("kubeconfig: %s", errOut)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	cert := parseCert(t, cfg.CertData)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("alice's certificate does not verify against the CA: %v", err)
	}
	if user, groups := pki.Identity(cert); user != "alice" || strings.Join(groups, ",") != "dev,ops" {
		t.Fatalf("identity %q %v, want alice [dev ops]", user, groups)
	}

	nodeDir := filepath.Join(t.TempDir(), "node-4")
	if _, errOut, code := runKctl(t, "pki", "node", "node-4", "--ca-dir", dir, "--ip", "10.0.0.4", "--server", "https://10.0.0.1:6443", "-o", nodeDir); code != 0 {
		t.Fatalf("node: %s", errOut)
	}
	kc, err := clientcmd.LoadFromFile(filepath.Join(nodeDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	if user, groups := pki.Identity(parseCert(t, kc.AuthInfos["kubeish"].ClientCertificateData)); user != "system:node:node-4" || strings.Join(groups, ",") != "system:nodes" {
		t.Fatalf("node identity %q %v", user, groups)
	}
	serving, err := pki.ReadCertificate(filepath.Join(nodeDir, "kubelet.crt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"10.0.0.4", "node-4"} {
		if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Fatalf("serving certificate for %s: %v", name, err)
		}
	}
	if st, err := os.Stat(filepath.Join(nodeDir, "kubelet.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("kubelet.key: %v %v, want mode 0600", st, err)
	}

	out, _, code = runKctl(t, "pki", "token", "bob", "--group", "dev", "--group", "ops")
	fields := strings.SplitN(strings.TrimSpace(out), ",", 4)
	if code != 0 || len(fields) != 4 || len(fields[0]) != 48 || fields[1] != "bob" || fields[3] != `"dev,ops"` {
		t.Fatalf("token line %q", out)
	}
}

func parseCert(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemData)
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

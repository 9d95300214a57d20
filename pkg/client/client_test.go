package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- {name: a, cluster: {server: "http://127.0.0.1:1111"}}
- {name: b, cluster: {server: "http://127.0.0.1:2222"}}
users: [{name: u, user: {}}]
contexts:
- {name: a, context: {cluster: a, user: u}}
- {name: b, context: {cluster: b, user: u}}
current-context: a
`

func TestConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		host string
	}{
		{"current context", []string{"--kubeconfig", path}, "http://127.0.0.1:1111"},
		{"--context", []string{"--kubeconfig", path, "--context", "b"}, "http://127.0.0.1:2222"},
		{"--server overrides", []string{"--kubeconfig", path, "-s", "http://127.0.0.1:3333"}, "http://127.0.0.1:3333"},
		{"--server alone", []string{"--server", "http://127.0.0.1:4444"}, "http://127.0.0.1:4444"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
			o := NewOptions("kubeish-test")
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(append(c.args, "--kube-api-qps", "7")); err != nil {
				t.Fatal(err)
			}
			cfg, err := o.Config()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != c.host || cfg.QPS != 7 || cfg.Burst != 200 || cfg.UserAgent != "kubeish-test" {
				t.Errorf("host %q qps %v burst %d agent %q, want %q 7 200 kubeish-test", cfg.Host, cfg.QPS, cfg.Burst, cfg.UserAgent, c.host)
			}
		})
	}
}

// TestNoConfig: with nothing to go on, the error says what to pass.
func TestNoConfig(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	t.Setenv("HOME", t.TempDir())
	_, err := NewOptions("x").Config()
	if err == nil || !strings.Contains(err.Error(), "--server") || !strings.Contains(err.Error(), "make up") {
		t.Fatalf("error %v should tell to pass --server or run make up", err)
	}
}

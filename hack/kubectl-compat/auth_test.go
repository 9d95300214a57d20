package compat

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// as returns a copy of the cluster whose kubectl runs as user (in groups),
// with a client certificate that `kctl pki kubeconfig` issues from the
// apiserver's CA, as the README tells users to.
func (c *cluster) as(user string, groups ...string) *cluster {
	c.t.Helper()
	args := []string{"pki", "kubeconfig", "--ca-dir", c.certDir, "--user", user, "--server", c.secure}
	for _, g := range groups {
		args = append(args, "--group", g)
	}
	kc := filepath.Join(c.dir, user+".kubeconfig")
	out, err := exec.Command(binary(c.t, "KCTL"), append(args, "-o", kc)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("kctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	cc := *c
	cc.env = append(append([]string(nil), c.env...), "KUBECONFIG="+kc) // the later entry wins
	return &cc
}

func TestKubectlAuth(t *testing.T) {
	c := startCluster(t)

	t.Run("built-in roles", func(t *testing.T) {
		out := c.ok("get", "clusterroles")
		for _, name := range []string{"cluster-admin", "admin", "edit", "view"} {
			rowOf(t, out, name)
		}
		contains(t, "clusterrolebinding cluster-admin", c.ok("get", "clusterrolebinding", "cluster-admin", "-o", "yaml"),
			"name: system:masters", "kind: Group")
	})
	t.Run("admin can", func(t *testing.T) {
		want(t, "can-i create pods", c.ok("auth", "can-i", "create", "pods"), "yes\n")
	})

	// (Without any credentials kubectl would prompt for a user name.)
	stranger := *c
	stranger.env = append(append([]string(nil), c.env...), "KUBECONFIG="+badTokenKubeconfig(t, c))
	t.Run("a wrong token", func(t *testing.T) {
		r := stranger.run("get", "pods")
		want(t, "get pods with a wrong token", strings.TrimSpace(r.err), "error: You must be logged in to the server (Unauthorized)")
	})

	alice := c.as("alice", "dev")
	t.Run("unbound user is forbidden", func(t *testing.T) {
		r := alice.run("get", "pods")
		want(t, "alice get pods", strings.TrimSpace(r.err),
			`Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default"`)
		want(t, "alice can-i", alice.run("auth", "can-i", "list", "pods").out, "no\n")
	})
	t.Run("a binding lets her view, not read secrets or write", func(t *testing.T) {
		c.ok("create", "rolebinding", "alice-view", "--clusterrole", "view", "--user", "alice")
		untilEvery(t, 200*time.Millisecond, 10*time.Second, "alice's binding to take effect", func() (bool, error) {
			return alice.run("get", "pods").code == 0, nil
		})
		r := alice.run("get", "secrets")
		contains(t, "alice get secrets", r.err, `User "alice" cannot list resource "secrets"`)
		r = alice.run("create", "configmap", "x", "--from-literal", "a=b")
		contains(t, "alice create configmap", r.err, `User "alice" cannot create resource "configmaps"`)
		want(t, "alice can-i get secrets", alice.run("auth", "can-i", "get", "secrets").out, "no\n")
		want(t, "alice can-i list deployments", alice.ok("auth", "can-i", "list", "deployments"), "yes\n")
	})
}

// badTokenKubeconfig trusts the cluster's CA and presents a token the
// apiserver does not know.
func badTokenKubeconfig(t *testing.T, c *cluster) string {
	t.Helper()
	kc := filepath.Join(c.dir, "bad-token.kubeconfig")
	config := "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster: {server: " + c.secure +
		", certificate-authority: " + filepath.Join(c.certDir, "ca.crt") + "}\ncontexts:\n- name: k\n  context: {cluster: k, user: k}\nusers:\n- name: k\n  user: {token: not-a-token-of-this-cluster}\ncurrent-context: k\n"
	if err := os.WriteFile(kc, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return kc
}

package cmd_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubeish/kubeish/kctl/cmd"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// kctl runs kctl commands in-process against one test apiserver, through
// a kubeconfig written for it (so the loading rules are exercised too).
type kctl struct {
	t          testing.TB
	env        *testenv.Env
	kubeconfig string
	dir        string
}

func newKctl(t testing.TB) *kctl {
	t.Helper()
	env := testenv.Start(t)
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q}
contexts:
- name: test
  context: {cluster: test, user: test, namespace: default}
users:
- name: test
  user: {}
current-context: test
`, env.URL)
	if err := os.WriteFile(kc, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return &kctl{t: t, env: env, kubeconfig: kc, dir: dir}
}

type result struct {
	out, err string
	code     int
}

// run runs one kctl command to its end.
func (k *kctl) run(args ...string) result {
	k.t.Helper()
	return k.runStdin("", args...)
}

func (k *kctl) runStdin(stdin string, args ...string) result {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := cmd.Execute(ctx, cmd.Streams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut},
		append([]string{"--kubeconfig", k.kubeconfig}, args...))
	return result{out: out.String(), err: errOut.String(), code: code}
}

// ok runs a command that must succeed and returns its stdout.
func (k *kctl) ok(args ...string) string {
	k.t.Helper()
	r := k.run(args...)
	if r.code != 0 {
		k.t.Fatalf("kctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// file writes a manifest into the test's directory and returns its path.
func (k *kctl) file(name, content string) string {
	k.t.Helper()
	p := filepath.Join(k.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		k.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		k.t.Fatal(err)
	}
	return p
}

// background runs a long-running command (get -w, rollout status) until
// stop is called.
type background struct {
	mu     sync.Mutex
	out    bytes.Buffer
	cancel context.CancelFunc
	done   chan int
}

func (b *background) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.Write(p)
}

func (b *background) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

func (k *kctl) start(args ...string) *background {
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{cancel: cancel, done: make(chan int, 1)}
	var errOut bytes.Buffer
	go func() {
		b.done <- cmd.Execute(ctx, cmd.Streams{In: strings.NewReader(""), Out: b, ErrOut: &errOut},
			append([]string{"--kubeconfig", k.kubeconfig}, args...))
	}()
	k.t.Cleanup(cancel)
	return b
}

// waitFor polls the command's output until it contains all of want.
func (b *background) waitFor(t testing.TB, want ...string) {
	t.Helper()
	poll.Until(t, 15*time.Second, fmt.Sprintf("output with %q", want), func() (bool, error) {
		s := b.String()
		for _, w := range want {
			if !strings.Contains(s, w) {
				return false, fmt.Errorf("output so far:\n%s", s)
			}
		}
		return true, nil
	})
}

// fields splits a table's lines into their columns.
func tableRows(out string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if l != "" {
			rows = append(rows, strings.Fields(l))
		}
	}
	return rows
}

// row finds the table row whose first column is name.
func row(t testing.TB, out, name string) []string {
	t.Helper()
	for _, r := range tableRows(out) {
		if r[0] == name {
			return r
		}
	}
	t.Fatalf("no row %q in:\n%s", name, out)
	return nil
}

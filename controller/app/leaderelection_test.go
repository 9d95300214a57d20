package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/controller/internal/ctltest"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

var binary string

// TestMain builds the controller binary once for the process tests.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "controller-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "controller")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	build := exec.Command(goBin, "build", "-o", binary, "github.com/kubeish/kubeish/controller")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the controller:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a controller process started by the test.
type proc struct {
	id   string
	cmd  *exec.Cmd
	log  string
	done chan error
}

func startProc(t *testing.T, id string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), id+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, append([]string{"--bind-address", "127.0.0.1:0", "--log-format", "json",
		"--leader-elect-identity", id}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{id: id, cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("log of %s:\n%s", id, tail(string(b), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// addr finds the metrics address the process logged.
func (p *proc) addr(t *testing.T) string {
	t.Helper()
	var addr string
	poll.Until(t, 10*time.Second, p.id+" metrics address in its log", func() (bool, error) {
		f, err := os.Open(p.log)
		if err != nil {
			return false, err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var line struct {
				Msg     string `json:"msg"`
				Address string `json:"address"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving metrics and health" {
				addr = line.Address
				return true, nil
			}
		}
		return false, nil
	})
	return addr
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func holder(ctx context.Context, env *testenv.Env) string {
	l, err := env.Client.CoordinationV1().Leases("kube-system").Get(ctx, "kubeish-controller", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func TestLeaderHandover(t *testing.T) {
	ctx := context.Background()
	env := testenv.Start(t)
	cs := env.Client
	const lease, renew, retry = 3 * time.Second, 2 * time.Second, 500 * time.Millisecond
	args := []string{"--server", env.URL, "--leader-elect-lease-duration", lease.String(),
		"--leader-elect-renew-deadline", renew.String(), "--leader-elect-retry-period", retry.String()}
	procs := map[string]*proc{"a": startProc(t, "a", args...)}
	poll.Until(t, 15*time.Second, "a leads", func() (bool, error) { return holder(ctx, env) == "a", nil })
	procs["b"] = startProc(t, "b", args...)

	// Both serve health; only the leader says it leads.
	for id, p := range procs {
		base := "http://" + p.addr(t)
		if code, body := get(t, base+"/healthz"); code != 200 || body != "ok" {
			t.Errorf("%s /healthz: %d %q", id, code, body)
		}
		_, m := get(t, base+"/metrics")
		want := map[string]string{"a": "kubeish_controller_leader 1", "b": "kubeish_controller_leader 0"}[id]
		if !strings.Contains(m, want) {
			t.Errorf("%s /metrics lacks %q", id, want)
		}
	}

	ns := ctltest.Namespace(t, cs, "ha")
	ctltest.StartKubelet(t, cs, ns, nil)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](5), Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}}}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	readyPods := func(want int32) func() (bool, error) {
		return func() (bool, error) {
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			ps, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			return d.Status.AvailableReplicas == want && len(ps.Items) == int(want), fmt.Errorf("available %d, %d pods", d.Status.AvailableReplicas, len(ps.Items))
		}
	}
	poll.Until(t, 30*time.Second, "5 ready pods", readyPods(5))
	leaderMetrics := "http://" + procs["a"].addr(t) + "/metrics"
	_, m := get(t, leaderMetrics)
	for _, want := range []string{`workqueue_depth{name="replicaset"}`, `kubeish_controller_reconcile_total{controller="deployment",result="success"}`,
		`kubeish_controller_reconcile_duration_seconds_count{controller="replicaset"}`, `workqueue_adds_total{name="garbagecollector"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("leader /metrics lacks %s", want)
		}
	}

	// Count every pod ever created and the most that existed at once.
	list, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen, live := map[string]bool{}, map[string]bool{}
	for _, p := range list.Items {
		seen[p.Name], live[p.Name] = true, true
	}
	maxLive := len(live)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			mu.Lock()
			seen[p.Name] = true
			if ev.Type == watch.Deleted {
				delete(live, p.Name)
			} else {
				live[p.Name] = true
			}
			maxLive = max(maxLive, len(live))
			mu.Unlock()
		}
	}()

	// Kill the leader hard (no lease release), and give the standby work.
	if err := procs["a"].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-procs["a"].done
	killed := time.Now()
	if _, err := cs.AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: autoscalingv1.ScaleSpec{Replicas: 8}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, lease+5*time.Second, "b takes the lease", func() (bool, error) { return holder(ctx, env) == "b", nil })
	handover := time.Since(killed)
	poll.Until(t, 30*time.Second, "8 ready pods", readyPods(8))
	served := time.Since(killed)
	t.Logf("handover after %s (lease %s, retry %s); scaled to 8 after %s", handover.Round(10*time.Millisecond), lease, retry, served.Round(10*time.Millisecond))
	// The standby takes over once it has seen the lease unchanged for the
	// lease duration. It polls every retry period (with client-go's jitter,
	// up to 1.2×), so it sees the leader's last renewal up to one poll late
	// and the expiry up to one poll late: lease + 2.4×retry, plus request
	// latency on a loaded machine.
	if limit := lease + 3*retry; handover > limit {
		t.Errorf("handover took %s, more than lease + 3×retry = %s", handover, limit)
	}
	// A duplicate created late by the old or the new leader would show up
	// on the watch within moments: none may for a second.
	poll.Never(t, time.Second, "no duplicate pods after the handover", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) > 8 || maxLive > 8 {
			return fmt.Errorf("pods created in all: %d, at most at once: %d", len(seen), maxLive)
		}
		return nil
	})
	w.Stop()
	<-watchDone
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 8 || maxLive > 8 {
		t.Errorf("pods created in all: %d, at most at once: %d; want 8 and 8 (no duplicates across the handover)", len(seen), maxLive)
	}
	_, m = get(t, "http://"+procs["b"].addr(t)+"/metrics")
	if !strings.Contains(m, "kubeish_controller_leader 1") {
		t.Error("new leader does not report kubeish_controller_leader 1")
	}

	// SIGTERM ends the process cleanly and releases the lease.
	if err := procs["b"].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-procs["b"].done:
		if err != nil {
			t.Errorf("controller exited with %v after SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("controller did not exit after SIGTERM")
	}
	poll.Until(t, 5*time.Second, "lease released", func() (bool, error) { return holder(ctx, env) == "", nil })
}

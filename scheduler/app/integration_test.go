package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
	f "github.com/kubeish/kubeish/scheduler/framework/fwtest"
)

// createNode creates a Node and then sets its status (status in a create
// body is ignored), as a node agent would.
func createNode(t testing.TB, cs kubernetes.Interface, n *v1.Node) {
	t.Helper()
	ctx := context.Background()
	status := n.Status
	n = n.DeepCopy()
	n.Status = v1.NodeStatus{}
	created, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node %s: %v", n.Name, err)
	}
	created.Status = status
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("node %s status: %v", n.Name, err)
	}
}

// createPods creates pods from 32 goroutines at once.
func createPods(t testing.TB, cs kubernetes.Interface, pods []*v1.Pod) {
	t.Helper()
	work := make(chan *v1.Pod)
	errs := make(chan error, len(pods))
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if _, err := cs.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
					errs <- fmt.Errorf("create pod %s: %w", p.Name, err)
				}
			}
		}()
	}
	for _, p := range pods {
		work <- forCreate(p)
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// forCreate clears what the server sets.
func forCreate(p *v1.Pod) *v1.Pod {
	p = p.DeepCopy()
	p.UID = ""
	return p
}

type harness struct {
	env *testenv.Env
	cs  kubernetes.Interface
}

func newHarness(t *testing.T) *harness {
	env := testenv.Start(t)
	return &harness{env: env, cs: env.Client}
}

type running struct {
	app    *App
	cancel context.CancelFunc
	done   chan error
}

// testOptions: no leader election, a free port, no client rate limit.
func testOptions() *Options {
	o := NewOptions()
	o.LeaderElection.Enabled = false
	o.BindAddress = "127.0.0.1:0"
	o.Client.QPS = -1
	o.PodInitialBackoff = 200 * time.Millisecond
	o.PodMaxBackoff = time.Second
	return o
}

// start runs a scheduler until the test ends.
func (h *harness) start(t *testing.T, o *Options) *running {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	a, err := NewForConfig(o, h.env.Config, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := a.Serve(ctx); err != nil {
		t.Fatal(err)
	}
	r := &running{app: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // stop is idempotent
}

// eventually polls cond until it holds; state describes what it saw, for
// the failure message.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (ok bool, state string)) {
	t.Helper()
	poll.Until(t, timeout, what, func() (bool, error) {
		ok, state := cond()
		return ok, errors.New(state)
	})
}

func (h *harness) pods(t *testing.T) []v1.Pod {
	t.Helper()
	l, err := h.cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func podScheduledCondition(p *v1.Pod) *v1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == v1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func TestNoOvercommit(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 10; i++ {
		createNode(t, h.cs, f.Node(fmt.Sprintf("node-%d", i), "2", "4Gi", 110))
	}
	// A pod already bound by someone else is left alone, and counts.
	createPods(t, h.cs, []*v1.Pod{f.Pod("prebound", "1", "", f.OnNode("node-0"))})
	var pods []*v1.Pod
	for i := 0; i < 500; i++ {
		pods = append(pods, f.Pod(fmt.Sprintf("p-%03d", i), "250m", "300Mi"))
	}
	r := h.start(t, testOptions())
	createPods(t, h.cs, pods)

	// 2 cpu / 250m = 8 per node, node-0 has 1 cpu left: 9*8 + 4 = 76.
	const fit = 76
	eventually(t, 60*time.Second, "76 bound and 424 marked unschedulable", func() (bool, string) {
		bound, unsched := 0, 0
		for _, p := range h.pods(t) {
			if p.Name == "prebound" {
				continue
			}
			if p.Spec.NodeName != "" {
				bound++
			} else if c := podScheduledCondition(&p); c != nil && c.Status == v1.ConditionFalse && c.Reason == v1.PodReasonUnschedulable {
				unsched++
			}
		}
		return bound == fit && unsched == 500-fit, fmt.Sprintf("%d bound, %d unschedulable", bound, unsched)
	})

	// Checked from the API: no node's requests exceed its allocatable.
	used := map[string]int64{}
	usedMem := map[string]int64{}
	count := map[string]int{}
	var msg string
	for _, p := range h.pods(t) {
		if p.Spec.NodeName == "" {
			msg = podScheduledCondition(&p).Message
			continue
		}
		used[p.Spec.NodeName] += p.Spec.Containers[0].Resources.Requests.Cpu().MilliValue()
		usedMem[p.Spec.NodeName] += p.Spec.Containers[0].Resources.Requests.Memory().Value()
		count[p.Spec.NodeName]++
	}
	if p, err := h.cs.CoreV1().Pods("default").Get(context.Background(), "prebound", metav1.GetOptions{}); err != nil || p.Spec.NodeName != "node-0" {
		t.Errorf("prebound pod moved: %v %v", p.Spec.NodeName, err)
	}
	nodes, err := h.cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		if used[n.Name] > n.Status.Allocatable.Cpu().MilliValue() || usedMem[n.Name] > n.Status.Allocatable.Memory().Value() {
			t.Errorf("node %s overcommitted: %dm cpu, %d bytes of %v", n.Name, used[n.Name], usedMem[n.Name], n.Status.Allocatable)
		}
	}
	if want := "0/10 nodes are available: 10 Insufficient cpu."; msg != want {
		t.Errorf("message %q, want %q", msg, want)
	}
	if got := testutil.ToFloat64(r.app.sched.metrics.attempts.WithLabelValues(resultScheduled)); got != fit {
		t.Errorf("scheduled attempts %v, want %d", got, fit)
	}
	if got := testutil.ToFloat64(r.app.sched.metrics.attempts.WithLabelValues(resultError)); got != 0 {
		t.Errorf("%v binding errors", got)
	}

	// Deleting bound pods frees room: as many waiting pods take it.
	var deleted int
	for _, p := range h.pods(t) {
		if p.Spec.NodeName == "node-3" {
			if err := h.cs.CoreV1().Pods("default").Delete(context.Background(), p.Name, *metav1.NewDeleteOptions(0)); err != nil {
				t.Fatal(err)
			}
			deleted++
		}
	}
	eventually(t, 30*time.Second, "node-3 refilled", func() (bool, string) {
		n := 0
		for _, p := range h.pods(t) {
			if p.Spec.NodeName == "node-3" {
				n++
			}
		}
		return n == deleted, fmt.Sprintf("%d on node-3", n)
	})
}

func TestUnsatisfiableSelectorWaitsForNode(t *testing.T) {
	h := newHarness(t)
	createNode(t, h.cs, f.Node("plain-1", "4", "8Gi", 110))
	createNode(t, h.cs, f.Node("plain-2", "4", "8Gi", 110))
	r := h.start(t, testOptions())
	createPods(t, h.cs, []*v1.Pod{f.Pod("wants-ssd", "100m", "", f.NodeSelector("disk", "ssd"))})

	want := "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
	eventually(t, 20*time.Second, "PodScheduled=False", func() (bool, string) {
		p, err := h.cs.CoreV1().Pods("default").Get(context.Background(), "wants-ssd", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		c := podScheduledCondition(p)
		if c == nil {
			return false, "no condition"
		}
		return c.Status == v1.ConditionFalse && c.Reason == v1.PodReasonUnschedulable && c.Message == want, fmt.Sprintf("%+v", *c)
	})
	eventually(t, 20*time.Second, "a FailedScheduling event", func() (bool, string) {
		evs, err := h.cs.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", "wants-ssd").String(),
		})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.Reason == "FailedScheduling" && e.Type == v1.EventTypeWarning && e.Message == want {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events", len(evs.Items))
	})

	// No busy loop: nothing changes, so the pod is not tried again, even
	// though its backoff (200ms) ran out long ago. Unrelated node changes
	// (a heartbeat, a new label that does not match) do not retry it
	// either, except the label change which is a NodeAffinity event.
	attempts := func() float64 {
		return testutil.ToFloat64(r.app.sched.metrics.attempts.WithLabelValues(resultUnschedulable))
	}
	before := attempts()
	n, err := h.cs.CoreV1().Nodes().Get(context.Background(), "plain-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions[0].LastHeartbeatTime = metav1.Now()
	if _, err := h.cs.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Never(t, 1500*time.Millisecond, "no retry without a relevant event", func() error {
		if got := attempts(); got != before {
			return fmt.Errorf("pod retried %v times", got-before)
		}
		if a, b, u := r.app.sched.queue.Lens(); a != 0 || b != 0 || u != 1 {
			return fmt.Errorf("queue lens %d/%d/%d, want the pod in unschedulable", a, b, u)
		}
		return nil
	})

	// A matching node appears: the pod is bound to it at once.
	start := time.Now()
	createNode(t, h.cs, f.Node("ssd-1", "4", "8Gi", 110, f.Labels("disk", "ssd")))
	eventually(t, 10*time.Second, "bound to ssd-1", func() (bool, string) {
		p, err := h.cs.CoreV1().Pods("default").Get(context.Background(), "wants-ssd", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return p.Spec.NodeName == "ssd-1", p.Spec.NodeName
	})
	t.Logf("bound %v after the node appeared", time.Since(start))
	p, _ := h.cs.CoreV1().Pods("default").Get(context.Background(), "wants-ssd", metav1.GetOptions{})
	if c := podScheduledCondition(p); c == nil || c.Status != v1.ConditionTrue {
		t.Errorf("PodScheduled after binding: %+v", c)
	}
}

func TestTaintsKeepPodsOff(t *testing.T) {
	h := newHarness(t)
	createNode(t, h.cs, f.Node("gpu-1", "8", "16Gi", 110, f.Taint("gpu", "true", v1.TaintEffectNoSchedule)))
	createNode(t, h.cs, f.Node("gpu-2", "8", "16Gi", 110, f.Taint("gpu", "true", v1.TaintEffectNoExecute)))
	createNode(t, h.cs, f.Node("plain", "8", "16Gi", 110))
	h.start(t, testOptions())
	var pods []*v1.Pod
	for i := 0; i < 20; i++ {
		pods = append(pods, f.Pod(fmt.Sprintf("plain-%d", i), "100m", "100Mi"))
	}
	for i := 0; i < 20; i++ {
		// Tolerating pods prefer the empty gpu nodes (least allocated).
		pods = append(pods, f.Pod(fmt.Sprintf("tol-%d", i), "100m", "100Mi", f.Toleration("gpu", "true", "")))
	}
	createPods(t, h.cs, pods)
	eventually(t, 30*time.Second, "all bound", func() (bool, string) {
		n := 0
		for _, p := range h.pods(t) {
			if p.Spec.NodeName != "" {
				n++
			}
		}
		return n == 40, fmt.Sprintf("%d bound", n)
	})
	onGPU := 0
	for _, p := range h.pods(t) {
		if strings.HasPrefix(p.Name, "plain-") && p.Spec.NodeName != "plain" {
			t.Errorf("%s landed on tainted %s", p.Name, p.Spec.NodeName)
		}
		if strings.HasPrefix(p.Name, "tol-") && p.Spec.NodeName != "plain" {
			onGPU++
		}
	}
	if onGPU == 0 {
		t.Error("no tolerating pod went to a tainted node")
	}
}

func TestReplicasSpreadEvenly(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 4; i++ {
		createNode(t, h.cs, f.Node(fmt.Sprintf("node-%d", i), "16", "64Gi", 110))
	}
	h.start(t, testOptions())
	var pods []*v1.Pod
	for i := 0; i < 24; i++ {
		pods = append(pods, f.Pod(fmt.Sprintf("web-%d", i), "100m", "128Mi", f.Owner("rs-web-uid")))
	}
	// Pods of another owner with bigger requests must not spoil the spread.
	for i := 0; i < 8; i++ {
		pods = append(pods, f.Pod(fmt.Sprintf("db-%d", i), "1", "1Gi", f.Owner("rs-db-uid")))
	}
	createPods(t, h.cs, pods)
	eventually(t, 30*time.Second, "all bound", func() (bool, string) {
		n := 0
		for _, p := range h.pods(t) {
			if p.Spec.NodeName != "" {
				n++
			}
		}
		return n == 32, fmt.Sprintf("%d bound", n)
	})
	web, db := map[string]int{}, map[string]int{}
	for _, p := range h.pods(t) {
		if strings.HasPrefix(p.Name, "web-") {
			web[p.Spec.NodeName]++
		} else {
			db[p.Spec.NodeName]++
		}
	}
	for i := 0; i < 4; i++ {
		n := fmt.Sprintf("node-%d", i)
		if web[n] != 6 || db[n] != 2 {
			t.Errorf("uneven spread: web %v, db %v (want 6 and 2 per node)", web, db)
			break
		}
	}
}

func TestTwoSchedulersNeverDoubleBind(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 5; i++ {
		createNode(t, h.cs, f.Node(fmt.Sprintf("node-%d", i), "64", "256Gi", 200))
	}
	elect := func(id string) *Options {
		o := testOptions()
		o.LeaderElection.Enabled = true
		o.LeaderElection.Identity = id
		o.LeaderElection.LeaseDuration = 3 * time.Second
		o.LeaderElection.RenewDeadline = 2 * time.Second
		o.LeaderElection.RetryPeriod = 250 * time.Millisecond
		return o
	}
	a := h.start(t, elect("a"))
	b := h.start(t, elect("b"))
	eventually(t, 20*time.Second, "a leader", func() (bool, string) {
		return a.app.IsLeader() != b.app.IsLeader(), fmt.Sprintf("a %v b %v", a.app.IsLeader(), b.app.IsLeader())
	})
	leader, standby := a, b
	if b.app.IsLeader() {
		leader, standby = b, a
	}
	var pods []*v1.Pod
	for i := 0; i < 200; i++ {
		pods = append(pods, f.Pod(fmt.Sprintf("p-%03d", i), "100m", "100Mi"))
	}
	createPods(t, h.cs, pods[:100])
	bound := func() int {
		n := 0
		for _, p := range h.pods(t) {
			if p.Spec.NodeName != "" {
				n++
			}
		}
		return n
	}
	eventually(t, 30*time.Second, "first 100 bound", func() (bool, string) { return bound() == 100, fmt.Sprint(bound()) })
	scheduled := func(r *running, res string) float64 {
		return testutil.ToFloat64(r.app.sched.metrics.attempts.WithLabelValues(res))
	}
	if scheduled(standby, resultScheduled) != 0 || scheduled(leader, resultScheduled) != 100 {
		t.Fatalf("leader bound %v, standby %v", scheduled(leader, resultScheduled), scheduled(standby, resultScheduled))
	}

	// The leader goes away; the standby takes over and binds the rest.
	leader.stop()
	createPods(t, h.cs, pods[100:])
	eventually(t, 30*time.Second, "all 200 bound", func() (bool, string) { return bound() == 200, fmt.Sprint(bound()) })
	if !standby.app.IsLeader() {
		t.Error("standby did not take over")
	}
	// Every pod was bound exactly once: the schedulers' successful binds
	// add up to 200 and neither saw a refused (409) binding.
	total := scheduled(leader, resultScheduled) + scheduled(standby, resultScheduled)
	errs := scheduled(leader, resultError) + scheduled(standby, resultError)
	if total != 200 || errs != 0 {
		t.Errorf("binds %v (want 200), errors %v (want 0)", total, errs)
	}
}

// TestBindingRefusesBoundPod pins the apiserver behaviour the
// no-double-bind guarantee rests on.
func TestBindingRefusesBoundPod(t *testing.T) {
	h := newHarness(t)
	createPods(t, h.cs, []*v1.Pod{f.Pod("p", "", "")})
	bind := func(node string) error {
		return h.cs.CoreV1().Pods("default").Bind(context.Background(), &v1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: "p"}, Target: v1.ObjectReference{Kind: "Node", Name: node},
		}, metav1.CreateOptions{})
	}
	if err := bind("a"); err != nil {
		t.Fatal(err)
	}
	err := bind("b")
	if err == nil || !strings.Contains(err.Error(), "already assigned") {
		t.Fatalf("second binding: %v, want a conflict", err)
	}
}

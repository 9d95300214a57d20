package cache

import (
	"fmt"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/kubeish/kubeish/scheduler/framework"
	f "github.com/kubeish/kubeish/scheduler/framework/fwtest"
)

func assumed(p *v1.Pod, node string) *framework.PodInfo {
	p = p.DeepCopy()
	p.Spec.NodeName = node
	return framework.NewPodInfo(p)
}

func requestedCPU(t *testing.T, snap *framework.Snapshot, node string) int64 {
	t.Helper()
	ni := snap.NodeInfoMap[node]
	if ni == nil {
		t.Fatalf("node %s not in snapshot", node)
	}
	return ni.Requested.MilliCPU
}

func TestAssumeConfirmForget(t *testing.T) {
	c := New(30*time.Second, nil)
	c.AddNode(f.Node("n1", "4", "4Gi", 10))
	c.AddNode(f.Node("n2", "4", "4Gi", 10))
	snap := &framework.Snapshot{}
	p := f.Pod("p", "1", "")

	if err := c.AssumePod(assumed(p, "n1")); err != nil {
		t.Fatal(err)
	}
	if err := c.AssumePod(assumed(p, "n2")); err == nil {
		t.Fatal("second assume of the same pod succeeded")
	}
	c.UpdateSnapshot(snap)
	if got := requestedCPU(t, snap, "n1"); got != 1000 {
		t.Fatalf("assumed pod not counted: %dm", got)
	}
	if !c.IsAssumed("default/p") {
		t.Fatal("not assumed")
	}

	// The informer confirms it where we put it: still counted once.
	bound := p.DeepCopy()
	bound.Spec.NodeName = "n1"
	c.FinishBinding("default/p")
	c.AddPod(bound)
	c.UpdateSnapshot(snap)
	if got := requestedCPU(t, snap, "n1"); got != 1000 || c.IsAssumed("default/p") {
		t.Fatalf("after confirm: %dm, assumed=%v", got, c.IsAssumed("default/p"))
	}
	// Forget of a confirmed pod is a no-op.
	c.ForgetPod("default/p")
	c.UpdateSnapshot(snap)
	if got := requestedCPU(t, snap, "n1"); got != 1000 {
		t.Fatalf("forget removed a confirmed pod: %dm", got)
	}

	// A second pod whose bind fails is forgotten.
	q := f.Pod("q", "2", "")
	if err := c.AssumePod(assumed(q, "n2")); err != nil {
		t.Fatal(err)
	}
	c.ForgetPod("default/q")
	c.UpdateSnapshot(snap)
	if got := requestedCPU(t, snap, "n2"); got != 0 {
		t.Fatalf("forgotten pod still counted: %dm", got)
	}
	if err := c.AssumePod(assumed(q, "n2")); err != nil {
		t.Fatalf("assume after forget: %v", err)
	}

	c.RemovePod(bound)
	c.UpdateSnapshot(snap)
	if got := requestedCPU(t, snap, "n1"); got != 0 {
		t.Fatalf("removed pod still counted: %dm", got)
	}
}

func TestConfirmedOnAnotherNode(t *testing.T) {
	c := New(time.Minute, nil)
	c.AddNode(f.Node("n1", "4", "4Gi", 10))
	c.AddNode(f.Node("n2", "4", "4Gi", 10))
	p := f.Pod("p", "1", "")
	if err := c.AssumePod(assumed(p, "n1")); err != nil {
		t.Fatal(err)
	}
	// Another scheduler won: the informer shows it on n2.
	c.AddPod(f.Pod("p", "1", "", f.OnNode("n2")))
	snap := &framework.Snapshot{}
	c.UpdateSnapshot(snap)
	if requestedCPU(t, snap, "n1") != 0 || requestedCPU(t, snap, "n2") != 1000 {
		t.Errorf("n1 %dm n2 %dm, want 0 and 1000", requestedCPU(t, snap, "n1"), requestedCPU(t, snap, "n2"))
	}
}

func TestExpireAssumed(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	c := New(30*time.Second, clk)
	c.AddNode(f.Node("n1", "4", "4Gi", 10))
	if err := c.AssumePod(assumed(f.Pod("a", "1", ""), "n1")); err != nil {
		t.Fatal(err)
	}
	if err := c.AssumePod(assumed(f.Pod("b", "1", ""), "n1")); err != nil {
		t.Fatal(err)
	}
	c.FinishBinding("default/a")
	clk.Step(29 * time.Second)
	if n := c.Cleanup(); n != 0 {
		t.Fatalf("expired %d before the ttl", n)
	}
	clk.Step(2 * time.Second)
	if n := c.Cleanup(); n != 1 {
		t.Fatalf("expired %d, want 1 (b's binding has not finished)", n)
	}
	snap := &framework.Snapshot{}
	c.UpdateSnapshot(snap)
	if got := requestedCPU(t, snap, "n1"); got != 1000 {
		t.Errorf("after expiry %dm, want 1000", got)
	}
}

func TestSnapshotIncremental(t *testing.T) {
	c := New(time.Minute, nil)
	for i := 0; i < 5; i++ {
		c.AddNode(f.Node(fmt.Sprintf("n%d", i), "4", "4Gi", 10))
	}
	snap := &framework.Snapshot{}
	c.UpdateSnapshot(snap)
	if len(snap.List) != 5 {
		t.Fatalf("list has %d nodes", len(snap.List))
	}
	n2 := snap.NodeInfoMap["n2"]
	before := snap.NodeInfoMap["n1"]
	if err := c.AssumePod(assumed(f.Pod("p", "1", ""), "n2")); err != nil {
		t.Fatal(err)
	}
	c.UpdateSnapshot(snap)
	if snap.NodeInfoMap["n2"] != n2 || n2.Requested.MilliCPU != 1000 {
		t.Error("n2 was not updated in place")
	}
	if snap.NodeInfoMap["n1"] != before {
		t.Error("unchanged n1 was replaced")
	}
	// A pod on a node the cache has not seen is kept but not listed.
	c.AddPod(f.Pod("early", "1", "", f.OnNode("n9")))
	c.RemoveNode(f.Node("n0", "4", "4Gi", 10))
	c.UpdateSnapshot(snap)
	if len(snap.List) != 4 || snap.List[0].Name() != "n1" {
		t.Fatalf("list = %d nodes starting %s", len(snap.List), snap.List[0].Name())
	}
	c.AddNode(f.Node("n9", "4", "4Gi", 10))
	c.UpdateSnapshot(snap)
	if len(snap.List) != 5 || requestedCPU(t, snap, "n9") != 1000 {
		t.Fatalf("n9 did not join with its early pod")
	}
	if n, p := c.Counts(); n != 5 || p != 2 {
		t.Errorf("counts = %d nodes %d pods", n, p)
	}
}

// TestConcurrentAssume: many goroutines assume, confirm and forget while
// the snapshot is refreshed; the race detector checks the locking, the
// totals check the accounting.
func TestConcurrentAssume(t *testing.T) {
	c := New(time.Minute, nil)
	c.AddNode(f.Node("n", "1000", "1000Gi", 100000))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				p := f.Pod(fmt.Sprintf("p-%d-%d", g, i), "10m", "")
				if err := c.AssumePod(assumed(p, "n")); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					c.ForgetPod(p.Namespace + "/" + p.Name)
				} else {
					c.AddPod(f.Pod(p.Name, "10m", "", f.OnNode("n")))
				}
			}
		}(g)
	}
	snap := &framework.Snapshot{}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for loop := true; loop; {
		select {
		case <-done:
			loop = false
		default:
			c.UpdateSnapshot(snap)
		}
	}
	c.UpdateSnapshot(snap)
	if got := requestedCPU(t, snap, "n"); got != 8*100*10 {
		t.Errorf("requested %dm, want %dm", got, 8*100*10)
	}
}

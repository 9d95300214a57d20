package queue

import (
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/kubeish/kubeish/scheduler/framework"
	f "github.com/kubeish/kubeish/scheduler/framework/fwtest"
	"github.com/kubeish/kubeish/scheduler/framework/plugins"
)

func newQueue() (*PriorityQueue, *testingclock.FakeClock) {
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	events := map[string]framework.ClusterEvent{}
	for _, p := range plugins.DefaultFilters() {
		if e, ok := p.(framework.EnqueueExtensions); ok {
			events[p.Name()] = e.EventsToRegister()
		}
	}
	return New(Config{Clock: clk, PluginEvents: events}), clk
}

func lens(q *PriorityQueue) [3]int {
	a, b, u := q.Lens()
	return [3]int{a, b, u}
}

func created(sec int) func(*v1.Pod) {
	return func(p *v1.Pod) {
		p.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 1, 0, 0, sec, 0, time.UTC))
	}
}

func TestPopOrder(t *testing.T) {
	q, _ := newQueue()
	q.Add(f.Pod("young-low", "", "", created(3)))
	q.Add(f.Pod("old-low", "", "", created(1)))
	q.Add(f.Pod("young-high", "", "", created(4), f.Priority(1000)))
	q.Add(f.Pod("old-high", "", "", created(2), f.Priority(1000)))
	var got []string
	for i := 0; i < 4; i++ {
		got = append(got, q.Pop().Pod.Name)
	}
	want := []string{"old-high", "young-high", "old-low", "young-low"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pop order %v, want %v", got, want)
	}
	if q.SchedulingCycle() != 4 {
		t.Errorf("cycle %d, want 4", q.SchedulingCycle())
	}
}

func unschedulableBy(qp *QueuedPodInfo, plugins ...string) *QueuedPodInfo {
	qp.UnschedulablePlugins = map[string]struct{}{}
	for _, p := range plugins {
		qp.UnschedulablePlugins[p] = struct{}{}
	}
	return qp
}

func TestEventsMoveOnlyPodsTheyHelp(t *testing.T) {
	q, clk := newQueue()
	q.Add(f.Pod("selector", "", ""))
	q.Add(f.Pod("cpu", "", ""))
	q.Add(f.Pod("taint", "", ""))
	byName := map[string]string{"selector": plugins.NodeAffinityName, "cpu": plugins.NodeResourcesFitName, "taint": plugins.TaintTolerationName}
	for i := 0; i < 3; i++ {
		qp := q.Pop()
		q.AddUnschedulableIfNotPresent(unschedulableBy(qp, byName[qp.Pod.Name]), q.SchedulingCycle())
	}
	if got := lens(q); got != [3]int{0, 0, 3} {
		t.Fatalf("lens %v, want all 3 unschedulable", got)
	}
	clk.Step(20 * time.Second) // past every backoff

	// A label change helps only the selector pod.
	q.MoveAllToActiveOrBackoffQueue(framework.NodeLabelChange)
	if got := lens(q); got != [3]int{1, 0, 2} {
		t.Fatalf("after label change lens %v", got)
	}
	if p := q.Pop(); p.Pod.Name != "selector" {
		t.Fatalf("popped %s", p.Pod.Name)
	}
	// A deleted pod frees cpu.
	q.MoveAllToActiveOrBackoffQueue(framework.AssignedPodDelete)
	if p := q.Pop(); p.Pod.Name != "cpu" {
		t.Fatalf("popped %s", p.Pod.Name)
	}
	// Nothing helps the taint pod but a taint change or a new node.
	q.MoveAllToActiveOrBackoffQueue(framework.NodeAllocatableChange)
	if got := lens(q); got != [3]int{0, 0, 1} {
		t.Fatalf("lens %v", got)
	}
	q.MoveAllToActiveOrBackoffQueue(framework.NodeAdd)
	if p := q.Pop(); p.Pod.Name != "taint" {
		t.Fatalf("popped %s", p.Pod.Name)
	}
}

func TestBackoff(t *testing.T) {
	q, clk := newQueue()
	q.Add(f.Pod("p", "", ""))
	for attempt, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		qp := q.Pop()
		if qp.Attempts != attempt+1 {
			t.Fatalf("attempts %d, want %d", qp.Attempts, attempt+1)
		}
		// An error (no plugins) goes to backoff.
		q.AddUnschedulableIfNotPresent(qp, q.SchedulingCycle())
		if got := lens(q); got != [3]int{0, 1, 0} {
			t.Fatalf("lens %v", got)
		}
		clk.Step(wait - time.Millisecond)
		q.FlushBackoffCompleted()
		if got := lens(q); got != [3]int{0, 1, 0} {
			t.Fatalf("attempt %d: left backoff before %v", attempt+1, wait)
		}
		clk.Step(time.Millisecond)
		q.FlushBackoffCompleted()
		if got := lens(q); got != [3]int{1, 0, 0} {
			t.Fatalf("attempt %d: still backing off after %v", attempt+1, wait)
		}
	}
}

func TestMovedWhileBackingOffGoesToBackoff(t *testing.T) {
	q, clk := newQueue()
	q.Add(f.Pod("p", "", ""))
	qp := q.Pop()
	q.AddUnschedulableIfNotPresent(unschedulableBy(qp, plugins.NodeResourcesFitName), q.SchedulingCycle())
	q.MoveAllToActiveOrBackoffQueue(framework.NodeAdd)
	if got := lens(q); got != [3]int{0, 1, 0} {
		t.Fatalf("lens %v, want backoff", got)
	}
	clk.Step(time.Second)
	q.FlushBackoffCompleted()
	if got := lens(q); got != [3]int{1, 0, 0} {
		t.Fatalf("lens %v, want active", got)
	}
}

func TestEventDuringCycleIsNotLost(t *testing.T) {
	q, _ := newQueue()
	q.Add(f.Pod("p", "", ""))
	qp := q.Pop()
	cycle := q.SchedulingCycle()
	// A node arrives while p is being scheduled against the old snapshot.
	q.MoveAllToActiveOrBackoffQueue(framework.NodeAdd)
	q.AddUnschedulableIfNotPresent(unschedulableBy(qp, plugins.NodeResourcesFitName), cycle)
	if got := lens(q); got != [3]int{0, 1, 0} {
		t.Fatalf("lens %v, want backoff (not unschedulable)", got)
	}
}

func TestUpdateAndDelete(t *testing.T) {
	q, clk := newQueue()
	p := f.Pod("p", "", "")
	q.Add(p)
	qp := q.Pop()
	q.AddUnschedulableIfNotPresent(unschedulableBy(qp, plugins.TaintTolerationName), q.SchedulingCycle())
	clk.Step(time.Minute)

	// A status-only change (the scheduler's own condition) keeps it waiting.
	st := p.DeepCopy()
	st.ResourceVersion = "7"
	st.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionFalse}}
	q.Update(p, st)
	if got := lens(q); got != [3]int{0, 0, 1} {
		t.Fatalf("status update moved the pod: %v", got)
	}
	// A new toleration is worth a try.
	tol := st.DeepCopy()
	f.Toleration("k", "", "")(tol)
	q.Update(st, tol)
	if got := lens(q); got != [3]int{1, 0, 0} {
		t.Fatalf("spec update did not move the pod: %v", got)
	}
	// Updates of an active pod replace it in place.
	q.Update(tol, tol)
	if got := lens(q); got != [3]int{1, 0, 0} {
		t.Fatalf("lens %v", got)
	}
	q.Delete(tol)
	if got := lens(q); got != [3]int{0, 0, 0} {
		t.Fatalf("lens after delete %v", got)
	}
	// A re-added pod is not duplicated by AddUnschedulableIfNotPresent.
	q.Add(p)
	q.AddUnschedulableIfNotPresent(&QueuedPodInfo{PodInfo: framework.NewPodInfo(p)}, q.SchedulingCycle())
	if got := lens(q); got != [3]int{1, 0, 0} {
		t.Fatalf("lens %v", got)
	}
}

func TestUnschedulableLeftover(t *testing.T) {
	q, clk := newQueue()
	q.Add(f.Pod("p", "", ""))
	qp := q.Pop()
	q.AddUnschedulableIfNotPresent(unschedulableBy(qp, plugins.TaintTolerationName), q.SchedulingCycle())
	clk.Step(4 * time.Minute)
	q.FlushUnschedulableLeftover()
	if got := lens(q); got != [3]int{0, 0, 1} {
		t.Fatalf("lens %v", got)
	}
	clk.Step(time.Minute + time.Second)
	q.FlushUnschedulableLeftover()
	if got := lens(q); got != [3]int{1, 0, 0} {
		t.Fatalf("lens %v", got)
	}
}

func TestPopBlocksUntilAddOrClose(t *testing.T) {
	q, _ := newQueue()
	got := make(chan *QueuedPodInfo)
	go func() { got <- q.Pop() }()
	select {
	case <-got:
		t.Fatal("Pop returned on an empty queue")
	case <-time.After(50 * time.Millisecond):
	}
	q.Add(f.Pod("p", "", ""))
	if p := <-got; p == nil || p.Pod.Name != "p" {
		t.Fatalf("Pop = %v", p)
	}
	go func() { got <- q.Pop() }()
	q.Close()
	if p := <-got; p != nil {
		t.Fatalf("Pop after Close = %v", p)
	}
}

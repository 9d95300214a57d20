package metricsapi

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubeish/kubeish/kubeletish/stats"
)

type fakeObjects struct {
	nodes []*corev1.Node
	pods  []*corev1.Pod
}

func (f *fakeObjects) ListNodes(context.Context) ([]*corev1.Node, error) { return f.nodes, nil }
func (f *fakeObjects) ListPods(context.Context) ([]*corev1.Pod, error)   { return f.pods, nil }

// fakeGetter answers from a map by node name; a missing node errors.
type fakeGetter struct {
	mu  sync.Mutex
	sum map[string]*stats.Summary
}

func (f *fakeGetter) GetSummary(_ context.Context, n *corev1.Node) (*stats.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sum[n.Name]
	if !ok {
		return nil, errors.New("connection refused")
	}
	return s, nil
}

func node(name string, ready corev1.ConditionStatus, lbl map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbl},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}}}
}

func pod(ns, name, uid string, lbl map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), Labels: lbl}}
}

func u64(v uint64) *uint64 { return &v }

func cpu(at time.Time, nanoCores, total *uint64) *stats.CPUStats {
	return &stats.CPUStats{Time: metav1.NewTime(at), UsageNanoCores: nanoCores, UsageCoreNanoSeconds: total}
}

func mem(at time.Time, ws uint64) *stats.MemoryStats {
	return &stats.MemoryStats{Time: metav1.NewTime(at), WorkingSetBytes: u64(ws)}
}

func container(name string, c *stats.CPUStats, m *stats.MemoryStats) stats.ContainerStats {
	return stats.ContainerStats{Name: name, CPU: c, Memory: m}
}

func podStats(ns, name, uid string, cs ...stats.ContainerStats) stats.PodStats {
	return stats.PodStats{PodRef: stats.PodReference{Namespace: ns, Name: name, UID: uid}, Containers: cs}
}

func TestScrape(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	objs := &fakeObjects{
		nodes: []*corev1.Node{
			node("n1", corev1.ConditionTrue, map[string]string{"zone": "a"}),
			node("n2", corev1.ConditionTrue, map[string]string{"zone": "b"}),
			node("down", corev1.ConditionUnknown, nil),
			node("unreachable", corev1.ConditionTrue, nil),
		},
		pods: []*corev1.Pod{
			pod("default", "web-1", "u1", map[string]string{"app": "web"}),
			pod("default", "web-2", "u2", map[string]string{"app": "web"}),
			pod("other", "db", "u3", map[string]string{"app": "db"}),
			pod("default", "partial", "u4", nil),
			pod("default", "renamed", "new-uid", nil),
		},
	}
	getter := &fakeGetter{sum: map[string]*stats.Summary{
		"n1": {
			Node: stats.NodeStats{NodeName: "n1", CPU: cpu(t0, u64(1.5e9), nil), Memory: mem(t0, 2<<30)},
			Pods: []stats.PodStats{
				podStats("default", "web-1", "u1",
					container("app", cpu(t0, u64(200e6), nil), mem(t0, 50<<20)),
					container("side", cpu(t0, u64(50e6), nil), mem(t0, 10<<20))),
				podStats("default", "partial", "u4",
					container("app", cpu(t0, u64(1e6), nil), mem(t0, 1<<20)),
					container("nocpu", nil, mem(t0, 1<<20))),
				podStats("default", "renamed", "old-uid", container("app", cpu(t0, u64(1e6), nil), mem(t0, 1<<20))),
				podStats("default", "gone", "u9", container("app", cpu(t0, u64(1e6), nil), mem(t0, 1<<20))),
			},
		},
		"n2": {
			Node: stats.NodeStats{NodeName: "n2", CPU: cpu(t0, u64(100e6), nil), Memory: mem(t0, 1<<30)},
			Pods: []stats.PodStats{
				podStats("default", "web-2", "u2", container("app", cpu(t0, u64(300e6), nil), mem(t0, 60<<20))),
				podStats("other", "db", "u3", container("db", cpu(t0, u64(10e6), nil), mem(t0, 100<<20))),
			},
		},
		"down": {Node: stats.NodeStats{NodeName: "down", CPU: cpu(t0, u64(1), nil), Memory: mem(t0, 1)}},
	}}
	clk := clocktesting.NewFakeClock(t0)
	s, err := New(Config{Objects: objs, Getter: getter, Resolution: 15 * time.Second, Clock: clk, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	s.Scrape(context.Background())

	nodes := s.Nodes(nil)
	if len(nodes) != 2 || nodes[0].Name != "n1" || nodes[1].Name != "n2" {
		t.Fatalf("nodes: want n1, n2 (not the unready or unreachable ones), got %+v", nodes)
	}
	if got := nodes[0].Usage.Cpu().MilliValue(); got != 1500 {
		t.Errorf("n1 cpu: %dm, want 1500m", got)
	}
	if got := nodes[0].Usage.Memory().Value(); got != 2<<30 {
		t.Errorf("n1 memory: %d, want %d", got, 2<<30)
	}
	if nodes[0].Window.Duration != 15*time.Second || !nodes[0].Timestamp.Time.Equal(t0) {
		t.Errorf("n1 window %s at %s, want the resolution at the sample's time", nodes[0].Window.Duration, nodes[0].Timestamp)
	}
	if got := s.Nodes(labels.SelectorFromSet(labels.Set{"zone": "b"})); len(got) != 1 || got[0].Name != "n2" {
		t.Errorf("nodes zone=b: %+v", got)
	}

	tests := []struct {
		ns      string
		sel     string
		want    []string
		wantCPU []int64
	}{
		{"default", "", []string{"web-1", "web-2"}, []int64{250, 300}},
		{"", "", []string{"web-1", "web-2", "db"}, []int64{250, 300, 10}},
		{"default", "app=web", []string{"web-1", "web-2"}, []int64{250, 300}},
		{"", "app=db", []string{"db"}, []int64{10}},
		{"other", "app=web", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.ns+"/"+tc.sel, func(t *testing.T) {
			sel, err := labels.Parse(tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Pods(tc.ns, sel)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d pods %+v, want %v", len(got), got, tc.want)
			}
			for i, m := range got {
				var sum int64
				for _, c := range m.Containers {
					sum += c.Usage.Cpu().MilliValue()
				}
				if m.Name != tc.want[i] || sum != tc.wantCPU[i] {
					t.Errorf("pod %d: %s with %dm, want %s with %dm", i, m.Name, sum, tc.want[i], tc.wantCPU[i])
				}
			}
		})
	}
	if m, ok := s.Pod("default", "web-1"); !ok || len(m.Containers) != 2 || m.Containers[0].Name != "app" || m.Labels["app"] != "web" {
		t.Errorf("web-1: %+v", m)
	}
	for _, name := range []string{"partial", "renamed", "gone"} {
		if _, ok := s.Pod("default", name); ok {
			t.Errorf("pod %s should be left out", name)
		}
	}

	// The next round: n2 stops answering and goes; n1's counters give a
	// rate over the 10 s between the two readings, timed by when the
	// scraper received them (the summaries' own times are whole seconds).
	t1 := t0.Add(10 * time.Second)
	getter.mu.Lock()
	delete(getter.sum, "n2")
	getter.sum["n1"] = &stats.Summary{
		Node: stats.NodeStats{NodeName: "n1", CPU: cpu(t0, nil, u64(100e9)), Memory: mem(t0, 1<<30)},
		Pods: []stats.PodStats{podStats("default", "web-1", "u1",
			container("app", cpu(t0, u64(999), u64(10e9)), mem(t0, 1)),
			container("side", cpu(t0, nil, u64(1e9)), mem(t0, 1)))},
	}
	getter.mu.Unlock()
	s.Scrape(context.Background())
	getter.mu.Lock()
	getter.sum["n1"] = &stats.Summary{
		Node: stats.NodeStats{NodeName: "n1", CPU: cpu(t1, nil, u64(105e9)), Memory: mem(t1, 1<<30)},
		Pods: []stats.PodStats{podStats("default", "web-1", "u1",
			container("app", cpu(t1, u64(999), u64(12e9)), mem(t1, 1)),
			container("side", cpu(t1, nil, u64(1.5e9)), mem(t1, 1)))},
	}
	getter.mu.Unlock()
	clk.SetTime(t1)
	s.Scrape(context.Background())
	if _, ok := s.Node("n2"); ok {
		t.Error("n2 stopped answering but its metrics stayed")
	}
	n1, ok := s.Node("n1")
	if !ok || n1.Usage.Cpu().MilliValue() != 500 || n1.Window.Duration != 10*time.Second {
		t.Errorf("n1 over 10s: %+v, want 500m over 10s", n1)
	}
	web, ok := s.Pod("default", "web-1")
	if !ok || web.Containers[0].Usage.Cpu().MilliValue() != 200 || web.Containers[1].Usage.Cpu().MilliValue() != 50 || web.Window.Duration != 10*time.Second {
		t.Errorf("web-1 over 10s: %+v, want app 200m and side 50m over 10s", web)
	}
}

// TestScrapeWindowFromReceiveTimes: the summaries' times travel in whole
// seconds (metav1.Time), so two readings 2.5 s apart may carry the same
// second; the rate is timed by when the scraper received them.
func TestScrapeWindowFromReceiveTimes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	objs := &fakeObjects{nodes: []*corev1.Node{node("n1", corev1.ConditionTrue, nil)}}
	summary := func(total uint64) *stats.Summary {
		// Both readings say 12:00:00, as they would after the wire.
		return &stats.Summary{Node: stats.NodeStats{NodeName: "n1", CPU: cpu(t0, nil, u64(total)), Memory: mem(t0, 1)}}
	}
	getter := &fakeGetter{sum: map[string]*stats.Summary{"n1": summary(10e9)}}
	clk := clocktesting.NewFakeClock(t0.Add(200 * time.Millisecond))
	s, err := New(Config{Objects: objs, Getter: getter, Resolution: 2 * time.Second, Clock: clk, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	s.Scrape(context.Background())
	getter.mu.Lock()
	getter.sum["n1"] = summary(11.25e9)
	getter.mu.Unlock()
	clk.Step(2500 * time.Millisecond)
	s.Scrape(context.Background())
	n1, ok := s.Node("n1")
	if !ok || n1.Usage.Cpu().MilliValue() != 500 || n1.Window.Duration != 2500*time.Millisecond {
		t.Fatalf("n1: %+v, want 500m over 2.5s", n1)
	}

	// Node times 2 s apart (truncated), received 2.4 s apart: ours.
	getter.mu.Lock()
	getter.sum["n1"] = &stats.Summary{Node: stats.NodeStats{NodeName: "n1", CPU: cpu(t0.Add(2*time.Second), nil, u64(12.45e9)), Memory: mem(t0, 1)}}
	getter.mu.Unlock()
	clk.Step(2400 * time.Millisecond)
	s.Scrape(context.Background())
	if n1, _ = s.Node("n1"); n1.Usage.Cpu().MilliValue() != 500 || n1.Window.Duration != 2400*time.Millisecond {
		t.Fatalf("n1: %+v, want 500m over 2.4s", n1)
	}
	// Node times 3 s apart, received 3.01 s apart: they agree, the node's.
	getter.mu.Lock()
	getter.sum["n1"] = &stats.Summary{Node: stats.NodeStats{NodeName: "n1", CPU: cpu(t0.Add(5*time.Second), nil, u64(13.95e9)), Memory: mem(t0, 1)}}
	getter.mu.Unlock()
	clk.Step(3010 * time.Millisecond)
	s.Scrape(context.Background())
	if n1, _ = s.Node("n1"); n1.Usage.Cpu().MilliValue() != 500 || n1.Window.Duration != 3*time.Second {
		t.Fatalf("n1: %+v, want 500m over 3s", n1)
	}
}

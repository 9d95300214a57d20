package framework_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kubeish/kubeish/scheduler/framework"
	f "github.com/kubeish/kubeish/scheduler/framework/fwtest"
	"github.com/kubeish/kubeish/scheduler/framework/plugins"
)

func newFramework(t *testing.T, pct int) *framework.Framework {
	t.Helper()
	scores, err := plugins.Scores(nil)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := framework.New(framework.Config{
		Filters: plugins.DefaultFilters(), Scores: scores, Parallelism: 4,
		PercentageOfNodesToScore: pct, Rand: rand.New(rand.NewSource(1)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

func TestFitErrorMessage(t *testing.T) {
	cases := []struct {
		name  string
		nodes []*v1.Node
		pods  []*v1.Pod
		pod   *v1.Pod
		want  string
	}{
		{
			name: "cpu and taint",
			nodes: []*v1.Node{
				f.Node("a", "1", "1Gi", 10), f.Node("b", "1", "1Gi", 10),
				f.Node("c", "4", "4Gi", 10, f.Taint("key", "value", v1.TaintEffectNoSchedule)),
			},
			pod:  f.Pod("p", "2", ""),
			want: "0/3 nodes are available: 1 node(s) had untolerated taint {key: value}, 2 Insufficient cpu.",
		},
		{
			name: "several resources on one node count once each",
			nodes: []*v1.Node{
				f.Node("a", "1", "1Gi", 10), f.Node("b", "4", "1Gi", 10),
			},
			pod:  f.Pod("p", "2", "2Gi"),
			want: "0/2 nodes are available: 1 Insufficient cpu, 2 Insufficient memory.",
		},
		{
			name: "first failing filter wins",
			nodes: []*v1.Node{
				f.Node("a", "1", "1Gi", 10, f.NotReady), f.Node("b", "1", "1Gi", 10, f.Cordoned),
				f.Node("c", "1", "1Gi", 10, f.Labels("disk", "ssd")), f.Node("d", "1", "1Gi", 1, f.Labels("disk", "hdd")),
			},
			pods: []*v1.Pod{f.Pod("q", "", "", f.OnNode("d"))},
			pod:  f.Pod("p", "", "", f.NodeSelector("disk", "hdd"), f.HostPort(80, "")),
			want: "0/4 nodes are available: 1 Too many pods, 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were not ready, 1 node(s) were unschedulable.",
		},
		{
			name: "string order as Kubernetes sorts it",
			nodes: func() []*v1.Node {
				var ns []*v1.Node
				for i := 0; i < 10; i++ {
					ns = append(ns, f.Node(fmt.Sprintf("a%d", i), "1", "1Gi", 10))
				}
				return append(ns, f.Node("b1", "4", "4Gi", 10, f.Taint("k", "v", v1.TaintEffectNoExecute)),
					f.Node("b2", "4", "4Gi", 10, f.Taint("k", "v", v1.TaintEffectNoExecute)))
			}(),
			pod:  f.Pod("p", "2", ""),
			want: "0/12 nodes are available: 10 Insufficient cpu, 2 node(s) had untolerated taint {k: v}.",
		},
		{
			name: "no nodes",
			pod:  f.Pod("p", "", ""),
			want: "0/0 nodes are available:",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fw := newFramework(t, 0)
			_, err := fw.Schedule(context.Background(), framework.NewPodInfo(tc.pod), framework.NewSnapshot(tc.nodes, tc.pods))
			var fe *framework.FitError
			if !errors.As(err, &fe) {
				t.Fatalf("Schedule error = %v, want a FitError", err)
			}
			if got := fe.Error(); got != tc.want {
				t.Errorf("message\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestSchedulePicksBestNode(t *testing.T) {
	nodes := []*v1.Node{
		f.Node("busy", "4", "8Gi", 110), f.Node("free", "4", "8Gi", 110),
		f.Node("tainted", "64", "256Gi", 110, f.Taint("gpu", "", v1.TaintEffectNoSchedule)),
	}
	pods := []*v1.Pod{f.Pod("q", "3", "6Gi", f.OnNode("busy"))}
	fw := newFramework(t, 0)
	res, err := fw.Schedule(context.Background(), framework.NewPodInfo(f.Pod("p", "500m", "1Gi")), framework.NewSnapshot(nodes, pods))
	if err != nil {
		t.Fatal(err)
	}
	if res.SuggestedHost != "free" || res.FeasibleNodes != 2 || res.EvaluatedNodes != 3 {
		t.Errorf("result = %+v, want host free of 2 feasible, 3 evaluated", res)
	}
}

func TestScheduleSpreadsTiesAndOwners(t *testing.T) {
	var nodes []*v1.Node
	for i := 0; i < 4; i++ {
		nodes = append(nodes, f.Node(fmt.Sprintf("n%d", i), "8", "16Gi", 110))
	}
	snap := framework.NewSnapshot(nodes, nil)
	fw := newFramework(t, 0)
	// Place 8 replicas one by one, counting each on its node as the cache
	// would: every node must get 2.
	for i := 0; i < 8; i++ {
		pi := framework.NewPodInfo(f.Pod(fmt.Sprintf("r%d", i), "100m", "100Mi", f.Owner("rs")))
		res, err := fw.Schedule(context.Background(), pi, snap)
		if err != nil {
			t.Fatal(err)
		}
		snap.NodeInfoMap[res.SuggestedHost].AddPod(pi)
	}
	for _, ni := range snap.List {
		if len(ni.Pods) != 2 {
			t.Errorf("node %s has %d replicas, want 2", ni.Name(), len(ni.Pods))
		}
	}
}

func TestNumFeasibleNodesToFind(t *testing.T) {
	cases := []struct{ pct, nodes, want int }{
		{0, 10, 10}, {0, 99, 99}, {0, 100, 100}, {0, 1000, 420}, {0, 5000, 500}, {0, 6000, 300},
		{0, 10000, 500}, {10, 500, 100}, {10, 5000, 500}, {100, 5000, 5000}, {50, 200, 100},
	}
	for _, tc := range cases {
		fw := newFramework(t, tc.pct)
		if got := fw.NumFeasibleNodesToFind(tc.nodes); got != tc.want {
			t.Errorf("pct %d, %d nodes: %d, want %d", tc.pct, tc.nodes, got, tc.want)
		}
	}
}

func TestScheduleStopsAtPercentageAndRotates(t *testing.T) {
	var nodes []*v1.Node
	for i := 0; i < 1000; i++ {
		nodes = append(nodes, f.Node(fmt.Sprintf("n%04d", i), "8", "16Gi", 110))
	}
	snap := framework.NewSnapshot(nodes, nil)
	fw := newFramework(t, 10)
	seen := map[string]bool{}
	for i := 0; i < 10; i++ {
		res, err := fw.Schedule(context.Background(), framework.NewPodInfo(f.Pod("p", "", "")), snap)
		if err != nil {
			t.Fatal(err)
		}
		if res.FeasibleNodes != 100 {
			t.Fatalf("feasible = %d, want 100 (10%% of 1000)", res.FeasibleNodes)
		}
		seen[res.SuggestedHost] = true
	}
	// Each search starts where the last one stopped, so ten pods land on
	// ten different windows of nodes.
	if len(seen) != 10 {
		t.Errorf("10 pods went to %d distinct nodes, want 10", len(seen))
	}
}

func TestScheduleSearchesPastInfeasibleNodes(t *testing.T) {
	var nodes []*v1.Node
	for i := 0; i < 500; i++ {
		n := f.Node(fmt.Sprintf("n%04d", i), "8", "16Gi", 110)
		if i != 437 {
			n.Spec.Taints = []v1.Taint{{Key: "k", Effect: v1.TaintEffectNoSchedule}}
		}
		nodes = append(nodes, n)
	}
	fw := newFramework(t, 5)
	res, err := fw.Schedule(context.Background(), framework.NewPodInfo(f.Pod("p", "", "")), framework.NewSnapshot(nodes, nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.SuggestedHost != "n0437" || res.EvaluatedNodes != 500 {
		t.Errorf("result = %+v, want n0437 after evaluating all 500", res)
	}
}

func TestNodeInfoAddRemove(t *testing.T) {
	ni := framework.NewNodeInfo(f.Node("n", "4", "4Gi", 10))
	a := framework.NewPodInfo(f.Pod("a", "1", "1Gi", f.Owner("rs"), f.HostPort(80, "")))
	b := framework.NewPodInfo(f.Pod("b", "", "", f.Owner("rs")))
	ni.AddPod(a)
	ni.AddPod(b)
	c := ni.Clone()
	if !ni.RemovePod(a.Key) || ni.RemovePod(a.Key) {
		t.Fatal("RemovePod should succeed once")
	}
	if ni.Requested.MilliCPU != 0 || ni.NonZeroRequested.MilliCPU != framework.DefaultMilliCPURequest || len(ni.UsedPorts) != 0 || ni.OwnerCounts["rs"] != 1 {
		t.Errorf("after remove: %+v", ni)
	}
	if c.Requested.MilliCPU != 1000 || len(c.Pods) != 2 || c.OwnerCounts["rs"] != 2 || len(c.UsedPorts) != 1 {
		t.Errorf("clone changed with the original: %+v", c)
	}
}

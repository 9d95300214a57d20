package plugins

import (
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kubeish/kubeish/scheduler/framework"
	f "github.com/kubeish/kubeish/scheduler/framework/fwtest"
)

func nodeInfo(n *v1.Node, pods ...*v1.Pod) *framework.NodeInfo {
	ni := framework.NewNodeInfo(n)
	for _, p := range pods {
		ni.AddPod(framework.NewPodInfo(p))
	}
	return ni
}

func reasons(st *framework.Status) []string {
	if st == nil {
		return nil
	}
	return st.Reasons
}

func TestFilters(t *testing.T) {
	small := f.Node("n", "1", "1Gi", 2)
	cases := []struct {
		name   string
		plugin framework.FilterPlugin
		pod    *v1.Pod
		node   *framework.NodeInfo
		want   []string
	}{
		{"ready", NodeReady{}, f.Pod("p", "", ""), nodeInfo(small), nil},
		{"not ready", NodeReady{}, f.Pod("p", "", ""), nodeInfo(f.Node("n", "1", "1Gi", 2, f.NotReady)), []string{ErrReasonNotReady}},
		{"no ready condition", NodeReady{}, f.Pod("p", "", ""), nodeInfo(f.Node("n", "1", "1Gi", 2, func(n *v1.Node) { n.Status.Conditions = nil })), []string{ErrReasonNotReady}},
		{"not ready tolerated", NodeReady{}, f.Pod("p", "", "", f.Toleration(v1.TaintNodeNotReady, "", "")), nodeInfo(f.Node("n", "1", "1Gi", 2, f.NotReady)), nil},

		{"schedulable", NodeUnschedulable{}, f.Pod("p", "", ""), nodeInfo(small), nil},
		{"cordoned", NodeUnschedulable{}, f.Pod("p", "", ""), nodeInfo(f.Node("n", "1", "1Gi", 2, f.Cordoned)), []string{ErrReasonUnschedulable}},
		{"cordoned tolerated", NodeUnschedulable{}, f.Pod("p", "", "", f.Toleration(v1.TaintNodeUnschedulable, "", v1.TaintEffectNoSchedule)), nodeInfo(f.Node("n", "1", "1Gi", 2, f.Cordoned)), nil},

		{"no taints", TaintToleration{}, f.Pod("p", "", ""), nodeInfo(small), nil},
		{"NoSchedule taint", TaintToleration{}, f.Pod("p", "", ""), nodeInfo(f.Node("n", "1", "1Gi", 2, f.Taint("dedicated", "db", v1.TaintEffectNoSchedule))), []string{"node(s) had untolerated taint {dedicated: db}"}},
		{"NoExecute taint", TaintToleration{}, f.Pod("p", "", ""), nodeInfo(f.Node("n", "1", "1Gi", 2, f.Taint("gone", "", v1.TaintEffectNoExecute))), []string{"node(s) had untolerated taint {gone: }"}},
		{"PreferNoSchedule is no filter", TaintToleration{}, f.Pod("p", "", ""), nodeInfo(f.Node("n", "1", "1Gi", 2, f.Taint("meh", "x", v1.TaintEffectPreferNoSchedule))), nil},
		{"tolerated by value", TaintToleration{}, f.Pod("p", "", "", f.Toleration("dedicated", "db", v1.TaintEffectNoSchedule)), nodeInfo(f.Node("n", "1", "1Gi", 2, f.Taint("dedicated", "db", v1.TaintEffectNoSchedule))), nil},
		{"wrong value", TaintToleration{}, f.Pod("p", "", "", f.Toleration("dedicated", "web", v1.TaintEffectNoSchedule)), nodeInfo(f.Node("n", "1", "1Gi", 2, f.Taint("dedicated", "db", v1.TaintEffectNoSchedule))), []string{"node(s) had untolerated taint {dedicated: db}"}},
		{"Exists any effect", TaintToleration{}, f.Pod("p", "", "", f.Toleration("dedicated", "", "")), nodeInfo(f.Node("n", "1", "1Gi", 2, f.Taint("dedicated", "db", v1.TaintEffectNoExecute))), nil},
		{"wrong effect", TaintToleration{}, f.Pod("p", "", "", f.Toleration("dedicated", "db", v1.TaintEffectNoSchedule)), nodeInfo(f.Node("n", "1", "1Gi", 2, f.Taint("dedicated", "db", v1.TaintEffectNoExecute))), []string{"node(s) had untolerated taint {dedicated: db}"}},

		{"no selector", NodeAffinity{}, f.Pod("p", "", ""), nodeInfo(small), nil},
		{"selector matches", NodeAffinity{}, f.Pod("p", "", "", f.NodeSelector("disk", "ssd")), nodeInfo(f.Node("n", "1", "1Gi", 2, f.Labels("disk", "ssd"))), nil},
		{"selector misses", NodeAffinity{}, f.Pod("p", "", "", f.NodeSelector("disk", "ssd")), nodeInfo(f.Node("n", "1", "1Gi", 2, f.Labels("disk", "hdd"))), []string{ErrReasonAffinity}},
		{"required affinity In", NodeAffinity{}, f.Pod("p", "", "", required("zone", v1.NodeSelectorOpIn, "a", "b")), nodeInfo(f.Node("n", "1", "1Gi", 2, f.Labels("zone", "b"))), nil},
		{"required affinity NotIn", NodeAffinity{}, f.Pod("p", "", "", required("zone", v1.NodeSelectorOpNotIn, "a", "b")), nodeInfo(f.Node("n", "1", "1Gi", 2, f.Labels("zone", "b"))), []string{ErrReasonAffinity}},
		{"selector and affinity both needed", NodeAffinity{}, f.Pod("p", "", "", f.NodeSelector("disk", "ssd"), required("zone", v1.NodeSelectorOpExists)), nodeInfo(f.Node("n", "1", "1Gi", 2, f.Labels("disk", "ssd"))), []string{ErrReasonAffinity}},

		{"free port", NodePorts{}, f.Pod("p", "", "", f.HostPort(80, "")), nodeInfo(small, f.Pod("q", "", "", f.HostPort(81, ""))), nil},
		{"port taken", NodePorts{}, f.Pod("p", "", "", f.HostPort(80, "")), nodeInfo(small, f.Pod("q", "", "", f.HostPort(80, "10.0.0.1"))), []string{ErrReasonPorts}},
		{"port on other ip", NodePorts{}, f.Pod("p", "", "", f.HostPort(80, "10.0.0.2")), nodeInfo(small, f.Pod("q", "", "", f.HostPort(80, "10.0.0.1"))), nil},
		{"port vs wildcard", NodePorts{}, f.Pod("p", "", "", f.HostPort(80, "10.0.0.2")), nodeInfo(small, f.Pod("q", "", "", f.HostPort(80, ""))), []string{ErrReasonPorts}},

		{"fits", NodeResourcesFit{}, f.Pod("p", "500m", "512Mi"), nodeInfo(small, f.Pod("q", "500m", "512Mi")), nil},
		{"insufficient cpu", NodeResourcesFit{}, f.Pod("p", "600m", "100Mi"), nodeInfo(small, f.Pod("q", "500m", "")), []string{"Insufficient cpu"}},
		{"insufficient cpu and memory", NodeResourcesFit{}, f.Pod("p", "2", "2Gi"), nodeInfo(small), []string{"Insufficient cpu", "Insufficient memory"}},
		{"too many pods", NodeResourcesFit{}, f.Pod("p", "", ""), nodeInfo(small, f.Pod("a", "", ""), f.Pod("b", "", "")), []string{ErrReasonTooManyPods}},
		{"zero request fits a full node", NodeResourcesFit{}, f.Pod("p", "", ""), nodeInfo(f.Node("n", "1", "1Gi", 10), f.Pod("q", "1", "1Gi")), nil},
		{"init container larger than app containers", NodeResourcesFit{}, withInit(f.Pod("p", "200m", ""), "900m"), nodeInfo(small, f.Pod("q", "200m", "")), []string{"Insufficient cpu"}},
		{"init container smaller than app containers", NodeResourcesFit{}, withInit(f.Pod("p", "700m", ""), "100m"), nodeInfo(small, f.Pod("q", "300m", "")), nil},
		{"overhead counts", NodeResourcesFit{}, withOverhead(f.Pod("p", "700m", ""), "301m"), nodeInfo(small), []string{"Insufficient cpu"}},
		{"extended resource", NodeResourcesFit{}, withScalar(f.Pod("p", "", ""), "example.com/gpu", "1"), nodeInfo(small), []string{"Insufficient example.com/gpu"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := reasons(tc.plugin.Filter(framework.NewPodInfo(tc.pod), tc.node))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s.Filter = %q, want %q", tc.plugin.Name(), got, tc.want)
			}
		})
	}
}

func required(key string, op v1.NodeSelectorOperator, values ...string) func(*v1.Pod) {
	return func(p *v1.Pod) {
		p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}},
			}}},
		}}
	}
}

func preferred(weight int32, key, value string) func(*v1.Pod) {
	return func(p *v1.Pod) {
		if p.Spec.Affinity == nil {
			p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{}}
		}
		na := p.Spec.Affinity.NodeAffinity
		na.PreferredDuringSchedulingIgnoredDuringExecution = append(na.PreferredDuringSchedulingIgnoredDuringExecution, v1.PreferredSchedulingTerm{
			Weight: weight,
			Preference: v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{
				Key: key, Operator: v1.NodeSelectorOpIn, Values: []string{value},
			}}},
		})
	}
}

func withInit(p *v1.Pod, cpu string) *v1.Pod {
	p.Spec.InitContainers = []v1.Container{{Name: "init", Resources: v1.ResourceRequirements{Requests: f.Requests(cpu, "")}}}
	return p
}

func withOverhead(p *v1.Pod, cpu string) *v1.Pod {
	p.Spec.Overhead = f.Requests(cpu, "")
	return p
}

func withScalar(p *v1.Pod, name, q string) *v1.Pod {
	rl := p.Spec.Containers[0].Resources.Requests
	rl[v1.ResourceName(name)] = f.Requests(q, "")[v1.ResourceCPU]
	return p
}

// scoreAll runs one plugin over nodes the way the framework does: raw
// scores, then normalization.
func scoreAll(p framework.ScorePlugin, pod *v1.Pod, nodes ...*framework.NodeInfo) []int64 {
	pi := framework.NewPodInfo(pod)
	out := make([]int64, len(nodes))
	for i, n := range nodes {
		out[i] = p.Score(pi, n)
	}
	if nz, ok := p.(framework.ScoreNormalizer); ok {
		nz.NormalizeScore(pi, out)
	}
	return out
}

func TestScores(t *testing.T) {
	big := f.Node("big", "4", "4Gi", 110)
	cases := []struct {
		name   string
		plugin framework.ScorePlugin
		pod    *v1.Pod
		nodes  []*framework.NodeInfo
		want   []int64
	}{
		// (4000-1000)/4000=75, (4Gi-1Gi)/4Gi=75 → 75; the busy node: cpu
		// (4000-3000)/4000=25, mem 50 → 37.
		{"least allocated", LeastAllocated{}, f.Pod("p", "1", "1Gi"),
			[]*framework.NodeInfo{nodeInfo(big), nodeInfo(big, f.Pod("q", "2", "1Gi"))}, []int64{75, 37}},
		// A pod with no requests counts 100m and 200Mi.
		{"least allocated non-zero default", LeastAllocated{}, f.Pod("p", "", ""),
			[]*framework.NodeInfo{nodeInfo(f.Node("n", "1", "1000Mi", 10))}, []int64{(90 + 80) / 2}},
		{"least allocated overcommitted is 0", LeastAllocated{}, f.Pod("p", "8", "1Gi"),
			[]*framework.NodeInfo{nodeInfo(big)}, []int64{(0 + 75) / 2}},
		// cpu 1/4, mem 1/4 → balanced 100; cpu 3/4, mem 1/4 → 100-25=75.
		{"balanced", BalancedAllocation{}, f.Pod("p", "1", "1Gi"),
			[]*framework.NodeInfo{nodeInfo(big), nodeInfo(big, f.Pod("q", "2", ""))}, []int64{100, 75}},
		{"spread by owner", SelectorSpread{}, f.Pod("p", "", "", f.Owner("rs1")),
			[]*framework.NodeInfo{
				nodeInfo(big),
				nodeInfo(big, f.Pod("a", "", "", f.Owner("rs1"))),
				nodeInfo(big, f.Pod("b", "", "", f.Owner("rs1")), f.Pod("c", "", "", f.Owner("rs1")), f.Pod("d", "", "", f.Owner("rs2"))),
			}, []int64{100, 50, 0}},
		{"spread other owners only", SelectorSpread{}, f.Pod("p", "", "", f.Owner("rs1")),
			[]*framework.NodeInfo{nodeInfo(big), nodeInfo(big, f.Pod("d", "", "", f.Owner("rs2")))}, []int64{100, 100}},
		{"spread without owner", SelectorSpread{}, f.Pod("p", "", ""),
			[]*framework.NodeInfo{nodeInfo(big), nodeInfo(big, f.Pod("d", "", "", f.Owner("rs2")))}, []int64{100, 100}},
		{"preferred affinity", NodeAffinity{}, f.Pod("p", "", "", preferred(10, "zone", "a"), preferred(30, "disk", "ssd")),
			[]*framework.NodeInfo{
				nodeInfo(f.Node("a", "1", "1Gi", 10, f.Labels("zone", "a"))),
				nodeInfo(f.Node("b", "1", "1Gi", 10, f.Labels("zone", "a", "disk", "ssd"))),
				nodeInfo(f.Node("c", "1", "1Gi", 10)),
			}, []int64{25, 100, 0}},
		{"no preferred affinity", NodeAffinity{}, f.Pod("p", "", ""),
			[]*framework.NodeInfo{nodeInfo(f.Node("a", "1", "1Gi", 10, f.Labels("zone", "a")))}, []int64{0}},
		{"prefer no schedule", TaintToleration{}, f.Pod("p", "", "", f.Toleration("tolerated", "", v1.TaintEffectPreferNoSchedule)),
			[]*framework.NodeInfo{
				nodeInfo(f.Node("a", "1", "1Gi", 10)),
				nodeInfo(f.Node("b", "1", "1Gi", 10, f.Taint("x", "1", v1.TaintEffectPreferNoSchedule))),
				nodeInfo(f.Node("c", "1", "1Gi", 10, f.Taint("x", "1", v1.TaintEffectPreferNoSchedule), f.Taint("y", "1", v1.TaintEffectPreferNoSchedule))),
				nodeInfo(f.Node("d", "1", "1Gi", 10, f.Taint("tolerated", "1", v1.TaintEffectPreferNoSchedule), f.Taint("z", "", v1.TaintEffectNoSchedule))),
			}, []int64{100, 50, 0, 100}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := scoreAll(tc.plugin, tc.pod, tc.nodes...); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s scores = %v, want %v", tc.plugin.Name(), got, tc.want)
			}
		})
	}
}

func TestScoresWeights(t *testing.T) {
	got, err := Scores(map[string]int64{SelectorSpreadName: 5, BalancedAllocationName: 0})
	if err != nil {
		t.Fatal(err)
	}
	w := map[string]int64{}
	for _, s := range got {
		w[s.Name()] = s.Weight
	}
	want := map[string]int64{LeastAllocatedName: 1, SelectorSpreadName: 5, WeightNodeAffinity: 2, WeightTaintToleration: 3}
	if !reflect.DeepEqual(w, want) {
		t.Errorf("weights = %v, want %v", w, want)
	}
	if _, err := Scores(map[string]int64{"ImageLocality": 1}); err == nil {
		t.Error("unknown plugin accepted")
	}
	if _, err := Scores(map[string]int64{SelectorSpreadName: -1}); err == nil {
		t.Error("negative weight accepted")
	}
}

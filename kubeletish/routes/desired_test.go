package routes

import (
	"net"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name string, cidrs []string, ips ...string) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if len(cidrs) > 0 {
		n.Spec.PodCIDR, n.Spec.PodCIDRs = cidrs[0], cidrs
	}
	for _, ip := range ips {
		n.Status.Addresses = append(n.Status.Addresses, v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip})
	}
	n.Status.Addresses = append(n.Status.Addresses, v1.NodeAddress{Type: v1.NodeHostName, Address: name})
	return n
}

func cidr(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

func strs[T interface{ String() string }](xs []T) []string {
	out := []string{}
	for _, x := range xs {
		out = append(out, x.String())
	}
	return out
}

func TestDesired(t *testing.T) {
	self := node("node-1", []string{"10.244.1.0/24"}, "10.250.0.2")
	svc := cidr("10.96.0.0/16")
	nodeIP := net.ParseIP("10.250.0.2")
	const svcRoute = "10.96.0.0/16 src 10.250.0.2"
	for _, tc := range []struct {
		name    string
		nodes   []*v1.Node
		svc     *net.IPNet
		want    []string
		skipped []Skipped
	}{
		{name: "alone: only the service range", nodes: []*v1.Node{self}, svc: svc, want: []string{svcRoute}},
		{name: "no service range", nodes: []*v1.Node{self, node("node-2", []string{"10.244.2.0/24"}, "10.250.0.3")},
			want: []string{"10.244.2.0/24 via 10.250.0.3"}},
		{name: "other nodes, in name order", svc: svc, nodes: []*v1.Node{
			node("node-3", []string{"10.244.3.0/24"}, "10.250.0.4"), self, node("node-2", []string{"10.244.2.0/24"}, "10.250.0.3")},
			want: []string{"10.244.2.0/24 via 10.250.0.3", "10.244.3.0/24 via 10.250.0.4", svcRoute}},
		{name: "own node missing from the list still gets no route", nodes: []*v1.Node{node("node-2", []string{"10.244.2.0/24"}, "10.250.0.3")},
			want: []string{"10.244.2.0/24 via 10.250.0.3"}},
		{name: "node without pod CIDR yet", nodes: []*v1.Node{self, node("node-2", nil, "10.250.0.3")}, want: []string{}},
		{name: "node without InternalIP yet", nodes: []*v1.Node{self, node("node-2", []string{"10.244.2.0/24"})}, want: []string{},
			skipped: []Skipped{{"node-2", "10.244.2.0/24", "no InternalIP of its family"}}},
		{name: "first InternalIP of the CIDR's family", nodes: []*v1.Node{self, node("node-2", []string{"10.244.2.0/24"}, "fd00::3", "10.250.0.3", "10.250.0.33")},
			want: []string{"10.244.2.0/24 via 10.250.0.3"}},
		{name: "dual stack", nodes: []*v1.Node{self, node("node-2", []string{"10.244.2.0/24", "fd00:244:2::/64"}, "10.250.0.3", "fd00::3")},
			want: []string{"10.244.2.0/24 via 10.250.0.3", "fd00:244:2::/64 via fd00::3"}},
		{name: "overlap with own pod CIDR", nodes: []*v1.Node{self, node("node-2", []string{"10.244.0.0/16"}, "10.250.0.3")}, want: []string{},
			skipped: []Skipped{{"node-2", "10.244.0.0/16", "overlaps this node's pod CIDR"}}},
		{name: "two nodes claim one CIDR: the first by name wins", nodes: []*v1.Node{self,
			node("node-3", []string{"10.244.2.0/24"}, "10.250.0.4"), node("node-2", []string{"10.244.2.0/24"}, "10.250.0.3")},
			want:    []string{"10.244.2.0/24 via 10.250.0.3"},
			skipped: []Skipped{{"node-3", "10.244.2.0/24", "also the pod CIDR of node-2"}}},
		{name: "a node claiming this node's IP", nodes: []*v1.Node{self, node("node-2", []string{"10.244.2.0/24"}, "10.250.0.2")}, want: []string{},
			skipped: []Skipped{{"node-2", "10.244.2.0/24", "its InternalIP is this node's"}}},
		{name: "garbage CIDR", nodes: []*v1.Node{self, node("node-2", []string{"10.244.2.0"}, "10.250.0.3")}, want: []string{},
			skipped: []Skipped{{"node-2", "10.244.2.0", "not a CIDR"}}},
		{name: "IPv6 service range on an IPv4 node: none", nodes: []*v1.Node{self}, svc: cidr("fd00:96::/108"), want: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, skipped := Desired("node-1", nodeIP, tc.svc, tc.nodes)
			if s := strs(got); !slices.Equal(s, tc.want) {
				t.Errorf("routes %q, want %q", s, tc.want)
			}
			if !slices.Equal(skipped, tc.skipped) {
				t.Errorf("skipped %v, want %v", skipped, tc.skipped)
			}
			for _, r := range got {
				if r.Gw != nil && r.Node == "" {
					t.Errorf("%s: no node named", r)
				}
			}
		})
	}
}

func TestPlan(t *testing.T) {
	r := func(dst, gw string) Route { return Route{Dst: cidr(dst), Gw: net.ParseIP(gw)} }
	svc := func(src string, link int) Route {
		return Route{Dst: cidr("10.96.0.0/16"), Src: net.ParseIP(src), LinkIndex: link}
	}
	withLink := func(x Route, link int) Route { x.LinkIndex = link; return x }
	for _, tc := range []struct {
		name               string
		desired, actual    []Route
		wantWrite, wantDel []string
	}{
		{name: "empty", wantWrite: []string{}, wantDel: []string{}},
		{name: "fresh start", desired: []Route{r("10.244.2.0/24", "10.250.0.3"), svc("10.250.0.2", 2)},
			wantWrite: []string{"10.244.2.0/24 via 10.250.0.3", "10.96.0.0/16 dev #2 src 10.250.0.2"}, wantDel: []string{}},
		{name: "in sync (the kernel fills the link of a gateway route)",
			desired:   []Route{r("10.244.2.0/24", "10.250.0.3"), svc("10.250.0.2", 2)},
			actual:    []Route{withLink(r("10.244.2.0/24", "10.250.0.3"), 2), svc("10.250.0.2", 2)},
			wantWrite: []string{}, wantDel: []string{}},
		{name: "gateway changed: replaced, not deleted",
			desired: []Route{r("10.244.2.0/24", "10.250.0.4")}, actual: []Route{withLink(r("10.244.2.0/24", "10.250.0.3"), 2)},
			wantWrite: []string{"10.244.2.0/24 via 10.250.0.4"}, wantDel: []string{}},
		{name: "node IP moved to another link",
			desired: []Route{svc("10.250.0.2", 5)}, actual: []Route{svc("10.250.0.2", 2)},
			wantWrite: []string{"10.96.0.0/16 dev #5 src 10.250.0.2"}, wantDel: []string{}},
		{name: "node gone; stale route from before a restart",
			desired:   []Route{r("10.244.2.0/24", "10.250.0.3")},
			actual:    []Route{r("10.244.2.0/24", "10.250.0.3"), r("10.244.3.0/24", "10.250.0.4"), r("10.244.99.0/24", "10.250.0.9")},
			wantWrite: []string{}, wantDel: []string{"10.244.3.0/24 via 10.250.0.4", "10.244.99.0/24 via 10.250.0.9"}},
		{name: "pod CIDR changed: new written, old deleted",
			desired: []Route{r("10.244.5.0/24", "10.250.0.3")}, actual: []Route{r("10.244.2.0/24", "10.250.0.3")},
			wantWrite: []string{"10.244.5.0/24 via 10.250.0.3"}, wantDel: []string{"10.244.2.0/24 via 10.250.0.3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, d := Plan(tc.desired, tc.actual)
			if s := strs(w); !slices.Equal(s, tc.wantWrite) {
				t.Errorf("write %q, want %q", s, tc.wantWrite)
			}
			if s := strs(d); !slices.Equal(s, tc.wantDel) {
				t.Errorf("delete %q, want %q", s, tc.wantDel)
			}
		})
	}
}

package routes

import (
	"fmt"
	"net"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Route is one route the manager keeps in the main table.
type Route struct {
	Dst *net.IPNet
	// Gw is the next hop: another node's InternalIP, for its pod CIDR.
	Gw net.IP
	// Src is the preferred source address: the node's IP, for the
	// service range, so that the node's own connections to a ClusterIP
	// leave from an address the endpoints can answer.
	Src net.IP
	// LinkIndex is the outgoing interface; 0 in a desired route means
	// "whichever the kernel finds for Gw".
	LinkIndex int
	// Node is the node a pod CIDR route leads to, for logs; empty for the
	// service range.
	Node string
}

func (r Route) String() string {
	var b strings.Builder
	b.WriteString(r.Dst.String())
	if r.Gw != nil {
		b.WriteString(" via " + r.Gw.String())
	}
	if r.LinkIndex != 0 {
		fmt.Fprintf(&b, " dev #%d", r.LinkIndex)
	}
	if r.Src != nil {
		b.WriteString(" src " + r.Src.String())
	}
	return b.String()
}

// Skipped is a route not wanted although a Node asks for it, with why.
type Skipped struct {
	Node, CIDR, Reason string
}

// Desired computes the routes this node wants: for every other node, each
// of its pod CIDRs via its InternalIP of the same family (host-gw), and the
// service range on-link with the node's IP as source. Nodes without a pod
// CIDR or a matching InternalIP get no route; a CIDR overlapping this
// node's own pod CIDRs (its bridge's connected route) or one already
// claimed by a node earlier in name order is skipped and reported, since
// the kernel cannot hold two routes to one destination and guessing which
// node is right would send pods' traffic to the wrong one.
func Desired(self string, nodeIP net.IP, serviceCIDR *net.IPNet, nodes []*v1.Node) ([]Route, []Skipped) {
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b *v1.Node) int { return strings.Compare(a.Name, b.Name) })
	var own []*net.IPNet
	for _, n := range nodes {
		if n.Name == self {
			for _, c := range podCIDRs(n) {
				if _, ipn, err := net.ParseCIDR(c); err == nil {
					own = append(own, ipn)
				}
			}
		}
	}
	var out []Route
	var skipped []Skipped
	taken := map[string]string{}
	for _, n := range nodes {
		if n.Name == self {
			continue
		}
		for _, c := range podCIDRs(n) {
			_, dst, err := net.ParseCIDR(c)
			if err != nil {
				skipped = append(skipped, Skipped{n.Name, c, "not a CIDR"})
				continue
			}
			gw := internalIP(n, dst.IP.To4() != nil)
			switch {
			case gw == nil:
				skipped = append(skipped, Skipped{n.Name, c, "no InternalIP of its family"})
				continue
			case gw.Equal(nodeIP):
				skipped = append(skipped, Skipped{n.Name, c, "its InternalIP is this node's"})
				continue
			case slices.ContainsFunc(own, func(o *net.IPNet) bool { return overlap(o, dst) }):
				skipped = append(skipped, Skipped{n.Name, c, "overlaps this node's pod CIDR"})
				continue
			case taken[dst.String()] != "":
				skipped = append(skipped, Skipped{n.Name, c, "also the pod CIDR of " + taken[dst.String()]})
				continue
			}
			taken[dst.String()] = n.Name
			out = append(out, Route{Dst: dst, Gw: gw, Node: n.Name})
		}
	}
	if serviceCIDR != nil && nodeIP != nil && (serviceCIDR.IP.To4() != nil) == (nodeIP.To4() != nil) {
		out = append(out, Route{Dst: serviceCIDR, Src: nodeIP})
	}
	return out, skipped
}

func podCIDRs(n *v1.Node) []string {
	if len(n.Spec.PodCIDRs) > 0 {
		return n.Spec.PodCIDRs
	}
	if n.Spec.PodCIDR != "" {
		return []string{n.Spec.PodCIDR}
	}
	return nil
}

func internalIP(n *v1.Node, v4 bool) net.IP {
	for _, a := range n.Status.Addresses {
		if a.Type != v1.NodeInternalIP {
			continue
		}
		if ip := net.ParseIP(a.Address); ip != nil && (ip.To4() != nil) == v4 {
			return ip
		}
	}
	return nil
}

func overlap(a, b *net.IPNet) bool { return a.Contains(b.IP) || b.Contains(a.IP) }

// Plan compares the desired routes with the actual routes of ours and
// returns the routes to write (new, or different from the one of ours to
// the same destination: written with replace, so traffic never sees a
// gap) and those to delete (ours, to a destination no longer wanted).
func Plan(desired, actual []Route) (write, del []Route) {
	have := map[string]Route{}
	for _, a := range actual {
		have[a.Dst.String()] = a
	}
	want := map[string]bool{}
	for _, d := range desired {
		want[d.Dst.String()] = true
		if a, ok := have[d.Dst.String()]; !ok || !same(d, a) {
			write = append(write, d)
		}
	}
	for _, a := range actual {
		if !want[a.Dst.String()] {
			del = append(del, a)
		}
	}
	return write, del
}

// same reports whether the actual route a is what d asks for.
func same(d, a Route) bool {
	return d.Gw.Equal(a.Gw) && d.Src.Equal(a.Src) && (d.LinkIndex == 0 || d.LinkIndex == a.LinkIndex)
}

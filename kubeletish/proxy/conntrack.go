package proxy

import (
	"context"
	"os/exec"
	"sort"
	"strconv"
	"strings"
)

// conntrackCommand is one conntrack -D invocation's arguments.
type conntrackCommand []string

// staleUDP compares the UDP service ports before and after a sync and
// returns the conntrack deletions that make UDP clients follow the change.
// UDP has no connection to end: a client that keeps sending from the same
// port keeps its conntrack entry, and so keeps going to a DNAT target that
// may be gone, until the entry times out. So:
//   - an endpoint that left a service port: delete the flows NATed to it,
//     through the ClusterIP and through the node port;
//   - a service port that had no endpoints and now has some: delete the
//     flows to it, which were made while nothing answered.
func staleUDP(old, cur map[string]UDPPort) []conntrackCommand {
	var cmds []conntrackCommand
	keys := make([]string, 0, len(old))
	for k := range old {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		o := old[k]
		n, ok := cur[k]
		keep := map[string]bool{}
		if ok {
			for _, e := range n.Endpoints {
				keep[e] = true
			}
		}
		for _, e := range o.Endpoints {
			if keep[e] {
				continue
			}
			cmds = append(cmds, conntrackCommand{"-D", "-p", "udp", "--orig-dst", o.ClusterIP, "--dst-nat", e})
			if o.NodePort != 0 {
				cmds = append(cmds, conntrackCommand{"-D", "-p", "udp", "--orig-port-dst", strconv.Itoa(int(o.NodePort)), "--dst-nat", e})
			}
		}
	}
	keys = keys[:0]
	for k := range cur {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		n := cur[k]
		if len(n.Endpoints) == 0 {
			continue
		}
		if o, ok := old[k]; ok && len(o.Endpoints) > 0 {
			continue
		}
		cmds = append(cmds, conntrackCommand{"-D", "-p", "udp", "--orig-dst", n.ClusterIP})
		if n.NodePort != 0 {
			cmds = append(cmds, conntrackCommand{"-D", "-p", "udp", "--orig-port-dst", strconv.Itoa(int(n.NodePort))})
		}
	}
	return cmds
}

// runConntrack runs one deletion. conntrack exits 1 when nothing matched,
// which is the usual case and no error.
func runConntrack(ctx context.Context, bin string, c conntrackCommand) error {
	out, err := exec.CommandContext(ctx, bin, c...).CombinedOutput()
	if err != nil && strings.Contains(string(out), "0 flow entries have been deleted") {
		return nil
	}
	if err != nil {
		return &conntrackError{args: c, err: err, out: strings.TrimSpace(string(out))}
	}
	return nil
}

type conntrackError struct {
	args conntrackCommand
	err  error
	out  string
}

func (e *conntrackError) Error() string {
	return "conntrack " + strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + e.out
}

func (e *conntrackError) Unwrap() error { return e.err }

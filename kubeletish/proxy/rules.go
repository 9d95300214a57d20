package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// Chain names. They are kube-proxy's, so that people who know its iptables
// mode can read a kubeish node's rules, and kube-proxy's docs apply.
const (
	chainServices         = "KUBE-SERVICES"
	chainNodePorts        = "KUBE-NODEPORTS"
	chainPostrouting      = "KUBE-POSTROUTING"
	chainMarkMasq         = "KUBE-MARK-MASQ"
	chainExternalServices = "KUBE-EXTERNAL-SERVICES"
	chainForward          = "KUBE-FORWARD"

	prefixSVC = "KUBE-SVC-"
	prefixSEP = "KUBE-SEP-"
	prefixEXT = "KUBE-EXT-"

	// masqMark is the packet mark that asks KUBE-POSTROUTING to masquerade.
	masqMark = "0x4000"

	// defaultAffinityTimeout is Kubernetes' default for
	// sessionAffinityConfig.clientIP.timeoutSeconds (3 hours).
	defaultAffinityTimeout = 10800
)

// Table names as iptables spells them.
const (
	tableNAT    = "nat"
	tableFilter = "filter"
)

// fixedChains are the chains every sync declares, per table. With
// iptables-restore --noflush, declaring a chain flushes it, so each sync
// rewrites them whole.
var fixedChains = map[string][]string{
	tableFilter: {chainServices, chainExternalServices, chainForward},
	tableNAT:    {chainServices, chainNodePorts, chainPostrouting, chainMarkMasq},
}

// ownedPrefixes are the per-service chains (nat table) the proxier makes and
// therefore may delete.
var ownedPrefixes = []string{prefixSVC, prefixSEP, prefixEXT}

// ownsChain reports whether chain in table is one this package made.
func ownsChain(table, chain string) bool {
	for _, c := range fixedChains[table] {
		if c == chain {
			return true
		}
	}
	if table != tableNAT {
		return false
	}
	for _, p := range ownedPrefixes {
		if strings.HasPrefix(chain, p) {
			return true
		}
	}
	return false
}

// jumpRule is a rule in a built-in chain that leads into one of ours. These
// are ensured with iptables -C/-I rather than restored, because restoring a
// built-in chain would flush everyone else's rules in it.
type jumpRule struct {
	table, chain string
	args         []string
}

// jumpRules are kube-proxy's jumps, less the health-check and firewall ones
// kubeish has no use for.
var jumpRules = []jumpRule{
	{tableFilter, "INPUT", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes externally-visible service portals", "-j", chainExternalServices}},
	{tableFilter, "FORWARD", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes externally-visible service portals", "-j", chainExternalServices}},
	{tableFilter, "FORWARD", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes service portals", "-j", chainServices}},
	{tableFilter, "OUTPUT", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes service portals", "-j", chainServices}},
	{tableFilter, "FORWARD", []string{"-m", "comment", "--comment", "kubernetes forwarding rules", "-j", chainForward}},
	{tableNAT, "OUTPUT", []string{"-m", "comment", "--comment", "kubernetes service portals", "-j", chainServices}},
	{tableNAT, "PREROUTING", []string{"-m", "comment", "--comment", "kubernetes service portals", "-j", chainServices}},
	{tableNAT, "POSTROUTING", []string{"-m", "comment", "--comment", "kubernetes postrouting rules", "-j", chainPostrouting}},
}

// Topology is what the rules need to know about the node and the cluster.
type Topology struct {
	// ClusterCIDR is the pod network. Traffic to a ClusterIP from outside
	// it is masqueraded, so that replies come back through this node; when
	// empty, all ClusterIP traffic is masqueraded (kube-proxy's
	// masqueradeAll).
	ClusterCIDR string
	// ServiceCIDR is the ClusterIP range. A new connection to an address
	// and port in it that no Service has is refused at once (as kube-proxy's
	// nftables mode does), rather than routed nowhere and timed out: a
	// deleted Service answers "connection refused". Empty: no such rule.
	ServiceCIDR string
}

// Rules is one rendering of the whole rule set: what a sync writes with one
// iptables-restore, and what it needs to clean up after it.
type Rules struct {
	filter, nat *table
	// UDP lists the UDP service ports and the endpoints they send to, so
	// that a sync can drop conntrack entries of endpoints that went away.
	UDP map[string]UDPPort
}

// UDPPort is one UDP service port as programmed.
type UDPPort struct {
	ClusterIP string
	NodePort  int32
	// Endpoints are the IPs traffic is sent to (empty: it is rejected).
	Endpoints []string
}

// table is one table's chains, each with its rules in order.
type table struct {
	name   string
	chains []string // in the order first used, for a stable output
	rules  map[string]*bytes.Buffer
	n      int
}

func newTable(name string) *table {
	t := &table{name: name, rules: map[string]*bytes.Buffer{}}
	for _, c := range fixedChains[name] {
		t.declare(c)
	}
	return t
}

func (t *table) declare(chain string) *bytes.Buffer {
	b, ok := t.rules[chain]
	if !ok {
		b = &bytes.Buffer{}
		t.rules[chain] = b
		t.chains = append(t.chains, chain)
	}
	return b
}

// rule appends one "-A chain args..." line, declaring the chain on first use.
func (t *table) rule(chain string, args ...string) {
	b := t.declare(chain)
	b.WriteString("-A ")
	b.WriteString(chain)
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	b.WriteByte('\n')
	t.n++
}

// FilterRules counts the filter table's rules (for the
// kubeproxy_sync_proxy_rules_iptables_total gauge).
func (r *Rules) FilterRules() int { return r.filter.n }

// NATRules counts the nat table's rules.
func (r *Rules) NATRules() int { return r.nat.n }

// NATChains returns the nat chains this rendering declares.
func (r *Rules) NATChains() []string { return r.nat.chains }

// Restore returns the iptables-restore --noflush input that writes
// everything: both tables in one transaction, each of our chains declared
// (hence flushed) and rewritten, and the nat chains in stale flushed and
// deleted.
func (r *Rules) Restore(stale []string) []byte {
	return r.restore(nil, stale)
}

// RestoreChanged is Restore less the chains whose rules are the same in
// prev, the rendering last applied: with --noflush a chain not named keeps
// its rules. nftables' iptables-restore spends time per chain and rule
// written (seconds for tens of thousands), so an endpoint change rewrites
// a few chains, not all of them. It returns nil when there is nothing to
// write.
func (r *Rules) RestoreChanged(prev *Rules, stale []string) []byte {
	return r.restore(prev, stale)
}

func (r *Rules) restore(prev *Rules, stale []string) []byte {
	var b bytes.Buffer
	size := 256
	for _, t := range []*table{r.filter, r.nat} {
		for _, c := range t.chains {
			size += len(c) + 12 + t.rules[c].Len()
		}
	}
	b.Grow(size + 40*len(stale))
	wrote := len(stale) > 0
	for _, t := range []*table{r.filter, r.nat} {
		var old *table
		if prev != nil {
			old = prev.filter
			if t.name == tableNAT {
				old = prev.nat
			}
		}
		write := t.chains
		if old != nil {
			write = nil
			for _, c := range t.chains {
				if ob, ok := old.rules[c]; !ok || !bytes.Equal(ob.Bytes(), t.rules[c].Bytes()) {
					write = append(write, c)
				}
			}
		}
		var del []string
		if t.name == tableNAT {
			del = stale
		}
		if old != nil && len(write) == 0 && len(del) == 0 {
			continue
		}
		wrote = wrote || len(write) > 0
		b.WriteString("*" + t.name + "\n")
		for _, c := range write {
			b.WriteString(":" + c + " - [0:0]\n")
		}
		for _, c := range del {
			b.WriteString(":" + c + " - [0:0]\n")
		}
		for _, c := range write {
			b.Write(t.rules[c].Bytes())
		}
		for _, c := range del {
			b.WriteString("-X " + c + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	if prev != nil && !wrote {
		return nil
	}
	return b.Bytes()
}

// servicePort is one port of a Service, with the endpoints chosen for it.
type servicePort struct {
	name      string // "namespace/name:port", or "namespace/name" for an unnamed port
	protocol  v1.Protocol
	clusterIP string
	port      int32
	nodePort  int32
	affinity  int32 // ClientIP affinity timeout in seconds; 0: none
	endpoints []endpoint
}

type endpoint struct {
	addr netip.Addr
	port int32
}

func (e endpoint) String() string { return e.addr.String() + ":" + strconv.Itoa(int(e.port)) }

// hashName is kube-proxy's chain naming: base32 of the SHA-256 of the
// service port name, protocol (and endpoint), cut to 16 characters, so that a
// name fits iptables' 28-character limit and stays stable across restarts.
func hashName(prefix string, parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "")))
	return prefix + base32.StdEncoding.EncodeToString(h[:])[:16]
}

func (sp *servicePort) proto() string { return strings.ToLower(string(sp.protocol)) }

func (sp *servicePort) svcChain() string { return hashName(prefixSVC, sp.name, sp.proto()) }
func (sp *servicePort) extChain() string { return hashName(prefixEXT, sp.name, sp.proto()) }
func (sp *servicePort) sepChain(e endpoint) string {
	return hashName(prefixSEP, sp.name, sp.proto(), e.String())
}

// Render computes the whole rule set from Services and EndpointSlices. It is
// pure: the same input gives byte-identical output (services, ports and
// endpoints are sorted), which is what lets a sync skip an unchanged restore.
func Render(topo Topology, services []*v1.Service, slices []*discovery.EndpointSlice) *Rules {
	r := &Rules{filter: newTable(tableFilter), nat: newTable(tableNAT), UDP: map[string]UDPPort{}}

	// Fixed rules first: masquerade what was marked, and forward what
	// we DNATed even when the FORWARD policy is DROP.
	// Pods talk to each other without NAT, across nodes too (Kubernetes'
	// network model; the CNI bridge's own ipMasq would hide every pod
	// behind its node's address); what leaves the pod network goes out
	// as the node, as flannel and kindnet do it.
	if topo.ClusterCIDR != "" {
		r.nat.rule(chainPostrouting, "-s", topo.ClusterCIDR, "!", "-d", topo.ClusterCIDR, "-m", "comment", "--comment",
			quote("kubeish: pod traffic leaving the pod network"), "-j", "MASQUERADE", "--random-fully")
	}
	r.nat.rule(chainPostrouting, "-m", "mark", "!", "--mark", masqMark+"/"+masqMark, "-j", "RETURN")
	// Clear the mark so a packet that traverses the stack again (e.g.
	// re-encapsulated) is not masqueraded twice.
	r.nat.rule(chainPostrouting, "-j", "MARK", "--xor-mark", masqMark)
	r.nat.rule(chainPostrouting, "-m", "comment", "--comment", quote("kubernetes service traffic requiring SNAT"), "-j", "MASQUERADE", "--random-fully")
	r.nat.rule(chainMarkMasq, "-j", "MARK", "--or-mark", masqMark)
	// Out-of-window TCP packets are INVALID to conntrack and would
	// otherwise be forwarded un-NATed to the client, which answers RST.
	r.filter.rule(chainForward, "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	r.filter.rule(chainForward, "-m", "comment", "--comment", quote("kubernetes forwarding rules"), "-m", "mark", "--mark", masqMark+"/"+masqMark, "-j", "ACCEPT")
	r.filter.rule(chainForward, "-m", "comment", "--comment", quote("kubernetes forwarding conntrack rule"), "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")

	for _, sp := range servicePorts(services, slices) {
		r.add(topo, sp)
	}

	// Reached only by new connections that no DNAT rule took: the
	// per-service rules above rewrote the destination of every live one.
	if topo.ServiceCIDR != "" {
		r.filter.rule(chainServices, "-m", "comment", "--comment", quote("kubeish: no service at this cluster IP and port"),
			"-d", topo.ServiceCIDR, "-j", "REJECT")
	}

	// The node-port jump must be last: a ClusterIP rule must win over a
	// node port when a ClusterIP happens to be local. Loopback is left
	// out: DNAT from 127.0.0.1 to another host needs route_localnet,
	// which kubeish does not turn on.
	r.nat.rule(chainServices, "-m", "comment", "--comment", quote("kubernetes service nodeports; NOTE: this must be the last rule in this chain"),
		"-m", "addrtype", "--dst-type", "LOCAL", "!", "-d", "127.0.0.0/8", "-j", chainNodePorts)
	return r
}

// add renders one service port.
func (r *Rules) add(topo Topology, sp *servicePort) {
	proto := sp.proto()
	pm := []string{"-p", proto, "-m", proto}
	dst := []string{"-d", sp.clusterIP + "/32", "--dport", strconv.Itoa(int(sp.port))}

	if sp.protocol == v1.ProtocolUDP {
		u := UDPPort{ClusterIP: sp.clusterIP, NodePort: sp.nodePort}
		for _, e := range sp.endpoints {
			u.Endpoints = append(u.Endpoints, e.addr.String())
		}
		r.UDP[sp.name+"/udp"] = u
	}

	if len(sp.endpoints) == 0 {
		// Refuse at once (ICMP port unreachable → ECONNREFUSED) instead
		// of letting the SYN go to a ClusterIP nobody answers.
		c := quote(sp.name + " has no endpoints")
		r.filter.rule(chainServices, cat([]string{"-m", "comment", "--comment", c}, pm, dst, []string{"-j", "REJECT"})...)
		if sp.nodePort != 0 {
			r.filter.rule(chainExternalServices, cat([]string{"-m", "comment", "--comment", c, "-m", "addrtype", "--dst-type", "LOCAL"}, pm,
				[]string{"--dport", strconv.Itoa(int(sp.nodePort)), "-j", "REJECT"})...)
		}
		return
	}

	svc := sp.svcChain()
	clusterComment := []string{"-m", "comment", "--comment", quote(sp.name + " cluster IP")}
	r.nat.rule(chainServices, cat(clusterComment, pm, dst, []string{"-j", svc})...)
	// Traffic from outside the pod network (the node itself, other hosts)
	// must come back through this node to be un-DNATed: masquerade it.
	if topo.ClusterCIDR != "" {
		r.nat.rule(svc, cat(clusterComment, pm, dst, []string{"!", "-s", topo.ClusterCIDR, "-j", chainMarkMasq})...)
	} else {
		r.nat.rule(svc, cat(clusterComment, pm, dst, []string{"-j", chainMarkMasq})...)
	}

	if sp.nodePort != 0 {
		ext := sp.extChain()
		r.nat.rule(chainNodePorts, cat([]string{"-m", "comment", "--comment", quote(sp.name)}, pm, []string{"--dport", strconv.Itoa(int(sp.nodePort)), "-j", ext})...)
		// Node-port traffic always comes from outside: masquerade it so
		// the reply returns through this node whatever the endpoint.
		r.nat.rule(ext, "-m", "comment", "--comment", quote("masquerade traffic for "+sp.name+" external destinations"), "-j", chainMarkMasq)
		r.nat.rule(ext, "-j", svc)
	}

	seps := make([]string, len(sp.endpoints))
	for i, e := range sp.endpoints {
		seps[i] = sp.sepChain(e)
	}
	if sp.affinity > 0 {
		// A client seen recently goes back to the endpoint it had.
		for i, e := range sp.endpoints {
			r.nat.rule(svc, "-m", "comment", "--comment", quote(sp.name+" -> "+e.String()),
				"-m", "recent", "--name", seps[i], "--mask", "255.255.255.255", "--rsource", "--rcheck",
				"--seconds", strconv.Itoa(int(sp.affinity)), "--reap", "-j", seps[i])
		}
	}
	// Random balance: rule i of n matches with probability 1/(n-i), so that
	// each endpoint gets 1/n overall; the last rule takes what is left.
	n := len(sp.endpoints)
	for i, e := range sp.endpoints {
		args := []string{"-m", "comment", "--comment", quote(sp.name + " -> " + e.String())}
		if i < n-1 {
			args = append(args, "-m", "statistic", "--mode", "random", "--probability", fmt.Sprintf("%0.10f", 1.0/float64(n-i)))
		}
		r.nat.rule(svc, append(args, "-j", seps[i])...)
	}
	for i, e := range sp.endpoints {
		sep := seps[i]
		c := []string{"-m", "comment", "--comment", quote(sp.name)}
		// Hairpin: an endpoint reaching itself through the service would
		// get a reply from its own address; masquerade so it does not.
		r.nat.rule(sep, cat(c, []string{"-s", e.addr.String() + "/32", "-j", chainMarkMasq})...)
		dnat := cat(c, pm)
		if sp.affinity > 0 {
			dnat = append(dnat, "-m", "recent", "--name", sep, "--mask", "255.255.255.255", "--rsource", "--set")
		}
		r.nat.rule(sep, append(dnat, "-j", "DNAT", "--to-destination", e.String())...)
	}
}

// servicePorts joins Services with their EndpointSlices: one entry per
// proxied port, sorted by service and in spec order, with the endpoints
// that should receive traffic.
func servicePorts(services []*v1.Service, slices []*discovery.EndpointSlice) []*servicePort {
	bySvc := map[string][]*discovery.EndpointSlice{}
	for _, s := range slices {
		name := s.Labels[discovery.LabelServiceName]
		if name == "" || s.AddressType != discovery.AddressTypeIPv4 {
			continue
		}
		k := s.Namespace + "/" + name
		bySvc[k] = append(bySvc[k], s)
	}
	svcs := append([]*v1.Service(nil), services...)
	sort.Slice(svcs, func(i, j int) bool {
		if svcs[i].Namespace != svcs[j].Namespace {
			return svcs[i].Namespace < svcs[j].Namespace
		}
		return svcs[i].Name < svcs[j].Name
	})
	var out []*servicePort
	for _, svc := range svcs {
		if !proxied(svc) {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		var affinity int32
		if svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
			affinity = defaultAffinityTimeout
			if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil && *c.ClientIP.TimeoutSeconds > 0 {
				affinity = *c.ClientIP.TimeoutSeconds
			}
		}
		for _, p := range svc.Spec.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = v1.ProtocolTCP
			}
			name := key
			if p.Name != "" {
				name += ":" + p.Name
			}
			sp := &servicePort{name: name, protocol: proto, clusterIP: svc.Spec.ClusterIP, port: p.Port, affinity: affinity}
			if svc.Spec.Type == v1.ServiceTypeNodePort || svc.Spec.Type == v1.ServiceTypeLoadBalancer {
				sp.nodePort = p.NodePort
			}
			sp.endpoints = endpointsFor(bySvc[key], p.Name, proto)
			out = append(out, sp)
		}
	}
	return out
}

// proxied reports whether a Service gets rules: headless services (no
// virtual IP) and ExternalName (a DNS alias) do not, nor an IPv6 or
// unallocated ClusterIP.
func proxied(svc *v1.Service) bool {
	if svc.Spec.Type == v1.ServiceTypeExternalName {
		return false
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	return err == nil && ip.Is4()
}

// endpointsFor picks a service port's endpoints from its slices: the slice
// port with the same name and protocol gives the target port. Ready
// endpoints only; when none is ready, endpoints that are terminating but
// still serving take the traffic (kube-proxy's terminating-endpoint
// fallback), so that a rolling update does not refuse connections while the
// old pods drain.
func endpointsFor(slices []*discovery.EndpointSlice, portName string, proto v1.Protocol) []endpoint {
	var ready, terminating []endpoint
	seen := map[endpoint]bool{}
	for _, s := range slices {
		port := int32(-1)
		for _, p := range s.Ports {
			pp := v1.ProtocolTCP
			if p.Protocol != nil {
				pp = *p.Protocol
			}
			n := ""
			if p.Name != nil {
				n = *p.Name
			}
			if n == portName && pp == proto && p.Port != nil {
				port = *p.Port
				break
			}
		}
		if port <= 0 {
			continue
		}
		for _, e := range s.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			// kube-proxy also uses only the first address: the others
			// are the same pod's, for other families.
			addr, err := netip.ParseAddr(e.Addresses[0])
			if err != nil || !addr.Is4() {
				continue
			}
			ep := endpoint{addr: addr, port: port}
			if seen[ep] {
				continue
			}
			c := e.Conditions
			isReady := c.Ready == nil || *c.Ready
			serving := isReady
			if c.Serving != nil {
				serving = *c.Serving
			}
			isTerminating := c.Terminating != nil && *c.Terminating
			switch {
			case isReady && !isTerminating:
				ready = append(ready, ep)
			case serving && isTerminating:
				terminating = append(terminating, ep)
			default:
				continue
			}
			seen[ep] = true
		}
	}
	eps := ready
	if len(eps) == 0 {
		eps = terminating
	}
	sort.Slice(eps, func(i, j int) bool {
		if c := eps[i].addr.Compare(eps[j].addr); c != 0 {
			return c < 0
		}
		return eps[i].port < eps[j].port
	})
	return eps
}

// quote makes a comment one iptables-restore word.
func quote(s string) string { return strconv.Quote(s) }

func cat(parts ...[]string) []string {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]string, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

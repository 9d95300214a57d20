package proxy

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ (hack/update-golden.sh)")

// svc builds a Service; mods adjust it.
func svc(ns, name, clusterIP string, ports []v1.ServicePort, mods ...func(*v1.Service)) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeClusterIP, ClusterIP: clusterIP, Ports: ports},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func port(name string, proto v1.Protocol, p int32) v1.ServicePort {
	return v1.ServicePort{Name: name, Protocol: proto, Port: p}
}

func nodePort(name string, proto v1.Protocol, p, np int32) v1.ServicePort {
	return v1.ServicePort{Name: name, Protocol: proto, Port: p, NodePort: np}
}

// ep is an endpoint with its conditions: "r" ready, "n" not ready,
// "t" terminating and serving, "x" terminating and not serving.
type ep struct {
	ip   string
	cond string
}

func slice(ns, svcName, name string, ports []discovery.EndpointPort, eps ...ep) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discovery.LabelServiceName: svcName}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       ports,
	}
	for _, e := range eps {
		var c discovery.EndpointConditions
		switch e.cond {
		case "r":
			c.Ready = ptr.To(true)
		case "n":
			c.Ready, c.Serving = ptr.To(false), ptr.To(false)
		case "t":
			c.Ready, c.Serving, c.Terminating = ptr.To(false), ptr.To(true), ptr.To(true)
		case "x":
			c.Ready, c.Serving, c.Terminating = ptr.To(false), ptr.To(false), ptr.To(true)
		case "":
			// nil conditions: ready, as the API says
		}
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{Addresses: []string{e.ip}, Conditions: c})
	}
	return s
}

func sport(name string, proto v1.Protocol, p int32) discovery.EndpointPort {
	return discovery.EndpointPort{Name: ptr.To(name), Protocol: ptr.To(proto), Port: ptr.To(p)}
}

const tcp, udp, sctp = v1.ProtocolTCP, v1.ProtocolUDP, v1.ProtocolSCTP

type goldenCase struct {
	name     string
	topo     Topology
	services []*v1.Service
	slices   []*discovery.EndpointSlice
	stale    []string
	// prev, when set, is the rendering last applied: the golden file is
	// then the changes-only restore (RestoreChanged).
	prev *goldenCase
}

func goldenCases() []goldenCase {
	topo := Topology{ClusterCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/16"}
	return []goldenCase{
		{
			name: "clusterip-3-endpoints", topo: topo,
			services: []*v1.Service{svc("default", "web", "10.96.0.10", []v1.ServicePort{port("", tcp, 80)})},
			slices: []*discovery.EndpointSlice{slice("default", "web", "web-abc", []discovery.EndpointPort{sport("", tcp, 8080)},
				ep{"10.244.1.3", "r"}, ep{"10.244.1.2", "r"}, ep{"10.244.2.7", ""})},
		},
		{
			name: "not-ready-excluded", topo: topo,
			services: []*v1.Service{svc("default", "web", "10.96.0.10", []v1.ServicePort{port("http", tcp, 80)})},
			slices: []*discovery.EndpointSlice{
				slice("default", "web", "web-1", []discovery.EndpointPort{sport("http", tcp, 8080)}, ep{"10.244.1.2", "r"}, ep{"10.244.1.3", "n"}),
				// A second slice of the same service, one endpoint
				// terminating (serving), one gone for good.
				slice("default", "web", "web-2", []discovery.EndpointPort{sport("http", tcp, 8080)}, ep{"10.244.2.2", "r"}, ep{"10.244.2.3", "t"}, ep{"10.244.2.4", "x"}),
			},
		},
		{
			name: "terminating-fallback", topo: topo,
			services: []*v1.Service{svc("default", "web", "10.96.0.10", []v1.ServicePort{port("http", tcp, 80)})},
			slices: []*discovery.EndpointSlice{slice("default", "web", "web-1", []discovery.EndpointPort{sport("http", tcp, 8080)},
				ep{"10.244.1.2", "t"}, ep{"10.244.1.3", "x"}, ep{"10.244.1.4", "n"})},
		},
		{
			name: "no-ready-endpoints-reject", topo: topo,
			services: []*v1.Service{
				svc("default", "empty", "10.96.0.20", []v1.ServicePort{port("http", tcp, 80)}),
				svc("default", "noslice", "10.96.0.21", []v1.ServicePort{port("dns", udp, 53)}),
				svc("default", "np", "10.96.0.22", []v1.ServicePort{nodePort("http", tcp, 80, 30080)}, func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeNodePort }),
			},
			slices: []*discovery.EndpointSlice{
				slice("default", "empty", "empty-1", []discovery.EndpointPort{sport("http", tcp, 8080)}, ep{"10.244.1.2", "n"}),
				slice("default", "np", "np-1", []discovery.EndpointPort{sport("http", tcp, 8080)}),
			},
		},
		{
			name: "nodeport", topo: topo,
			services: []*v1.Service{svc("shop", "front", "10.96.3.4", []v1.ServicePort{nodePort("web", tcp, 80, 30080)},
				func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeNodePort })},
			slices: []*discovery.EndpointSlice{slice("shop", "front", "front-1", []discovery.EndpointPort{sport("web", tcp, 8080)},
				ep{"10.244.1.2", "r"}, ep{"10.244.2.2", "r"})},
		},
		{
			name: "session-affinity", topo: topo,
			services: []*v1.Service{
				svc("default", "sticky", "10.96.0.30", []v1.ServicePort{port("", tcp, 80)}, func(s *v1.Service) {
					s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
				}),
				svc("default", "sticky-short", "10.96.0.31", []v1.ServicePort{port("", tcp, 80)}, func(s *v1.Service) {
					s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
					s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}}
				}),
			},
			slices: []*discovery.EndpointSlice{
				slice("default", "sticky", "sticky-1", []discovery.EndpointPort{sport("", tcp, 8080)}, ep{"10.244.1.2", "r"}, ep{"10.244.1.3", "r"}),
				slice("default", "sticky-short", "sticky-short-1", []discovery.EndpointPort{sport("", tcp, 8080)}, ep{"10.244.1.4", "r"}),
			},
		},
		{
			name: "named-ports", topo: topo,
			services: []*v1.Service{svc("default", "app", "10.96.0.40", []v1.ServicePort{port("http", tcp, 80), port("metrics", tcp, 9090), port("admin", tcp, 9000)})},
			slices: []*discovery.EndpointSlice{
				// Two generations of pods with different target ports:
				// each slice maps the names to its own numbers.
				slice("default", "app", "app-a", []discovery.EndpointPort{sport("metrics", tcp, 9100), sport("http", tcp, 8080)}, ep{"10.244.1.2", "r"}),
				slice("default", "app", "app-b", []discovery.EndpointPort{sport("http", tcp, 8081), sport("metrics", tcp, 9101)}, ep{"10.244.1.3", "r"}),
				// "admin" has no endpoint port in any slice: REJECT.
			},
		},
		{
			name: "headless-externalname-skipped", topo: topo,
			services: []*v1.Service{
				svc("default", "headless", v1.ClusterIPNone, []v1.ServicePort{port("", tcp, 80)}),
				svc("default", "alias", "", nil, func(s *v1.Service) {
					s.Spec.Type = v1.ServiceTypeExternalName
					s.Spec.ExternalName = "example.internal"
				}),
			},
			slices: []*discovery.EndpointSlice{slice("default", "headless", "headless-1", []discovery.EndpointPort{sport("", tcp, 80)}, ep{"10.244.1.2", "r"})},
		},
		{
			name: "udp", topo: topo,
			services: []*v1.Service{svc("kube-system", "dns", "10.96.0.53", []v1.ServicePort{port("dns", udp, 53)})},
			slices: []*discovery.EndpointSlice{slice("kube-system", "dns", "dns-1", []discovery.EndpointPort{sport("dns", udp, 5353)},
				ep{"10.244.1.10", "r"}, ep{"10.244.2.10", "r"})},
		},
		{
			name: "multi-port", topo: topo,
			services: []*v1.Service{svc("kube-system", "dns", "10.96.0.53", []v1.ServicePort{port("dns", udp, 53), port("dns-tcp", tcp, 53), nodePort("sctp", sctp, 7777, 31777)},
				func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeNodePort })},
			slices: []*discovery.EndpointSlice{slice("kube-system", "dns", "dns-1",
				[]discovery.EndpointPort{sport("dns", udp, 5353), sport("dns-tcp", tcp, 5353), sport("sctp", sctp, 7777)},
				ep{"10.244.1.10", "r"}, ep{"10.244.2.10", "r"})},
		},
		{
			name:     "masquerade-all-without-cluster-cidr",
			services: []*v1.Service{svc("default", "web", "10.96.0.10", []v1.ServicePort{port("", tcp, 80)})},
			slices:   []*discovery.EndpointSlice{slice("default", "web", "web-1", []discovery.EndpointPort{sport("", tcp, 8080)}, ep{"10.244.1.2", "r"})},
		},
		{
			name: "stale-chains-deleted", topo: topo,
			services: []*v1.Service{svc("default", "web", "10.96.0.10", []v1.ServicePort{port("", tcp, 80)})},
			slices:   []*discovery.EndpointSlice{slice("default", "web", "web-1", []discovery.EndpointPort{sport("", tcp, 8080)}, ep{"10.244.1.2", "r"})},
			stale:    []string{"KUBE-SEP-OLDOLDOLDOLDOLDO", "KUBE-SVC-OLDOLDOLDOLDOLDO"},
		},
		{
			name: "empty", topo: topo,
		},
		{
			// One endpoint replaced by another: only the service's
			// chain and the new endpoint chain are written, the old
			// endpoint chain deleted; KUBE-SERVICES stays as it is.
			name: "changes-endpoint-replaced", topo: topo,
			services: []*v1.Service{
				svc("default", "web", "10.96.0.10", []v1.ServicePort{port("", tcp, 80)}),
				svc("default", "other", "10.96.0.11", []v1.ServicePort{port("", tcp, 80)}),
			},
			slices: []*discovery.EndpointSlice{
				slice("default", "web", "web-1", []discovery.EndpointPort{sport("", tcp, 8080)}, ep{"10.244.1.2", "r"}, ep{"10.244.1.4", "r"}),
				slice("default", "other", "other-1", []discovery.EndpointPort{sport("", tcp, 8080)}, ep{"10.244.1.9", "r"}),
			},
			stale: []string{"KUBE-SEP-23NJSXDYUSXY5E7Q"},
			prev: &goldenCase{
				services: []*v1.Service{
					svc("default", "web", "10.96.0.10", []v1.ServicePort{port("", tcp, 80)}),
					svc("default", "other", "10.96.0.11", []v1.ServicePort{port("", tcp, 80)}),
				},
				slices: []*discovery.EndpointSlice{
					slice("default", "web", "web-1", []discovery.EndpointPort{sport("", tcp, 8080)}, ep{"10.244.1.2", "r"}, ep{"10.244.1.3", "r"}),
					slice("default", "other", "other-1", []discovery.EndpointPort{sport("", tcp, 8080)}, ep{"10.244.1.9", "r"}),
				},
			},
		},
		{
			// The last endpoint goes: REJECT in filter, the chains
			// leave KUBE-SERVICES and are deleted.
			name: "changes-last-endpoint-gone", topo: topo,
			services: []*v1.Service{svc("default", "web", "10.96.0.10", []v1.ServicePort{port("", tcp, 80)})},
			slices:   []*discovery.EndpointSlice{slice("default", "web", "web-1", []discovery.EndpointPort{sport("", tcp, 8080)}, ep{"10.244.1.2", "n"})},
			stale:    []string{"KUBE-SEP-PXJ2U7QYT2QW5545", "KUBE-SVC-LOLE4ISW44XBNF3G"},
			prev: &goldenCase{
				services: []*v1.Service{svc("default", "web", "10.96.0.10", []v1.ServicePort{port("", tcp, 80)})},
				slices:   []*discovery.EndpointSlice{slice("default", "web", "web-1", []discovery.EndpointPort{sport("", tcp, 8080)}, ep{"10.244.1.2", "r"})},
			},
		},
	}
}

// TestGolden renders each case and compares it with testdata/NAME.golden;
// go test -run Golden -update rewrites them.
func TestGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := Render(tc.topo, tc.services, tc.slices)
			got := r.Restore(tc.stale)
			if tc.prev != nil {
				prev := Render(tc.topo, tc.prev.services, tc.prev.slices)
				got = r.RestoreChanged(prev, tc.stale)
				if want := staleOf(prev, r); !reflect.DeepEqual(want, tc.stale) {
					t.Fatalf("case lists stale chains %v; the renderings say %v", tc.stale, want)
				}
			}
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run hack/update-golden.sh)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("rules differ from %s (run hack/update-golden.sh if the change is meant):\n%s", path, lineDiff(string(want), string(got)))
			}
		})
	}
}

// staleOf is what a sync deletes: prev's nat chains that cur lacks.
func staleOf(prev, cur *Rules) []string {
	keep := map[string]bool{}
	for _, c := range cur.NATChains() {
		keep[c] = true
	}
	var stale []string
	for _, c := range prev.NATChains() {
		if !keep[c] {
			stale = append(stale, c)
		}
	}
	sort.Strings(stale)
	return stale
}

// TestRestoreChangedNothing: the same rendering twice writes nothing, so
// the sync skips iptables-restore.
func TestRestoreChangedNothing(t *testing.T) {
	for _, tc := range goldenCases() {
		a := Render(tc.topo, tc.services, tc.slices)
		b := Render(tc.topo, tc.services, tc.slices)
		if got := b.RestoreChanged(a, nil); got != nil {
			t.Errorf("%s: unchanged rendering writes:\n%s", tc.name, got)
		}
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	w, g := map[string]int{}, map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		w[l]++
	}
	for _, l := range strings.Split(got, "\n") {
		g[l]++
	}
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if g[l] < w[l] {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if w[l] < g[l] {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}

// TestHashNames pins the chain names to kube-proxy's, from its own tests:
// someone reading a kubeish node's rules can match them with kube-proxy's.
func TestHashNames(t *testing.T) {
	sp := &servicePort{name: "ns1/svc1:p80", protocol: tcp}
	if got, want := sp.svcChain(), "KUBE-SVC-XPGD46QRK7WJZT7O"; got != want {
		t.Errorf("svc chain %s, want %s", got, want)
	}
	if got, want := sp.extChain(), "KUBE-EXT-XPGD46QRK7WJZT7O"; got != want {
		t.Errorf("ext chain %s, want %s", got, want)
	}
	e := endpoint{port: 80}
	e.addr = mustAddr(t, "10.180.0.1")
	if got, want := sp.sepChain(e), "KUBE-SEP-SXIVWICOYRO3J4NJ"; got != want {
		t.Errorf("sep chain %s, want %s", got, want)
	}
}

// TestRenderDeterministic: the order of the informers' lists must not
// change the output, or every sync would restore.
func TestRenderDeterministic(t *testing.T) {
	var svcs []*v1.Service
	var slices []*discovery.EndpointSlice
	for _, tc := range goldenCases() {
		svcs = append(svcs, tc.services...)
		slices = append(slices, tc.slices...)
	}
	// Unique names: several cases reuse default/web.
	for i, s := range svcs {
		s = s.DeepCopy()
		s.Name = fmt.Sprintf("%s-%d", s.Name, i)
		svcs[i] = s
	}
	want := Render(Topology{ClusterCIDR: "10.244.0.0/16"}, svcs, slices).Restore(nil)
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 20; i++ {
		rng.Shuffle(len(svcs), func(a, b int) { svcs[a], svcs[b] = svcs[b], svcs[a] })
		rng.Shuffle(len(slices), func(a, b int) { slices[a], slices[b] = slices[b], slices[a] })
		if got := Render(Topology{ClusterCIDR: "10.244.0.0/16"}, svcs, slices).Restore(nil); !bytes.Equal(got, want) {
			t.Fatalf("shuffle %d changed the output:\n%s", i, lineDiff(string(want), string(got)))
		}
	}
}

func TestRuleCounts(t *testing.T) {
	tc := goldenCases()[0]
	r := Render(tc.topo, tc.services, tc.slices)
	out := string(r.Restore(nil))
	filter, nat, _ := strings.Cut(out, "*nat\n")
	if got := strings.Count(filter, "\n-A "); got != r.FilterRules() {
		t.Errorf("filter rules %d, counted %d", r.FilterRules(), got)
	}
	if got := strings.Count(nat, "\n-A "); got != r.NATRules() {
		t.Errorf("nat rules %d, counted %d", r.NATRules(), got)
	}
	if len(r.UDP) != 0 {
		t.Errorf("UDP ports %v for a TCP service", r.UDP)
	}
}

func TestOwnsChain(t *testing.T) {
	for _, tc := range []struct {
		table, chain string
		want         bool
	}{
		{tableNAT, "KUBE-SERVICES", true},
		{tableNAT, "KUBE-SVC-ABC", true},
		{tableNAT, "KUBE-SEP-ABC", true},
		{tableNAT, "KUBE-EXT-ABC", true},
		{tableNAT, "KUBE-POSTROUTING", true},
		{tableNAT, "KUBE-MARK-DROP", false}, // the kubelet's, not ours
		{tableNAT, "CNI-1234", false},
		{tableNAT, "POSTROUTING", false},
		{tableFilter, "KUBE-FORWARD", true},
		{tableFilter, "KUBE-SVC-ABC", false},
		{tableFilter, "KUBE-FIREWALL", false},
	} {
		if got := ownsChain(tc.table, tc.chain); got != tc.want {
			t.Errorf("ownsChain(%s, %s) = %v, want %v", tc.table, tc.chain, got, tc.want)
		}
	}
}

func TestParseChains(t *testing.T) {
	save := "# Generated by iptables-save v1.8.9 (nf_tables)\n*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVC-A - [0:0]\n-A KUBE-SVC-A -j KUBE-SEP-B\nCOMMIT\n"
	if got, want := parseChains([]byte(save)), []string{"PREROUTING", "KUBE-SVC-A"}; !reflect.DeepEqual(got, want) {
		t.Errorf("parseChains = %v, want %v", got, want)
	}
}

func TestStaleUDP(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, cur map[string]UDPPort
		want     []conntrackCommand
	}{
		{"nothing changed",
			map[string]UDPPort{"a/dns:dns/udp": {ClusterIP: "10.96.0.53", Endpoints: []string{"10.244.1.2"}}},
			map[string]UDPPort{"a/dns:dns/udp": {ClusterIP: "10.96.0.53", Endpoints: []string{"10.244.1.2"}}},
			nil},
		{"endpoint removed",
			map[string]UDPPort{"a/dns:dns/udp": {ClusterIP: "10.96.0.53", NodePort: 30053, Endpoints: []string{"10.244.1.2", "10.244.1.3"}}},
			map[string]UDPPort{"a/dns:dns/udp": {ClusterIP: "10.96.0.53", NodePort: 30053, Endpoints: []string{"10.244.1.3"}}},
			[]conntrackCommand{
				{"-D", "-p", "udp", "--orig-dst", "10.96.0.53", "--dst-nat", "10.244.1.2"},
				{"-D", "-p", "udp", "--orig-port-dst", "30053", "--dst-nat", "10.244.1.2"},
			}},
		{"service deleted",
			map[string]UDPPort{"a/dns:dns/udp": {ClusterIP: "10.96.0.53", Endpoints: []string{"10.244.1.2"}}},
			nil,
			[]conntrackCommand{{"-D", "-p", "udp", "--orig-dst", "10.96.0.53", "--dst-nat", "10.244.1.2"}}},
		{"first endpoint",
			map[string]UDPPort{"a/dns:dns/udp": {ClusterIP: "10.96.0.53"}},
			map[string]UDPPort{"a/dns:dns/udp": {ClusterIP: "10.96.0.53", Endpoints: []string{"10.244.1.2"}}},
			[]conntrackCommand{{"-D", "-p", "udp", "--orig-dst", "10.96.0.53"}}},
		{"new service with endpoints",
			nil,
			map[string]UDPPort{"a/dns:dns/udp": {ClusterIP: "10.96.0.53", NodePort: 30053, Endpoints: []string{"10.244.1.2"}}},
			[]conntrackCommand{{"-D", "-p", "udp", "--orig-dst", "10.96.0.53"}, {"-D", "-p", "udp", "--orig-port-dst", "30053"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := staleUDP(tc.old, tc.cur); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("staleUDP = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUDPPortsRendered(t *testing.T) {
	var tc goldenCase
	for _, c := range goldenCases() {
		if c.name == "multi-port" {
			tc = c
		}
	}
	r := Render(tc.topo, tc.services, tc.slices)
	want := map[string]UDPPort{"kube-system/dns:dns/udp": {ClusterIP: "10.96.0.53", Endpoints: []string{"10.244.1.10", "10.244.2.10"}}}
	if !reflect.DeepEqual(r.UDP, want) {
		t.Errorf("UDP = %v, want %v", r.UDP, want)
	}
}

func TestAnnotateRestoreError(t *testing.T) {
	err := annotateRestoreError(fmt.Errorf("iptables-restore: exit status 2: iptables-restore: line 3 failed"), []byte("*nat\n:A - [0:0]\n-A A -j NOPE\nCOMMIT\n"))
	if !strings.Contains(err.Error(), "-A A -j NOPE") {
		t.Errorf("error %q does not name the failing line", err)
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

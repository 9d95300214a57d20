package dns

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func service(ns, name, clusterIP string, ports ...v1.ServicePort) *v1.Service {
	s := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1.ServiceSpec{ClusterIP: clusterIP, Ports: ports}}
	if clusterIP != "" && clusterIP != v1.ClusterIPNone {
		s.Spec.ClusterIPs = []string{clusterIP}
	}
	return s
}

func port(name string, proto v1.Protocol, p int32) v1.ServicePort {
	return v1.ServicePort{Name: name, Protocol: proto, Port: p}
}

type ep struct {
	ip, hostname string
	ready        *bool
}

func slice(ns, svc, name string, ports []discoveryv1.EndpointPort, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
	}
	for _, e := range eps {
		d := discoveryv1.Endpoint{Addresses: []string{e.ip}, Conditions: discoveryv1.EndpointConditions{Ready: e.ready}}
		if e.hostname != "" {
			d.Hostname = ptr.To(e.hostname)
		}
		s.Endpoints = append(s.Endpoints, d)
	}
	return s
}

func epPort(name string, p int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To(p)}
}

// objects is the cluster the table runs against.
func objects() []runtime.Object {
	ext := service("default", "ext", "")
	ext.Spec.Type, ext.Spec.ExternalName = v1.ServiceTypeExternalName, "example.org"
	alias := service("default", "alias", "")
	alias.Spec.Type, alias.Spec.ExternalName = v1.ServiceTypeExternalName, "web.default.svc.cluster.local"
	loop := service("default", "loop", "")
	loop.Spec.Type, loop.Spec.ExternalName = v1.ServiceTypeExternalName, "loop.default.svc.cluster.local"
	notReady := service("default", "nr", v1.ClusterIPNone, port("pg", v1.ProtocolTCP, 5432))
	notReady.Spec.PublishNotReadyAddresses = true
	objs := []runtime.Object{
		service("default", "web", "10.96.0.10", port("http", v1.ProtocolTCP, 80), port("dns", v1.ProtocolUDP, 53), port("", v1.ProtocolTCP, 8080)),
		service("default", "db", v1.ClusterIPNone, port("pg", v1.ProtocolTCP, 5432)),
		slice("default", "db", "db-a", []discoveryv1.EndpointPort{epPort("pg", 15432)},
			ep{ip: "10.244.1.5", hostname: "db-0"}, ep{ip: "10.244.2.6", ready: ptr.To(true)}, ep{ip: "10.244.3.7", hostname: "db-2", ready: ptr.To(false)}),
		// The same address in a second slice (a move in progress) is one record.
		slice("default", "db", "db-b", []discoveryv1.EndpointPort{epPort("pg", 15432)}, ep{ip: "10.244.2.6"}),
		slice("default", "web", "web-a", []discoveryv1.EndpointPort{epPort("http", 8080)}, ep{ip: "10.244.1.9"}),
		notReady,
		slice("default", "nr", "nr-a", nil, ep{ip: "10.244.1.20", ready: ptr.To(false)}),
		service("default", "empty", v1.ClusterIPNone, port("pg", v1.ProtocolTCP, 5432)),
		ext, alias, loop,
		service("other", "web", "10.96.0.20", port("http", v1.ProtocolTCP, 80)),
	}
	big := service("default", "big", v1.ClusterIPNone)
	var many []ep
	for i := range 100 {
		many = append(many, ep{ip: fmt.Sprintf("10.244.%d.%d", 10+i/200, 1+i%200)})
	}
	return append(objs, big, slice("default", "big", "big-a", nil, many...))
}

// upstream starts a DNS server (UDP and TCP) on loopback that knows example.org and
// answers NXDOMAIN for anything else.
func upstream(t *testing.T) string {
	t.Helper()
	pc, ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		if strings.EqualFold(q.Name, "example.org.") && q.Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP("192.0.2.1")}}
		} else if !strings.EqualFold(q.Name, "example.org.") {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

type testServer struct {
	*Server
	reg *prometheus.Registry
}

func start(t *testing.T, cfg Config) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := informers.NewSharedInformerFactory(fake.NewClientset(objects()...), 0)
	reg := prometheus.NewRegistry()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.Informers, cfg.Log, cfg.Registry = f, zaptest.NewLogger(t), reg
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		f.Shutdown()
	})
	select {
	case <-s.Started():
	case err := <-done:
		t.Fatalf("Run ended before serving: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start within 10s")
	}
	if err := s.Healthz(); err != nil {
		t.Fatal(err)
	}
	return &testServer{Server: s, reg: reg}
}

func (s *testServer) query(t *testing.T, netw, name string, qtype uint16, edns uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	c := &dns.Client{Net: netw, Timeout: 5 * time.Second, UDPSize: edns}
	r, _, err := c.Exchange(m, s.Addr().String())
	if err != nil {
		t.Fatalf("%s %s: %v", dns.TypeToString[qtype], name, err)
	}
	return r
}

// show renders records compactly, without owner name and TTL (checked
// separately), sorted.
func show(rrs []dns.RR) []string {
	out := []string{}
	for _, rr := range rrs {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, "A "+v.A.String())
		case *dns.AAAA:
			out = append(out, "AAAA "+v.AAAA.String())
		case *dns.CNAME:
			out = append(out, "CNAME "+v.Target)
		case *dns.SRV:
			out = append(out, fmt.Sprintf("SRV %d %d %d %s", v.Priority, v.Weight, v.Port, v.Target))
		case *dns.TXT:
			out = append(out, "TXT "+strings.Join(v.Txt, " "))
		case *dns.SOA:
			out = append(out, "SOA "+v.Ns)
		case *dns.NS:
			out = append(out, "NS "+v.Ns)
		case *dns.OPT:
			continue
		default:
			out = append(out, rr.String())
		}
	}
	slices.Sort(out)
	return out
}

func TestAnswers(t *testing.T) {
	up := upstream(t)
	withUpstream := start(t, Config{Upstream: up})
	noUpstream := start(t, Config{})

	const d = ".svc.cluster.local."
	for _, tc := range []struct {
		name     string
		qname    string
		qtype    uint16
		upstream bool
		rcode    int
		answer   []string
		extra    []string
		notAA    bool
	}{
		{name: "service A", qname: "web.default" + d, qtype: dns.TypeA, answer: []string{"A 10.96.0.10"}},
		{name: "case-insensitive", qname: "WEB.Default.SVC.cluster.LOCAL.", qtype: dns.TypeA, answer: []string{"A 10.96.0.10"}},
		{name: "same name other namespace", qname: "web.other" + d, qtype: dns.TypeA, answer: []string{"A 10.96.0.20"}},
		{name: "service AAAA is NODATA on IPv4", qname: "web.default" + d, qtype: dns.TypeAAAA, answer: []string{}},
		{name: "service MX is NODATA", qname: "web.default" + d, qtype: dns.TypeMX, answer: []string{}},
		{name: "unknown service", qname: "nope.default" + d, qtype: dns.TypeA, rcode: dns.RcodeNameError, answer: []string{}},
		{name: "unknown namespace", qname: "web.nope" + d, qtype: dns.TypeA, rcode: dns.RcodeNameError, answer: []string{}},
		{name: "namespace with services", qname: "default" + d, qtype: dns.TypeA, answer: []string{}},
		{name: "namespace without services", qname: "empty-ns" + d, qtype: dns.TypeA, rcode: dns.RcodeNameError, answer: []string{}},
		{name: "too many labels", qname: "a.b.c.web.default" + d, qtype: dns.TypeA, rcode: dns.RcodeNameError, answer: []string{}},
		{name: "headless: ready endpoints only, each once", qname: "db.default" + d, qtype: dns.TypeA, answer: []string{"A 10.244.1.5", "A 10.244.2.6"}},
		{name: "headless publishNotReadyAddresses", qname: "nr.default" + d, qtype: dns.TypeA, answer: []string{"A 10.244.1.20"}},
		{name: "headless without endpoints is NODATA", qname: "empty.default" + d, qtype: dns.TypeA, answer: []string{}},
		{name: "endpoint hostname", qname: "db-0.db.default" + d, qtype: dns.TypeA, answer: []string{"A 10.244.1.5"}},
		{name: "endpoint dashed address", qname: "10-244-2-6.db.default" + d, qtype: dns.TypeA, answer: []string{"A 10.244.2.6"}},
		{name: "not-ready endpoint hostname", qname: "db-2.db.default" + d, qtype: dns.TypeA, rcode: dns.RcodeNameError, answer: []string{}},
		{name: "unknown endpoint", qname: "db-9.db.default" + d, qtype: dns.TypeA, rcode: dns.RcodeNameError, answer: []string{}},
		{name: "SRV named port", qname: "_http._tcp.web.default" + d, qtype: dns.TypeSRV,
			answer: []string{"SRV 0 100 80 web.default.svc.cluster.local."}, extra: []string{"A 10.96.0.10"}},
		{name: "SRV udp port", qname: "_dns._udp.web.default" + d, qtype: dns.TypeSRV,
			answer: []string{"SRV 0 100 53 web.default.svc.cluster.local."}, extra: []string{"A 10.96.0.10"}},
		{name: "SRV wrong protocol", qname: "_http._udp.web.default" + d, qtype: dns.TypeSRV, rcode: dns.RcodeNameError, answer: []string{}},
		{name: "SRV unknown port", qname: "_nope._tcp.web.default" + d, qtype: dns.TypeSRV, rcode: dns.RcodeNameError, answer: []string{}},
		{name: "SRV name asked for A is NODATA", qname: "_http._tcp.web.default" + d, qtype: dns.TypeA, answer: []string{}},
		{name: "SRV on the service name: every port", qname: "web.default" + d, qtype: dns.TypeSRV,
			answer: []string{"SRV 0 33 53 web.default.svc.cluster.local.", "SRV 0 33 80 web.default.svc.cluster.local.", "SRV 0 33 8080 web.default.svc.cluster.local."},
			extra:  []string{"A 10.96.0.10"}},
		{name: "SRV headless: per-endpoint targets and endpoint ports", qname: "_pg._tcp.db.default" + d, qtype: dns.TypeSRV,
			answer: []string{"SRV 0 50 15432 10-244-2-6.db.default.svc.cluster.local.", "SRV 0 50 15432 db-0.db.default.svc.cluster.local."},
			extra:  []string{"A 10.244.1.5", "A 10.244.2.6"}},
		{name: "SRV headless without endpoints", qname: "_pg._tcp.empty.default" + d, qtype: dns.TypeSRV, answer: []string{}},
		{name: "proto empty non-terminal", qname: "_tcp.web.default" + d, qtype: dns.TypeSRV, answer: []string{}},
		{name: "pod A", qname: "10-244-1-5.default.pod.cluster.local.", qtype: dns.TypeA, answer: []string{"A 10.244.1.5"}},
		{name: "pod AAAA is NODATA", qname: "10-244-1-5.default.pod.cluster.local.", qtype: dns.TypeAAAA, answer: []string{}},
		{name: "pod bad address", qname: "10-244-1.default.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, answer: []string{}},
		{name: "pod bad octet", qname: "10-244-1-300.default.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, answer: []string{}},
		{name: "ExternalName CNAME only", qname: "ext.default" + d, qtype: dns.TypeCNAME, answer: []string{"CNAME example.org."}},
		{name: "ExternalName A without upstream", qname: "ext.default" + d, qtype: dns.TypeA, answer: []string{"CNAME example.org."}},
		{name: "ExternalName A chased upstream", qname: "ext.default" + d, qtype: dns.TypeA, upstream: true, answer: []string{"A 192.0.2.1", "CNAME example.org."}},
		{name: "ExternalName inside the zone is chased", qname: "alias.default" + d, qtype: dns.TypeA, answer: []string{"A 10.96.0.10", "CNAME web.default.svc.cluster.local."}},
		{name: "ExternalName loop ends", qname: "loop.default" + d, qtype: dns.TypeA, answer: slices.Repeat([]string{"CNAME loop.default.svc.cluster.local."}, maxChase+1)},
		{name: "zone apex SOA", qname: "cluster.local.", qtype: dns.TypeSOA, answer: []string{"SOA ns.dns.cluster.local."}},
		{name: "zone apex A is NODATA", qname: "cluster.local.", qtype: dns.TypeA, answer: []string{}},
		{name: "svc is an empty non-terminal", qname: "svc.cluster.local.", qtype: dns.TypeA, answer: []string{}},
		{name: "unknown kind in the zone", qname: "foo.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, answer: []string{}},
		{name: "schema version", qname: "dns-version.cluster.local.", qtype: dns.TypeTXT, answer: []string{"TXT " + SchemaVersion}},
		{name: "outside the domain, no upstream", qname: "example.org.", qtype: dns.TypeA, rcode: dns.RcodeNameError, answer: []string{}, notAA: true},
		{name: "outside the domain, forwarded", qname: "example.org.", qtype: dns.TypeA, upstream: true, answer: []string{"A 192.0.2.1"}, notAA: true},
		{name: "outside the domain, upstream NXDOMAIN", qname: "nope.example.", qtype: dns.TypeA, upstream: true, rcode: dns.RcodeNameError, answer: []string{}, notAA: true},
		{name: "search-path expansion of an outside name", qname: "example.org.default" + d, qtype: dns.TypeA, upstream: true, rcode: dns.RcodeNameError, answer: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := noUpstream
			if tc.upstream {
				s = withUpstream
			}
			for _, netw := range []string{"udp", "tcp"} {
				r := s.query(t, netw, tc.qname, tc.qtype, 0)
				if r.Rcode != tc.rcode {
					t.Errorf("%s: rcode %s, want %s", netw, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
				if got := show(r.Answer); !slices.Equal(got, tc.answer) {
					t.Errorf("%s: answer %q, want %q", netw, got, tc.answer)
				}
				if tc.extra != nil {
					if got := show(r.Extra); !slices.Equal(got, tc.extra) {
						t.Errorf("%s: extra %q, want %q", netw, got, tc.extra)
					}
				}
				if r.Authoritative == tc.notAA {
					t.Errorf("%s: authoritative %v", netw, r.Authoritative)
				}
				if r.Truncated {
					t.Errorf("%s: truncated", netw)
				}
				for _, rr := range r.Answer {
					if !tc.upstream && rr.Header().Ttl != TTL {
						t.Errorf("%s: TTL %d in %s", netw, rr.Header().Ttl, rr)
					}
				}
				if len(r.Answer) > 0 && !strings.EqualFold(r.Answer[0].Header().Name, tc.qname) {
					t.Errorf("%s: first record owner %q, want %q", netw, r.Answer[0].Header().Name, tc.qname)
				}
				if !tc.notAA && len(r.Answer) == 0 && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA) {
					t.Errorf("%s: negative answer without SOA in authority: %v", netw, r.Ns)
				}
			}
		})
	}
}

func TestTruncation(t *testing.T) {
	s := start(t, Config{})
	const name = "big.default.svc.cluster.local."
	r := s.query(t, "udp", name, dns.TypeA, 0)
	if !r.Truncated || len(r.Answer) >= 100 {
		t.Errorf("UDP without EDNS0: truncated %v with %d records, want truncated", r.Truncated, len(r.Answer))
	}
	r.Compress = true // as it came on the wire
	if b, _ := r.Pack(); len(b) > dns.MinMsgSize {
		t.Errorf("UDP answer of %d bytes, over 512", len(b))
	}
	// EDNS0 raises the limit, but never above 1232 bytes over UDP.
	r = s.query(t, "udp", name, dns.TypeA, 4096)
	if !r.Truncated || len(r.Answer) < 50 {
		t.Errorf("UDP with EDNS0 4096: truncated %v with %d records, want truncated at 1232 bytes with more than 512 would hold", r.Truncated, len(r.Answer))
	}
	r.Compress = true
	if b, _ := r.Pack(); len(b) > maxUDPSize {
		t.Errorf("UDP answer of %d bytes, over %d", len(b), maxUDPSize)
	}
	if r.IsEdns0() == nil {
		t.Error("EDNS0 query answered without OPT")
	}
	r = s.query(t, "tcp", name, dns.TypeA, 0)
	if r.Truncated || len(r.Answer) != 100 {
		t.Errorf("TCP: truncated %v with %d records, want all 100", r.Truncated, len(r.Answer))
	}
}

func TestForwardFailureAndMetrics(t *testing.T) {
	// An upstream that never answers: the query fails (SERVFAIL) after the
	// forward timeout instead of hanging.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	s := start(t, Config{Upstream: silent.LocalAddr().String(), ForwardTimeout: 200 * time.Millisecond})
	begin := time.Now()
	if r := s.query(t, "udp", "example.org.", dns.TypeA, 0); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("answered after %s", d)
	}
	s.query(t, "udp", "web.default.svc.cluster.local.", dns.TypeA, 0)
	s.query(t, "udp", "nope.default.svc.cluster.local.", dns.TypeA, 0)
	s.query(t, "udp", "web.default.svc.cluster.local.", dns.TypeAAAA, 0)
	m := new(dns.Msg)
	m.SetNotify("cluster.local.")
	if r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, s.Addr().String()); err != nil || r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("NOTIFY: %v %v, want NOTIMP", r, err)
	}

	for result, want := range map[string]float64{resultServFail: 1, resultSuccess: 1, resultNXDomain: 1, resultNoData: 1, resultRefused: 1, resultForwarded: 0} {
		if got := testutil.ToFloat64(s.metrics.requests.WithLabelValues(result)); got != want {
			t.Errorf("requests_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	if n, err := testutil.GatherAndCount(s.reg, "kubeish_kubeletish_dns_requests_total", "kubeish_kubeletish_dns_request_duration_seconds"); err != nil || n != 7 {
		t.Errorf("registered series: %d, %v; want 6 results + 1 histogram", n, err)
	}
}

func TestNewValidates(t *testing.T) {
	f := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	for _, cfg := range []Config{
		{Addr: "127.0.0.1:0"},
		{Addr: "127.0.0.1", Informers: f},
		{Addr: "127.0.0.1:0", Upstream: "192.0.2.1", Informers: f},
		{Addr: "127.0.0.1:0", Domain: "bad..domain", Informers: f},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
}

func TestAllowedSources(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", ClusterCIDR: "10.244.0.0/16", NodeIP: "10.250.0.2", Informers: informers.NewSharedInformerFactory(fake.NewClientset(), 0)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.UDPAddr{IP: net.ParseIP("10.244.3.7"), Port: 5353}, true},  // a pod
		{&net.TCPAddr{IP: net.ParseIP("10.244.0.1"), Port: 5353}, true},  // the bridge
		{&net.UDPAddr{IP: net.ParseIP("10.250.0.2"), Port: 5353}, true},  // this node
		{&net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5353}, true},   // loopback
		{&net.UDPAddr{IP: net.ParseIP("10.250.0.3"), Port: 5353}, false}, // another host
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.9"), Port: 5353}, false},  // anyone else
	} {
		if got := s.allowed(tc.addr); got != tc.want {
			t.Errorf("allowed(%v) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if open, _ := New(Config{Addr: "127.0.0.1:0", Informers: informers.NewSharedInformerFactory(fake.NewClientset(), 0)}); !open.allowed(&net.UDPAddr{IP: net.ParseIP("192.0.2.9")}) {
		t.Error("without a cluster CIDR every source is answered")
	}
}

package dns

import (
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
)

// SchemaVersion is the DNS specification version served at
// dns-version.<domain> (TXT), as the specification asks.
const SchemaVersion = "1.1.0"

// maxChase bounds CNAME chains inside the zone (ExternalName services
// naming each other), so that a loop cannot recurse forever.
const maxChase = 8

// resolver answers names inside the cluster domain from the listers.
type resolver struct {
	domain       string // lower case, fully qualified: "cluster.local."
	domainLabels int
	services     corelisters.ServiceLister
	slices       discoverylisters.EndpointSliceLister
	serial       uint32
}

// answer is the outcome of a lookup inside the zone.
type answer struct {
	rcode         int
	answer, extra []dns.RR
	// chase is an out-of-zone CNAME target whose records the server may
	// fetch from upstream.
	chase string
}

func nxdomain() answer { return answer{rcode: dns.RcodeNameError} }
func nodata() answer   { return answer{rcode: dns.RcodeSuccess} }

// inZone reports whether name is the cluster domain or below it.
func (r *resolver) inZone(name string) bool {
	return dns.IsSubDomain(r.domain, strings.ToLower(dns.Fqdn(name)))
}

func (r *resolver) soa() dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: r.domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: TTL},
		Ns:      "ns.dns." + r.domain,
		Mbox:    "hostmaster." + r.domain,
		Serial:  r.serial,
		Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: TTL,
	}
}

// resolve answers (name, qtype) for a name inside the zone. Owner names in
// the answer are name as asked (case kept), as clients match them.
func (r *resolver) resolve(name string, qtype uint16) (answer, error) {
	return r.resolveDepth(dns.Fqdn(name), qtype, 0)
}

func (r *resolver) resolveDepth(name string, qtype uint16, depth int) (answer, error) {
	all := dns.SplitDomainName(strings.ToLower(name))
	labels := all[:len(all)-r.domainLabels] // the part before the domain, leftmost first
	n := len(labels)
	switch {
	case n == 0:
		switch qtype {
		case dns.TypeSOA:
			return answer{answer: []dns.RR{r.soa()}}, nil
		case dns.TypeNS:
			return answer{answer: []dns.RR{&dns.NS{Hdr: hdr(name, dns.TypeNS), Ns: "ns.dns." + r.domain}}}, nil
		}
		return nodata(), nil
	case n == 1 && labels[0] == "dns-version":
		if qtype != dns.TypeTXT && qtype != dns.TypeANY {
			return nodata(), nil
		}
		return answer{answer: []dns.RR{&dns.TXT{Hdr: hdr(name, dns.TypeTXT), Txt: []string{SchemaVersion}}}}, nil
	case labels[n-1] == "svc":
		return r.service(name, labels[:n-1], qtype, depth)
	case labels[n-1] == "pod":
		return r.pod(name, labels[:n-1], qtype), nil
	}
	return nxdomain(), nil
}

// pod answers <a-b-c-d>.<ns>.pod.<domain> with the address the name spells,
// as CoreDNS' "pods insecure" mode (kubeadm's default) does: no check that
// such a pod exists.
func (r *resolver) pod(name string, labels []string, qtype uint16) answer {
	switch len(labels) {
	case 0, 1: // pod.<domain>, <ns>.pod.<domain>: names with names below them
		return nodata()
	case 2:
	default:
		return nxdomain()
	}
	ip := parseDashed(labels[0])
	if ip == nil {
		return nxdomain()
	}
	if rr := addrRR(name, ip, qtype); rr != nil {
		return answer{answer: []dns.RR{rr}}
	}
	return nodata()
}

// parseDashed parses 10-244-1-5 (IPv4) or 2001-db8--1 (IPv6).
func parseDashed(s string) net.IP {
	if strings.Count(s, "-") == 3 {
		if ip := net.ParseIP(strings.ReplaceAll(s, "-", ".")); ip != nil && ip.To4() != nil {
			return ip
		}
	}
	if ip := net.ParseIP(strings.ReplaceAll(s, "-", ":")); ip != nil && ip.To4() == nil {
		return ip
	}
	return nil
}

// dashed is the endpoint name CoreDNS gives an address without hostname.
func dashed(ip string) string {
	return strings.NewReplacer(".", "-", ":", "-").Replace(ip)
}

// service answers names below svc.<domain>; parts are the labels before
// "svc", leftmost first.
func (r *resolver) service(name string, parts []string, qtype uint16, depth int) (answer, error) {
	n := len(parts)
	switch n {
	case 0:
		return nodata(), nil
	case 1:
		// <ns>.svc.<domain> exists when the namespace has services.
		svcs, err := r.services.Services(parts[0]).List(labels.Everything())
		if err != nil {
			return answer{}, err
		}
		if len(svcs) == 0 {
			return nxdomain(), nil
		}
		return nodata(), nil
	}
	if n > 4 {
		return nxdomain(), nil
	}
	ns, svcName := parts[n-1], parts[n-2]
	svc, err := r.services.Services(ns).Get(svcName)
	if apierrors.IsNotFound(err) {
		return nxdomain(), nil
	}
	if err != nil {
		return answer{}, err
	}
	svcFQDN := svcName + "." + ns + ".svc." + r.domain
	switch {
	case n == 2:
		return r.serviceName(name, svcFQDN, svc, qtype, depth)
	case n == 4 && strings.HasPrefix(parts[0], "_") && strings.HasPrefix(parts[1], "_"):
		return r.srv(name, svcFQDN, svc, parts[0][1:], parts[1][1:], qtype)
	case n == 3 && strings.HasPrefix(parts[0], "_"):
		// _<proto>.<svc>...: an empty non-terminal when a port uses it.
		if svc.Spec.Type != v1.ServiceTypeExternalName && slices.ContainsFunc(svc.Spec.Ports, func(p v1.ServicePort) bool {
			return strings.EqualFold(string(p.Protocol), parts[0][1:])
		}) {
			return nodata(), nil
		}
		return nxdomain(), nil
	case n == 3:
		return r.endpointName(name, svc, parts[0], qtype)
	}
	return nxdomain(), nil
}

// serviceName answers <svc>.<ns>.svc.<domain>.
func (r *resolver) serviceName(name, svcFQDN string, svc *v1.Service, qtype uint16, depth int) (answer, error) {
	if svc.Spec.Type == v1.ServiceTypeExternalName {
		return r.externalName(name, svc, qtype, depth)
	}
	if qtype == dns.TypeSRV {
		return r.srv(name, svcFQDN, svc, "", "", qtype)
	}
	var ips []string
	if headless(svc) {
		eps, err := r.endpoints(svc)
		if err != nil {
			return answer{}, err
		}
		for _, e := range eps {
			ips = append(ips, e.ip)
		}
		// Spread clients over the endpoints: most take the first address.
		rand.Shuffle(len(ips), func(i, j int) { ips[i], ips[j] = ips[j], ips[i] })
	} else {
		ips = svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
	}
	var a answer
	for _, ip := range ips {
		if rr := addrRR(name, net.ParseIP(ip), qtype); rr != nil {
			a.answer = append(a.answer, rr)
		}
	}
	return a, nil
}

// externalName answers with a CNAME to spec.externalName, followed by the
// target's records when the target is inside the zone.
func (r *resolver) externalName(name string, svc *v1.Service, qtype uint16, depth int) (answer, error) {
	target := dns.Fqdn(svc.Spec.ExternalName)
	if _, ok := dns.IsDomainName(target); !ok || svc.Spec.ExternalName == "" {
		return nodata(), nil
	}
	a := answer{answer: []dns.RR{&dns.CNAME{Hdr: hdr(name, dns.TypeCNAME), Target: target}}}
	if qtype == dns.TypeCNAME {
		return a, nil
	}
	if !r.inZone(target) {
		a.chase = target
		return a, nil
	}
	if depth >= maxChase {
		return a, nil
	}
	next, err := r.resolveDepth(target, qtype, depth+1)
	if err != nil {
		return answer{}, err
	}
	a.answer = append(a.answer, next.answer...)
	a.extra = append(a.extra, next.extra...)
	a.chase = next.chase
	return a, nil
}

// srv answers SRV for a service: every port when port and proto are
// empty (the service name itself), else the port of that name and
// protocol. Targets are the service's name (with its cluster IP in the
// additional section) or, for a headless service, each ready endpoint's
// name and the endpoint's own port.
func (r *resolver) srv(name, svcFQDN string, svc *v1.Service, port, proto string, qtype uint16) (answer, error) {
	if svc.Spec.Type == v1.ServiceTypeExternalName {
		return nxdomain(), nil
	}
	match := func(pname string, pproto v1.Protocol) bool {
		if port == "" {
			return true
		}
		p := pproto
		if p == "" {
			p = v1.ProtocolTCP
		}
		return pname != "" && strings.EqualFold(pname, port) && strings.EqualFold(string(p), proto)
	}
	type target struct {
		host string
		port int32
		ip   string
	}
	var targets []target
	found := false
	if headless(svc) {
		eps, err := r.endpoints(svc)
		if err != nil {
			return answer{}, err
		}
		for _, p := range svc.Spec.Ports {
			found = found || match(p.Name, p.Protocol)
		}
		for _, e := range eps {
			for _, p := range e.ports {
				if p.Port == nil || !match(deref(p.Name), protocol(p.Protocol)) {
					continue
				}
				found = true
				targets = append(targets, target{host: e.name + "." + svcFQDN, port: *p.Port, ip: e.ip})
			}
		}
	} else {
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, p := range svc.Spec.Ports {
			if !match(p.Name, p.Protocol) {
				continue
			}
			found = true
			for _, ip := range ips {
				targets = append(targets, target{host: svcFQDN, port: p.Port, ip: ip})
			}
		}
	}
	if port != "" && !found {
		return nxdomain(), nil
	}
	if qtype != dns.TypeSRV && qtype != dns.TypeANY {
		return nodata(), nil
	}
	var a answer
	seen := map[string]bool{}
	for _, t := range targets {
		key := t.host + "/" + strconv.Itoa(int(t.port))
		if seen[key] {
			continue // one SRV per host and port, whatever the address count
		}
		seen[key] = true
		a.answer = append(a.answer, &dns.SRV{Hdr: hdr(name, dns.TypeSRV), Priority: 0, Port: uint16(t.port), Target: t.host})
	}
	if len(a.answer) > 0 {
		w := uint16(100 / len(a.answer)) // CoreDNS' weighting: equal shares of 100
		for _, rr := range a.answer {
			rr.(*dns.SRV).Weight = w
		}
	}
	added := map[string]bool{}
	for _, t := range targets {
		ip := net.ParseIP(t.ip)
		if added[t.host+t.ip] || ip == nil {
			continue
		}
		added[t.host+t.ip] = true
		qt := dns.TypeA
		if ip.To4() == nil {
			qt = dns.TypeAAAA
		}
		a.extra = append(a.extra, addrRR(t.host, ip, qt))
	}
	return a, nil
}

// endpointName answers <endpoint>.<svc>.<ns>.svc.<domain>, where endpoint
// is an address's hostname or, without one, its dashed address.
func (r *resolver) endpointName(name string, svc *v1.Service, ep string, qtype uint16) (answer, error) {
	if svc.Spec.Type == v1.ServiceTypeExternalName {
		return nxdomain(), nil
	}
	eps, err := r.endpoints(svc)
	if err != nil {
		return answer{}, err
	}
	found := false
	var a answer
	for _, e := range eps {
		if e.name != ep {
			continue
		}
		found = true
		if rr := addrRR(name, net.ParseIP(e.ip), qtype); rr != nil {
			a.answer = append(a.answer, rr)
		}
	}
	if !found {
		return nxdomain(), nil
	}
	return a, nil
}

// endpoint is one ready address of a service.
type endpoint struct {
	ip    string
	name  string // hostname, or the dashed address
	ports []discoveryv1.EndpointPort
}

// endpoints returns the service's ready addresses over all its
// EndpointSlices, each once (an address can briefly be in two slices
// while the controller moves it), in a stable order.
func (r *resolver) endpoints(svc *v1.Service) ([]endpoint, error) {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name})
	list, err := r.slices.EndpointSlices(svc.Namespace).List(sel)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b *discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	var out []endpoint
	seen := map[string]bool{}
	for _, sl := range list {
		if sl.AddressType != discoveryv1.AddressTypeIPv4 && sl.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		for _, e := range sl.Endpoints {
			// A nil ready condition means ready ("unknown" is to be read as
			// ready, per the EndpointSlice API); publishNotReadyAddresses
			// asks for every address.
			if e.Conditions.Ready != nil && !*e.Conditions.Ready && !svc.Spec.PublishNotReadyAddresses {
				continue
			}
			for _, ip := range e.Addresses {
				if seen[ip] || net.ParseIP(ip) == nil {
					continue
				}
				seen[ip] = true
				n := deref(e.Hostname)
				if n == "" {
					n = dashed(ip)
				}
				out = append(out, endpoint{ip: ip, name: strings.ToLower(n), ports: sl.Ports})
			}
		}
	}
	return out, nil
}

func headless(svc *v1.Service) bool { return svc.Spec.ClusterIP == v1.ClusterIPNone }

func hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: TTL}
}

// addrRR is an A or AAAA record for ip when it is of the asked type (ANY
// takes both), else nil: a name that only has IPv4 addresses answers AAAA
// with no records (NODATA).
func addrRR(name string, ip net.IP, qtype uint16) dns.RR {
	if ip == nil {
		return nil
	}
	if v4 := ip.To4(); v4 != nil {
		if qtype == dns.TypeA || qtype == dns.TypeANY {
			return &dns.A{Hdr: hdr(name, dns.TypeA), A: v4}
		}
		return nil
	}
	if qtype == dns.TypeAAAA || qtype == dns.TypeANY {
		return &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA), AAAA: ip}
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func protocol(p *v1.Protocol) v1.Protocol {
	if p == nil || *p == "" {
		return v1.ProtocolTCP
	}
	return *p
}

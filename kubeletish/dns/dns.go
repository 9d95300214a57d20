// Package dns is the node agent's cluster DNS: an authoritative server for
// the cluster domain (cluster.local) that answers from the agent's shared
// informer caches of Services and EndpointSlices, following the Kubernetes
// DNS-Based Service Discovery specification the way CoreDNS' kubernetes
// plugin does. Names outside the cluster domain are forwarded to an
// upstream server when one is configured, and answered NXDOMAIN otherwise:
// the machine's own resolv.conf is never read, so nothing here ever asks a
// resolver the operator did not name.
package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// DefaultDomain is the cluster domain when Config.Domain is empty.
const DefaultDomain = "cluster.local"

// TTL is the time to live of every cluster record, in seconds: short, so
// that a client's cache follows endpoint changes within seconds.
const TTL = 5

// DefaultForwardTimeout bounds one exchange with the upstream server.
const DefaultForwardTimeout = 2 * time.Second

// Config configures a Server.
type Config struct {
	// Addr is the ip:port listened on, UDP and TCP (the node's bridge
	// address, port 53). Port 0 picks a free port, the same for both.
	Addr string
	// Domain is the cluster domain (default "cluster.local").
	Domain string
	// Upstream (host:port) answers names outside the cluster domain;
	// empty: they get NXDOMAIN.
	Upstream string
	// ClusterCIDR and NodeIP are who may ask: pods and this node (and
	// loopback). Anyone else who can reach the bridge address (other
	// nodes route the pod CIDR here) is REFUSED, so the server is never
	// an open resolver nor a directory of the cluster's Services. Empty
	// ClusterCIDR: every source is answered (tests).
	ClusterCIDR string
	NodeIP      string
	// ForwardTimeout bounds one upstream exchange (default 2 s).
	ForwardTimeout time.Duration
	// Informers is the agent's shared factory; New registers the Service
	// and EndpointSlice (discovery/v1) informers on it, the caller Starts it.
	Informers informers.SharedInformerFactory
	Log       *zap.Logger
	// Registry receives the server's metrics; nil: not registered.
	Registry prometheus.Registerer
}

// Server is the cluster DNS server.
type Server struct {
	cfg      Config
	clients  *net.IPNet // ClusterCIDR parsed; nil: anyone
	nodeIP   net.IP
	log      *zap.Logger
	metrics  *metrics
	resolver *resolver
	synced   []cache.InformerSynced

	started chan struct{}
	mu      sync.Mutex
	udpAddr net.Addr
	serving bool
}

// New validates cfg and registers the informers the server reads. It does
// not listen yet: Run does, once the caches are synced, so that no query
// is ever answered NXDOMAIN only because the cache was still empty.
func New(cfg Config) (*Server, error) {
	if cfg.Informers == nil {
		return nil, errors.New("dns: Informers is required")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("dns: listen address %q: %w", cfg.Addr, err)
	}
	if cfg.Upstream != "" {
		if _, _, err := net.SplitHostPort(cfg.Upstream); err != nil {
			return nil, fmt.Errorf("dns: upstream %q must be host:port: %w", cfg.Upstream, err)
		}
	}
	var clients *net.IPNet
	if cfg.ClusterCIDR != "" {
		_, n, err := net.ParseCIDR(cfg.ClusterCIDR)
		if err != nil {
			return nil, fmt.Errorf("dns: cluster CIDR %q: %w", cfg.ClusterCIDR, err)
		}
		clients = n
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	domain := dns.Fqdn(strings.ToLower(cfg.Domain))
	if _, ok := dns.IsDomainName(domain); !ok {
		return nil, fmt.Errorf("dns: domain %q is not a domain name", cfg.Domain)
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = DefaultForwardTimeout
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	svc := cfg.Informers.Core().V1().Services()
	eps := cfg.Informers.Discovery().V1().EndpointSlices()
	s := &Server{
		cfg:     cfg,
		clients: clients,
		nodeIP:  net.ParseIP(cfg.NodeIP),
		log:     cfg.Log,
		metrics: m,
		synced:  []cache.InformerSynced{svc.Informer().HasSynced, eps.Informer().HasSynced},
		started: make(chan struct{}),
	}
	s.resolver = newResolver(domain, svc.Lister(), eps.Lister())
	return s, nil
}

// newResolver is split out so that tests can reach the answer logic.
func newResolver(domain string, svc corelisters.ServiceLister, eps discoverylisters.EndpointSliceLister) *resolver {
	return &resolver{domain: domain, domainLabels: dns.CountLabel(domain), services: svc, slices: eps, serial: uint32(time.Now().Unix())}
}

// Started is closed once the server listens (after the caches synced).
func (s *Server) Started() <-chan struct{} { return s.started }

// Addr returns the UDP address listened on (the TCP one has the same
// port), or nil before Started.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.udpAddr
}

// Healthz reports an error until the server serves; for the agent's
// /healthz.
func (s *Server) Healthz() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.serving {
		return errors.New("cluster DNS not serving yet")
	}
	return nil
}

// Run waits for the caches, listens on Addr (UDP and TCP) and serves until
// ctx ends, then returns nil. An error to listen is returned at once: the
// caller decides whether to retry.
func (s *Server) Run(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), s.synced...) {
		return nil // ctx ended: a shutdown, not a failure
	}
	pc, ln, err := listen(s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) { s.serveDNS(ctx, w, req) })
	// Both servers must have started before ctx may end: miekg/dns'
	// Shutdown of a server that has not started yet does nothing, and its
	// socket would stay open.
	var up sync.WaitGroup
	up.Add(2)
	udp := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: up.Done}
	tcp := &dns.Server{Listener: ln, Handler: h, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, NotifyStartedFunc: up.Done}
	errc := make(chan error, 2)
	for _, srv := range []*dns.Server{udp, tcp} {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	upc := make(chan struct{})
	go func() { up.Wait(); close(upc) }()
	select {
	case <-upc:
	case err := <-errc:
		pc.Close()
		ln.Close()
		return fmt.Errorf("dns: serving: %w", err)
	}
	s.mu.Lock()
	s.udpAddr, s.serving = pc.LocalAddr(), true
	s.mu.Unlock()
	close(s.started)
	s.log.Info("cluster DNS serving", zap.Stringer("address", pc.LocalAddr()), zap.String("domain", s.resolver.domain), zap.String("upstream", s.cfg.Upstream))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		runErr = fmt.Errorf("dns: serving: %w", runErr)
	}
	s.mu.Lock()
	s.serving = false
	s.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Shutdown of a server that already failed reports "not started":
	// nothing to add to runErr.
	_ = udp.ShutdownContext(sctx)
	_ = tcp.ShutdownContext(sctx)
	return runErr
}

// listen opens UDP and TCP on addr. With port 0 the TCP socket takes the
// port the UDP one got; should another process hold that TCP port, a few
// other ports are tried.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		p := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
		ln, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || !errors.Is(err, syscall.EADDRINUSE) || attempt == 10 {
			return nil, nil, err
		}
	}
}

// maxUDPSize caps answers over UDP whatever the client advertises.
const maxUDPSize = 1232

// allowed tells whether a query from addr is answered: pods (ClusterCIDR),
// this node, and loopback.
func (s *Server) allowed(addr net.Addr) bool {
	if s.clients == nil {
		return true
	}
	var ip net.IP
	switch a := addr.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	default:
		return false
	}
	return ip.IsLoopback() || s.clients.Contains(ip) || (s.nodeIP != nil && ip.Equal(s.nodeIP))
}

// serveDNS answers one query and records it.
func (s *Server) serveDNS(ctx context.Context, w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	_, isTCP := w.RemoteAddr().(*net.TCPAddr)
	var resp *dns.Msg
	var result string
	if s.allowed(w.RemoteAddr()) {
		resp, result = s.answer(ctx, req, isTCP)
	} else {
		resp, result = new(dns.Msg), resultRefused
		resp.SetRcode(req, dns.RcodeRefused)
	}
	limit := dns.MinMsgSize
	if isTCP {
		limit = dns.MaxMsgSize
	} else if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > limit {
		// At most 1232 bytes over UDP (DNS flag day 2020): no
		// fragmentation, and little to amplify.
		limit = min(int(opt.UDPSize()), maxUDPSize)
	}
	// Truncate drops records that do not fit (setting TC for UDP, so the
	// client retries over TCP) and compresses names when that is enough.
	resp.Truncate(limit)
	// Counted before the write, so that a client that has its answer also
	// sees it counted.
	s.metrics.observe(result, time.Since(start))
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("writing DNS answer", zap.Error(err))
	}
}

// answer computes the response to req and the metrics result label.
func (s *Server) answer(ctx context.Context, req *dns.Msg, isTCP bool) (*dns.Msg, string) {
	resp := new(dns.Msg)
	if req.Opcode != dns.OpcodeQuery {
		resp.SetRcode(req, dns.RcodeNotImplemented)
		return resp, resultRefused
	}
	if len(req.Question) != 1 {
		resp.SetRcode(req, dns.RcodeFormatError)
		return resp, resultRefused
	}
	q := req.Question[0]
	if !s.resolver.inZone(q.Name) {
		if s.cfg.Upstream == "" {
			// Not ours and no one to ask: NXDOMAIN, as the Services issue
			// asks. (REFUSED would let a stub resolver try a pod's next
			// dnsConfig nameserver; --dns-upstream is the way to reach
			// outside names.)
			resp.SetRcode(req, dns.RcodeNameError)
			return resp, resultNXDomain
		}
		return s.forward(ctx, req, isTCP)
	}
	resp.SetReply(req)
	resp.Authoritative = true
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		resp.Rcode = dns.RcodeRefused
		return resp, resultRefused
	}
	a, err := s.resolver.resolve(q.Name, q.Qtype)
	if err != nil {
		s.log.Warn("answering from the cache", zap.String("name", q.Name), zap.Error(err))
		resp.Rcode = dns.RcodeServerFailure
		return resp, resultServFail
	}
	// An ExternalName outside the cluster domain: the CNAME alone is a
	// correct answer, but stub resolvers (Go's, glibc's) do not chase it,
	// so the target's records are fetched from upstream when possible.
	if a.chase != "" && s.cfg.Upstream != "" {
		fq := new(dns.Msg)
		fq.SetQuestion(a.chase, q.Qtype)
		fq.RecursionDesired = true
		if up, res := s.forward(ctx, fq, isTCP); res == resultForwarded && up.Rcode == dns.RcodeSuccess {
			a.answer = append(a.answer, up.Answer...)
		}
	}
	resp.Rcode = a.rcode
	resp.Answer, resp.Extra = a.answer, a.extra
	if a.rcode == dns.RcodeNameError || len(a.answer) == 0 {
		// Negative answers carry the SOA, whose minimum bounds how long
		// clients cache the absence.
		resp.Ns = []dns.RR{s.resolver.soa()}
	}
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(max(opt.UDPSize(), dns.MinMsgSize), opt.Do())
	}
	switch {
	case a.rcode == dns.RcodeNameError:
		return resp, resultNXDomain
	case len(a.answer) == 0:
		return resp, resultNoData
	}
	return resp, resultSuccess
}

// forward asks the upstream server, over TCP when the client used TCP or
// when the UDP answer came back truncated.
func (s *Server) forward(ctx context.Context, req *dns.Msg, isTCP bool) (*dns.Msg, string) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ForwardTimeout)
	defer cancel()
	nets := []string{"udp", "tcp"}
	if isTCP {
		nets = []string{"tcp"}
	}
	var resp *dns.Msg
	var err error
	for _, n := range nets {
		c := &dns.Client{Net: n, Timeout: s.cfg.ForwardTimeout}
		resp, _, err = c.ExchangeContext(ctx, req, s.cfg.Upstream)
		if err != nil || !resp.Truncated {
			break
		}
	}
	if err != nil {
		s.log.Debug("forwarding", zap.String("upstream", s.cfg.Upstream), zap.Error(err))
		fail := new(dns.Msg)
		fail.SetRcode(req, dns.RcodeServerFailure)
		return fail, resultServFail
	}
	resp.Id = req.Id
	return resp, resultForwarded
}

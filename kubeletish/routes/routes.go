// Package routes keeps the node's host-gw routes: one to every other
// node's pod CIDR via that node's InternalIP, from the Node objects, and
// one to the service range on the node's own interface (so that the node's
// own connections to a ClusterIP have a route; the proxy's DNAT in OUTPUT
// then re-routes them to the endpoint). The routes carry a protocol number
// of their own, which is how the manager finds its routes again after a
// restart and never touches anyone else's.
package routes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Protocol marks the routes the manager owns (`ip route show proto 176`).
// Numbers below 5 are the kernel's, and the ones /etc/iproute2/rt_protos
// names (zebra, bird, bgp, ospf, dhcp, keepalived, …) are other daemons';
// 176 is none of them.
const Protocol netlink.RouteProtocol = 176

// DefaultSyncPeriod is how often the routes are compared with the
// kernel's even when no Node changed: a route removed by hand, or flushed
// with its interface going down, comes back within it.
const DefaultSyncPeriod = 30 * time.Second

// Config configures a Manager.
type Config struct {
	// NodeName is this node: its own pod CIDR is the bridge's, no route.
	NodeName string
	// NodeIP is this node's InternalIP: the service range is routed out
	// of the interface holding it, with it as source.
	NodeIP string
	// ServiceCIDR is the Services' cluster IP range; empty: no route.
	ServiceCIDR string
	// Informers is the agent's shared factory; New registers the Node
	// informer on it, the caller Starts it.
	Informers informers.SharedInformerFactory
	Log       *zap.Logger
	// Registry receives the metrics; nil: not registered.
	Registry prometheus.Registerer
	// SyncPeriod: see DefaultSyncPeriod.
	SyncPeriod time.Duration
	// NetNS is the network namespace (a path such as /run/netns/x) whose
	// routes are managed; empty: the one the process runs in. For tests.
	NetNS string
}

// Manager keeps the routes.
type Manager struct {
	cfg         Config
	log         *zap.Logger
	nodeIP      net.IP
	serviceCIDR *net.IPNet
	nodes       corelisters.NodeLister
	synced      cache.InformerSynced
	metrics     *metrics
	trigger     chan struct{}

	mu         sync.Mutex
	syncedOnce bool
}

// New validates cfg and registers the Node informer.
func New(cfg Config) (*Manager, error) {
	if cfg.Informers == nil {
		return nil, errors.New("routes: Informers is required")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("routes: NodeName is required")
	}
	nodeIP := net.ParseIP(cfg.NodeIP)
	if nodeIP == nil {
		return nil, fmt.Errorf("routes: node IP %q is not an IP address", cfg.NodeIP)
	}
	var svc *net.IPNet
	if cfg.ServiceCIDR != "" {
		var err error
		if _, svc, err = net.ParseCIDR(cfg.ServiceCIDR); err != nil {
			return nil, fmt.Errorf("routes: service CIDR: %w", err)
		}
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.SyncPeriod <= 0 {
		cfg.SyncPeriod = DefaultSyncPeriod
	}
	met, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	inf := cfg.Informers.Core().V1().Nodes()
	m := &Manager{cfg: cfg, log: cfg.Log, nodeIP: nodeIP, serviceCIDR: svc, nodes: inf.Lister(),
		synced: inf.Informer().HasSynced, metrics: met, trigger: make(chan struct{}, 1)}
	// Handlers only signal; the sync reads the cache. Node status updates
	// that change neither pod CIDRs nor addresses are ignored.
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { m.signal() },
		UpdateFunc: func(o, n any) {
			on, ok1 := o.(*v1.Node)
			nn, ok2 := n.(*v1.Node)
			if !ok1 || !ok2 || routeKey(on) != routeKey(nn) {
				m.signal()
			}
		},
		DeleteFunc: func(any) { m.signal() },
	}); err != nil {
		return nil, err
	}
	return m, nil
}

// routeKey is what of a Node its routes depend on.
func routeKey(n *v1.Node) string {
	return fmt.Sprint(n.Spec.PodCIDR, n.Spec.PodCIDRs, n.Status.Addresses)
}

func (m *Manager) signal() {
	select {
	case m.trigger <- struct{}{}:
	default:
	}
}

// Healthz reports an error until the routes were synced once.
func (m *Manager) Healthz() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.syncedOnce {
		return errors.New("routes not synced yet")
	}
	return nil
}

// Run waits for the Node cache, then syncs the routes on every Node change
// and every SyncPeriod until ctx ends. The first sync also removes routes
// of ours left from before (nodes deleted while the agent was down). The
// routes stay when Run ends: a restarted agent adopts them, and pods keep
// their network meanwhile (Cleanup removes them).
func (m *Manager) Run(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), m.synced) {
		return nil // ctx ended
	}
	h, err := handle(m.cfg.NetNS)
	if err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	defer h.Close()
	resync := time.NewTicker(m.cfg.SyncPeriod)
	defer resync.Stop()
	var retry <-chan time.Time
	var backoff time.Duration
	for due := true; ; {
		if due {
			if err := m.sync(h); err != nil {
				backoff = min(max(2*backoff, 500*time.Millisecond), m.cfg.SyncPeriod)
				retry = time.After(backoff)
				m.log.Warn("route sync failed; retrying", zap.Duration("in", backoff), zap.Error(err))
			} else {
				retry, backoff = nil, 0
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.trigger:
			// While a retry is pending, changes wait for it (it sees them
			// too): a Node that changes often cannot defeat the back-off.
			due = retry == nil
		case <-resync.C:
			due = retry == nil
		case <-retry:
			due = true
		}
	}
}

// handle opens netlink sockets in the namespace at path ("" the current).
func handle(path string) (*netlink.Handle, error) {
	if path == "" {
		return netlink.NewHandle()
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}

// sync converges the kernel's routes of ours on the desired ones.
func (m *Manager) sync(h *netlink.Handle) (err error) {
	start := time.Now()
	defer func() { m.metrics.observe(err, time.Since(start)) }()
	nodes, err := m.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	desired, skipped := Desired(m.cfg.NodeName, m.nodeIP, m.serviceCIDR, nodes)
	for _, s := range skipped {
		m.log.Debug("no route to a node's pod CIDR", zap.String("peer", s.Node), zap.String("podCIDR", s.CIDR), zap.String("reason", s.Reason))
	}
	for i := range desired {
		if desired[i].Gw == nil {
			// The service range leaves by the interface holding the
			// node's IP, found afresh each time (it may have been
			// re-created).
			idx, err := linkOf(h, m.nodeIP)
			if err != nil {
				return err
			}
			desired[i].LinkIndex = idx
		}
	}
	actual, err := owned(h)
	if err != nil {
		return err
	}
	write, del := Plan(desired, actual)
	var errs []error
	conflicts := 0
	for _, r := range del {
		if err := h.RouteDel(r.netlink()); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("deleting route %s: %w", r, err))
			continue
		}
		m.log.Info("route removed", zap.Stringer("route", r))
	}
	have := map[string]bool{}
	for _, a := range actual {
		have[a.Dst.String()] = true
	}
	for _, r := range write {
		nr := r.netlink()
		if have[r.Dst.String()] {
			err = h.RouteReplace(nr) // ours, changed: in place
		} else {
			// Add, not replace: it fails on a route of someone else's to
			// the same destination, which is left alone.
			err = h.RouteAdd(nr)
		}
		if errors.Is(err, unix.EEXIST) {
			conflicts++
			m.log.Warn("a route not of ours is in the way; leaving it", r.fields()...)
			continue
		}
		if errors.Is(err, unix.ENETUNREACH) {
			// A peer whose InternalIP is not on a link of ours (another
			// subnet): host-gw cannot reach its pods. Its pods are
			// unreachable from here, but that is no reason to call this
			// node unhealthy or to stop syncing the others.
			conflicts++
			m.log.Warn("a node's InternalIP is not on this node's links; no route to its pods (host-gw needs one L2 network)", r.fields()...)
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("writing route %s (node %q): %w", r, r.Node, err))
			continue
		}
		m.log.Info("route written", r.fields()...)
	}
	if now, err := owned(h); err == nil {
		m.metrics.programmed.Set(float64(len(now)))
	}
	m.metrics.skipped.Set(float64(len(skipped) + conflicts))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	m.mu.Lock()
	m.syncedOnce = true
	m.mu.Unlock()
	return nil
}

// fields describe r in logs.
func (r Route) fields() []zap.Field {
	f := []zap.Field{zap.Stringer("route", r)}
	if r.Node != "" {
		f = append(f, zap.String("peer", r.Node))
	}
	return f
}

// netlink is r as a main-table route of ours.
func (r Route) netlink() *netlink.Route {
	nr := &netlink.Route{Dst: r.Dst, Gw: r.Gw, Src: r.Src, LinkIndex: r.LinkIndex, Protocol: Protocol, Table: unix.RT_TABLE_MAIN}
	if r.Gw == nil {
		nr.Scope = netlink.SCOPE_LINK // on-link: no next hop
	}
	return nr
}

// owned lists the main table's routes of ours.
func owned(h *netlink.Handle) ([]Route, error) {
	rs, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: Protocol, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	out := make([]Route, 0, len(rs))
	for _, r := range rs {
		if r.Dst == nil {
			continue // a default route is never one of ours
		}
		out = append(out, Route{Dst: r.Dst, Gw: r.Gw, Src: r.Src, LinkIndex: r.LinkIndex})
	}
	return out, nil
}

// linkOf returns the index of the interface that holds ip.
func linkOf(h *netlink.Handle, ip net.IP) (int, error) {
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return 0, fmt.Errorf("listing addresses: %w", err)
	}
	for _, a := range addrs {
		if a.IP.Equal(ip) {
			return a.LinkIndex, nil
		}
	}
	return 0, fmt.Errorf("no interface holds the node IP %s", ip)
}

// Cleanup removes every route of ours from the main table of the
// namespace the process runs in (kubeletish --cleanup).
func Cleanup(log *zap.Logger) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	return cleanup(h, log)
}

func cleanup(h *netlink.Handle, log *zap.Logger) error {
	rs, err := owned(h)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range rs {
		if err := h.RouteDel(r.netlink()); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("deleting route %s: %w", r, err))
			continue
		}
		log.Info("route removed", zap.Stringer("route", r))
	}
	return errors.Join(errs...)
}

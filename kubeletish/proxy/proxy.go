// Package proxy is the node agent's Service proxy, in kube-proxy's iptables
// mode: from Services and EndpointSlices it renders the node's whole set of
// service rules (ClusterIP and NodePort DNAT with random balancing over the
// ready endpoints, ClientIP session affinity, masquerading, REJECT for
// services without endpoints) with a pure function, and writes them with one
// iptables-restore --noflush per sync, so a change is applied atomically and a
// burst of changes costs one sync. A sync writes only the chains whose rules
// changed since the last one (iptables-nft-restore needs seconds to rewrite
// tens of thousands of rules); a full rewrite runs at start, after a
// failure, when a jump into our chains has gone, and hourly. It owns only
// its chains (kube-proxy's names: KUBE-SERVICES, KUBE-SVC-…, …) and the jumps
// into them, and Cleanup removes exactly those.
//
// The proxier acts in the network namespace of the thread that runs it: Run
// does every iptables and conntrack exec (and New every sysctl) from the
// calling goroutine. In production that is the node's namespace, where the
// agent runs; a test locks a goroutine into a namespace it made and calls New
// and Run there.
package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// Config configures a Proxier. Zero values of the optional fields take the
// defaults named on each.
type Config struct {
	// NodeName names this node (logs).
	NodeName string
	// NodeIP is the node's InternalIP. Node ports answer on every local
	// address of the node but loopback, this one included.
	NodeIP string
	// ClusterCIDR is the pod network, e.g. 10.244.0.0/16: traffic to a
	// ClusterIP from outside it is masqueraded. Empty: all of it is.
	ClusterCIDR string
	// ServiceCIDR is the ClusterIP range, e.g. 10.96.0.0/16 (checked and
	// logged; the rules match each ClusterIP exactly).
	ServiceCIDR string
	// MinSyncPeriod is the least time between two syncs (default 100ms):
	// events within it are folded into one sync.
	MinSyncPeriod time.Duration
	// SyncPeriod is the period of resyncs (default 30s): the rules are
	// rendered again from the caches, whatever differs from what was
	// last applied is written, and the jumps from the built-in chains are
	// checked; a missing jump (someone flushed the tables) turns it into a
	// full sync.
	SyncPeriod time.Duration
	// FullSyncPeriod is the period of full syncs (default 1h, as
	// kube-proxy), which rewrite every chain even when unchanged and
	// delete chains of ours left over by anyone's earlier run. Full syncs
	// also run at start and after any failure. They are not more frequent
	// because iptables-nft-restore needs seconds for tens of thousands of
	// rules (about 10s for 1,000 services × 10 endpoints, see
	// BenchmarkSync).
	FullSyncPeriod time.Duration
	// Informers is the agent's shared factory. New registers its
	// informers and handlers; the caller starts the factory after New.
	Informers informers.SharedInformerFactory
	Log       *zap.Logger
	// Registry receives the proxy's metrics; nil: not registered.
	Registry prometheus.Registerer

	// Iptables, IptablesRestore, IptablesSave and Conntrack are the
	// binaries, looked up on PATH (defaults "iptables", "iptables-restore",
	// "iptables-save", "conntrack").
	Iptables, IptablesRestore, IptablesSave, Conntrack string
}

// Proxier keeps the node's service rules in step with the API.
type Proxier struct {
	cfg       Config
	log       *zap.Logger
	topo      Topology
	ipt       *iptables
	conntrack string // empty: the tool is missing, UDP flows are left to expire
	metrics   *metrics

	services                     corelisters.ServiceLister
	slices                       discoverylisters.EndpointSliceLister
	servicesSynced, slicesSynced cache.InformerSynced

	// trigger holds at most one pending "something changed" signal.
	trigger chan struct{}
	// syncFn is p.sync; tests of the loop's timing replace it.
	syncFn func(context.Context, syncKind) error

	// The rules last applied, nil when what the kernel has is unknown
	// (before the first sync, after a failure): then the next sync is full.
	// Used only by Run's goroutine.
	applied *Rules
	lastUDP map[string]UDPPort
}

// New checks what the data path needs on this node (in the calling
// thread's network namespace), turns on the sysctls it needs, and registers
// the informers' handlers. It programs no rule: Run does.
func New(cfg Config) (*Proxier, error) {
	if cfg.Informers == nil {
		return nil, errors.New("proxy: Config.Informers is required")
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.MinSyncPeriod <= 0 {
		cfg.MinSyncPeriod = 100 * time.Millisecond
	}
	if cfg.SyncPeriod <= 0 {
		cfg.SyncPeriod = 30 * time.Second
	}
	if cfg.FullSyncPeriod <= 0 {
		cfg.FullSyncPeriod = time.Hour
	}
	for _, d := range []struct {
		p   *string
		def string
	}{{&cfg.Iptables, "iptables"}, {&cfg.IptablesRestore, "iptables-restore"}, {&cfg.IptablesSave, "iptables-save"}, {&cfg.Conntrack, "conntrack"}} {
		if *d.p == "" {
			*d.p = d.def
		}
	}
	for _, c := range []struct{ name, value string }{{"cluster CIDR", cfg.ClusterCIDR}, {"service CIDR", cfg.ServiceCIDR}} {
		if c.value == "" {
			continue
		}
		if p, err := netip.ParsePrefix(c.value); err != nil || !p.Addr().Is4() {
			return nil, fmt.Errorf("proxy: %s %q is not an IPv4 CIDR", c.name, c.value)
		}
	}
	if cfg.NodeIP != "" {
		if a, err := netip.ParseAddr(cfg.NodeIP); err != nil || !a.Is4() {
			return nil, fmt.Errorf("proxy: node IP %q is not an IPv4 address", cfg.NodeIP)
		}
	}
	log := cfg.Log.Named("proxy")

	for _, b := range []struct{ bin, what string }{
		{cfg.IptablesRestore, "writes the service rules"},
		{cfg.Iptables, "ensures the jumps from the built-in chains"},
		{cfg.IptablesSave, "lists the chains to clean up"},
	} {
		if err := lookPath(b.bin, b.what); err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
	}
	ipt := &iptables{iptables: cfg.Iptables, restore: cfg.IptablesRestore, save: cfg.IptablesSave}
	// The legacy and nf_tables back ends keep separate rule sets, and the
	// CNI plugins use whatever "iptables" is: mixing them splits the
	// node's rules in two. Say which one is in use.
	if out, err := ipt.run(context.Background(), cfg.IptablesRestore, nil, "--version"); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	} else if !bytes.Contains(out, []byte("nf_tables")) {
		log.Warn("iptables-restore is not the nf_tables variant; kubeish expects iptables-nft", zap.String("version", strings.TrimSpace(string(out))))
	}

	if err := ensureSysctls(log); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}

	p := &Proxier{
		cfg:       cfg,
		log:       log,
		topo:      Topology{ClusterCIDR: cfg.ClusterCIDR, ServiceCIDR: cfg.ServiceCIDR},
		ipt:       ipt,
		conntrack: cfg.Conntrack,
		trigger:   make(chan struct{}, 1),
		// lastUDP stays nil until the first sync: see there.
	}
	if err := lookPath(cfg.Conntrack, "removes stale UDP flows"); err != nil {
		// Not fatal: a stale UDP flow then lasts until conntrack's
		// timeout (30s idle, 120s streams) instead of ending at once.
		log.Warn("conntrack tool missing (Debian package conntrack); stale UDP flows will not be removed", zap.Error(err))
		p.conntrack = ""
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("proxy: registering metrics: %w", err)
	}
	p.metrics = m
	p.syncFn = p.sync

	svcInf := cfg.Informers.Core().V1().Services()
	sliceInf := cfg.Informers.Discovery().V1().EndpointSlices()
	p.services, p.slices = svcInf.Lister(), sliceInf.Lister()
	// Handlers only signal: the sync reads the caches whole, so a missed
	// or coalesced event costs nothing.
	h := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { p.signal() },
		UpdateFunc: func(o, n any) {
			// The factory's periodic resync delivers unchanged objects.
			if om, ok := o.(metav1.Object); ok {
				if nm, ok := n.(metav1.Object); ok && om.GetResourceVersion() == nm.GetResourceVersion() {
					return
				}
			}
			p.signal()
		},
		DeleteFunc: func(any) { p.signal() },
	}
	r1, err := svcInf.Informer().AddEventHandler(h)
	if err != nil {
		return nil, fmt.Errorf("proxy: service handler: %w", err)
	}
	r2, err := sliceInf.Informer().AddEventHandler(h)
	if err != nil {
		return nil, fmt.Errorf("proxy: endpointslice handler: %w", err)
	}
	p.servicesSynced, p.slicesSynced = r1.HasSynced, r2.HasSynced
	log.Info("service proxy ready", zap.String("node", cfg.NodeName), zap.String("nodeIP", cfg.NodeIP),
		zap.String("clusterCIDR", cfg.ClusterCIDR), zap.String("serviceCIDR", cfg.ServiceCIDR),
		zap.Duration("minSyncPeriod", cfg.MinSyncPeriod), zap.Duration("syncPeriod", cfg.SyncPeriod), zap.Duration("fullSyncPeriod", cfg.FullSyncPeriod),
		zap.Bool("conntrack", p.conntrack != ""))
	return p, nil
}

// signal asks for a sync without blocking; signals while one is pending
// fold into it.
func (p *Proxier) signal() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// syncKind says how much a sync does.
type syncKind int

const (
	// syncChanges writes the chains that changed: what an event costs.
	syncChanges syncKind = iota
	// syncPeriodic is syncChanges plus a check of the jumps into our chains.
	syncPeriodic
	// syncFull rewrites everything, deletes our chains it did not write,
	// and ensures the jumps.
	syncFull
)

func (k syncKind) String() string {
	return [...]string{"changes", "periodic", "full"}[k]
}

// Run waits for the informer caches, then syncs on changes (at most once per
// MinSyncPeriod), every SyncPeriod, and in full every FullSyncPeriod, until
// ctx ends. A failed sync is retried in full, with a back-off up to
// SyncPeriod. All syncs run on the calling goroutine (see the package doc);
// Run must not be called twice.
func (p *Proxier) Run(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), p.servicesSynced, p.slicesSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("proxy: informer caches did not sync")
	}
	resync := time.NewTicker(p.cfg.SyncPeriod)
	defer resync.Stop()
	fullResync := time.NewTicker(p.cfg.FullSyncPeriod)
	defer fullResync.Stop()
	timer := time.NewTimer(0) // the first sync: at once, and full
	defer timer.Stop()
	armed, dirty, kind := true, true, syncFull
	var last time.Time
	var backoff time.Duration
	for {
		if dirty && !armed {
			wait := max(time.Until(last.Add(p.cfg.MinSyncPeriod)), backoff)
			timer.Reset(wait)
			armed = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.trigger:
			dirty = true
		case <-resync.C:
			dirty, kind = true, max(kind, syncPeriodic)
		case <-fullResync.C:
			dirty, kind = true, syncFull
		case <-timer.C:
			armed, dirty = false, false
			err := p.syncFn(ctx, kind)
			last = time.Now()
			if err == nil {
				kind, backoff = syncChanges, 0
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			// Retry in full: whatever broke (someone flushed a
			// chain, a concurrent nft transaction) a full sync
			// repairs.
			dirty, kind = true, syncFull
			backoff = min(max(2*backoff, p.cfg.MinSyncPeriod, 500*time.Millisecond), p.cfg.SyncPeriod)
			p.log.Warn("service proxy sync failed; retrying in full", zap.Duration("in", backoff), zap.Error(err))
		}
	}
}

// sync renders the rules from the caches and applies them (see syncKind).
func (p *Proxier) sync(ctx context.Context, kind syncKind) (err error) {
	start := time.Now()
	result := resultApplied
	defer func() {
		if err != nil {
			result = resultError
			p.applied = nil
		}
		p.metrics.syncs.WithLabelValues(result).Inc()
		p.metrics.syncDuration.Observe(time.Since(start).Seconds())
		if err == nil {
			p.metrics.lastSync.SetToCurrentTime()
		}
	}()

	if kind == syncPeriodic {
		// A missing jump means someone removed our rules (an
		// iptables flush, a firewall reload): rewrite them all.
		for _, j := range jumpRules {
			has, err := p.ipt.hasRule(ctx, j)
			if err != nil {
				p.log.Warn("checking a jump rule", zap.Error(err))
				continue
			}
			if !has {
				p.log.Info("jump rule missing; syncing in full", zap.String("table", j.table), zap.String("chain", j.chain))
				kind = syncFull
				break
			}
		}
	}
	if p.applied == nil {
		kind = syncFull
	}

	svcs, err := p.services.List(labels.Everything())
	if err != nil {
		return err
	}
	slices, err := p.slices.List(labels.Everything())
	if err != nil {
		return err
	}
	r := Render(p.topo, svcs, slices)
	cur := make(map[string]bool, len(r.NATChains()))
	for _, c := range r.NATChains() {
		cur[c] = true
	}

	var stale []string
	var input []byte
	if kind == syncFull {
		existing, err := p.ipt.Chains(ctx, tableNAT)
		if err != nil {
			return err
		}
		for _, c := range existing {
			if ownsChain(tableNAT, c) && !cur[c] {
				stale = append(stale, c)
			}
		}
		sort.Strings(stale)
		input = r.Restore(stale)
	} else {
		for _, c := range p.applied.NATChains() {
			if !cur[c] {
				stale = append(stale, c)
			}
		}
		input = r.RestoreChanged(p.applied, stale)
	}

	if input == nil {
		result = resultUnchanged
	} else {
		if err := p.ipt.Restore(ctx, input); err != nil {
			p.metrics.restoreFailures.Inc()
			return err
		}
	}
	p.applied = r
	p.metrics.rules.WithLabelValues(tableFilter).Set(float64(r.FilterRules()))
	p.metrics.rules.WithLabelValues(tableNAT).Set(float64(r.NATRules()))

	if kind == syncFull {
		// After the restore, so that the chains jumped to exist.
		for _, j := range jumpRules {
			added, err := p.ipt.EnsureJump(ctx, j)
			if err != nil {
				return err
			}
			if added {
				p.log.Info("added jump rule", zap.String("table", j.table), zap.String("chain", j.chain), zap.String("rule", strings.Join(j.args, " ")))
			}
		}
	}

	// After the restore: new packets of a deleted flow must already meet
	// the new rules.
	// The first sync after a start only records: the flows it finds are
	// those of the rules a previous run left, which match what it just
	// wrote, and a restarted agent must not disturb running pods' flows.
	if p.conntrack != "" && p.lastUDP != nil {
		for _, c := range staleUDP(p.lastUDP, r.UDP) {
			if err := runConntrack(ctx, p.conntrack, c); err != nil {
				p.log.Warn("removing stale UDP flows", zap.Error(err))
			}
		}
	}
	p.lastUDP = r.UDP

	if result == resultApplied {
		p.log.Debug("synced service rules", zap.Stringer("kind", kind), zap.Int("natRules", r.NATRules()),
			zap.Int("filterRules", r.FilterRules()), zap.Int("bytesWritten", len(input)), zap.Int("staleChains", len(stale)),
			zap.Duration("took", time.Since(start)))
	}
	return nil
}

// Cleanup removes every rule and chain the proxy owns, in the calling
// thread's network namespace, and nothing else: the jumps from the built-in
// chains, then our chains in one restore. It is what `kubeletish --cleanup`
// runs; it is a no-op when there is nothing to remove.
func Cleanup(log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("proxy")
	ipt := &iptables{iptables: "iptables", restore: "iptables-restore", save: "iptables-save"}
	ctx := context.Background()
	var errs []error
	for _, j := range jumpRules {
		if err := ipt.DeleteJump(ctx, j); err != nil {
			errs = append(errs, err)
		}
	}
	var b bytes.Buffer
	n := 0
	for _, t := range []string{tableFilter, tableNAT} {
		chains, err := ipt.Chains(ctx, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var ours []string
		for _, c := range chains {
			if ownsChain(t, c) {
				ours = append(ours, c)
			}
		}
		if len(ours) == 0 {
			continue
		}
		n += len(ours)
		// Flush all first (declaring flushes), then delete: a chain can
		// be deleted only when no rule jumps to it.
		b.WriteString("*" + t + "\n")
		for _, c := range ours {
			b.WriteString(":" + c + " - [0:0]\n")
		}
		for _, c := range ours {
			b.WriteString("-X " + c + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	if b.Len() > 0 {
		if err := ipt.Restore(ctx, b.Bytes()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("proxy cleanup: %w", err)
	}
	log.Info("removed service proxy rules", zap.Int("chains", n))
	return nil
}

// ensureSysctls turns on what the data path needs, in the calling thread's
// network namespace, with an error saying which one cannot be.
func ensureSysctls(log *zap.Logger) error {
	for _, s := range []struct{ path, why string }{
		// DNATed traffic to endpoints on other hosts is forwarded.
		{"/proc/sys/net/ipv4/ip_forward", "forwarding service traffic to endpoints"},
		// A pod reaching a ClusterIP whose endpoint is on the same bridge
		// gets the reply bridged, not routed: without this it would skip
		// iptables, miss the un-DNAT, and be dropped by the client. Since
		// Linux 5.3 it is per network namespace (a new namespace has its
		// own copy), so it is set here, in the node's namespace, where
		// the pod bridge is; br_netfilter must be loaded (built in here).
		{"/proc/sys/net/bridge/bridge-nf-call-iptables", "iptables on bridged pod-to-pod service traffic (br_netfilter)"},
	} {
		b, err := os.ReadFile(s.path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && strings.Contains(s.path, "/bridge/") {
				return fmt.Errorf("%s missing: load br_netfilter (modprobe br_netfilter), needed for %s", s.path, s.why)
			}
			return fmt.Errorf("reading %s (needed for %s): %w", s.path, s.why, err)
		}
		if strings.TrimSpace(string(b)) == "1" {
			continue
		}
		if err := os.WriteFile(s.path, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("setting %s=1 (needed for %s): %w", s.path, s.why, err)
		}
		if b, err := os.ReadFile(s.path); err != nil || strings.TrimSpace(string(b)) != "1" {
			return fmt.Errorf("%s stays %q after setting it to 1 (needed for %s)", s.path, strings.TrimSpace(string(b)), s.why)
		}
		log.Info("set sysctl", zap.String("path", s.path), zap.String("value", "1"))
	}
	return nil
}

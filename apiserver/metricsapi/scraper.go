// Package metricsapi gathers what the resource metrics API
// (metrics.k8s.io/v1beta1: NodeMetrics and PodMetrics) serves. A Scraper
// reads every Ready node's /stats/summary (the kubelet Summary API the node
// agent serves) every resolution, turns it into NodeMetrics and PodMetrics
// and keeps the latest round in memory only, as metrics-server does. The
// apiserver's HTTP layer (apiserver/server) answers the API from it.
//
// CPU usage is a rate over a window: between two rounds of this scraper the
// cumulative usageCoreNanoSeconds of the same container gives the rate and
// the window; on the first round of a container the node's own
// usageNanoCores (its rate since its previous reading) stands in, with the
// resolution as the window. Memory is the working set.
package metricsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	"k8s.io/utils/clock"

	"github.com/kubeish/kubeish/kubeletish/stats"
)

// SummaryGetter reads one node's usage summary. It must honour ctx's
// deadline; an error leaves the node out of the round.
type SummaryGetter interface {
	GetSummary(ctx context.Context, node *corev1.Node) (*stats.Summary, error)
}

// ObjectLister lists the nodes to scrape and the pods whose metadata
// (labels, uid) PodMetrics carry.
type ObjectLister interface {
	ListNodes(ctx context.Context) ([]*corev1.Node, error)
	ListPods(ctx context.Context) ([]*corev1.Pod, error)
}

// HTTPGetter reads /stats/summary at the node's InternalIP and kubelet
// endpoint port (status.daemonEndpoints).
type HTTPGetter struct {
	// Client makes the requests; its timeout, if any, applies on top of
	// the context's.
	Client *http.Client
	// Scheme is "https", or "http" (the default) for development.
	Scheme string
}

// ErrNoAddress is returned for a node that publishes no InternalIP or
// kubelet port.
var ErrNoAddress = errors.New("node has no InternalIP or kubelet port")

// NodeURL is where a node serves path: scheme://InternalIP:kubeletPort/path.
func NodeURL(node *corev1.Node, scheme, path string) (string, error) {
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && a.Address != "" && port > 0 {
			return scheme + "://" + net.JoinHostPort(a.Address, strconv.Itoa(int(port))) + path, nil
		}
	}
	return "", ErrNoAddress
}

// GetSummary implements SummaryGetter.
func (g HTTPGetter) GetSummary(ctx context.Context, node *corev1.Node) (*stats.Summary, error) {
	scheme := g.Scheme
	if scheme == "" {
		scheme = "http"
	}
	u, err := NodeURL(node, scheme, "/stats/summary?only_cpu_and_memory=true")
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	c := g.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, msg)
	}
	var s stats.Summary
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&s); err != nil {
		return nil, fmt.Errorf("GET %s: decoding summary: %w", u, err)
	}
	return &s, nil
}

// Config configures a Scraper.
type Config struct {
	Objects ObjectLister
	Getter  SummaryGetter
	// Resolution is how often all nodes are scraped (default 15s).
	Resolution time.Duration
	// NodeTimeout bounds one node's scrape (default and at most the
	// resolution).
	NodeTimeout time.Duration
	// Parallel is how many nodes are scraped at once (default 128): wide
	// enough that a few nodes that hang for the whole NodeTimeout do not
	// hold the round past its resolution.
	Parallel int
	Clock    clock.WithTicker
	Log      *zap.Logger
	// Registerer receives the scrape metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Scraper scrapes the nodes and keeps the latest metrics. It is safe for
// concurrent use.
type Scraper struct {
	cfg Config
	log *zap.Logger

	scrapes  *prometheus.CounterVec
	duration prometheus.Histogram

	mu    sync.RWMutex
	nodes map[string]*metricsv1beta1.NodeMetrics
	pods  map[types.NamespacedName]*metricsv1beta1.PodMetrics

	// cpu holds the previous round's cumulative readings, by container
	// (or node) key; only Scrape touches it.
	cpuMu sync.Mutex
	cpu   map[string]cpuPoint
}

type cpuPoint struct {
	at     time.Time // when the scraper received the reading
	nodeAt time.Time // when the node says it read it (whole seconds)
	start  time.Time
	total  uint64
}

// windowAgreement is how close the node's and the scraper's measures of a
// window must be for the node's to be used.
const windowAgreement = 50 * time.Millisecond

// New returns a scraper; Run starts it.
func New(cfg Config) (*Scraper, error) {
	if cfg.Objects == nil || cfg.Getter == nil || cfg.Log == nil {
		return nil, errors.New("metricsapi: Objects, Getter and Log are required")
	}
	if cfg.Resolution <= 0 {
		cfg.Resolution = 15 * time.Second
	}
	if cfg.NodeTimeout <= 0 || cfg.NodeTimeout > cfg.Resolution {
		cfg.NodeTimeout = cfg.Resolution
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 128
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	s := &Scraper{
		cfg: cfg,
		log: cfg.Log.Named("metrics-scraper"),
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kubeish", Subsystem: "apiserver", Name: "metrics_node_scrapes_total",
			Help: "Scrapes of nodes' /stats/summary for the resource metrics API, by result (success, error).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kubeish", Subsystem: "apiserver", Name: "metrics_scrape_duration_seconds",
			Help:    "Time one round of scraping every Ready node takes.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		nodes: map[string]*metricsv1beta1.NodeMetrics{},
		pods:  map[types.NamespacedName]*metricsv1beta1.PodMetrics{},
		cpu:   map[string]cpuPoint{},
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.scrapes); err != nil {
			return nil, err
		}
		if err := cfg.Registerer.Register(s.duration); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Resolution is the scrape interval, the window of a first reading.
func (s *Scraper) Resolution() time.Duration { return s.cfg.Resolution }

// Run scrapes at once and then every resolution until ctx ends.
func (s *Scraper) Run(ctx context.Context) {
	t := s.cfg.Clock.NewTicker(s.cfg.Resolution)
	defer t.Stop()
	for {
		s.Scrape(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// nodeResult is one node's answer in a round.
type nodeResult struct {
	node    *corev1.Node
	summary *stats.Summary
	// received is when the summary arrived, on the scraper's clock at full
	// precision: the summary's own times travel in whole seconds
	// (metav1.Time), too coarse to time a window of a few seconds.
	received time.Time
}

// Scrape runs one round: every Ready node is asked for its summary (in
// parallel, each under NodeTimeout), and what answered replaces the
// previous round. A node that does not answer is left out and logged; a
// failure to list nodes keeps the previous round.
func (s *Scraper) Scrape(ctx context.Context) {
	start := s.cfg.Clock.Now()
	defer func() { s.duration.Observe(s.cfg.Clock.Since(start).Seconds()) }()
	nodes, err := s.cfg.Objects.ListNodes(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("listing nodes to scrape", zap.Error(err))
		}
		return
	}
	results := make([]nodeResult, len(nodes))
	var g errgroup.Group
	g.SetLimit(s.cfg.Parallel)
	for i, n := range nodes {
		if !nodeReady(n) {
			continue
		}
		g.Go(func() error {
			nctx, cancel := context.WithTimeout(ctx, s.cfg.NodeTimeout)
			defer cancel()
			sum, err := s.cfg.Getter.GetSummary(nctx, n)
			if err != nil {
				s.scrapes.WithLabelValues("error").Inc()
				if ctx.Err() == nil {
					s.log.Info("node left out of this round of metrics", zap.String("node", n.Name), zap.Error(err))
				}
				return nil
			}
			s.scrapes.WithLabelValues("success").Inc()
			results[i] = nodeResult{node: n, summary: sum, received: s.cfg.Clock.Now()}
			return nil
		})
	}
	_ = g.Wait()
	if ctx.Err() != nil {
		return
	}
	pods, err := s.cfg.Objects.ListPods(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("listing pods for metrics", zap.Error(err))
		}
		return
	}
	s.store(results, pods)
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// store turns a round's summaries into metrics and swaps them in.
func (s *Scraper) store(results []nodeResult, pods []*corev1.Pod) {
	now := s.cfg.Clock.Now()
	byName := make(map[types.NamespacedName]*corev1.Pod, len(pods))
	for _, p := range pods {
		byName[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = p
	}
	nodes := map[string]*metricsv1beta1.NodeMetrics{}
	podMetrics := map[types.NamespacedName]*metricsv1beta1.PodMetrics{}

	s.cpuMu.Lock()
	prev := s.cpu
	next := map[string]cpuPoint{}
	for _, r := range results {
		if r.summary == nil {
			continue
		}
		n := r.node
		ns := &r.summary.Node
		if cpu, win, at, ok := s.cpuUsage("node/"+n.Name, ns.StartTime.Time, ns.CPU, r.received, prev, next); ok {
			if mem, ok := memoryUsage(ns.Memory); ok {
				nodes[n.Name] = &metricsv1beta1.NodeMetrics{
					ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: copyLabels(n.Labels), CreationTimestamp: metav1.NewTime(now)},
					Timestamp:  metav1.NewTime(at),
					Window:     metav1.Duration{Duration: win},
					Usage:      corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem},
				}
			}
		}
		for i := range r.summary.Pods {
			ps := &r.summary.Pods[i]
			key := types.NamespacedName{Namespace: ps.PodRef.Namespace, Name: ps.PodRef.Name}
			pod, ok := byName[key]
			if !ok || (ps.PodRef.UID != "" && string(pod.UID) != ps.PodRef.UID) {
				continue // gone from the API, or an older pod of that name
			}
			if pm := s.podMetrics(n.Name, pod, ps, now, r.received, prev, next); pm != nil {
				podMetrics[key] = pm
			}
		}
	}
	s.cpu = next
	s.cpuMu.Unlock()

	s.mu.Lock()
	s.nodes, s.pods = nodes, podMetrics
	s.mu.Unlock()
}

// podMetrics builds a pod's metrics from its containers; a pod where any
// container lacks CPU or memory is left out (as metrics-server does), so
// a consumer never sees a partial sum.
func (s *Scraper) podMetrics(node string, pod *corev1.Pod, ps *stats.PodStats, now, received time.Time, prev, next map[string]cpuPoint) *metricsv1beta1.PodMetrics {
	if len(ps.Containers) == 0 {
		return nil
	}
	pm := &metricsv1beta1.PodMetrics{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, Labels: copyLabels(pod.Labels), CreationTimestamp: metav1.NewTime(now)},
	}
	var latest time.Time
	var window time.Duration
	for _, c := range ps.Containers {
		key := "pod/" + node + "/" + pod.Namespace + "/" + pod.Name + "/" + string(pod.UID) + "/" + c.Name
		cpu, win, at, ok := s.cpuUsage(key, c.StartTime.Time, c.CPU, received, prev, next)
		if !ok {
			return nil
		}
		mem, ok := memoryUsage(c.Memory)
		if !ok {
			return nil
		}
		if at.After(latest) {
			latest = at
		}
		window = max(window, win)
		pm.Containers = append(pm.Containers, metricsv1beta1.ContainerMetrics{
			Name:  c.Name,
			Usage: corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem},
		})
	}
	sort.Slice(pm.Containers, func(i, j int) bool { return pm.Containers[i].Name < pm.Containers[j].Name })
	pm.Timestamp, pm.Window = metav1.NewTime(latest), metav1.Duration{Duration: window}
	return pm
}

// cpuUsage is the CPU rate of one cgroup: from the cumulative counter
// against the previous round when both rounds have it (same start time,
// the counter did not go back, time advanced), else the node's own
// usageNanoCores with the resolution as the window. The window between
// two rounds is timed by when each summary was received (full precision;
// the node read the counter a moment before sending it); the timestamp
// reported is the node's. It records the reading in next.
func (s *Scraper) cpuUsage(key string, start time.Time, c *stats.CPUStats, received time.Time, prev, next map[string]cpuPoint) (q resource.Quantity, window time.Duration, at time.Time, ok bool) {
	if c == nil {
		return q, 0, at, false
	}
	at = c.Time.Time
	if received.IsZero() {
		received = s.cfg.Clock.Now()
	}
	if at.IsZero() {
		at = received
	}
	if c.UsageCoreNanoSeconds != nil {
		cur := cpuPoint{at: received, nodeAt: at, start: start, total: *c.UsageCoreNanoSeconds}
		next[key] = cur
		if p, found := prev[key]; found && p.start.Equal(start) && cur.total >= p.total && cur.at.After(p.at) {
			dt := cur.at.Sub(p.at)
			// The node's clock timed its readings best, but its times
			// travel in whole seconds: trust them when they agree with
			// ours to within windowAgreement (they are then exact to
			// about that), else time the window by our receipts.
			if nd := cur.nodeAt.Sub(p.nodeAt); nd > 0 && (dt-nd).Abs() < windowAgreement {
				dt = nd
			}
			rate := float64(cur.total-p.total) / dt.Seconds()
			return *resource.NewScaledQuantity(int64(rate), resource.Nano), dt, at, true
		}
	}
	if c.UsageNanoCores != nil {
		return *resource.NewScaledQuantity(int64(*c.UsageNanoCores), resource.Nano), s.cfg.Resolution, at, true
	}
	return q, 0, at, false
}

func memoryUsage(m *stats.MemoryStats) (resource.Quantity, bool) {
	if m == nil || m.WorkingSetBytes == nil {
		return resource.Quantity{}, false
	}
	return *resource.NewQuantity(int64(*m.WorkingSetBytes), resource.BinarySI), true
}

func copyLabels(l map[string]string) map[string]string {
	if l == nil {
		return nil
	}
	out := make(map[string]string, len(l))
	for k, v := range l {
		out[k] = v
	}
	return out
}

// Nodes returns the latest metrics of the nodes whose labels match sel,
// sorted by name. The items are copies.
func (s *Scraper) Nodes(sel labels.Selector) []metricsv1beta1.NodeMetrics {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []metricsv1beta1.NodeMetrics{}
	for _, m := range s.nodes {
		if sel == nil || sel.Matches(labels.Set(m.Labels)) {
			out = append(out, *m.DeepCopy())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Node returns the latest metrics of one node.
func (s *Scraper) Node(name string) (*metricsv1beta1.NodeMetrics, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.nodes[name]
	if !ok {
		return nil, false
	}
	return m.DeepCopy(), true
}

// Pods returns the latest metrics of the pods in namespace ns (all
// namespaces when empty) whose labels match sel, sorted by namespace and
// name. The items are copies.
func (s *Scraper) Pods(ns string, sel labels.Selector) []metricsv1beta1.PodMetrics {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []metricsv1beta1.PodMetrics{}
	for key, m := range s.pods {
		if (ns == "" || key.Namespace == ns) && (sel == nil || sel.Matches(labels.Set(m.Labels))) {
			out = append(out, *m.DeepCopy())
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Pod returns the latest metrics of one pod.
func (s *Scraper) Pod(ns, name string) (*metricsv1beta1.PodMetrics, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.pods[types.NamespacedName{Namespace: ns, Name: name}]
	if !ok {
		return nil, false
	}
	return m.DeepCopy(), true
}

// Package stats reads the CPU and memory usage of the node's pods and
// containers from their cgroups (v1 or v2, cgroupfs paths) and serves it
// in two shapes: the kubelet's Summary API (/stats/summary, what
// metrics-server and autoscalers read) and cAdvisor's Prometheus metrics
// (/metrics/cadvisor: container_cpu_usage_seconds_total,
// container_memory_working_set_bytes). Usage is read when asked, not on a
// timer; the CPU rate (usageNanoCores) comes from the previous read of the
// same cgroup, which the Provider keeps.
package stats

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
)

// Pod is a pod of this node with the cgroups of its running containers.
type Pod struct {
	Namespace, Name, UID string
	StartTime            time.Time
	// CgroupPath is the pod's cgroup (its containers' parent), e.g.
	// /kubeish/node-1/pod<uid>.
	CgroupPath string
	Containers []Container
}

// Container is a running container and its cgroup.
type Container struct {
	Name       string
	StartTime  time.Time
	CgroupPath string
}

// PodLister lists the pods whose usage is reported. It is called on every
// read, so it should answer from memory or a cheap runtime list.
type PodLister interface {
	StatsPods(ctx context.Context) ([]Pod, error)
}

// Config configures a Provider.
type Config struct {
	NodeName string
	// CgroupRoot is where the cgroup filesystem is mounted (default
	// /sys/fs/cgroup).
	CgroupRoot string
	// CgroupParent is the cgroup all the node's pods live under; the
	// node's figures are read from it. Not the machine's root cgroup:
	// simulated nodes share one machine, and each must report its own.
	CgroupParent string
	Pods         PodLister
	Clock        clock.PassiveClock
	Log          *zap.Logger
	// FS replaces the cgroup filesystem (tests); default os.DirFS(CgroupRoot).
	FS fs.FS
}

// Provider reads usage on demand. It is safe for concurrent use.
type Provider struct {
	cfg   Config
	fsys  fs.FS
	mode  Mode
	start time.Time
	rates *rates
	reg   *prometheus.Registry
}

// New returns a provider. The cgroup layout is detected once here; an
// unknown layout makes reads fail (and the endpoints answer 500) rather
// than the agent refuse to start.
func New(cfg Config) *Provider {
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = "/sys/fs/cgroup"
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	fsys := cfg.FS
	if fsys == nil {
		fsys = os.DirFS(cfg.CgroupRoot)
	}
	p := &Provider{cfg: cfg, fsys: fsys, mode: DetectMode(fsys), start: cfg.Clock.Now(), rates: newRates(time.Second, 10*time.Minute)}
	p.reg = prometheus.NewRegistry()
	p.reg.MustRegister(newCollector(p))
	cfg.Log.Info("reading usage from cgroups", zap.Stringer("layout", p.mode), zap.String("root", cfg.CgroupRoot))
	return p
}

// Gatherer is the registry of /metrics/cadvisor: apart from the agent's
// own /metrics, as the kubelet keeps them, so per-container series never
// mix with the agent's.
func (p *Provider) Gatherer() prometheus.Gatherer { return p.reg }

// reading is one cgroup's usage plus the CPU rate, as the outputs need it.
type reading struct {
	Usage
	at   time.Time
	rate *uint64
}

func (p *Provider) read(cgroupPath string, now time.Time) (*reading, error) {
	u, err := ReadUsage(p.fsys, p.mode, cgroupPath)
	if err != nil {
		return nil, err
	}
	return &reading{Usage: u, at: now, rate: p.rates.observe(cgroupPath, now, u.CPUNanos)}, nil
}

type podReading struct {
	pod        Pod
	usage      *reading // nil when unreadable
	containers []containerReading
}

type containerReading struct {
	c     Container
	usage *reading
}

// gather reads the node, every pod and every container once.
func (p *Provider) gather(ctx context.Context) (*reading, []podReading, error) {
	pods, err := p.cfg.Pods.StatsPods(ctx)
	if err != nil {
		return nil, nil, err
	}
	now := p.cfg.Clock.Now()
	p.rates.prune(now)
	node, err := p.read(p.cfg.CgroupParent, now)
	if err != nil && !errors.Is(err, ErrNoCgroup) {
		// The layout is wrong or a file is unreadable: say so rather
		// than answer with empty figures.
		return nil, nil, err
	}
	out := make([]podReading, 0, len(pods))
	for _, pod := range pods {
		pr := podReading{pod: pod}
		// A pod or container gone between the list and the read is
		// left without figures, not an error.
		pr.usage, _ = p.read(pod.CgroupPath, now)
		for _, c := range pod.Containers {
			cr := containerReading{c: c}
			cr.usage, _ = p.read(c.CgroupPath, now)
			pr.containers = append(pr.containers, cr)
		}
		out = append(out, pr)
	}
	return node, out, nil
}

// Summary reads usage now and returns it in the Summary API's shape.
func (p *Provider) Summary(ctx context.Context) (*Summary, error) {
	node, pods, err := p.gather(ctx)
	if err != nil {
		return nil, err
	}
	s := &Summary{Node: NodeStats{NodeName: p.cfg.NodeName, StartTime: metav1.NewTime(p.start)}, Pods: make([]PodStats, 0, len(pods))}
	s.Node.CPU, s.Node.Memory = cpuStats(node), memoryStats(node)
	for _, pr := range pods {
		ps := PodStats{
			PodRef:     PodReference{Name: pr.pod.Name, Namespace: pr.pod.Namespace, UID: pr.pod.UID},
			StartTime:  metav1.NewTime(pr.pod.StartTime),
			Containers: make([]ContainerStats, 0, len(pr.containers)),
			CPU:        cpuStats(pr.usage),
			Memory:     memoryStats(pr.usage),
		}
		for _, cr := range pr.containers {
			ps.Containers = append(ps.Containers, ContainerStats{Name: cr.c.Name, StartTime: metav1.NewTime(cr.c.StartTime),
				CPU: cpuStats(cr.usage), Memory: memoryStats(cr.usage)})
		}
		s.Pods = append(s.Pods, ps)
	}
	return s, nil
}

func cpuStats(r *reading) *CPUStats {
	if r == nil {
		return nil
	}
	return &CPUStats{Time: metav1.NewTime(r.at), UsageNanoCores: r.rate, UsageCoreNanoSeconds: ptr(r.CPUNanos)}
}

func memoryStats(r *reading) *MemoryStats {
	if r == nil {
		return nil
	}
	return &MemoryStats{Time: metav1.NewTime(r.at), UsageBytes: ptr(r.MemoryUsage), WorkingSetBytes: ptr(r.WorkingSet),
		RSSBytes: ptr(r.RSS), PageFaults: ptr(r.PageFaults), MajorPageFaults: ptr(r.MajorPageFaults)}
}

func ptr(v uint64) *uint64 { return &v }

// rates turns cumulative CPU readings into a rate, per cgroup.
type rates struct {
	mu sync.Mutex
	// minWindow: a reading closer than this to the previous one repeats
	// the last rate instead of dividing by a tiny interval (two scrapers,
	// /stats/summary and /metrics/cadvisor, may read back to back).
	minWindow time.Duration
	// forget drops cgroups not read for this long (gone containers).
	forget time.Duration
	last   map[string]cpuSample
}

type cpuSample struct {
	at   time.Time
	cpu  uint64
	rate *uint64
}

func newRates(minWindow, forget time.Duration) *rates {
	return &rates{minWindow: minWindow, forget: forget, last: map[string]cpuSample{}}
}

// observe records a cumulative reading and returns the rate in
// nanocores since the previous one, or nil when there is none yet.
func (r *rates) observe(key string, at time.Time, cpu uint64) *uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, ok := r.last[key]
	if !ok || cpu < prev.cpu {
		// First reading, or the counter went back (a new cgroup with the
		// same path): start over.
		r.last[key] = cpuSample{at: at, cpu: cpu}
		return nil
	}
	dt := at.Sub(prev.at)
	if dt < r.minWindow {
		return prev.rate
	}
	rate := uint64(float64(cpu-prev.cpu) / dt.Seconds())
	r.last[key] = cpuSample{at: at, cpu: cpu, rate: &rate}
	return &rate
}

// prune forgets cgroups whose last kept reading is older than forget.
func (r *rates) prune(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, s := range r.last {
		if now.Sub(s.at) > r.forget {
			delete(r.last, k)
		}
	}
}

// collector exports cAdvisor's per-container series, read on scrape.
type collector struct {
	p                *Provider
	cpuDesc, memDesc *prometheus.Desc
}

func newCollector(p *Provider) *collector {
	labels := []string{"namespace", "pod", "container"}
	return &collector{p: p,
		cpuDesc: prometheus.NewDesc("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", labels, nil),
		memDesc: prometheus.NewDesc("container_memory_working_set_bytes", "Current working set in bytes.", labels, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.cpuDesc
	ch <- c.memDesc
}

// Collect implements prometheus.Collector. As cAdvisor does, each pod has
// series of its own cgroup with container="" besides its containers';
// queries summing per pod filter container!="".
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, pods, err := c.p.gather(ctx)
	if err != nil {
		c.p.cfg.Log.Warn("reading container usage", zap.Error(err))
		return
	}
	emit := func(r *reading, ns, pod, container string) {
		if r == nil {
			return
		}
		ch <- prometheus.MustNewConstMetric(c.cpuDesc, prometheus.CounterValue, float64(r.CPUNanos)/1e9, ns, pod, container)
		ch <- prometheus.MustNewConstMetric(c.memDesc, prometheus.GaugeValue, float64(r.WorkingSet), ns, pod, container)
	}
	for _, pr := range pods {
		emit(pr.usage, pr.pod.Namespace, pr.pod.Name, "")
		for _, cr := range pr.containers {
			emit(cr.usage, pr.pod.Namespace, pr.pod.Name, cr.c.Name)
		}
	}
}

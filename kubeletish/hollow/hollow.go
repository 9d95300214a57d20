// Package hollow runs many hollow nodes in one process, as kubemark and
// kwok do, but with kubeish's own agent code: each node is the real node
// registration (kubeletish/node: the Node, its status and its Lease
// heartbeats) and the real pod sync (kubeletish/pod.Manager), over a
// runtime that runs nothing (runtime.Hollow: containers start at once and
// run until stopped; sandbox addresses come from the node's pod CIDR, with
// no network namespace and no CNI). There is no service proxy, no DNS and
// no routes. Probes and hooks that would reach the pod over the network
// succeed (see hollowPod), so a hollow node sends traffic only to the
// apiserver.
//
// What the nodes share, so that a thousand of them fit on two cores: one
// clientset (one connection pool), one pod informer for every bound pod of
// the cluster, split per node (feed), one Node informer to learn the pod
// CIDRs the controller allocates, and one event broadcaster.
//
// A benchmark tool, not a node: its one server (--port: /metrics,
// /healthz, /debug/pprof) is plain HTTP without authentication, unlike
// the real agent's TLS API. It serves no logs or stats, and the apiserver
// would need --kubelet-insecure-http to reach its nodes' ports at all.
package hollow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/kubeish/kubeish/kubeletish/node"
	"github.com/kubeish/kubeish/kubeletish/pod"
	"github.com/kubeish/kubeish/kubeletish/runtime"
)

// LabelHollow marks the Nodes of hollow nodes (value "true").
const LabelHollow = "kubeish.io/hollow"

// KubeletVersion is reported as the hollow nodes' kubeletVersion.
const KubeletVersion = "v1.31.0-kubeish-hollow"

// Config configures a Runner.
type Config struct {
	// Nodes is how many nodes to run, named NamePrefix + 0 … Nodes-1.
	Nodes      int
	NamePrefix string
	// IP is every node's InternalIP, and Port its kubelet port: where the
	// apiserver would send log and stats requests. The default,
	// 127.0.0.1, keeps any such request on loopback.
	IP   string
	Port int32
	// PodCIDRRange, when set, gives node i the i-th subnet of this range
	// with prefix length PodCIDRMaskSize (default 24), written into its
	// Node at registration, for clusters without the controller's CIDR
	// allocation. Otherwise a node waits for the spec.podCIDR the
	// controller gives it.
	PodCIDRRange    string
	PodCIDRMaskSize int
	// Capacity of each node.
	CPU, Memory resource.Quantity
	MaxPods     int64
	// LeaseInterval is how often each node renews its Lease (default 10 s:
	// at 1,000 nodes that is 100 renewals a second, each a get and an
	// update; the real agent's 5 s would double that).
	LeaseInterval time.Duration
	// RelistPeriod and ResyncPeriod are each pod manager's (defaults 10 s
	// and 1 min: a hollow container changes only when the sync itself
	// changes it, so the relist that notices exits can be slow).
	RelistPeriod, ResyncPeriod time.Duration
	// RegisterConcurrency bounds the registrations in flight at start
	// (default 16).
	RegisterConcurrency int
	// RootDir holds the nodes' pod folders (RootDir/<node>): the pods'
	// /etc files and emptyDirs. Required.
	RootDir string
	Client  kubernetes.Interface
	Log     *zap.Logger
}

// Runner runs the hollow nodes.
type Runner struct {
	cfg   Config
	log   *zap.Logger
	nodes []*hollowNode

	mu         sync.Mutex
	registered int
}

type hollowNode struct {
	name    string
	runtime *runtime.Hollow
	agent   *node.Agent
	pods    *pod.Manager
}

// New checks cfg and returns a runner; Run starts the nodes.
func New(cfg Config) (*Runner, error) {
	if cfg.Nodes < 1 {
		return nil, errors.New("hollow: at least one node is needed")
	}
	if cfg.Client == nil || cfg.RootDir == "" {
		return nil, errors.New("hollow: Client and RootDir are required")
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.IP == "" {
		cfg.IP = "127.0.0.1"
	}
	if net.ParseIP(cfg.IP) == nil {
		return nil, fmt.Errorf("hollow: node IP %q is not an address", cfg.IP)
	}
	if cfg.CPU.IsZero() {
		cfg.CPU = resource.MustParse("4")
	}
	if cfg.Memory.IsZero() {
		cfg.Memory = resource.MustParse("16Gi")
	}
	if cfg.MaxPods == 0 {
		cfg.MaxPods = 110
	}
	if cfg.LeaseInterval == 0 {
		cfg.LeaseInterval = 10 * time.Second
	}
	if cfg.RelistPeriod == 0 {
		cfg.RelistPeriod = 10 * time.Second
	}
	if cfg.ResyncPeriod == 0 {
		cfg.ResyncPeriod = time.Minute
	}
	if cfg.RegisterConcurrency <= 0 {
		cfg.RegisterConcurrency = 16
	}
	if cfg.PodCIDRMaskSize == 0 {
		cfg.PodCIDRMaskSize = 24
	}
	var cidrs []string
	if cfg.PodCIDRRange != "" {
		var err error
		if cidrs, err = subnets(cfg.PodCIDRRange, cfg.PodCIDRMaskSize, cfg.Nodes); err != nil {
			return nil, fmt.Errorf("hollow: %w", err)
		}
	}
	r := &Runner{cfg: cfg, log: cfg.Log}
	for i := 0; i < cfg.Nodes; i++ {
		n := &hollowNode{name: fmt.Sprintf("%s%d", cfg.NamePrefix, i), runtime: runtime.NewHollow()}
		if cidrs != nil {
			if err := n.runtime.SetPodCIDR(cidrs[i]); err != nil {
				return nil, err
			}
		}
		r.nodes = append(r.nodes, n)
	}
	return r, nil
}

// NodeNames returns the names of the nodes the runner runs.
func (r *Runner) NodeNames() []string {
	out := make([]string, len(r.nodes))
	for i, n := range r.nodes {
		out[i] = n.name
	}
	return out
}

// Registered returns how many nodes have registered so far.
func (r *Runner) Registered() int { r.mu.Lock(); defer r.mu.Unlock(); return r.registered }

// Run registers the nodes and runs them until ctx ends. Every goroutine
// it starts has ended when it returns.
func (r *Runner) Run(ctx context.Context) error {
	cs := r.cfg.Client

	// Every bound pod, split per node: one watch for the whole process.
	// Pods bound to nodes of other processes come through too and are
	// dropped; a field selector cannot name a set of nodes.
	podFactory := informers.NewSharedInformerFactoryWithOptions(cs, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermNotEqualSelector("spec.nodeName", "").String()
		}))
	podInf := podFactory.Core().V1().Pods().Informer()
	feed := newFeed()

	// Nodes: to learn the pod CIDRs the controller allocates, without a
	// get per node and second while waiting.
	nodeFactory := informers.NewSharedInformerFactory(cs, 0)
	nodeInf := nodeFactory.Core().V1().Nodes().Informer()
	byName := map[string]*hollowNode{}
	for _, n := range r.nodes {
		byName[n.name] = n
	}
	onNode := func(o any) {
		nd, ok := o.(*v1.Node)
		if !ok || nd.Spec.PodCIDR == "" {
			return
		}
		if n := byName[nd.Name]; n != nil && n.runtime.PodCIDR() == "" {
			if err := n.runtime.SetPodCIDR(nd.Spec.PodCIDR); err != nil {
				r.log.Warn("pod CIDR", zap.String("node", nd.Name), zap.Error(err))
			}
		}
	}
	if _, err := nodeInf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onNode, UpdateFunc: func(_, o any) { onNode(o) }}); err != nil {
		return err
	}

	// Events (failed hooks) of every node go through one broadcaster;
	// each node records with its own source host.
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	defer broadcaster.Shutdown()

	for _, n := range r.nodes {
		log := r.log.With(zap.String("node", n.name))
		podCIDR := n.runtime.PodCIDR() // set only with PodCIDRRange
		rt := n.runtime
		n.agent = node.New(node.Config{Name: n.name, IP: r.cfg.IP, Port: r.cfg.Port, PodCIDR: podCIDR,
			Labels: map[string]string{LabelHollow: "true"},
			CPU:    r.cfg.CPU, Memory: r.cfg.Memory, MaxPods: r.cfg.MaxPods,
			RuntimeVersion: "hollow://1.0", KubeletVersion: KubeletVersion, LeaseInterval: r.cfg.LeaseInterval,
			Client: cs, Log: log.Named("node"),
			Ready: func() error {
				if rt.PodCIDR() == "" {
					return errors.New("network not ready: no pod CIDR")
				}
				return nil
			}})
		n.pods = pod.New(pod.Config{NodeName: n.name, HostIP: r.cfg.IP, Client: cs, Runtime: rt, Log: log.Named("pod"),
			RootDir: filepath.Join(r.cfg.RootDir, n.name), CgroupParent: "/kubeish-hollow/" + n.name,
			RelistPeriod: r.cfg.RelistPeriod, ResyncPeriod: r.cfg.ResyncPeriod,
			Recorder: broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: n.name}),
			Pods:     feed.node(n.name)})
	}
	if err := feed.start(podInf); err != nil {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	podFactory.Start(ctx.Done())
	nodeFactory.Start(ctx.Done())
	defer podFactory.Shutdown()
	defer nodeFactory.Shutdown()

	// Registration, a few nodes at a time; each node starts its heartbeats
	// and pod sync once registered, which also spreads the nodes' lease
	// renewals over the interval instead of all at the same instant.
	todo := make(chan *hollowNode)
	for w := 0; w < r.cfg.RegisterConcurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range todo {
				if !r.register(ctx, n) {
					continue // ctx ended
				}
				wg.Add(2)
				go func() { defer wg.Done(); n.agent.Run(ctx) }()
				go func() {
					defer wg.Done()
					if err := n.pods.Run(ctx); err != nil {
						r.log.Error("pod sync stopped", zap.String("node", n.name), zap.Error(err))
					}
				}()
			}
		}()
	}
	start := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(todo)
		for _, n := range r.nodes {
			select {
			case todo <- n:
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, false, func(context.Context) (bool, error) {
		return r.Registered() == len(r.nodes), nil
	}); err == nil {
		r.log.Info("hollow nodes registered", zap.Int("nodes", len(r.nodes)), zap.Duration("took", time.Since(start)))
	}
	<-ctx.Done()
	return nil
}

// register registers n, retrying with back-off until it succeeds or ctx
// ends (false).
func (r *Runner) register(ctx context.Context, n *hollowNode) bool {
	backoff := wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Steps: 1 << 30, Cap: 10 * time.Second, Jitter: 0.2}
	err := wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		if _, err := n.agent.Register(ctx); err != nil {
			r.log.Warn("registering node", zap.String("node", n.name), zap.Error(err))
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return false
	}
	r.mu.Lock()
	r.registered++
	r.mu.Unlock()
	return true
}

// subnets returns the first n subnets of prefix length size in cidr.
func subnets(cidr string, size, n int) ([]string, error) {
	_, r, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, err
	}
	ones, bits := r.Mask.Size()
	if bits != 32 || size < ones || size > 30 {
		return nil, fmt.Errorf("pod CIDR range %s: want an IPv4 range and a mask size from /%d to /30, not /%d", cidr, ones, size)
	}
	if size-ones < 31 && n > 1<<uint(size-ones) {
		return nil, fmt.Errorf("pod CIDR range %s holds %d /%d subnets, not %d", cidr, 1<<uint(size-ones), size, n)
	}
	base := r.IP.To4()
	b := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	out := make([]string, n)
	for i := range out {
		v := b + uint32(i)<<uint(32-size)
		out[i] = fmt.Sprintf("%d.%d.%d.%d/%d", v>>24, v>>16&0xff, v>>8&0xff, v&0xff, size)
	}
	return out, nil
}

// MakeRootDir returns dir, or a new temporary folder when dir is empty,
// and the function that removes what MakeRootDir made.
func MakeRootDir(dir string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, os.MkdirAll(dir, 0o755)
	}
	d, err := os.MkdirTemp("", "kubeletish-hollow-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { _ = os.RemoveAll(d) }, nil
}

package app

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/record"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/kubeish/kubeish/controller/deployment"
	"github.com/kubeish/kubeish/controller/endpoints"
	"github.com/kubeish/kubeish/controller/gc"
	"github.com/kubeish/kubeish/controller/hpa"
	"github.com/kubeish/kubeish/controller/loop"
	"github.com/kubeish/kubeish/controller/namespace"
	"github.com/kubeish/kubeish/controller/nodelifecycle"
	"github.com/kubeish/kubeish/controller/replicaset"
	"github.com/kubeish/kubeish/pkg/metrics"
)

// Component is the controller's name in events, the user agent and the
// leader Lease.
const Component = "kubeish-controller"

// Controller is one controller process.
type Controller struct {
	opts    *Options
	config  *rest.Config
	log     *zap.Logger
	metrics *metrics.Server
	loopM   *loop.Metrics
	leader  prometheus.Gauge
	leading atomic.Bool

	mu   sync.Mutex
	addr net.Addr
}

// New builds a controller from validated options and an apiserver config.
func New(o *Options, cfg *rest.Config, log *zap.Logger) (*Controller, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	srv := metrics.NewServer()
	if o.Profiling {
		srv.EnableProfiling()
	}
	metrics.RegisterWorkqueueMetrics(srv.Registry)
	c := &Controller{opts: o, config: rest.CopyConfig(cfg), log: log, metrics: srv, loopM: loop.NewMetrics(srv.Registry)}
	c.leader = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "kubeish", Subsystem: "controller", Name: "leader",
		Help: "1 while this process holds the leader Lease and runs the loops."})
	srv.Registry.MustRegister(c.leader)
	srv.AddHealthz("ping", func() error { return nil })
	if o.LeaderElection.Enabled && o.LeaderElection.Watchdog == nil {
		// Unhealthy when leading but not renewed for lease + 20s: a hung
		// leader, which a supervisor should restart.
		wd := leaderelection.NewLeaderHealthzAdaptor(20 * time.Second)
		o.LeaderElection.Watchdog = wd
		srv.AddHealthz("leader-election", func() error { return wd.Check(nil) })
	}
	return c, nil
}

// Registry is the process's metrics registry.
func (c *Controller) Registry() *prometheus.Registry { return c.metrics.Registry }

// Addr is where /metrics and /healthz listen, once Run has started.
func (c *Controller) Addr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// Leading reports whether this process currently runs the loops.
func (c *Controller) Leading() bool { return c.leading.Load() }

// Run serves metrics and health, then runs the loops while it holds the
// leader Lease (or at once without --leader-elect). It returns when ctx
// ends (nil) or leadership is lost (an error: exit, and start afresh).
func (c *Controller) Run(ctx context.Context) error {
	addr, err := c.metrics.Serve(ctx, c.opts.BindAddress, c.log)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.addr = addr
	c.mu.Unlock()
	c.log.Info("serving metrics and health", zap.String("address", addr.String()))
	cs, err := kubernetes.NewForConfig(c.config)
	if err != nil {
		return err
	}
	// The loops run in leader election's goroutine, which may still be
	// ending when Run returns: their error is handed over through a channel.
	loopsErr := make(chan error, 1)
	err = c.opts.LeaderElection.Run(ctx, cs, c.log, func(ctx context.Context) {
		loopsErr <- c.runLoops(ctx)
	}, func(leading bool) {
		c.leading.Store(leading)
		if leading {
			c.leader.Set(1)
		} else {
			c.leader.Set(0)
		}
	})
	var runErr error
	select {
	case runErr = <-loopsErr:
	default:
	}
	return utilerrors.NewAggregate([]error{err, runErr})
}

// runLoops builds the informers and every loop, and runs them until ctx
// ends.
func (c *Controller) runLoops(ctx context.Context) error {
	o := c.opts
	cs, err := kubernetes.NewForConfig(c.config)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(c.config)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(cs, o.ResyncPeriod)
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Component})

	podsInf := factory.Core().V1().Pods()
	rsInf := factory.Apps().V1().ReplicaSets()
	rsc, err := replicaset.New(replicaset.Config{Client: cs, Pods: podsInf, ReplicaSets: rsInf, Recorder: recorder,
		Log: c.log, Metrics: c.loopM})
	if err != nil {
		return err
	}
	dc, err := deployment.New(deployment.Config{Client: cs, Deployments: factory.Apps().V1().Deployments(), ReplicaSets: rsInf,
		Pods: podsInf, Recorder: recorder, Log: c.log, Metrics: c.loopM})
	if err != nil {
		return err
	}
	ec, err := endpoints.New(endpoints.Config{Client: cs, Services: factory.Core().V1().Services(), Pods: podsInf,
		Endpoints: factory.Core().V1().Endpoints(), Slices: factory.Discovery().V1().EndpointSlices(), Log: c.log, Metrics: c.loopM})
	if err != nil {
		return err
	}
	nc, err := namespace.New(namespace.Config{Client: cs, Dynamic: dyn, Namespaces: factory.Core().V1().Namespaces(),
		Log: c.log, Metrics: c.loopM})
	if err != nil {
		return err
	}
	cidr := ""
	if o.AllocateCIDRs {
		cidr = o.ClusterCIDR
	}
	nlc, err := nodelifecycle.New(nodelifecycle.Config{Client: cs, Nodes: factory.Core().V1().Nodes(),
		Leases: factory.Coordination().V1().Leases(), Pods: podsInf, Recorder: recorder, Log: c.log, Metrics: c.loopM,
		ClusterCIDR: cidr, NodeCIDRMaskSize: o.NodeCIDRMaskSize, MonitorPeriod: o.NodeMonitorPeriod,
		GracePeriod: o.NodeMonitorGracePeriod, EvictionTimeout: o.PodEvictionTimeout})
	if err != nil {
		return err
	}
	gcc, err := gc.New(gc.Config{Dynamic: dyn, Informers: factory, Log: c.log, Metrics: c.loopM})
	if err != nil {
		return err
	}
	mc, err := metricsclient.NewForConfig(c.config)
	if err != nil {
		return err
	}
	hc, err := hpa.New(hpa.Config{Client: cs, Metrics: hpa.APIMetrics{Client: mc}, HPAs: factory.Autoscaling().V2().HorizontalPodAutoscalers(),
		Pods: podsInf, Recorder: recorder, Log: c.log, LoopMetrics: c.loopM, SyncPeriod: o.HPASyncPeriod,
		DownscaleStabilization: o.HPADownscaleStabilization, Tolerance: o.HPATolerance,
		CPUInitializationPeriod: o.HPACPUInitializationPeriod, InitialReadinessDelay: o.HPAInitialReadinessDelay})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()

	type runner struct {
		name    string
		workers int
		run     func(context.Context, int) error
	}
	runners := []runner{
		{replicaset.Name, o.ConcurrentReplicaSetSyncs, rsc.Run},
		{deployment.Name, o.ConcurrentDeploymentSyncs, dc.Run},
		{endpoints.Name, o.ConcurrentEndpointSyncs, ec.Run},
		{namespace.Name, o.ConcurrentNamespaceSyncs, nc.Run},
		{nodelifecycle.Name, o.ConcurrentNodeSyncs, nlc.Run},
		{gc.Name, o.ConcurrentGCSyncs, gcc.Run},
		{hpa.Name, o.ConcurrentHPASyncs, hc.Run},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(runners))
	for i, r := range runners {
		wg.Go(func() {
			if err := r.run(ctx, r.workers); err != nil && ctx.Err() == nil {
				errs[i] = fmt.Errorf("%s: %w", r.name, err)
			}
		})
	}
	wg.Wait()
	return utilerrors.NewAggregate(errs)
}

// Package app wires the scheduler: flags and options, the clientset,
// informers, the metrics and health endpoint, leader election, and the
// Scheduler itself (the scheduling loop and the bounded binding pool).
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/kubeish/kubeish/pkg/client"
	"github.com/kubeish/kubeish/pkg/leaderelection"
	"github.com/kubeish/kubeish/pkg/logging"
	"github.com/kubeish/kubeish/pkg/metrics"
	"github.com/kubeish/kubeish/scheduler/framework"
	"github.com/kubeish/kubeish/scheduler/framework/plugins"
	"github.com/kubeish/kubeish/scheduler/queue"
)

// Options are the scheduler's flags.
type Options struct {
	Client         *client.Options
	LeaderElection *leaderelection.Options
	Logging        logging.Options

	BindAddress              string
	Profiling                bool
	SchedulerName            string
	PercentageOfNodesToScore int
	Parallelism              int
	MaxInflightBinds         int
	ScoreWeights             map[string]int64
	PodInitialBackoff        time.Duration
	PodMaxBackoff            time.Duration
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	c := client.NewOptions("kubeish-scheduler")
	// Each pod costs a binding and an Event; Kubernetes' 50 QPS would cap
	// the scheduler far below what the apiserver takes.
	c.QPS, c.Burst = 2000, 4000
	return &Options{
		Client:            c,
		LeaderElection:    leaderelection.NewOptions("kube-scheduler"),
		Logging:           logging.Options{Level: "info", Format: "console"},
		BindAddress:       ":10259",
		Profiling:         true,
		SchedulerName:     v1.DefaultSchedulerName,
		Parallelism:       16,
		MaxInflightBinds:  64,
		ScoreWeights:      map[string]int64{},
		PodInitialBackoff: time.Second,
		PodMaxBackoff:     10 * time.Second,
	}
}

// AddFlags registers the flags on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.Client.AddFlags(fs)
	o.LeaderElection.AddFlags(fs)
	o.Logging.AddFlags(fs)
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "address for /metrics, /healthz and /readyz (and /debug/pprof with --profiling)")
	fs.BoolVar(&o.Profiling, "profiling", o.Profiling, "serve Go's /debug/pprof on --bind-address")
	fs.StringVar(&o.SchedulerName, "scheduler-name", o.SchedulerName, "schedule only pods whose spec.schedulerName is this")
	fs.IntVar(&o.PercentageOfNodesToScore, "percentage-of-nodes-to-score", o.PercentageOfNodesToScore,
		"stop filtering once this percentage of the nodes (at least 100) is found feasible; 0 = adaptive (50% minus 1% per 125 nodes, at least 5%), 100 = all")
	fs.IntVar(&o.Parallelism, "parallelism", o.Parallelism, "goroutines that filter and score nodes for one pod")
	fs.IntVar(&o.MaxInflightBinds, "max-inflight-binds", o.MaxInflightBinds, "bindings (and status writes) in flight at once; the scheduling loop waits when all are busy")
	fs.StringToInt64Var(&o.ScoreWeights, "score-weights", o.ScoreWeights,
		"score plugin weights, e.g. SelectorSpread=2,NodeResourcesLeastAllocated=1 (0 disables a plugin); defaults: NodeResourcesLeastAllocated=1, NodeResourcesBalancedAllocation=1, SelectorSpread=2, NodeAffinity=2, TaintToleration=3")
	fs.DurationVar(&o.PodInitialBackoff, "pod-initial-backoff", o.PodInitialBackoff, "backoff of a pod after its first failed attempt; doubles per attempt")
	fs.DurationVar(&o.PodMaxBackoff, "pod-max-backoff", o.PodMaxBackoff, "longest backoff of a pod")
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	if o.PercentageOfNodesToScore < 0 || o.PercentageOfNodesToScore > 100 {
		errs = append(errs, fmt.Errorf("--percentage-of-nodes-to-score must be in [0, 100], not %d", o.PercentageOfNodesToScore))
	}
	if o.Parallelism < 1 {
		errs = append(errs, fmt.Errorf("--parallelism must be at least 1, not %d", o.Parallelism))
	}
	if o.MaxInflightBinds < 1 {
		errs = append(errs, fmt.Errorf("--max-inflight-binds must be at least 1, not %d", o.MaxInflightBinds))
	}
	if o.PodInitialBackoff <= 0 || o.PodMaxBackoff < o.PodInitialBackoff {
		errs = append(errs, fmt.Errorf("--pod-initial-backoff (%s) must be positive and at most --pod-max-backoff (%s)", o.PodInitialBackoff, o.PodMaxBackoff))
	}
	if _, err := plugins.Scores(o.ScoreWeights); err != nil {
		errs = append(errs, fmt.Errorf("--score-weights: %w", err))
	}
	if err := o.LeaderElection.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.SchedulerName == "" {
		errs = append(errs, errors.New("--scheduler-name must not be empty"))
	}
	return errors.Join(errs...)
}

// App is a set-up scheduler process: informers, metrics endpoint and
// scheduler, not yet scheduling.
type App struct {
	opts      *Options
	log       *zap.Logger
	client    kubernetes.Interface
	factory   informers.SharedInformerFactory
	sched     *Scheduler
	events    record.EventBroadcaster
	metrics   *metrics.Server
	synced    atomic.Bool
	leader    atomic.Bool
	listening bool
}

// New builds the scheduler process from validated options: log may be
// nil (then the options' logger is built).
func New(o *Options, log *zap.Logger) (*App, error) {
	if log == nil {
		var err error
		if log, err = o.Logging.Build(); err != nil {
			return nil, err
		}
	}
	cfg, err := o.Client.Config()
	if err != nil {
		return nil, err
	}
	return NewForConfig(o, cfg, log)
}

// NewForConfig is New with a given rest.Config (tests, benchmarks).
func NewForConfig(o *Options, cfg *rest.Config, log *zap.Logger) (*App, error) {
	cfg = rest.CopyConfig(cfg)
	// Protobuf, as Kubernetes' own components use: decoding the pod watch
	// is the scheduler's largest fixed cost per pod, and protobuf is several
	// times cheaper than JSON for both ends.
	if cfg.ContentType == "" {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	}
	widenIdlePool(cfg, o.MaxInflightBinds)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	scores, err := plugins.Scores(o.ScoreWeights)
	if err != nil {
		return nil, err
	}
	fw, err := framework.New(framework.Config{
		Filters: plugins.DefaultFilters(), Scores: scores,
		Parallelism: o.Parallelism, PercentageOfNodesToScore: o.PercentageOfNodesToScore,
	})
	if err != nil {
		return nil, err
	}
	a := &App{opts: o, log: log.Named("scheduler"), client: cs, metrics: metrics.NewServer()}
	a.factory = informers.NewSharedInformerFactory(cs, 0)
	podInf := a.factory.Core().V1().Pods().Informer()
	nodeInf := a.factory.Core().V1().Nodes().Informer()
	// Only what scheduling reads stays in the caches (see slimPod).
	if err := podInf.SetTransform(slimPod); err != nil {
		return nil, err
	}
	if err := nodeInf.SetTransform(stripManagedFields); err != nil {
		return nil, err
	}
	a.events = record.NewBroadcaster()
	recorder := a.events.NewRecorder(scheme.Scheme, v1.EventSource{Component: o.SchedulerName})
	a.sched, err = NewScheduler(Config{
		Client: cs, PodInformer: podInf, NodeInformer: nodeInf, Framework: fw,
		Recorder: recorder, Registry: a.metrics.Registry, Log: a.log,
		SchedulerName: o.SchedulerName, MaxInflightBinds: o.MaxInflightBinds,
		Queue: queue.Config{InitialBackoff: o.PodInitialBackoff, MaxBackoff: o.PodMaxBackoff},
	})
	if err != nil {
		return nil, err
	}
	a.metrics.AddReadyz("informer-sync", func() error {
		if !a.synced.Load() {
			return errors.New("informers not synced")
		}
		return nil
	})
	if o.Profiling {
		a.metrics.EnableProfiling()
	}
	return a, nil
}

// widenIdlePool lets the HTTP client keep as many idle connections to
// the apiserver as bindings run at once; client-go's default of 25 would
// close and redial connections under a pool of 64.
func widenIdlePool(cfg *rest.Config, n int) {
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		if t, ok := rt.(*http.Transport); ok && t.MaxIdleConnsPerHost < 2*n {
			t.MaxIdleConnsPerHost = 2 * n
		}
		return rt
	})
}

// Serve starts the metrics endpoint and returns its address.
func (a *App) Serve(ctx context.Context) (net.Addr, error) {
	a.listening = true
	return a.metrics.Serve(ctx, a.opts.BindAddress, a.log)
}

// Run starts the informers, waits for them, and schedules while this
// process leads. It returns when ctx ends (nil) or leadership is lost.
func (a *App) Run(ctx context.Context) error {
	if !a.listening {
		addr, err := a.Serve(ctx)
		if err != nil {
			return err
		}
		a.log.Info("serving metrics", zap.String("address", addr.String()))
	}
	a.events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.client.CoreV1().Events("")})
	defer a.events.Shutdown()
	a.factory.Start(ctx.Done())
	defer a.factory.Shutdown()
	for typ, ok := range a.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("informer for %v did not sync", typ)
		}
	}
	a.synced.Store(true)
	nodes, pods := a.sched.cache.Counts()
	a.log.Info("caches synced", zap.Int("nodes", nodes), zap.Int("boundPods", pods))
	return a.opts.LeaderElection.Run(ctx, a.client, a.log, a.sched.Run, a.leader.Store)
}

// IsLeader reports whether this process leads (or runs without election).
func (a *App) IsLeader() bool { return a.leader.Load() }

// Package app wires the controller process: flags and their validation,
// client, informers, event recorder, metrics and health endpoint, leader
// election, and every reconcile loop.
package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/kubeish/kubeish/controller/nodelifecycle"
	"github.com/kubeish/kubeish/pkg/client"
	"github.com/kubeish/kubeish/pkg/leaderelection"
	"github.com/kubeish/kubeish/pkg/logging"
)

// Options are the controller's flags.
type Options struct {
	Client         *client.Options
	LeaderElection *leaderelection.Options
	Logging        logging.Options

	// BindAddress serves /metrics, /healthz and /readyz.
	BindAddress string
	// Profiling serves Go's /debug/pprof on BindAddress.
	Profiling bool

	ClusterCIDR      string
	NodeCIDRMaskSize int
	AllocateCIDRs    bool

	NodeMonitorPeriod      time.Duration
	NodeMonitorGracePeriod time.Duration
	PodEvictionTimeout     time.Duration

	ConcurrentReplicaSetSyncs int
	ConcurrentDeploymentSyncs int
	ConcurrentEndpointSyncs   int
	ConcurrentNamespaceSyncs  int
	ConcurrentNodeSyncs       int
	ConcurrentGCSyncs         int
	ConcurrentHPASyncs        int

	// HorizontalPodAutoscaler loop, with kube-controller-manager's flag
	// names and defaults.
	HPASyncPeriod              time.Duration
	HPADownscaleStabilization  time.Duration
	HPATolerance               float64
	HPACPUInitializationPeriod time.Duration
	HPAInitialReadinessDelay   time.Duration

	// ResyncPeriod is the informers' full resync, which recovers anything
	// missed.
	ResyncPeriod time.Duration
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	c := client.NewOptions("kubeish-controller")
	// Each replica costs a pod create and each new node a CIDR write: at
	// 100 QPS a Deployment of 3,000 rolls out at ~100 pods/s and 1,000 nodes
	// get their CIDRs in 10 s, far below what the apiserver takes; it
	// protects itself with its in-flight limits (429 and Retry-After, which
	// client-go honours), as the scheduler's 2,000 QPS also assumes.
	c.QPS, c.Burst = 2000, 4000
	return &Options{
		Client:                     c,
		LeaderElection:             leaderelection.NewOptions("kubeish-controller"),
		Logging:                    logging.Options{Level: "info", Format: "console"},
		BindAddress:                ":10257",
		ClusterCIDR:                "10.244.0.0/16",
		NodeCIDRMaskSize:           24,
		AllocateCIDRs:              true,
		NodeMonitorPeriod:          5 * time.Second,
		NodeMonitorGracePeriod:     20 * time.Second,
		PodEvictionTimeout:         30 * time.Second,
		ConcurrentReplicaSetSyncs:  5,
		ConcurrentDeploymentSyncs:  5,
		ConcurrentEndpointSyncs:    5,
		ConcurrentNamespaceSyncs:   2,
		ConcurrentNodeSyncs:        2,
		ConcurrentGCSyncs:          10,
		ConcurrentHPASyncs:         5,
		HPASyncPeriod:              15 * time.Second,
		HPADownscaleStabilization:  5 * time.Minute,
		HPATolerance:               0.1,
		HPACPUInitializationPeriod: 5 * time.Minute,
		HPAInitialReadinessDelay:   30 * time.Second,
		ResyncPeriod:               10 * time.Minute,
	}
}

// AddFlags registers every flag on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.Client.AddFlags(fs)
	o.LeaderElection.AddFlags(fs)
	o.Logging.AddFlags(fs)
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "address for /metrics, /healthz and /readyz (host:port; port 0 picks a free one)")
	fs.BoolVar(&o.Profiling, "profiling", o.Profiling, "serve Go's /debug/pprof on --bind-address")
	fs.StringVar(&o.ClusterCIDR, "cluster-cidr", o.ClusterCIDR, "CIDR the nodes' pod CIDRs are carved from")
	fs.IntVar(&o.NodeCIDRMaskSize, "node-cidr-mask-size", o.NodeCIDRMaskSize, "prefix length of each node's pod CIDR (24: 256 addresses per node)")
	fs.BoolVar(&o.AllocateCIDRs, "allocate-node-cidrs", o.AllocateCIDRs, "allocate each new node a pod CIDR from --cluster-cidr")
	fs.DurationVar(&o.NodeMonitorPeriod, "node-monitor-period", o.NodeMonitorPeriod, "how often every node's lease is checked")
	fs.DurationVar(&o.NodeMonitorGracePeriod, "node-monitor-grace-period", o.NodeMonitorGracePeriod, "how long a node's lease may go unrenewed before the node is marked Ready=Unknown and unreachable")
	fs.DurationVar(&o.PodEvictionTimeout, "pod-eviction-timeout", o.PodEvictionTimeout, "how long a node stays not ready before its pods are force-deleted")
	fs.IntVar(&o.ConcurrentReplicaSetSyncs, "concurrent-replicaset-syncs", o.ConcurrentReplicaSetSyncs, "ReplicaSets synced at once (workers)")
	fs.IntVar(&o.ConcurrentDeploymentSyncs, "concurrent-deployment-syncs", o.ConcurrentDeploymentSyncs, "Deployments synced at once (workers)")
	fs.IntVar(&o.ConcurrentEndpointSyncs, "concurrent-endpoint-syncs", o.ConcurrentEndpointSyncs, "Services whose Endpoints and EndpointSlices are synced at once (workers)")
	fs.IntVar(&o.ConcurrentNamespaceSyncs, "concurrent-namespace-syncs", o.ConcurrentNamespaceSyncs, "namespaces emptied at once (workers)")
	fs.IntVar(&o.ConcurrentNodeSyncs, "concurrent-node-syncs", o.ConcurrentNodeSyncs, "nodes checked at once (workers)")
	fs.IntVar(&o.ConcurrentGCSyncs, "concurrent-gc-syncs", o.ConcurrentGCSyncs, "objects the garbage collector checks at once (workers)")
	fs.IntVar(&o.ConcurrentHPASyncs, "concurrent-horizontal-pod-autoscaler-syncs", o.ConcurrentHPASyncs, "HorizontalPodAutoscalers evaluated at once (workers)")
	fs.DurationVar(&o.HPASyncPeriod, "horizontal-pod-autoscaler-sync-period", o.HPASyncPeriod, "how often each HorizontalPodAutoscaler is evaluated")
	fs.DurationVar(&o.HPADownscaleStabilization, "horizontal-pod-autoscaler-downscale-stabilization", o.HPADownscaleStabilization, "scale-down stabilization window of autoscalers whose behavior sets none: the highest recommendation within it is used")
	fs.Float64Var(&o.HPATolerance, "horizontal-pod-autoscaler-tolerance", o.HPATolerance, "how far usage may stray from the target (0.1: 10%) before an autoscaler rescales")
	fs.DurationVar(&o.HPACPUInitializationPeriod, "horizontal-pod-autoscaler-cpu-initialization-period", o.HPACPUInitializationPeriod, "after a pod starts, how long its CPU samples are ignored unless it is ready and was measured after becoming ready")
	fs.DurationVar(&o.HPAInitialReadinessDelay, "horizontal-pod-autoscaler-initial-readiness-delay", o.HPAInitialReadinessDelay, "after a pod starts, how long readiness changes count as the pod still starting")
	fs.DurationVar(&o.ResyncPeriod, "resync-period", o.ResyncPeriod, "full resync of the informer caches, which re-checks every object")
}

// Validate checks the flags together.
func (o *Options) Validate() error {
	var errs []error
	if err := o.LeaderElection.Validate(); err != nil {
		errs = append(errs, err)
	}
	if o.AllocateCIDRs {
		if _, err := nodelifecycle.NewCIDRSet(o.ClusterCIDR, o.NodeCIDRMaskSize); err != nil {
			errs = append(errs, fmt.Errorf("--cluster-cidr/--node-cidr-mask-size: %w", err))
		}
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--node-monitor-period", o.NodeMonitorPeriod}, {"--node-monitor-grace-period", o.NodeMonitorGracePeriod},
		{"--pod-eviction-timeout", o.PodEvictionTimeout}, {"--horizontal-pod-autoscaler-sync-period", o.HPASyncPeriod},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, not %s", d.flag, d.v))
		}
	}
	for _, n := range []struct {
		flag string
		v    int
	}{
		{"--concurrent-replicaset-syncs", o.ConcurrentReplicaSetSyncs}, {"--concurrent-deployment-syncs", o.ConcurrentDeploymentSyncs},
		{"--concurrent-endpoint-syncs", o.ConcurrentEndpointSyncs}, {"--concurrent-namespace-syncs", o.ConcurrentNamespaceSyncs},
		{"--concurrent-node-syncs", o.ConcurrentNodeSyncs}, {"--concurrent-gc-syncs", o.ConcurrentGCSyncs},
		{"--concurrent-horizontal-pod-autoscaler-syncs", o.ConcurrentHPASyncs},
	} {
		if n.v < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1, not %d", n.flag, n.v))
		}
	}
	if o.HPATolerance < 0 {
		errs = append(errs, fmt.Errorf("--horizontal-pod-autoscaler-tolerance must not be negative, not %g", o.HPATolerance))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--horizontal-pod-autoscaler-downscale-stabilization", o.HPADownscaleStabilization},
		{"--horizontal-pod-autoscaler-cpu-initialization-period", o.HPACPUInitializationPeriod},
		{"--horizontal-pod-autoscaler-initial-readiness-delay", o.HPAInitialReadinessDelay},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, not %s", d.flag, d.v))
		}
	}
	return errors.Join(errs...)
}

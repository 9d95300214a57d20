// Package leaderelection runs a component active/standby on a Lease in
// kube-system, with the flags Kubernetes' components use. It wraps
// client-go's leaderelection; the Lease is an ordinary API object.
package leaderelection

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Options are the --leader-elect* flags.
type Options struct {
	Enabled       bool
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	Namespace     string
	Name          string
	// Identity of this process in the Lease's holderIdentity; default
	// hostname_uuid.
	Identity string
	// Watchdog, if set, is attached to the elector so a /healthz check can
	// report a leader that has stopped renewing (a hung process).
	Watchdog *leaderelection.HealthzAdaptor
}

// NewOptions returns Kubernetes' defaults for a Lease named name.
func NewOptions(name string) *Options {
	return &Options{
		Enabled:       true,
		LeaseDuration: 15 * time.Second,
		RenewDeadline: 10 * time.Second,
		RetryPeriod:   2 * time.Second,
		Namespace:     "kube-system",
		Name:          name,
	}
}

// AddFlags registers the flags on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Enabled, "leader-elect", o.Enabled, "run only while holding the leader Lease, so that several replicas can run active/standby")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", o.LeaseDuration, "how long standbys wait before taking over a Lease that is not renewed")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", o.RenewDeadline, "how long the leader keeps retrying a renewal before it gives up leading")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", o.RetryPeriod, "how often to try to acquire or renew the Lease")
	fs.StringVar(&o.Namespace, "leader-elect-resource-namespace", o.Namespace, "namespace of the leader Lease")
	fs.StringVar(&o.Name, "leader-elect-resource-name", o.Name, "name of the leader Lease")
	fs.StringVar(&o.Identity, "leader-elect-identity", o.Identity, "holder identity written to the Lease (default: hostname_random)")
}

// Validate checks the durations the way client-go requires them.
func (o *Options) Validate() error {
	if !o.Enabled {
		return nil
	}
	if o.LeaseDuration <= o.RenewDeadline {
		return fmt.Errorf("--leader-elect-lease-duration (%s) must be longer than --leader-elect-renew-deadline (%s)", o.LeaseDuration, o.RenewDeadline)
	}
	if o.RenewDeadline <= o.RetryPeriod {
		return fmt.Errorf("--leader-elect-renew-deadline (%s) must be longer than --leader-elect-retry-period (%s)", o.RenewDeadline, o.RetryPeriod)
	}
	return nil
}

// Run calls run while this process leads and returns when ctx ends or
// leadership is lost (the caller should then exit, as Kubernetes'
// components do, so a fresh process starts from clean caches). Without
// --leader-elect it calls run directly. isLeader, if not nil, is set to
// report leadership (for a metric or /healthz).
func (o *Options) Run(ctx context.Context, cs kubernetes.Interface, log *zap.Logger, run func(ctx context.Context), isLeader func(bool)) error {
	if isLeader == nil {
		isLeader = func(bool) {}
	}
	if !o.Enabled {
		isLeader(true)
		run(ctx)
		return nil
	}
	id := o.Identity
	if id == "" {
		host, _ := os.Hostname()
		id = host + "_" + uuid.NewString()
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	lost := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   o.LeaseDuration,
		RenewDeadline:   o.RenewDeadline,
		RetryPeriod:     o.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            o.Name,
		WatchDog:        o.Watchdog,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("started leading", zap.String("lease", o.Namespace+"/"+o.Name), zap.String("identity", id))
				isLeader(true)
				run(ctx)
			},
			OnStoppedLeading: func() {
				isLeader(false)
				log.Info("stopped leading", zap.String("lease", o.Namespace+"/"+o.Name))
				close(lost)
			},
			OnNewLeader: func(holder string) {
				if holder != id {
					log.Info("another process leads", zap.String("holder", holder))
				}
			},
		},
	})
	if err != nil {
		return err
	}
	le.Run(ctx)
	<-lost
	if ctx.Err() == nil {
		return fmt.Errorf("lost the leader Lease %s/%s", o.Namespace, o.Name)
	}
	return nil
}

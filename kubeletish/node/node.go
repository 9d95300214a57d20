// Package node registers the agent's Node, keeps its status (conditions,
// capacity, addresses, nodeInfo) and renews its Lease in kube-node-lease.
package node

import (
	"context"
	"fmt"
	goruntime "runtime"
	"time"

	"go.uber.org/zap"
	coordv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Config configures the node agent's registration.
type Config struct {
	Name   string
	IP     string
	Port   int32
	Labels map[string]string
	// PodCIDR is written into a new Node's spec (standalone use); otherwise
	// the controller allocates one.
	PodCIDR                     string
	CPU                         resource.Quantity
	Memory                      resource.Quantity
	MaxPods                     int64
	ReservedCPU, ReservedMemory resource.Quantity
	RuntimeVersion              string
	KubeletVersion              string
	LeaseInterval               time.Duration
	// StatusInterval: the node status is written when it changes, and at
	// least this often (1 min).
	StatusInterval time.Duration
	// Ready reports the agent's health: nil is Ready.
	Ready func() error
	// Usage reads what the pressure conditions are computed from (nil:
	// no pressure is ever reported); Thresholds are their limits
	// (default DefaultThresholds).
	Usage      func() (Usage, error)
	Thresholds *Thresholds
	Client     kubernetes.Interface
	Clock      clock.Clock
	Log        *zap.Logger
}

// Agent keeps the Node object and its Lease.
type Agent struct {
	cfg Config
	// lease is the Lease as last written: renewals update it directly
	// (one request, as the kubelet does) and read it again only after a
	// failed write. Only Run's goroutine touches it.
	lease *coordv1.Lease
}

// New returns an agent.
func New(cfg Config) *Agent {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.LeaseInterval == 0 {
		cfg.LeaseInterval = 5 * time.Second
	}
	if cfg.StatusInterval == 0 {
		cfg.StatusInterval = time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Thresholds == nil {
		t := DefaultThresholds()
		cfg.Thresholds = &t
	}
	return &Agent{cfg: cfg}
}

// Register creates the Node, or takes over the existing one; it returns
// the Node as stored.
func (a *Agent) Register(ctx context.Context) (*v1.Node, error) {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.Name, Labels: a.labels()}, Spec: v1.NodeSpec{PodCIDR: a.cfg.PodCIDR}}
	if a.cfg.PodCIDR != "" {
		n.Spec.PodCIDRs = []string{a.cfg.PodCIDR}
	}
	created, err := a.cfg.Client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err == nil {
		a.cfg.Log.Info("node registered")
		return created, a.updateStatus(ctx, created)
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	existing, err := a.cfg.Client.CoreV1().Nodes().Get(ctx, a.cfg.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	changed := false
	for k, v := range a.labels() {
		if existing.Labels[k] != v {
			if existing.Labels == nil {
				existing.Labels = map[string]string{}
			}
			existing.Labels[k], changed = v, true
		}
	}
	if existing.Spec.PodCIDR == "" && a.cfg.PodCIDR != "" {
		existing.Spec.PodCIDR, existing.Spec.PodCIDRs, changed = a.cfg.PodCIDR, []string{a.cfg.PodCIDR}, true
	}
	if changed {
		if existing, err = a.cfg.Client.CoreV1().Nodes().Update(ctx, existing, metav1.UpdateOptions{}); err != nil {
			return nil, err
		}
	}
	a.cfg.Log.Info("node re-registered")
	return existing, a.updateStatus(ctx, existing)
}

func (a *Agent) labels() map[string]string {
	l := map[string]string{
		"kubernetes.io/hostname": a.cfg.Name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     goruntime.GOARCH,
	}
	for k, v := range a.cfg.Labels {
		l[k] = v
	}
	return l
}

// Status returns the node status the agent reports; old gives the
// transition times to keep.
func (a *Agent) Status(old v1.NodeStatus) v1.NodeStatus {
	alloc := func(total, reserved resource.Quantity) resource.Quantity {
		q := total.DeepCopy()
		q.Sub(reserved)
		return q
	}
	capacity := v1.ResourceList{
		v1.ResourceCPU:    a.cfg.CPU,
		v1.ResourceMemory: a.cfg.Memory,
		v1.ResourcePods:   *resource.NewQuantity(a.cfg.MaxPods, resource.DecimalSI),
	}
	st := v1.NodeStatus{
		Capacity: capacity,
		Allocatable: v1.ResourceList{
			v1.ResourceCPU:    alloc(a.cfg.CPU, a.cfg.ReservedCPU),
			v1.ResourceMemory: alloc(a.cfg.Memory, a.cfg.ReservedMemory),
			v1.ResourcePods:   capacity[v1.ResourcePods],
		},
		Addresses:       []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: a.cfg.IP}, {Type: v1.NodeHostName, Address: a.cfg.Name}},
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: a.cfg.Port}},
		NodeInfo: v1.NodeSystemInfo{
			OperatingSystem:         "linux",
			Architecture:            goruntime.GOARCH,
			ContainerRuntimeVersion: a.cfg.RuntimeVersion,
			KubeletVersion:          a.cfg.KubeletVersion,
			KubeProxyVersion:        a.cfg.KubeletVersion,
		},
		Images: old.Images,
	}
	now := metav1.NewTime(a.cfg.Clock.Now().UTC().Truncate(time.Second))
	cond := func(t v1.NodeConditionType, s v1.ConditionStatus, reason, msg string) {
		c := v1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
		for _, o := range old.Conditions {
			if o.Type == t && o.Status == s {
				c.LastTransitionTime = o.LastTransitionTime
				if o.Reason == reason && o.Message == msg {
					// Unchanged: keep the heartbeat too, so that nothing is
					// written until StatusInterval passes.
					c.LastHeartbeatTime = o.LastHeartbeatTime
				}
			}
		}
		st.Conditions = append(st.Conditions, c)
	}
	if a.cfg.Usage != nil {
		u, err := a.cfg.Usage()
		for _, c := range PressureConditions(u, err, *a.cfg.Thresholds) {
			cond(c.Type, c.Status, c.Reason, c.Message)
		}
	} else {
		cond(v1.NodeMemoryPressure, v1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available")
		cond(v1.NodeDiskPressure, v1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure")
	}
	cond(v1.NodePIDPressure, v1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available")
	if err := a.ready(); err != nil {
		cond(v1.NodeReady, v1.ConditionFalse, "KubeletNotReady", err.Error())
	} else {
		cond(v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status")
	}
	return st
}

func (a *Agent) ready() error {
	if a.cfg.Ready == nil {
		return nil
	}
	return a.cfg.Ready()
}

func (a *Agent) updateStatus(ctx context.Context, n *v1.Node) error {
	st := a.Status(n.Status)
	if apiequality.Semantic.DeepEqual(st, n.Status) {
		return nil
	}
	n = n.DeepCopy()
	n.Status = st
	_, err := a.cfg.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	return err
}

// Run renews the Lease every LeaseInterval and updates the node status on
// change (checked every 10 s) or every StatusInterval, until ctx ends.
func (a *Agent) Run(ctx context.Context) {
	lease := time.NewTicker(a.cfg.LeaseInterval)
	defer lease.Stop()
	status := time.NewTicker(10 * time.Second)
	defer status.Stop()
	lastFull := a.cfg.Clock.Now()
	a.renewLease(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-lease.C:
			a.renewLease(ctx)
		case <-status.C:
			// resourceVersion "0": served from the apiserver's watch cache,
			// as the kubelet reads its Node; a stale copy only costs a
			// conflict on the status write, retried on the next tick.
			n, err := a.cfg.Client.CoreV1().Nodes().Get(ctx, a.cfg.Name, metav1.GetOptions{ResourceVersion: "0"})
			if apierrors.IsNotFound(err) {
				if _, err := a.Register(ctx); err != nil {
					a.cfg.Log.Warn("re-registering node", zap.Error(err))
				}
				continue
			}
			if err != nil {
				a.cfg.Log.Warn("reading node", zap.Error(err))
				continue
			}
			if a.cfg.Clock.Since(lastFull) >= a.cfg.StatusInterval {
				// Force a heartbeat in the conditions.
				for i := range n.Status.Conditions {
					n.Status.Conditions[i].LastHeartbeatTime = metav1.Time{}
				}
				lastFull = a.cfg.Clock.Now()
			}
			if err := a.updateStatus(ctx, n); err != nil {
				a.cfg.Log.Warn("updating node status", zap.Error(err))
			}
		}
	}
}

// LeaseNamespace holds the nodes' heartbeat Leases.
const LeaseNamespace = "kube-node-lease"

func (a *Agent) renewLease(ctx context.Context) {
	if err := a.RenewLease(ctx); err != nil {
		a.cfg.Log.Warn("renewing lease", zap.Error(err))
	}
}

// RenewLease creates or renews the node's Lease. Not safe for concurrent
// use: Run calls it from its one goroutine.
func (a *Agent) RenewLease(ctx context.Context) error {
	leases := a.cfg.Client.CoordinationV1().Leases(LeaseNamespace)
	now := metav1.NewMicroTime(a.cfg.Clock.Now())
	dur := int32(4 * a.cfg.LeaseInterval / time.Second)
	if dur < 1 {
		dur = 1
	}
	if a.lease != nil {
		l := a.lease.DeepCopy()
		l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &now, &dur
		if written, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err == nil {
			a.lease = written
			return nil
		}
		// Changed or gone under us: read it again below.
		a.lease = nil
	}
	l, err := leases.Get(ctx, a.cfg.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		holder := a.cfg.Name
		a.lease, err = leases.Create(ctx, &coordv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: a.cfg.Name, Namespace: LeaseNamespace},
			Spec:       coordv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur, RenewTime: &now},
		}, metav1.CreateOptions{})
		if err != nil {
			a.lease = nil
		}
		return err
	}
	if err != nil {
		return err
	}
	l.Spec.RenewTime = &now
	l.Spec.LeaseDurationSeconds = &dur
	written, err := leases.Update(ctx, l, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("lease update: %w", err)
	}
	a.lease = written
	return nil
}

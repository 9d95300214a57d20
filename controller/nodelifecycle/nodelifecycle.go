// Package nodelifecycle is the node lifecycle loop: it allocates every new
// Node a pod CIDR from the cluster CIDR (never twice, freed when the Node
// goes), watches the node Leases in kube-node-lease, marks a node whose
// agent stopped renewing for longer than the grace period Ready=Unknown
// with the unreachable NoExecute taint and its pods not ready, and after
// the eviction timeout force-deletes its pods (grace period 0: their node
// is not there to confirm) so their owners replace them elsewhere.
package nodelifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	coordinformers "k8s.io/client-go/informers/coordination/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/kubeish/kubeish/controller/loop"
	"github.com/kubeish/kubeish/controller/pods"
)

// Names of the two loops.
const (
	Name     = "nodelifecycle"
	IPAMName = "nodeipam"
	// LeaseNamespace holds the node agents' heartbeat Leases.
	LeaseNamespace = corev1.NamespaceNodeLease
	podsByNode     = "spec.nodeName"
)

// Config is what the loops need.
type Config struct {
	Client   kubernetes.Interface
	Nodes    coreinformers.NodeInformer
	Leases   coordinformers.LeaseInformer
	Pods     coreinformers.PodInformer
	Recorder record.EventRecorder
	Log      *zap.Logger
	Metrics  *loop.Metrics

	// ClusterCIDR and NodeCIDRMaskSize describe the pod CIDRs; with an
	// empty ClusterCIDR no CIDRs are allocated.
	ClusterCIDR      string
	NodeCIDRMaskSize int
	// MonitorPeriod is how often every node is checked (default 5s).
	MonitorPeriod time.Duration
	// GracePeriod is how long a node may go unheard before it is Unknown.
	GracePeriod time.Duration
	// EvictionTimeout is how long a node stays not ready before its pods
	// are deleted.
	EvictionTimeout time.Duration
	Now             func() time.Time
}

// Controller is the node lifecycle and pod CIDR loop.
type Controller struct {
	cfg    Config
	health *loop.Loop
	ipam   *loop.Loop
	cidrs  *CIDRSet
	nodes  corelisters.NodeLister
	leases coordlisters.LeaseLister
	pods   cache.Indexer
	synced []cache.InformerSynced

	mu    sync.Mutex
	heard map[string]probe // node name → last heartbeat seen
}

// probe is the last heartbeat observed for a node and when this process
// saw it change (its own clock: the node's clock may be off).
type probe struct {
	renew    time.Time
	statusHB time.Time
	seen     time.Time
}

// New wires the loops to their informers. It must be called before the
// informers start (it adds a pod index by node).
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Nodes == nil || cfg.Leases == nil || cfg.Pods == nil || cfg.Recorder == nil || cfg.Log == nil {
		return nil, errors.New("nodelifecycle: Client, Nodes, Leases, Pods, Recorder and Log are required")
	}
	if cfg.MonitorPeriod <= 0 {
		cfg.MonitorPeriod = 5 * time.Second
	}
	if cfg.GracePeriod <= 0 || cfg.EvictionTimeout <= 0 {
		return nil, errors.New("nodelifecycle: GracePeriod and EvictionTimeout must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Controller{
		cfg: cfg, nodes: cfg.Nodes.Lister(), leases: cfg.Leases.Lister(), pods: cfg.Pods.Informer().GetIndexer(),
		heard:  map[string]probe{},
		synced: []cache.InformerSynced{cfg.Nodes.Informer().HasSynced, cfg.Leases.Informer().HasSynced, cfg.Pods.Informer().HasSynced},
	}
	if cfg.ClusterCIDR != "" {
		set, err := NewCIDRSet(cfg.ClusterCIDR, cfg.NodeCIDRMaskSize)
		if err != nil {
			return nil, err
		}
		c.cidrs = set
	}
	if err := cfg.Pods.Informer().AddIndexers(cache.Indexers{podsByNode: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("pod index: %w", err)
	}
	c.health = loop.New(Name, c.check, cfg.Metrics, cfg.Log)
	c.ipam = loop.New(IPAMName, c.allocate, cfg.Metrics, cfg.Log)
	if _, err := cfg.Nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.ipam.Enqueue(obj); c.health.Enqueue(obj) },
		UpdateFunc: func(_, obj any) { c.ipam.Enqueue(obj); c.health.Enqueue(obj) },
		DeleteFunc: c.nodeDeleted,
	}); err != nil {
		return nil, err
	}
	if _, err := cfg.Leases.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.leaseChanged,
		UpdateFunc: func(_, obj any) { c.leaseChanged(obj) },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// CIDRs is the allocator (nil without a cluster CIDR).
func (c *Controller) CIDRs() *CIDRSet { return c.cidrs }

func (c *Controller) leaseChanged(obj any) {
	if l, ok := obj.(*coordv1.Lease); ok && l.Namespace == LeaseNamespace {
		c.health.Add(l.Name)
	}
}

func (c *Controller) nodeDeleted(obj any) {
	n, ok := loop.ObjectOf[*corev1.Node](obj)
	if !ok {
		return
	}
	if c.cidrs != nil {
		for _, cidr := range n.Spec.PodCIDRs {
			if err := c.cidrs.Release(cidr); err != nil {
				c.cfg.Log.Warn("releasing pod CIDR", zap.String("node", n.Name), zap.Error(err))
			}
		}
	}
	c.mu.Lock()
	delete(c.heard, n.Name)
	c.mu.Unlock()
	// A freed CIDR may be what a waiting node needs.
	if c.cidrs != nil && len(n.Spec.PodCIDRs) > 0 {
		nodes, _ := c.nodes.List(labels.Everything())
		for _, other := range nodes {
			if other.Spec.PodCIDR == "" {
				c.ipam.Add(other.Name)
			}
		}
	}
}

// Run occupies the CIDRs existing nodes hold, then runs both loops and
// the periodic monitor until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return fmt.Errorf("%s: caches did not sync: %w", Name, ctx.Err())
	}
	if c.cidrs != nil {
		nodes, err := c.nodes.List(labels.Everything())
		if err != nil {
			return err
		}
		for _, n := range nodes {
			for _, cidr := range n.Spec.PodCIDRs {
				if err := c.cidrs.Occupy(cidr); err != nil {
					c.cfg.Log.Warn("node holds a pod CIDR outside the cluster CIDR", zap.String("node", n.Name), zap.Error(err))
				}
			}
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = c.health.Run(ctx, workers) })
	wg.Go(func() { errs[1] = c.ipam.Run(ctx, 1) })
	wg.Go(func() {
		wait.UntilWithContext(ctx, func(context.Context) {
			nodes, _ := c.nodes.List(labels.Everything())
			for _, n := range nodes {
				c.health.Add(n.Name)
			}
		}, c.cfg.MonitorPeriod)
	})
	wg.Wait()
	return utilerrors.NewAggregate(errs)
}

// allocate gives a node without a pod CIDR one.
func (c *Controller) allocate(ctx context.Context, name string) (time.Duration, error) {
	if c.cidrs == nil {
		return 0, nil
	}
	n, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if n.Spec.PodCIDR != "" || len(n.Spec.PodCIDRs) > 0 {
		for _, cidr := range n.Spec.PodCIDRs {
			_ = c.cidrs.Occupy(cidr)
		}
		return 0, nil
	}
	cidr, err := c.cidrs.Allocate()
	if err != nil {
		c.cfg.Recorder.Eventf(n, corev1.EventTypeWarning, "CIDRNotAvailable", "Node %s: %v", n.Name, err)
		return 0, err
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"uid": n.UID, "resourceVersion": n.ResourceVersion},
		"spec": map[string]any{"podCIDR": cidr, "podCIDRs": []string{cidr}}})
	if _, err := c.cfg.Client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		_ = c.cidrs.Release(cidr)
		if apierrors.IsNotFound(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("setting pod CIDR %s: %w", cidr, err)
	}
	c.cfg.Recorder.Eventf(n, corev1.EventTypeNormal, "CIDRAssignmentSucceeded", "Node %s assigned pod CIDR %s", n.Name, cidr)
	return 0, nil
}

// lastHeard is when this process last saw node n's agent report.
func (c *Controller) lastHeard(n *corev1.Node) time.Time {
	now := c.cfg.Now()
	var renew, hb time.Time
	if l, err := c.leases.Leases(LeaseNamespace).Get(n.Name); err == nil && l.Spec.RenewTime != nil {
		renew = l.Spec.RenewTime.Time
	}
	if r := readyCondition(n); r != nil {
		hb = r.LastHeartbeatTime.Time
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.heard[n.Name]
	if !ok || !p.renew.Equal(renew) || !p.statusHB.Equal(hb) {
		p = probe{renew: renew, statusHB: hb, seen: now}
		c.heard[n.Name] = p
	}
	return p.seen
}

// check runs the health plan for one node.
func (c *Controller) check(ctx context.Context, name string) (time.Duration, error) {
	cached, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := cached.DeepCopy()
	now := c.cfg.Now()
	plan := Decide(n, c.lastHeard(n), now, c.cfg.GracePeriod, c.cfg.EvictionTimeout)
	log := c.cfg.Log.With(zap.String("node", name))
	if plan.MarkUnknown {
		markUnknown(n, now)
		got, err := c.cfg.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		if err != nil {
			return 0, fmt.Errorf("marking node unknown: %w", err)
		}
		n = got
		log.Info("node stopped reporting; marked Ready=Unknown", zap.Duration("grace", c.cfg.GracePeriod))
		c.cfg.Recorder.Eventf(n, corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: NodeNotReady", name)
	}
	if err := c.syncTaints(ctx, n, plan.Taint, now); err != nil {
		return 0, err
	}
	var errs []error
	if plan.PodsNotReady {
		errs = append(errs, c.markPodsNotReady(ctx, name, now))
	}
	wait := plan.Wait
	if plan.Evict {
		w, err := c.evict(ctx, n, plan.Taint, now)
		errs = append(errs, err)
		wait = w
	}
	return wait, utilerrors.NewAggregate(errs)
}

// markUnknown sets the node's conditions Unknown, as Kubernetes does when
// the kubelet stops posting.
func markUnknown(n *corev1.Node, now time.Time) {
	t := metav1.NewTime(now)
	found := false
	for i := range n.Status.Conditions {
		cond := &n.Status.Conditions[i]
		if cond.Type == corev1.NodeReady {
			found = true
		}
		if cond.Status != corev1.ConditionUnknown {
			cond.Status = corev1.ConditionUnknown
			cond.Reason = "NodeStatusUnknown"
			cond.Message = "Kubelet stopped posting node status."
			cond.LastTransitionTime = t
		}
	}
	if !found {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{
			Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: "NodeStatusNeverUpdated",
			Message: "Kubelet never posted node status.", LastHeartbeatTime: t, LastTransitionTime: t,
		})
	}
}

// syncTaints makes want the only one of the loop's taints on n.
func (c *Controller) syncTaints(ctx context.Context, n *corev1.Node, want corev1.Taint, now time.Time) error {
	var taints []corev1.Taint
	has := false
	for _, t := range n.Spec.Taints {
		if t.Key == UnreachableTaint.Key || t.Key == NotReadyTaint.Key {
			if t.Key == want.Key && t.Effect == want.Effect {
				has = true
				taints = append(taints, t)
			}
			continue
		}
		taints = append(taints, t)
	}
	if want.Key != "" && !has {
		t := want
		t.TimeAdded = &metav1.Time{Time: now}
		taints = append(taints, t)
	}
	if len(taints) == len(n.Spec.Taints) && (want.Key == "" || has) {
		return nil
	}
	cp := n.DeepCopy()
	cp.Spec.Taints = taints
	if _, err := c.cfg.Client.CoreV1().Nodes().Update(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating taints: %w", err)
	}
	return nil
}

func (c *Controller) podsOn(node string) []*corev1.Pod {
	objs, _ := c.pods.ByIndex(podsByNode, node)
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*corev1.Pod))
	}
	return out
}

// markPodsNotReady sets Ready=False on the node's pods, so they leave
// Endpoints while nobody can vouch for them.
func (c *Controller) markPodsNotReady(ctx context.Context, node string, now time.Time) error {
	var errs []error
	for _, p := range c.podsOn(node) {
		if !pods.IsReady(p) || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		cp := p.DeepCopy()
		for i := range cp.Status.Conditions {
			if cp.Status.Conditions[i].Type == corev1.PodReady {
				cp.Status.Conditions[i].Status = corev1.ConditionFalse
				cp.Status.Conditions[i].Reason = "NodeNotReady"
				cp.Status.Conditions[i].LastTransitionTime = metav1.NewTime(now)
			}
		}
		if _, err := c.cfg.Client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil &&
			!apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, err)
		}
	}
	return utilerrors.NewAggregate(errs)
}

// evict force-deletes the node's pods that do not tolerate its taint (or
// whose toleration ran out) and returns when to look again for the rest.
func (c *Controller) evict(ctx context.Context, n *corev1.Node, taint corev1.Taint, now time.Time) (time.Duration, error) {
	var errs []error
	var wait time.Duration
	var since time.Time
	for _, t := range n.Spec.Taints {
		if t.Key == taint.Key && t.TimeAdded != nil {
			since = t.TimeAdded.Time
		}
	}
	if since.IsZero() {
		since = now
	}
	zero := int64(0)
	evicted := 0
	for _, p := range c.podsOn(n.Name) {
		forever, tol := Tolerates(p, taint)
		if forever {
			continue
		}
		if left := since.Add(tol).Sub(now); tol > 0 && left > 0 {
			if wait == 0 || left < wait {
				wait = left
			}
			continue
		}
		err := c.cfg.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}})
		switch {
		case err == nil:
			evicted++
			c.cfg.Recorder.Eventf(p, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s/%s: node %s is not ready", p.Namespace, p.Name, n.Name)
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		default:
			errs = append(errs, err)
		}
	}
	if evicted > 0 {
		c.cfg.Log.Info("evicted pods of a node that stayed not ready", zap.String("node", n.Name), zap.Int("pods", evicted),
			zap.Duration("evictionTimeout", c.cfg.EvictionTimeout))
		c.cfg.Recorder.Eventf(n, corev1.EventTypeNormal, "DeletingAllPods", "Deleting %d pod(s) from node %s", evicted, n.Name)
	}
	return wait, utilerrors.NewAggregate(errs)
}

// Package replicaset is the ReplicaSet loop: it keeps exactly
// spec.replicas active pods matching each ReplicaSet's selector, adopting
// matching orphans and releasing pods that stop matching, creating in
// slow-start batches and deleting the cheapest pods first, and it reports
// the set's status. Expectations keep a cache that lags behind the loop's
// own writes from causing duplicate creates or deletes.
package replicaset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/kubeish/kubeish/controller/loop"
	"github.com/kubeish/kubeish/controller/pods"
)

// Name is the loop's name in logs, metrics and events.
const Name = "replicaset"

var kind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// Config is what the loop needs.
type Config struct {
	Client      kubernetes.Interface
	Pods        coreinformers.PodInformer
	ReplicaSets appsinformers.ReplicaSetInformer
	Recorder    record.EventRecorder
	Log         *zap.Logger
	Metrics     *loop.Metrics
	// BurstReplicas caps creations or deletions per sync (default 500).
	BurstReplicas int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Controller is the ReplicaSet loop.
type Controller struct {
	cfg    Config
	loop   *loop.Loop
	pods   corelisters.PodLister
	rss    appslisters.ReplicaSetLister
	expect *expectations
	starts *slowStarts
	synced []cache.InformerSynced
}

// New wires the loop to its informers.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Pods == nil || cfg.ReplicaSets == nil || cfg.Recorder == nil || cfg.Log == nil {
		return nil, errors.New("replicaset: Client, Pods, ReplicaSets, Recorder and Log are required")
	}
	if cfg.BurstReplicas <= 0 {
		cfg.BurstReplicas = 500
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Controller{
		cfg:    cfg,
		pods:   cfg.Pods.Lister(),
		rss:    cfg.ReplicaSets.Lister(),
		expect: newExpectations(cfg.Now),
		starts: newSlowStarts(),
		synced: []cache.InformerSynced{cfg.Pods.Informer().HasSynced, cfg.ReplicaSets.Informer().HasSynced},
	}
	c.loop = loop.New(Name, c.sync, cfg.Metrics, cfg.Log)
	if _, err := cfg.ReplicaSets.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.loop.Enqueue,
		UpdateFunc: func(_, obj any) { c.loop.Enqueue(obj) },
		DeleteFunc: func(obj any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				c.expect.Forget(key)
				c.starts.forget(key)
			}
			c.loop.Enqueue(obj)
		},
	}); err != nil {
		return nil, err
	}
	if _, err := cfg.Pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// Loop exposes the work loop (for stats in benchmarks).
func (c *Controller) Loop() *loop.Loop { return c.loop }

// Run runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.loop.Run(ctx, workers, c.synced...)
}

func ownerKey(p *corev1.Pod) (string, bool) {
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != kind.Kind || ref.APIVersion != kind.GroupVersion().String() {
		return "", false
	}
	return p.Namespace + "/" + ref.Name, true
}

func (c *Controller) addPod(obj any) {
	p := obj.(*corev1.Pod)
	if p.DeletionTimestamp != nil {
		c.deletePod(p)
		return
	}
	if key, ok := ownerKey(p); ok {
		c.expect.CreationObserved(key)
		c.loop.Add(key)
		return
	}
	c.enqueueMatching(p)
}

func (c *Controller) updatePod(oldObj, newObj any) {
	old, cur := oldObj.(*corev1.Pod), newObj.(*corev1.Pod)
	if old.ResourceVersion == cur.ResourceVersion {
		return // a resync
	}
	if cur.DeletionTimestamp != nil && old.DeletionTimestamp == nil {
		// A graceful delete: the pod stops counting now.
		if key, ok := ownerKey(cur); ok {
			c.expect.DeletionObserved(key, cur.UID)
		}
	}
	oldKey, oldOwned := ownerKey(old)
	curKey, curOwned := ownerKey(cur)
	if oldOwned && (!curOwned || oldKey != curKey) {
		c.loop.Add(oldKey)
	}
	if curOwned {
		c.loop.Add(curKey)
		return
	}
	if !labels.Equals(old.Labels, cur.Labels) || oldOwned {
		c.enqueueMatching(cur)
	}
}

func (c *Controller) deletePod(obj any) {
	p, ok := loop.ObjectOf[*corev1.Pod](obj)
	if !ok {
		return
	}
	if key, ok := ownerKey(p); ok {
		c.expect.DeletionObserved(key, p.UID)
		c.loop.Add(key)
	}
}

// enqueueMatching enqueues the sets whose selector matches an orphan pod,
// so one of them can adopt it.
func (c *Controller) enqueueMatching(p *corev1.Pod) {
	if len(p.Labels) == 0 || p.DeletionTimestamp != nil {
		return
	}
	rss, err := c.rss.ReplicaSets(p.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, rs := range rss {
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			c.loop.Add(rs.Namespace + "/" + rs.Name)
		}
	}
}

func (c *Controller) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, loop.Permanent(err)
	}
	cached, err := c.rss.ReplicaSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.expect.Forget(key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	rs := cached.DeepCopy()
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		return 0, loop.Permanent(fmt.Errorf("selector: %w", err))
	}
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return 0, err
	}
	owned, err := c.claim(ctx, rs, sel, all)
	if err != nil {
		return 0, err
	}
	var active []*corev1.Pod
	for _, p := range owned {
		if pods.IsActive(p) {
			active = append(active, p)
		}
	}

	var manageErr error
	managed := false
	if c.expect.Satisfied(key) && rs.DeletionTimestamp == nil {
		active, manageErr = c.manage(ctx, rs, key, active)
		managed = true
	}
	status, next := CalculateStatus(rs, active, c.cfg.Now())
	if !managed {
		// observedGeneration says the loop has acted on that spec (the
		// Deployment loop relies on it before scaling further); it has not.
		status.ObservedGeneration = rs.Status.ObservedGeneration
	}
	setFailureCondition(&status, manageErr, c.cfg.Now())
	if !apiequality.Semantic.DeepEqual(status, rs.Status) {
		rs.Status = status
		if _, err := c.cfg.Client.AppsV1().ReplicaSets(ns).UpdateStatus(ctx, rs, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return 0, utilerrors.NewAggregate([]error{manageErr, fmt.Errorf("updating status: %w", err)})
		}
	}
	if manageErr != nil {
		return 0, manageErr
	}
	return next, nil
}

// setFailureCondition records a failed create or delete as the
// ReplicaFailure condition, and clears it once scaling works again.
func setFailureCondition(st *appsv1.ReplicaSetStatus, err error, now time.Time) {
	var kept []appsv1.ReplicaSetCondition
	for _, c := range st.Conditions {
		if c.Type != appsv1.ReplicaSetReplicaFailure {
			kept = append(kept, c)
		} else if err != nil {
			c.Message = err.Error()
			st.Conditions = append(kept, c)
			return
		}
	}
	st.Conditions = kept
	if err != nil {
		st.Conditions = append(st.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate",
			Message: err.Error(), LastTransitionTime: metav1.NewTime(now),
		})
	}
}

// claim returns the pods rs owns after adopting matching orphans and
// releasing owned pods that no longer match.
func (c *Controller) claim(ctx context.Context, rs *appsv1.ReplicaSet, sel labels.Selector, all []*corev1.Pod) ([]*corev1.Pod, error) {
	var owned []*corev1.Pod
	var errs []error
	fresh := false
	for _, p := range all {
		ref := metav1.GetControllerOf(p)
		match := sel.Matches(labels.Set(p.Labels))
		switch {
		case ref != nil && ref.UID == rs.UID:
			if match {
				owned = append(owned, p)
				continue
			}
			if p.DeletionTimestamp != nil {
				continue
			}
			if err := c.patchOwner(ctx, p, releasePatch(rs.UID, p.UID)); err != nil {
				errs = append(errs, err)
			}
		case ref == nil && match && p.DeletionTimestamp == nil && rs.DeletionTimestamp == nil:
			// Adopt only if rs really still exists with this uid and is
			// not being deleted: the cache may be behind.
			if !fresh {
				got, err := c.cfg.Client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
				if err != nil || got.UID != rs.UID || got.DeletionTimestamp != nil {
					return owned, err
				}
				fresh = true
			}
			if err := c.patchOwner(ctx, p, adoptPatch(rs, p.UID)); err != nil {
				errs = append(errs, err)
				continue
			}
			owned = append(owned, p)
		}
	}
	return owned, utilerrors.NewAggregate(errs)
}

func (c *Controller) patchOwner(ctx context.Context, p *corev1.Pod, patch []byte) error {
	_, err := c.cfg.Client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone or changed: the next sync sees the new state
	}
	return err
}

func adoptPatch(rs *appsv1.ReplicaSet, podUID types.UID) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":             podUID,
		"ownerReferences": []metav1.OwnerReference{*metav1.NewControllerRef(rs, kind)},
	}})
	return b
}

func releasePatch(owner, podUID types.UID) []byte {
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":             podUID,
		"ownerReferences": []map[string]any{{"$patch": "delete", "uid": owner}},
	}})
	return b
}

// manage creates or deletes pods to reach spec.replicas and returns the
// active pods that remain.
func (c *Controller) manage(ctx context.Context, rs *appsv1.ReplicaSet, key string, active []*corev1.Pod) ([]*corev1.Pod, error) {
	want := int(ptrInt32(rs.Spec.Replicas, 1))
	diff := want - len(active)
	if diff <= 0 {
		c.starts.forget(key)
	}
	switch {
	case diff > 0:
		n := min(diff, c.cfg.BurstReplicas)
		c.expect.ExpectCreations(key, n)
		batches := SlowStartBatches(n, c.starts.initial(key))
		created, err := c.createPods(ctx, rs, key, batches)
		c.starts.done(key, batches, err == nil && created == n)
		if created > 0 {
			c.cfg.Recorder.Eventf(rs, corev1.EventTypeNormal, "SuccessfulCreate", "Created %d pod(s)", created)
		}
		if err != nil {
			c.cfg.Recorder.Eventf(rs, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		}
		return active, err
	case diff < 0:
		victims := PodsToDelete(active, min(-diff, c.cfg.BurstReplicas))
		uids := make([]types.UID, len(victims))
		for i, p := range victims {
			uids[i] = p.UID
		}
		c.expect.ExpectDeletions(key, uids)
		var mu sync.Mutex
		var errs []error
		gone := map[types.UID]bool{}
		var wg sync.WaitGroup
		for _, p := range victims {
			wg.Go(func() {
				err := c.cfg.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					gone[p.UID] = true
				case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
					c.expect.DeletionObserved(key, p.UID)
					gone[p.UID] = true
				default:
					c.expect.DeletionObserved(key, p.UID)
					errs = append(errs, err)
				}
			})
		}
		wg.Wait()
		if len(gone) > 0 {
			c.cfg.Recorder.Eventf(rs, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted %d pod(s)", len(gone))
		}
		var left []*corev1.Pod
		for _, p := range active {
			if !gone[p.UID] {
				left = append(left, p)
			}
		}
		err := utilerrors.NewAggregate(errs)
		if err != nil {
			c.cfg.Recorder.Eventf(rs, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
		}
		return left, err
	}
	return active, nil
}

// createPods creates pods in batches (one after another, the pods of a
// batch at once; see SlowStartBatches) and returns how many it created.
// After a batch with a failure it stops; creations it skips or that fail
// lower the expectations, since they will never be observed.
func (c *Controller) createPods(ctx context.Context, rs *appsv1.ReplicaSet, key string, batches []int) (int, error) {
	created := 0
	for i, batch := range batches {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []error
		for range batch {
			wg.Go(func() {
				_, err := c.cfg.Client.CoreV1().Pods(rs.Namespace).Create(ctx, newPod(rs), metav1.CreateOptions{})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					c.expect.CreationObserved(key)
					if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
						errs = append(errs, err)
					}
					return
				}
				created++
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			skipped := 0
			for _, b := range batches[i+1:] {
				skipped += b
			}
			for range skipped {
				c.expect.CreationObserved(key)
			}
			return created, utilerrors.NewAggregate(errs)
		}
	}
	return created, nil
}

func newPod(rs *appsv1.ReplicaSet) *corev1.Pod {
	t := rs.Spec.Template.DeepCopy()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    rs.Name + "-",
			Namespace:       rs.Namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, kind)},
		},
		Spec: t.Spec,
	}
	return p
}

func ptrInt32(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

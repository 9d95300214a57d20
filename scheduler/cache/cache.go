// Package cache is the scheduler's view of the nodes and of the pods on
// them, including pods it has assumed: a pod whose binding is in flight (or
// done but not yet seen through the watch) already counts against its node,
// so the next scheduling cycle cannot hand the same room out twice.
//
// The informers call Add/Update/Remove; the scheduling loop calls
// AssumePod, FinishBinding, ForgetPod and UpdateSnapshot. All methods are
// safe for concurrent use.
package cache

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/kubeish/kubeish/scheduler/framework"
)

type podState struct {
	pod  *framework.PodInfo
	node string
	// assumed: placed by the scheduler, not yet seen bound by the informer.
	assumed bool
	// deadline is set by FinishBinding: an assumed pod the informer never
	// confirms is dropped after it.
	deadline *time.Time
}

// Cache holds nodes and the pods on them.
type Cache struct {
	mu    sync.Mutex
	clock clock.Clock
	ttl   time.Duration

	nodes map[string]*framework.NodeInfo
	pods  map[string]*podState
	// generation increases with every change; dirty names the nodes
	// changed since the last UpdateSnapshot, and listDirty says whether
	// the set of nodes with a Node object changed.
	generation int64
	dirty      map[string]struct{}
	listDirty  bool
}

// New returns an empty cache. ttl is how long an assumed pod whose binding
// finished may wait for the informer to confirm it (Kubernetes' safety net
// against a missed watch event); clk may be nil.
func New(ttl time.Duration, clk clock.Clock) *Cache {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Cache{
		clock: clk, ttl: ttl,
		nodes: map[string]*framework.NodeInfo{},
		pods:  map[string]*podState{},
		dirty: map[string]struct{}{},
	}
}

func key(pod *v1.Pod) string { return pod.Namespace + "/" + pod.Name }

// touch marks a node changed; the caller holds mu.
func (c *Cache) touch(name string) *framework.NodeInfo {
	ni := c.nodes[name]
	if ni == nil {
		ni = framework.NewNodeInfo(nil)
		c.nodes[name] = ni
	}
	c.generation++
	ni.Generation = c.generation
	c.dirty[name] = struct{}{}
	return ni
}

// removeIfEmpty drops a NodeInfo with neither Node nor pods.
func (c *Cache) removeIfEmpty(name string) {
	if ni := c.nodes[name]; ni != nil && ni.Node == nil && len(ni.Pods) == 0 {
		delete(c.nodes, name)
	}
}

func (c *Cache) addPodLocked(pi *framework.PodInfo, node string, assumed bool) {
	c.touch(node).AddPod(pi)
	c.pods[pi.Key] = &podState{pod: pi, node: node, assumed: assumed}
}

func (c *Cache) removePodLocked(ps *podState) {
	if ni := c.nodes[ps.node]; ni != nil {
		c.touch(ps.node).RemovePod(ps.pod.Key)
		c.removeIfEmpty(ps.node)
	}
	delete(c.pods, ps.pod.Key)
}

// AssumePod counts pi (whose Pod.Spec.NodeName is the chosen node) on its
// node before the binding is confirmed. It fails if the pod is already
// known, so a pod can never be counted twice.
func (c *Cache) AssumePod(pi *framework.PodInfo) error {
	node := pi.Pod.Spec.NodeName
	if node == "" {
		return fmt.Errorf("assume %s: no node name", pi.Key)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pods[pi.Key]; ok {
		return fmt.Errorf("assume %s: pod is already in the cache", pi.Key)
	}
	c.addPodLocked(pi, node, true)
	return nil
}

// FinishBinding starts the expiry clock of an assumed pod whose binding
// succeeded. It is a no-op if the informer confirmed the pod already.
func (c *Cache) FinishBinding(podKey string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[podKey]; ok && ps.assumed {
		d := c.clock.Now().Add(c.ttl)
		ps.deadline = &d
	}
}

// ForgetPod undoes AssumePod after a failed binding. A pod the informer
// has confirmed in the meantime stays.
func (c *Cache) ForgetPod(podKey string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[podKey]; ok && ps.assumed {
		c.removePodLocked(ps)
	}
}

// IsAssumed reports whether the pod is assumed and not yet confirmed.
func (c *Cache) IsAssumed(podKey string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, ok := c.pods[podKey]
	return ok && ps.assumed
}

// AddPod records a pod the informer shows bound to a node. An assumed pod
// is confirmed (and moved if it landed elsewhere).
func (c *Cache) AddPod(pod *v1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := key(pod)
	if ps, ok := c.pods[k]; ok {
		if ps.assumed && ps.node == pod.Spec.NodeName && ps.pod.Pod.UID == pod.UID {
			// Confirmed where we put it: keep the accounting, take the
			// informer's object.
			ps.assumed, ps.deadline = false, nil
			c.replaceLocked(ps, pod)
			return
		}
		c.removePodLocked(ps)
	}
	c.addPodLocked(framework.NewPodInfo(pod), pod.Spec.NodeName, false)
}

// replaceLocked swaps the object of a pod in place (same node).
func (c *Cache) replaceLocked(ps *podState, pod *v1.Pod) {
	ni := c.touch(ps.node)
	ni.RemovePod(ps.pod.Key)
	// Requests, ports, affinity and owner come from fields a binding does
	// not change: reuse them rather than recompute.
	pi := *ps.pod
	pi.Pod = pod
	ps.pod = &pi
	ni.AddPod(ps.pod)
}

// UpdatePod records a change of a bound pod.
func (c *Cache) UpdatePod(_, pod *v1.Pod) { c.AddPod(pod) }

// RemovePod forgets a bound pod that was deleted (or finished).
func (c *Cache) RemovePod(pod *v1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[key(pod)]; ok {
		c.removePodLocked(ps)
	}
}

// AddNode records or replaces a node.
func (c *Cache) AddNode(node *v1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni := c.touch(node.Name)
	if ni.Node == nil {
		c.listDirty = true
	}
	ni.SetNode(node)
}

// UpdateNode records a change of a node.
func (c *Cache) UpdateNode(_, node *v1.Node) { c.AddNode(node) }

// RemoveNode forgets a node; pods still bound to it stay counted (under a
// node-less NodeInfo) until they are deleted.
func (c *Cache) RemoveNode(node *v1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.nodes[node.Name]; !ok {
		return
	}
	c.touch(node.Name).SetNode(nil)
	c.listDirty = true
	c.removeIfEmpty(node.Name)
}

// UpdateSnapshot brings snap up to date, copying only the nodes changed
// since the last call: O(changed nodes), not O(nodes), per cycle. It is
// meant for a single snapshot, the scheduling loop's.
func (c *Cache) UpdateSnapshot(snap *framework.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if snap.NodeInfoMap == nil {
		snap.NodeInfoMap = map[string]*framework.NodeInfo{}
	}
	if snap.Generation == c.generation {
		return
	}
	for name := range c.dirty {
		ni, ok := c.nodes[name]
		if !ok {
			delete(snap.NodeInfoMap, name)
			continue
		}
		if cur, ok := snap.NodeInfoMap[name]; ok {
			// In place, so that snap.List's pointer stays valid.
			*cur = *ni.Clone()
		} else {
			snap.NodeInfoMap[name] = ni.Clone()
		}
	}
	clear(c.dirty)
	if c.listDirty || snap.List == nil {
		snap.List = snap.List[:0]
		for _, ni := range snap.NodeInfoMap {
			if ni.Node != nil {
				snap.List = append(snap.List, ni)
			}
		}
		sort.Slice(snap.List, func(i, j int) bool { return snap.List[i].Node.Name < snap.List[j].Node.Name })
		c.listDirty = false
	}
	snap.Generation = c.generation
}

// Cleanup drops assumed pods whose binding finished more than ttl ago and
// were never confirmed; it returns how many.
func (c *Cache) Cleanup() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	n := 0
	for _, ps := range c.pods {
		if ps.assumed && ps.deadline != nil && now.After(*ps.deadline) {
			c.removePodLocked(ps)
			n++
		}
	}
	return n
}

// Run calls Cleanup every period until ctx ends.
func (c *Cache) Run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Cleanup()
		}
	}
}

// Counts returns the number of nodes (with a Node object) and of pods.
func (c *Cache) Counts() (nodes, pods int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ni := range c.nodes {
		if ni.Node != nil {
			nodes++
		}
	}
	return nodes, len(c.pods)
}

package hollow

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kubeish/kubeish/kubeletish/pod"
)

// feed splits one pod informer (every bound pod of the cluster) into one
// pod.PodSource per hosted node, so that a thousand hollow nodes cost the
// apiserver one pod watch, not a thousand. It is the informer's only
// handler; the informer calls it one event at a time.
type feed struct {
	// nodes is filled before the informer starts and only read after.
	nodes map[string]*nodePods
	// reg is the feed's registration with the informer, set before the
	// informer starts: synced once the informer is and the feed has
	// passed on every pod of the initial list.
	reg cache.ResourceEventHandlerRegistration
}

func newFeed() *feed { return &feed{nodes: map[string]*nodePods{}} }

// start registers the feed with the informer; call it after the last
// node(), before the informer starts.
func (f *feed) start(inf cache.SharedIndexInformer) error {
	reg, err := inf.AddEventHandler(f)
	f.reg = reg
	return err
}

// node returns the source of the named node, making it on first use.
func (f *feed) node(name string) *nodePods {
	np, ok := f.nodes[name]
	if !ok {
		np = &nodePods{indexer: cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{}), feed: f}
		f.nodes[name] = np
	}
	return np
}

func (f *feed) route(o any) (*v1.Pod, *nodePods) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	p, ok := o.(*v1.Pod)
	if !ok {
		return nil, nil
	}
	return p, f.nodes[p.Spec.NodeName]
}

// OnAdd implements cache.ResourceEventHandler.
func (f *feed) OnAdd(o any, _ bool) {
	if p, np := f.route(o); np != nil {
		np.set(hollowPod(p))
	}
}

// OnUpdate implements cache.ResourceEventHandler. A pod's node never
// changes once set, so the new object alone says where it goes (a pod the
// informer first sees unbound and then bound arrives as an update).
func (f *feed) OnUpdate(_, o any) {
	if p, np := f.route(o); np != nil {
		np.set(hollowPod(p))
	}
}

// OnDelete implements cache.ResourceEventHandler.
func (f *feed) OnDelete(o any) {
	if p, np := f.route(o); np != nil {
		np.remove(p)
	}
}

// nodePods is one node's pods: a pod.PodSource.
type nodePods struct {
	mu       sync.Mutex
	indexer  cache.Indexer
	handlers []cache.ResourceEventHandler
	feed     *feed
}

var _ pod.PodSource = (*nodePods)(nil)

func (np *nodePods) set(p *v1.Pod) {
	np.mu.Lock()
	defer np.mu.Unlock()
	old, exists, _ := np.indexer.Get(p)
	_ = np.indexer.Add(p) // errors only from the key function, which cannot fail for a pod
	for _, h := range np.handlers {
		if exists {
			h.OnUpdate(old, p)
		} else {
			h.OnAdd(p, false)
		}
	}
}

func (np *nodePods) remove(p *v1.Pod) {
	np.mu.Lock()
	defer np.mu.Unlock()
	_ = np.indexer.Delete(p)
	for _, h := range np.handlers {
		h.OnDelete(p)
	}
}

// AddIndexers implements pod.PodSource.
func (np *nodePods) AddIndexers(ix cache.Indexers) error { return np.indexer.AddIndexers(ix) }

// GetIndexer implements pod.PodSource.
func (np *nodePods) GetIndexer() cache.Indexer { return np.indexer }

// HasSynced implements pod.PodSource: the shared informer has synced and
// passed its initial list on.
func (np *nodePods) HasSynced() bool { return np.feed.reg.HasSynced() }

// AddEventHandler implements pod.PodSource: as with a shared informer, a
// late handler first gets the pods already there as adds.
func (np *nodePods) AddEventHandler(h cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error) {
	np.mu.Lock()
	defer np.mu.Unlock()
	for _, o := range np.indexer.List() {
		h.OnAdd(o, true)
	}
	np.handlers = append(np.handlers, h)
	// Handlers get events synchronously, so the feed's own registration
	// says when this one has had the initial list too.
	return np.feed.reg, nil
}

// hollowPod returns the pod as a hollow node runs it. Nothing a hollow pod
// runs listens, and a hollow node must send no traffic and touch nothing
// outside its root dir, so:
//   - httpGet, tcpSocket and grpc probes become exec probes, which the
//     hollow runtime always passes: probes succeed, after their initial
//     delay and period as usual;
//   - httpGet lifecycle hooks become exec hooks (they succeed; sleep hooks
//     still sleep);
//   - hostPath volumes become emptyDirs under the node's root dir.
//
// Pods that need none of this are returned as they are (the informer's
// object, shared: the pod manager copies before it changes anything).
// Only the spec seen by the node changes; status writes never carry the
// spec (the apiserver keeps its own on the status subresource).
func hollowPod(p *v1.Pod) *v1.Pod {
	if !needsHollowing(p) {
		return p
	}
	p = p.DeepCopy()
	for i := range p.Spec.Volumes {
		if v := &p.Spec.Volumes[i]; v.HostPath != nil {
			v.VolumeSource = v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}
		}
	}
	for _, cs := range [][]v1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			c := &cs[i]
			for _, pr := range []*v1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if pr != nil && pr.Exec == nil {
					pr.ProbeHandler = v1.ProbeHandler{Exec: hollowExec()}
				}
			}
			if c.Lifecycle != nil {
				for _, h := range []*v1.LifecycleHandler{c.Lifecycle.PostStart, c.Lifecycle.PreStop} {
					if h != nil && (h.HTTPGet != nil || h.TCPSocket != nil) {
						*h = v1.LifecycleHandler{Exec: hollowExec()}
					}
				}
			}
		}
	}
	return p
}

func hollowExec() *v1.ExecAction { return &v1.ExecAction{Command: []string{"hollow-probe"}} }

func needsHollowing(p *v1.Pod) bool {
	for _, v := range p.Spec.Volumes {
		if v.HostPath != nil {
			return true
		}
	}
	for _, cs := range [][]v1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			c := &cs[i]
			for _, pr := range []*v1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if pr != nil && pr.Exec == nil {
					return true
				}
			}
			if c.Lifecycle != nil {
				for _, h := range []*v1.LifecycleHandler{c.Lifecycle.PostStart, c.Lifecycle.PreStop} {
					if h != nil && (h.HTTPGet != nil || h.TCPSocket != nil) {
						return true
					}
				}
			}
		}
	}
	return false
}

// Package framework holds the scheduler's pure decision: the types a
// scheduling cycle works on (PodInfo, NodeInfo, Snapshot), the filter and
// score plugin interfaces, and Framework.Schedule, a function from a pod
// and a snapshot of the cluster to a node name or a FitError saying why no
// node fits. Nothing here talks to the apiserver or mutates shared state,
// so every plugin and the failure message get table tests on hand-built
// snapshots.
package framework

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// Default requests counted for scoring a container that asks for nothing,
// as Kubernetes does, so that "best effort" pods still spread.
const (
	DefaultMilliCPURequest int64 = 100               // 0.1 core
	DefaultMemoryRequest   int64 = 200 * 1024 * 1024 // 200 MiB
)

// Resource is an amount of the resources the scheduler accounts for.
type Resource struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	// AllowedPodNumber is the node's pod capacity (only on allocatable).
	AllowedPodNumber int64
	// Scalar holds extended resources (e.g. example.com/gpu).
	Scalar map[v1.ResourceName]int64
}

// NewResource converts a ResourceList.
func NewResource(rl v1.ResourceList) Resource {
	var r Resource
	for name, q := range rl {
		r.set(name, q)
	}
	return r
}

func (r *Resource) set(name v1.ResourceName, q resource.Quantity) {
	switch name {
	case v1.ResourceCPU:
		r.MilliCPU = q.MilliValue()
	case v1.ResourceMemory:
		r.Memory = q.Value()
	case v1.ResourceEphemeralStorage:
		r.EphemeralStorage = q.Value()
	case v1.ResourcePods:
		r.AllowedPodNumber = q.Value()
	default:
		if isScalar(name) {
			if r.Scalar == nil {
				r.Scalar = map[v1.ResourceName]int64{}
			}
			r.Scalar[name] = q.Value()
		}
	}
}

// isScalar is true for extended and hugepages resources: the ones counted
// as plain integers.
func isScalar(name v1.ResourceName) bool {
	s := string(name)
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return len(s) > len(v1.ResourceHugePagesPrefix) && s[:len(v1.ResourceHugePagesPrefix)] == v1.ResourceHugePagesPrefix
}

// Add adds o to r.
func (r *Resource) Add(o Resource) {
	r.MilliCPU += o.MilliCPU
	r.Memory += o.Memory
	r.EphemeralStorage += o.EphemeralStorage
	for k, v := range o.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[v1.ResourceName]int64{}
		}
		r.Scalar[k] += v
	}
}

// Sub subtracts o from r.
func (r *Resource) Sub(o Resource) {
	r.MilliCPU -= o.MilliCPU
	r.Memory -= o.Memory
	r.EphemeralStorage -= o.EphemeralStorage
	for k, v := range o.Scalar {
		if r.Scalar != nil {
			r.Scalar[k] -= v
		}
	}
}

// Clone returns a deep copy.
func (r Resource) Clone() Resource {
	if r.Scalar != nil {
		m := make(map[v1.ResourceName]int64, len(r.Scalar))
		for k, v := range r.Scalar {
			m[k] = v
		}
		r.Scalar = m
	}
	return r
}

// HostPort is one host port a pod asks for.
type HostPort struct {
	IP       string // "0.0.0.0" when unset
	Protocol v1.Protocol
	Port     int32
}

// Conflicts reports whether two host ports cannot both be bound: same
// protocol and port, and the same address or either one the wildcard.
func (p HostPort) Conflicts(o HostPort) bool {
	return p.Port == o.Port && p.Protocol == o.Protocol &&
		(p.IP == o.IP || p.IP == "0.0.0.0" || o.IP == "0.0.0.0")
}

// PodInfo is a pod with what the plugins need computed once, when the pod
// enters the scheduler, instead of once per node.
type PodInfo struct {
	Pod *v1.Pod
	Key string // namespace/name
	// Requests are what the pod asks for the Kubernetes way: the larger of
	// the sum of its app containers and the largest init container, plus
	// the pod overhead.
	Requests Resource
	// NonZeroRequests count DefaultMilliCPURequest / DefaultMemoryRequest
	// for containers that ask for nothing; used for scoring only.
	NonZeroRequests Resource
	HostPorts       []HostPort
	// RequiredAffinity combines spec.nodeSelector and required node
	// affinity terms.
	RequiredAffinity nodeaffinity.RequiredNodeAffinity
	// PreferredAffinity is nil when the pod has no preferred terms.
	PreferredAffinity *nodeaffinity.PreferredSchedulingTerms
	// OwnerUID is the pod's controller (e.g. its ReplicaSet), "" if none.
	OwnerUID types.UID
	// ParseErr is set when the affinity terms cannot be parsed; such a pod
	// fits nowhere.
	ParseErr error
}

// NewPodInfo computes a PodInfo.
func NewPodInfo(pod *v1.Pod) *PodInfo {
	pi := &PodInfo{Pod: pod, Key: pod.Namespace + "/" + pod.Name}
	pi.Requests, pi.NonZeroRequests = podRequests(pod)
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			for _, p := range cs[i].Ports {
				if p.HostPort <= 0 {
					continue
				}
				hp := HostPort{IP: p.HostIP, Protocol: p.Protocol, Port: p.HostPort}
				if hp.IP == "" {
					hp.IP = "0.0.0.0"
				}
				if hp.Protocol == "" {
					hp.Protocol = v1.ProtocolTCP
				}
				pi.HostPorts = append(pi.HostPorts, hp)
			}
		}
	}
	pi.RequiredAffinity = nodeaffinity.GetRequiredNodeAffinity(pod)
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0 {
		terms, err := nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
		if err != nil {
			pi.ParseErr = err
		}
		pi.PreferredAffinity = terms
	}
	for _, ref := range pod.OwnerReferences {
		if ref.Controller != nil && *ref.Controller {
			pi.OwnerUID = ref.UID
			break
		}
	}
	return pi
}

var nonZeroDefaults = v1.ResourceList{
	v1.ResourceCPU:    *resource.NewMilliQuantity(DefaultMilliCPURequest, resource.DecimalSI),
	v1.ResourceMemory: *resource.NewQuantity(DefaultMemoryRequest, resource.BinarySI),
}

// podRequests returns the pod's requests and its non-zero requests (cpu
// and memory only). The common pod — app containers only, no overhead, no
// pod-level resources — is summed directly; anything else goes through
// component-helpers' PodRequests, which implements Kubernetes' rules for
// init and sidecar containers exactly (and costs a few map allocations,
// which the profile showed at a quarter of the scheduler's CPU when every
// pod took that path).
func podRequests(pod *v1.Pod) (req, nonZero Resource) {
	if len(pod.Spec.InitContainers) > 0 || pod.Spec.Overhead != nil || pod.Spec.Resources != nil {
		req = NewResource(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
		nz := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{NonMissingContainerRequests: nonZeroDefaults})
		return req, Resource{MilliCPU: nz.Cpu().MilliValue(), Memory: nz.Memory().Value()}
	}
	for i := range pod.Spec.Containers {
		rl := pod.Spec.Containers[i].Resources.Requests
		cpu, hasCPU := rl[v1.ResourceCPU]
		mem, hasMem := rl[v1.ResourceMemory]
		if hasCPU {
			req.MilliCPU += cpu.MilliValue()
			nonZero.MilliCPU += cpu.MilliValue()
		} else {
			nonZero.MilliCPU += DefaultMilliCPURequest
		}
		if hasMem {
			req.Memory += mem.Value()
			nonZero.Memory += mem.Value()
		} else {
			nonZero.Memory += DefaultMemoryRequest
		}
		known := 0
		if hasCPU {
			known++
		}
		if hasMem {
			known++
		}
		if len(rl) > known {
			for name, q := range rl {
				if name == v1.ResourceCPU || name == v1.ResourceMemory {
					continue
				}
				var r Resource
				r.set(name, q)
				req.Add(r)
			}
		}
	}
	return req, nonZero
}

// NodeInfo is a node with the pods on it (bound or assumed) and their
// summed requests.
type NodeInfo struct {
	// Node is nil while the cache knows pods on a node it has not seen.
	Node        *v1.Node
	Pods        []*PodInfo
	Allocatable Resource
	// Requested sums the pods' Requests; NonZeroRequested their
	// NonZeroRequests.
	Requested        Resource
	NonZeroRequested Resource
	UsedPorts        []HostPort
	// OwnerCounts counts the node's pods per controller UID, for spreading.
	OwnerCounts map[types.UID]int
	// Ready is the node's Ready condition being True (kept with the node
	// so the filter does not scan conditions once per pod).
	Ready bool
	// Unschedulable mirrors Node.Spec.Unschedulable, for the same reason.
	Unschedulable bool
	// Generation increases with every change (set by the cache).
	Generation int64
}

// NewNodeInfo returns a NodeInfo for node (which may be nil) and pods.
func NewNodeInfo(node *v1.Node, pods ...*PodInfo) *NodeInfo {
	ni := &NodeInfo{}
	ni.SetNode(node)
	for _, p := range pods {
		ni.AddPod(p)
	}
	return ni
}

// Name is the node's name ("" without a Node).
func (n *NodeInfo) Name() string {
	if n.Node == nil {
		return ""
	}
	return n.Node.Name
}

// SetNode sets or replaces the Node object.
func (n *NodeInfo) SetNode(node *v1.Node) {
	n.Node = node
	n.Allocatable = Resource{}
	n.Ready, n.Unschedulable = false, false
	if node != nil {
		n.Unschedulable = node.Spec.Unschedulable
		n.Allocatable = NewResource(node.Status.Allocatable)
		for _, c := range node.Status.Conditions {
			if c.Type == v1.NodeReady {
				n.Ready = c.Status == v1.ConditionTrue
				break
			}
		}
	}
}

// AddPod counts p on the node.
func (n *NodeInfo) AddPod(p *PodInfo) {
	n.Pods = append(n.Pods, p)
	n.Requested.Add(p.Requests)
	n.NonZeroRequested.Add(p.NonZeroRequests)
	n.UsedPorts = append(n.UsedPorts, p.HostPorts...)
	if p.OwnerUID != "" {
		if n.OwnerCounts == nil {
			n.OwnerCounts = map[types.UID]int{}
		}
		n.OwnerCounts[p.OwnerUID]++
	}
}

// RemovePod removes the pod with key from the node; false if it was not
// there.
func (n *NodeInfo) RemovePod(key string) bool {
	for i, p := range n.Pods {
		if p.Key != key {
			continue
		}
		last := len(n.Pods) - 1
		n.Pods[i] = n.Pods[last]
		n.Pods[last] = nil
		n.Pods = n.Pods[:last]
		n.Requested.Sub(p.Requests)
		n.NonZeroRequested.Sub(p.NonZeroRequests)
		for _, hp := range p.HostPorts {
			for j, u := range n.UsedPorts {
				if u == hp {
					n.UsedPorts = append(n.UsedPorts[:j], n.UsedPorts[j+1:]...)
					break
				}
			}
		}
		if p.OwnerUID != "" {
			if n.OwnerCounts[p.OwnerUID]--; n.OwnerCounts[p.OwnerUID] <= 0 {
				delete(n.OwnerCounts, p.OwnerUID)
			}
		}
		return true
	}
	return false
}

// Clone returns a copy that shares the (immutable) PodInfos and Node.
func (n *NodeInfo) Clone() *NodeInfo {
	c := &NodeInfo{
		Node:             n.Node,
		Pods:             append([]*PodInfo(nil), n.Pods...),
		Allocatable:      n.Allocatable.Clone(),
		Requested:        n.Requested.Clone(),
		NonZeroRequested: n.NonZeroRequested.Clone(),
		UsedPorts:        append([]HostPort(nil), n.UsedPorts...),
		Ready:            n.Ready,
		Unschedulable:    n.Unschedulable,
		Generation:       n.Generation,
	}
	if n.OwnerCounts != nil {
		c.OwnerCounts = make(map[types.UID]int, len(n.OwnerCounts))
		for k, v := range n.OwnerCounts {
			c.OwnerCounts[k] = v
		}
	}
	return c
}

// Snapshot is a consistent view of the cluster for one scheduling cycle.
type Snapshot struct {
	// NodeInfoMap holds every NodeInfo by node name (including ones
	// without a Node object); List only those with a Node, in a stable
	// order.
	NodeInfoMap map[string]*NodeInfo
	List        []*NodeInfo
	// Generation is the cache generation the snapshot reflects.
	Generation int64
}

// NewSnapshot builds a snapshot from nodes and the pods bound to them
// (for tests and tools; the scheduler's comes from the cache).
func NewSnapshot(nodes []*v1.Node, pods []*v1.Pod) *Snapshot {
	s := &Snapshot{NodeInfoMap: map[string]*NodeInfo{}}
	for _, n := range nodes {
		ni := NewNodeInfo(n)
		s.NodeInfoMap[n.Name] = ni
		s.List = append(s.List, ni)
	}
	for _, p := range pods {
		if ni := s.NodeInfoMap[p.Spec.NodeName]; ni != nil {
			ni.AddPod(NewPodInfo(p))
		}
	}
	return s
}

// Package fwtest builds Nodes and Pods for scheduler tests.
package fwtest

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Node returns a Ready node with the given allocatable cpu (e.g. "2"),
// memory (e.g. "4Gi") and pod count.
func Node(name, cpu, mem string, pods int64, opts ...func(*v1.Node)) *v1.Node {
	n := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: v1.NodeStatus{
			Allocatable: v1.ResourceList{
				v1.ResourceCPU:    resource.MustParse(cpu),
				v1.ResourceMemory: resource.MustParse(mem),
				v1.ResourcePods:   *resource.NewQuantity(pods, resource.DecimalSI),
			},
			Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}},
		},
	}
	n.Status.Capacity = n.Status.Allocatable.DeepCopy()
	for _, o := range opts {
		o(n)
	}
	return n
}

// Labels sets node labels.
func Labels(kv ...string) func(*v1.Node) {
	return func(n *v1.Node) {
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

// Taint adds a taint.
func Taint(key, value string, effect v1.TaintEffect) func(*v1.Node) {
	return func(n *v1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, v1.Taint{Key: key, Value: value, Effect: effect})
	}
}

// NotReady sets the Ready condition to False.
func NotReady(n *v1.Node) {
	n.Status.Conditions = []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionFalse}}
}

// Cordoned sets spec.unschedulable.
func Cordoned(n *v1.Node) { n.Spec.Unschedulable = true }

// Pod returns a pod in namespace "default" with one container requesting
// cpu and mem ("" for none).
func Pod(name, cpu, mem string, opts ...func(*v1.Pod)) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: v1.PodSpec{
			SchedulerName: v1.DefaultSchedulerName,
			Containers:    []v1.Container{{Name: "c", Image: "img:1", Resources: v1.ResourceRequirements{Requests: Requests(cpu, mem)}}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Requests is a ResourceList of cpu and mem, leaving out empty ones.
func Requests(cpu, mem string) v1.ResourceList {
	rl := v1.ResourceList{}
	if cpu != "" {
		rl[v1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		rl[v1.ResourceMemory] = resource.MustParse(mem)
	}
	return rl
}

// OnNode sets spec.nodeName.
func OnNode(node string) func(*v1.Pod) { return func(p *v1.Pod) { p.Spec.NodeName = node } }

// Owner sets a controller ownerReference to a ReplicaSet with uid.
func Owner(uid string) func(*v1.Pod) {
	return func(p *v1.Pod) {
		t := true
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs-" + uid, UID: types.UID(uid), Controller: &t}}
	}
}

// NodeSelector sets spec.nodeSelector.
func NodeSelector(kv ...string) func(*v1.Pod) {
	return func(p *v1.Pod) {
		p.Spec.NodeSelector = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Spec.NodeSelector[kv[i]] = kv[i+1]
		}
	}
}

// Toleration adds a toleration (operator Equal when value is set, Exists
// otherwise).
func Toleration(key, value string, effect v1.TaintEffect) func(*v1.Pod) {
	return func(p *v1.Pod) {
		t := v1.Toleration{Key: key, Value: value, Effect: effect, Operator: v1.TolerationOpEqual}
		if value == "" {
			t.Operator = v1.TolerationOpExists
		}
		p.Spec.Tolerations = append(p.Spec.Tolerations, t)
	}
}

// HostPort adds a container port with a host port.
func HostPort(port int32, ip string) func(*v1.Pod) {
	return func(p *v1.Pod) {
		c := &p.Spec.Containers[0]
		c.Ports = append(c.Ports, v1.ContainerPort{ContainerPort: port, HostPort: port, HostIP: ip, Protocol: v1.ProtocolTCP})
	}
}

// Priority sets spec.priority.
func Priority(prio int32) func(*v1.Pod) { return func(p *v1.Pod) { p.Spec.Priority = &prio } }

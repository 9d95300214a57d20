package app

import (
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// stripManagedFields is the Node informer's transform: the scheduler
// never reads managedFields.
func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// slimPod is the Pod informer's transform: it keeps what scheduling reads
// (metadata but managedFields; the spec's placement rules, containers'
// names, requests, limits, ports and restart policy; the phase, the
// nominated node and the PodScheduled condition) and drops the rest
// (images, commands, env, probes, volumes, container statuses, IPs, other
// conditions). At 30,000 running pods that is about a third of the
// scheduler's heap: a running pod's status is mostly what its node
// reported, which the scheduler never looks at. The scheduler writes pods
// only by binding and by a strategic merge patch of PodScheduled, never by
// sending a cached pod back, so nothing dropped can be lost. A plugin that
// needs another field (images for image locality, volumes for volume
// limits) must keep it here.
func slimPod(obj any) (any, error) {
	p, ok := obj.(*v1.Pod)
	if !ok {
		return obj, nil
	}
	p.ManagedFields = nil
	p.Spec.Containers = slimContainers(p.Spec.Containers)
	p.Spec.InitContainers = slimContainers(p.Spec.InitContainers)
	p.Spec.EphemeralContainers = nil
	p.Spec.Volumes = nil
	var scheduled []v1.PodCondition
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodScheduled {
			scheduled = append(scheduled, c)
		}
	}
	p.Status = v1.PodStatus{Phase: p.Status.Phase, NominatedNodeName: p.Status.NominatedNodeName, Conditions: scheduled}
	return p, nil
}

func slimContainers(cs []v1.Container) []v1.Container {
	if cs == nil {
		return nil
	}
	out := make([]v1.Container, len(cs))
	for i, c := range cs {
		out[i] = v1.Container{Name: c.Name, Resources: c.Resources, Ports: c.Ports, RestartPolicy: c.RestartPolicy}
	}
	return out
}

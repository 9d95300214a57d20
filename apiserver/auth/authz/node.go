package authz

import (
	"context"
	"fmt"
	"slices"
	"strings"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
)

var readVerbs = []string{VerbGet, VerbList, VerbWatch}

// authorizeNode is Kubernetes' node authorizer, for what kubeletish does:
// a node reads nodes, pods, services, endpoints, endpointslices and
// namespaces; gets the secrets and configmaps its own pods use (no list, no
// watch); writes its own Node (and its status) and its own Lease in
// kube-node-lease; deletes and writes the status of the pods bound to it;
// writes events. A refusal here is not final: RBAC may still grant the
// request (as in Kubernetes, nothing does by default). Creates of a Node
// and a Lease carry the name in the body, which Admit checks.
func (a *Authorizer) authorizeNode(ctx context.Context, node string, at Attributes) (bool, string, error) {
	if !at.ResourceRequest {
		return false, "", nil
	}
	allow := func() (bool, string, error) { return true, fmt.Sprintf("node %q", node), nil }
	deny := func(format string, args ...any) (bool, string, error) {
		return false, fmt.Sprintf("node %q ", node) + fmt.Sprintf(format, args...), nil
	}
	read := slices.Contains(readVerbs, at.Verb)
	switch at.APIGroup {
	case "":
		switch at.Resource {
		case "services", "endpoints", "namespaces":
			if read && at.Subresource == "" {
				return allow()
			}
		case "nodes":
			switch {
			case at.Subresource == "" && read:
				return allow()
			case at.Subresource == "" && at.Verb == VerbCreate:
				return allow() // the name is checked in Admit
			case at.Subresource == "" || at.Subresource == "status":
				if !slices.Contains([]string{VerbGet, VerbUpdate, VerbPatch, VerbDelete}, at.Verb) {
					break
				}
				if at.Name == node {
					return allow()
				}
				return deny("is not allowed to modify node %q", at.Name)
			}
		case "pods":
			switch {
			case (at.Subresource == "" && read) || (at.Subresource == "status" && at.Verb == VerbGet):
				return allow()
			case (at.Subresource == "" && at.Verb == VerbDelete) ||
				(at.Subresource == "status" && (at.Verb == VerbUpdate || at.Verb == VerbPatch)):
				ok, err := a.podOnNode(ctx, at.Namespace, at.Name, node)
				if err != nil {
					return false, "", err
				}
				if ok {
					return allow()
				}
				return deny("can only modify pods with spec.nodeName set to itself")
			}
		case "secrets", "configmaps":
			if at.Subresource != "" {
				break
			}
			if at.Verb != VerbGet || at.Name == "" {
				return deny("may only get, one by one, the %s its pods use", at.Resource)
			}
			ok, err := a.podsOnNodeUse(ctx, node, at.Resource, at.Namespace, at.Name)
			if err != nil {
				return false, "", err
			}
			if ok {
				return allow()
			}
			return deny("has no relationship to %s %q in namespace %q: no pod bound to it uses it", singular(at.Resource), at.Name, at.Namespace)
		case "events":
			if at.Subresource == "" && slices.Contains([]string{VerbCreate, VerbUpdate, VerbPatch}, at.Verb) {
				return allow()
			}
		}
	case "discovery.k8s.io":
		if at.Resource == "endpointslices" && at.Subresource == "" && read {
			return allow()
		}
	case "coordination.k8s.io":
		if at.Resource != "leases" || at.Subresource != "" {
			break
		}
		if at.Namespace != corev1.NamespaceNodeLease {
			return deny("may only use leases in %s", corev1.NamespaceNodeLease)
		}
		switch at.Verb {
		case VerbCreate:
			return allow() // the name is checked in Admit
		case VerbGet, VerbUpdate, VerbPatch, VerbDelete:
			if at.Name == node {
				return allow()
			}
			return deny("can only access its own lease, not %q", at.Name)
		}
	}
	return false, "", nil
}

func singular(resource string) string {
	if resource == "configmaps" {
		return "configmap"
	}
	return "secret"
}

// podOnNode reports whether pod ns/name is bound to node. A pod that does
// not exist counts as bound, so that the request goes on to its 404 (a
// node reads every pod anyway, so this tells it nothing).
func (a *Authorizer) podOnNode(ctx context.Context, ns, name, node string) (bool, error) {
	obj, err := a.objs.get(ctx, a.pods, ns, name, false)
	if err != nil {
		return false, err
	}
	if obj != nil && obj.(*corev1.Pod).Spec.NodeName == node {
		return true, nil
	}
	// The cache may lag etcd: a refusal is decided on etcd's copy.
	if obj, err = a.objs.getFresh(ctx, a.pods, ns, name); err != nil {
		return false, err
	}
	return obj == nil || obj.(*corev1.Pod).Spec.NodeName == node, nil
}

// podsOnNodeUse reports whether some pod bound to node in ns uses the
// secret or configmap name.
func (a *Authorizer) podsOnNodeUse(ctx context.Context, node, resource, ns, name string) (bool, error) {
	pred := func(obj runtime.Object) bool {
		p := obj.(*corev1.Pod)
		if p.Spec.NodeName != node {
			return false
		}
		if resource == "secrets" {
			return slices.Contains(PodSecrets(p), name)
		}
		return slices.Contains(PodConfigMaps(p), name)
	}
	prefix := a.pods.Prefix(ns)
	items, err := a.objs.list(ctx, a.pods, prefix, pred, false)
	if err != nil || len(items) > 0 {
		return len(items) > 0, err
	}
	items, err = a.objs.listFresh(ctx, a.pods, prefix, pred)
	return len(items) > 0, err
}

// PodSecrets returns the names of the secrets a pod uses: volumes
// (including projected sources), env valueFrom, envFrom and
// imagePullSecrets.
func PodSecrets(p *corev1.Pod) []string {
	var out []string
	for _, s := range p.Spec.ImagePullSecrets {
		out = append(out, s.Name)
	}
	for _, v := range p.Spec.Volumes {
		if v.Secret != nil {
			out = append(out, v.Secret.SecretName)
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.Secret != nil {
					out = append(out, src.Secret.Name)
				}
			}
		}
	}
	visitContainers(p, func(c *corev1.Container) {
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				out = append(out, e.SecretRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				out = append(out, e.ValueFrom.SecretKeyRef.Name)
			}
		}
	})
	return out
}

// PodConfigMaps returns the names of the configmaps a pod uses: volumes
// (including projected sources), env valueFrom and envFrom.
func PodConfigMaps(p *corev1.Pod) []string {
	var out []string
	for _, v := range p.Spec.Volumes {
		if v.ConfigMap != nil {
			out = append(out, v.ConfigMap.Name)
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.ConfigMap != nil {
					out = append(out, src.ConfigMap.Name)
				}
			}
		}
	}
	visitContainers(p, func(c *corev1.Container) {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				out = append(out, e.ConfigMapRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				out = append(out, e.ValueFrom.ConfigMapKeyRef.Name)
			}
		}
	})
	return out
}

func visitContainers(p *corev1.Pod, f func(*corev1.Container)) {
	for i := range p.Spec.InitContainers {
		f(&p.Spec.InitContainers[i])
	}
	for i := range p.Spec.Containers {
		f(&p.Spec.Containers[i])
	}
	for i := range p.Spec.EphemeralContainers {
		f((*corev1.Container)(&p.Spec.EphemeralContainers[i].EphemeralContainerCommon))
	}
}

// NodeRestrictionLabelPrefix marks node labels a node may not set on
// itself, as in Kubernetes: workloads select on them to trust a node.
const NodeRestrictionLabelPrefix = "node-restriction.kubernetes.io/"

// admitNode is NodeRestriction for what the URL does not show: a node
// creates only its own Node and its own Lease, and leaves its taints and
// restricted labels as they are.
func admitNode(node string, at Attributes, obj, old runtime.Object) error {
	switch o := obj.(type) {
	case *corev1.Node:
		if o.Name != node {
			return Forbidden(at, fmt.Sprintf("node %q is not allowed to create or modify node %q", node, o.Name))
		}
		var was *corev1.Node
		if old != nil {
			was, _ = old.(*corev1.Node)
		}
		if was == nil {
			was = &corev1.Node{}
		}
		if old != nil && !apiequality.Semantic.DeepEqual(o.Spec.Taints, was.Spec.Taints) {
			return Forbidden(at, fmt.Sprintf("node %q is not allowed to modify taints", node))
		}
		for _, labels := range []map[string]string{o.Labels, was.Labels} {
			for k := range labels {
				now, in := o.Labels[k]
				before, wasIn := was.Labels[k]
				if strings.HasPrefix(k, NodeRestrictionLabelPrefix) && (in != wasIn || now != before) {
					return Forbidden(at, fmt.Sprintf("node %q is not allowed to modify labels with the prefix %s (%s)", node, NodeRestrictionLabelPrefix, k))
				}
			}
		}
	case *coordinationv1.Lease:
		if o.Name != node {
			return Forbidden(at, fmt.Sprintf("node %q can only access its own lease, not %q", node, o.Name))
		}
	}
	return nil
}

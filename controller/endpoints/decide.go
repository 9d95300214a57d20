package endpoints

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/controller/pods"
)

// Labels and limits Kubernetes uses for EndpointSlices.
const (
	ManagedByLabel   = discoveryv1.LabelManagedBy
	ManagedByValue   = "endpointslice-controller.k8s.io"
	ServiceNameLabel = discoveryv1.LabelServiceName
	MaxPerSlice      = 100
)

// ResolvePort returns the pod port a service port targets: a number as
// is (or the service port when unset), a name looked up among the pod's
// container ports with the same protocol.
func ResolvePort(p *corev1.Pod, sp corev1.ServicePort) (int32, bool) {
	proto := sp.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	switch {
	case sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "":
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				cpProto := cp.Protocol
				if cpProto == "" {
					cpProto = corev1.ProtocolTCP
				}
				if cp.Name == sp.TargetPort.StrVal && cpProto == proto {
					return cp.ContainerPort, true
				}
			}
		}
		return 0, false
	case sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != 0:
		return sp.TargetPort.IntVal, true
	default:
		return sp.Port, true
	}
}

// endpoint is one pod's entry: its address, ports and state.
type endpoint struct {
	pod         *corev1.Pod
	ports       []corev1.EndpointPort
	ready       bool
	serving     bool
	terminating bool
}

// podEndpoints lists the endpoints of the pods svc selects (the caller has
// filtered by selector): pods with an IP that have not finished, and the
// ports each resolves. A pod for which no port resolves is left out.
func podEndpoints(svc *corev1.Service, ps []*corev1.Pod) []endpoint {
	var out []endpoint
	for _, p := range ps {
		if p.Status.PodIP == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		var ports []corev1.EndpointPort
		for _, sp := range svc.Spec.Ports {
			n, ok := ResolvePort(p, sp)
			if !ok {
				continue
			}
			proto := sp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			ports = append(ports, corev1.EndpointPort{Name: sp.Name, Port: n, Protocol: proto, AppProtocol: sp.AppProtocol})
		}
		if len(ports) == 0 && len(svc.Spec.Ports) > 0 {
			continue
		}
		ready := pods.IsReady(p) || svc.Spec.PublishNotReadyAddresses
		out = append(out, endpoint{
			pod:         p,
			ports:       ports,
			ready:       ready && p.DeletionTimestamp == nil,
			serving:     ready,
			terminating: p.DeletionTimestamp != nil,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].pod.Status.PodIP != out[j].pod.Status.PodIP {
			return out[i].pod.Status.PodIP < out[j].pod.Status.PodIP
		}
		return out[i].pod.Name < out[j].pod.Name
	})
	return out
}

func portsKey(ports []corev1.EndpointPort) string {
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "%s/%d/%s;", p.Name, p.Port, p.Protocol)
	}
	return b.String()
}

// Subsets are the Endpoints subsets for svc over its selected pods: one
// subset per distinct set of resolved ports, ready pods as addresses and
// not-ready ones as notReadyAddresses. Terminating pods are left out.
func Subsets(svc *corev1.Service, ps []*corev1.Pod) []corev1.EndpointSubset {
	var keys []string
	byKey := map[string]*corev1.EndpointSubset{}
	for _, e := range podEndpoints(svc, ps) {
		if e.terminating && !svc.Spec.PublishNotReadyAddresses {
			continue
		}
		k := portsKey(e.ports)
		s, ok := byKey[k]
		if !ok {
			s = &corev1.EndpointSubset{Ports: e.ports}
			byKey[k] = s
			keys = append(keys, k)
		}
		addr := corev1.EndpointAddress{IP: e.pod.Status.PodIP, TargetRef: podRef(e.pod)}
		if e.pod.Spec.NodeName != "" {
			addr.NodeName = ptr.To(e.pod.Spec.NodeName)
		}
		if e.ready || (svc.Spec.PublishNotReadyAddresses && e.serving) {
			s.Addresses = append(s.Addresses, addr)
		} else {
			s.NotReadyAddresses = append(s.NotReadyAddresses, addr)
		}
	}
	sort.Strings(keys)
	var out []corev1.EndpointSubset
	for _, k := range keys {
		out = append(out, *byKey[k])
	}
	return out
}

func podRef(p *corev1.Pod) *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID}
}

// Slices are the EndpointSlices for svc: per address family and distinct
// port set, at most MaxPerSlice endpoints each, named deterministically so
// that a sync updates them in place. Terminating pods stay listed with
// ready=false, as Kubernetes does, so proxies can drain them.
func Slices(svc *corev1.Service, ps []*corev1.Pod) []*discoveryv1.EndpointSlice {
	type group struct {
		family discoveryv1.AddressType
		ports  []corev1.EndpointPort
		eps    []endpoint
	}
	var keys []string
	groups := map[string]*group{}
	for _, e := range podEndpoints(svc, ps) {
		fam := discoveryv1.AddressTypeIPv4
		if strings.Contains(e.pod.Status.PodIP, ":") {
			fam = discoveryv1.AddressTypeIPv6
		}
		k := string(fam) + "|" + portsKey(e.ports)
		g, ok := groups[k]
		if !ok {
			g = &group{family: fam, ports: e.ports}
			groups[k] = g
			keys = append(keys, k)
		}
		g.eps = append(g.eps, e)
	}
	sort.Strings(keys)
	var out []*discoveryv1.EndpointSlice
	for _, k := range keys {
		g := groups[k]
		h := fnv.New32a()
		h.Write([]byte(k))
		for i := 0; i < len(g.eps); i += MaxPerSlice {
			chunk := g.eps[i:min(i+MaxPerSlice, len(g.eps))]
			out = append(out, newSlice(svc, fmt.Sprintf("%s-%08x-%d", svc.Name, h.Sum32(), i/MaxPerSlice), g.family, g.ports, chunk))
		}
	}
	return out
}

func newSlice(svc *corev1.Service, name string, fam discoveryv1.AddressType, ports []corev1.EndpointPort, eps []endpoint) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: svc.Namespace,
			Labels: map[string]string{
				ServiceNameLabel: svc.Name,
				ManagedByLabel:   ManagedByValue,
			},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))},
		},
		AddressType: fam,
	}
	for _, p := range ports {
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr.To(p.Name), Port: ptr.To(p.Port), Protocol: ptr.To(p.Protocol), AppProtocol: p.AppProtocol})
	}
	for _, e := range eps {
		ep := discoveryv1.Endpoint{
			Addresses: []string{e.pod.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{
				Ready: ptr.To(e.ready), Serving: ptr.To(e.serving), Terminating: ptr.To(e.terminating),
			},
			TargetRef: podRef(e.pod),
		}
		if e.pod.Spec.NodeName != "" {
			ep.NodeName = ptr.To(e.pod.Spec.NodeName)
		}
		s.Endpoints = append(s.Endpoints, ep)
	}
	return s
}

package server

import (
	"context"
	"errors"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/apiserver/auth/authz"
	"github.com/kubeish/kubeish/apiserver/storage"
)

// SystemNamespaces are created at start and cannot be deleted.
var SystemNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease}

// Bootstrap creates what a cluster has from its first moment: the system
// namespaces, the built-in RBAC policy (authz.BootstrapPolicy), and the Service default/kubernetes (the service range's first
// address, port 443) with Endpoints and an EndpointSlice that point at this
// apiserver's advertised address. It is idempotent, and several apiservers
// over one etcd each add their own address.
func (s *Server) Bootstrap(ctx context.Context, advertise net.IP, port int32) error {
	for _, name := range SystemNamespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := s.ensure(ctx, "", "namespaces", ns); err != nil {
			return fmt.Errorf("namespace %s: %w", name, err)
		}
	}
	if err := s.bootstrapPolicy(ctx); err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			ClusterIP: s.cfg.Allocator.FirstIP(),
			Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP,
				TargetPort: intstr.FromInt32(port)}},
		},
	}
	if err := s.ensure(ctx, "", "services", svc); err != nil {
		return fmt.Errorf("service default/kubernetes: %w", err)
	}
	addr := advertise.String()
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{"endpointslice.kubernetes.io/skip-mirror": "true"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: addr}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}},
		}},
	}
	if err := s.ensure(ctx, "", "endpoints", ep); err != nil {
		return fmt.Errorf("endpoints default/kubernetes: %w", err)
	}
	if err := s.addAddress(ctx, "endpoints", ep, func(cur runtime.Object) runtime.Object {
		e := cur.(*corev1.Endpoints).DeepCopy()
		if len(e.Subsets) == 0 {
			e.Subsets = ep.Subsets
			return e
		}
		for _, a := range e.Subsets[0].Addresses {
			if a.IP == addr {
				return nil
			}
		}
		e.Subsets[0].Addresses = append(e.Subsets[0].Addresses, corev1.EndpointAddress{IP: addr})
		return e
	}); err != nil {
		return fmt.Errorf("endpoints default/kubernetes: %w", err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if err := s.ensure(ctx, "discovery.k8s.io", "endpointslices", slice); err != nil {
		return fmt.Errorf("endpointslice default/kubernetes: %w", err)
	}
	return s.addAddress(ctx, "endpointslices", slice, func(cur runtime.Object) runtime.Object {
		e := cur.(*discoveryv1.EndpointSlice).DeepCopy()
		for _, ep := range e.Endpoints {
			for _, a := range ep.Addresses {
				if a == addr {
					return nil
				}
			}
		}
		e.Endpoints = append(e.Endpoints, slice.Endpoints[0])
		return e
	})
}

// ensure creates obj unless it exists.
func (s *Server) ensure(ctx context.Context, group, resource string, obj runtime.Object) error {
	res, ok := s.res.Get(group, resource)
	if !ok {
		return fmt.Errorf("no resource %s.%s", resource, group)
	}
	_, err := s.createObject(ctx, res, obj, false)
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// addAddress updates a stored object with add; add returns nil when the
// object already holds this apiserver's address.
func (s *Server) addAddress(ctx context.Context, resource string, obj runtime.Object, add func(runtime.Object) runtime.Object) error {
	res, _ := s.res.Get(groupOf(obj), resource)
	m := accessor(obj)
	_, _, err := s.store.GuaranteedUpdate(ctx, res.Resource, res.Key(m.GetNamespace(), m.GetName()), res.New,
		func(cur runtime.Object) (storage.UpdateResult, error) {
			return storage.UpdateResult{Object: add(cur)}, nil
		})
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

func groupOf(obj runtime.Object) string {
	if _, ok := obj.(*discoveryv1.EndpointSlice); ok {
		return discoveryv1.GroupName
	}
	return ""
}

// bootstrapPolicy creates the built-in ClusterRoles and ClusterRoleBindings
// that are missing; one a user edited (or deleted and made again) stays as
// it is.
func (s *Server) bootstrapPolicy(ctx context.Context) error {
	for _, obj := range authz.BootstrapPolicy(s.res) {
		resource := "clusterroles"
		if _, ok := obj.(*rbacv1.ClusterRoleBinding); ok {
			resource = "clusterrolebindings"
		}
		if err := s.ensure(ctx, rbacv1.GroupName, resource, obj); err != nil {
			return fmt.Errorf("%s %s: %w", resource, accessor(obj).GetName(), err)
		}
	}
	return nil
}

// Package registry describes the kinds the apiserver serves: their names and
// paths, how they are stored, which fields can select them, and what the
// server sets or keeps on create and update (the per-kind strategy).
package registry

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// NewScheme returns a scheme with every type the apiserver encodes or decodes.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(s))
	utilruntime.Must(appsv1.AddToScheme(s))
	utilruntime.Must(coordinationv1.AddToScheme(s))
	utilruntime.Must(discoveryv1.AddToScheme(s))
	utilruntime.Must(autoscalingv1.AddToScheme(s))
	utilruntime.Must(autoscalingv2.AddToScheme(s))
	utilruntime.Must(policyv1.AddToScheme(s))
	utilruntime.Must(rbacv1.AddToScheme(s))
	// SelfSubjectAccessReview: created and answered, never stored.
	utilruntime.Must(authorizationv1.AddToScheme(s))
	// Served read-only from memory (the resource metrics API), never stored.
	utilruntime.Must(metricsv1beta1.AddToScheme(s))
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	utilruntime.Must(metav1.AddMetaToScheme(s))
	return s
}

// Resource is one kind the server serves.
type Resource struct {
	schema.GroupVersionResource
	Kind       string
	Singular   string
	ShortNames []string
	Categories []string
	Namespaced bool
	New        func() runtime.Object
	NewList    func() runtime.Object

	// Status: the kind has a status subresource; an update of the main
	// resource keeps the stored status and /status changes only status.
	Status bool
	// Scale: the kind has a scale subresource over spec.replicas.
	Scale bool
	// AllowCreateOnUpdate: a PUT of a missing object creates it.
	AllowCreateOnUpdate bool
	// KeepStatusOnCreate: status in a create body is kept (Nodes).
	KeepStatusOnCreate bool
	// TTL puts objects on an etcd lease (Events).
	TTL time.Duration
	// SelectableFields are the fields a fieldSelector may use, beyond
	// metadata.name and metadata.namespace.
	SelectableFields func(obj runtime.Object) fields.Set

	// PrepareForCreate sets server-owned fields of a new object.
	PrepareForCreate func(obj runtime.Object)
	// PrepareForUpdate carries server-owned fields of old into obj.
	PrepareForUpdate func(obj, old runtime.Object)
}

// GVK returns the resource's group, version and kind.
func (r *Resource) GVK() schema.GroupVersionKind {
	return r.GroupVersion().WithKind(r.Kind)
}

// GroupResource is the resource's group and plural name, for error messages.
func (r *Resource) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: r.Group, Resource: r.Resource}
}

// Prefix is the etcd key prefix for the resource, within ns when namespaced
// and ns is not empty. It ends with a slash.
func (r *Resource) Prefix(ns string) string {
	p := "/registry/" + r.Resource + "/"
	if r.Namespaced && ns != "" {
		p += ns + "/"
	}
	return p
}

// Key is the etcd key of one object.
func (r *Resource) Key(ns, name string) string {
	return r.Prefix(ns) + name
}

// Fields returns the field set a fieldSelector is matched against.
func (r *Resource) Fields(obj runtime.Object) fields.Set {
	set := fields.Set{}
	if r.SelectableFields != nil {
		set = r.SelectableFields(obj)
	}
	m := objectMeta(obj)
	set["metadata.name"] = m.Name
	if r.Namespaced {
		set["metadata.namespace"] = m.Namespace
	}
	return set
}

// SupportsField reports whether a fieldSelector may name the field.
func (r *Resource) SupportsField(name string) bool {
	_, ok := r.Fields(r.New())[name]
	return ok
}

// HasSpec reports whether the kind has a spec, whose changes bump
// metadata.generation.
func (r *Resource) HasSpec() bool {
	_, ok := reflect.TypeOf(r.New()).Elem().FieldByName("Spec")
	return ok
}

// Set is every resource the server serves, in a stable order.
type Set struct {
	list []*Resource
	byGR map[schema.GroupResource]*Resource
}

// NewSet returns the resources of DESIGN.md.
func NewSet() *Set {
	s := &Set{byGR: map[schema.GroupResource]*Resource{}}
	for _, r := range builtin() {
		s.list = append(s.list, r)
		s.byGR[r.GroupResource()] = r
	}
	return s
}

// All returns the resources in a stable order.
func (s *Set) All() []*Resource { return s.list }

// Get finds a resource by group and plural name.
func (s *Set) Get(group, resource string) (*Resource, bool) {
	r, ok := s.byGR[schema.GroupResource{Group: group, Resource: resource}]
	return r, ok
}

// GroupVersions returns the non-core group versions served, sorted.
func (s *Set) GroupVersions() []schema.GroupVersion {
	seen := map[schema.GroupVersion]bool{}
	var out []schema.GroupVersion
	for _, r := range s.list {
		gv := r.GroupVersion()
		if gv.Group != "" && !seen[gv] {
			seen[gv] = true
			out = append(out, gv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func objectMeta(obj runtime.Object) *metav1.ObjectMeta {
	v := reflect.ValueOf(obj).Elem().FieldByName("ObjectMeta")
	return v.Addr().Interface().(*metav1.ObjectMeta)
}

// CopyStatus sets dst's status to src's (both of the same kind).
func CopyStatus(dst, src runtime.Object) {
	d := reflect.ValueOf(dst).Elem().FieldByName("Status")
	s := reflect.ValueOf(src).Elem().FieldByName("Status")
	if d.IsValid() && s.IsValid() {
		d.Set(s)
	}
}

// ClearStatus resets obj's status to its zero value.
func ClearStatus(obj runtime.Object) {
	v := reflect.ValueOf(obj).Elem().FieldByName("Status")
	if v.IsValid() {
		v.Set(reflect.Zero(v.Type()))
	}
}

// CopySpec sets dst's spec to src's.
func CopySpec(dst, src runtime.Object) {
	d := reflect.ValueOf(dst).Elem().FieldByName("Spec")
	s := reflect.ValueOf(src).Elem().FieldByName("Spec")
	if d.IsValid() && s.IsValid() {
		d.Set(s)
	}
}

// SpecEqual reports whether a and b have semantically equal specs.
func SpecEqual(a, b runtime.Object) bool {
	x := reflect.ValueOf(a).Elem().FieldByName("Spec")
	y := reflect.ValueOf(b).Elem().FieldByName("Spec")
	if !x.IsValid() || !y.IsValid() {
		return true
	}
	return apiequality.Semantic.DeepEqual(x.Interface(), y.Interface())
}

func pluralize(kind string) string {
	k := strings.ToLower(kind)
	switch {
	case strings.HasSuffix(k, "s"):
		return k + "es"
	case strings.HasSuffix(k, "y"):
		return k[:len(k)-1] + "ies"
	}
	return k + "s"
}

// define builds a Resource for a kind from its typed object.
func define(gv schema.GroupVersion, obj, list runtime.Object, namespaced bool, short ...string) *Resource {
	kind := reflect.TypeOf(obj).Elem().Name()
	ot := reflect.TypeOf(obj).Elem()
	lt := reflect.TypeOf(list).Elem()
	return &Resource{
		GroupVersionResource: gv.WithResource(pluralize(kind)),
		Kind:                 kind,
		Singular:             strings.ToLower(kind),
		ShortNames:           short,
		Namespaced:           namespaced,
		New:                  func() runtime.Object { return reflect.New(ot).Interface().(runtime.Object) },
		NewList:              func() runtime.Object { return reflect.New(lt).Interface().(runtime.Object) },
	}
}

func builtin() []*Resource {
	core := corev1.SchemeGroupVersion
	pods := define(core, &corev1.Pod{}, &corev1.PodList{}, true, "po")
	pods.Status, pods.Categories = true, []string{"all"}
	pods.SelectableFields = podFields
	pods.PrepareForCreate = func(obj runtime.Object) {
		p := obj.(*corev1.Pod)
		p.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: qosClass(&p.Spec)}
	}

	services := define(core, &corev1.Service{}, &corev1.ServiceList{}, true, "svc")
	services.Status, services.Categories = true, []string{"all"}
	services.PrepareForUpdate = func(obj, old runtime.Object) {
		prepareServiceUpdate(obj.(*corev1.Service), old.(*corev1.Service))
	}

	namespaces := define(core, &corev1.Namespace{}, &corev1.NamespaceList{}, false, "ns")
	namespaces.Status = true
	namespaces.SelectableFields = func(obj runtime.Object) fields.Set {
		return fields.Set{"status.phase": string(obj.(*corev1.Namespace).Status.Phase)}
	}
	namespaces.PrepareForCreate = func(obj runtime.Object) {
		ns := obj.(*corev1.Namespace)
		ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
		ns.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
	}
	namespaces.PrepareForUpdate = func(obj, old runtime.Object) {
		// spec.finalizers change only through /finalize.
		obj.(*corev1.Namespace).Spec = old.(*corev1.Namespace).Spec
	}

	nodes := define(core, &corev1.Node{}, &corev1.NodeList{}, false, "no")
	nodes.Status, nodes.KeepStatusOnCreate = true, true
	nodes.SelectableFields = func(obj runtime.Object) fields.Set {
		return fields.Set{"spec.unschedulable": fmt.Sprint(obj.(*corev1.Node).Spec.Unschedulable)}
	}

	endpoints := define(core, &corev1.Endpoints{}, &corev1.EndpointsList{}, true, "ep")
	endpoints.Resource, endpoints.AllowCreateOnUpdate = "endpoints", true

	configmaps := define(core, &corev1.ConfigMap{}, &corev1.ConfigMapList{}, true, "cm")
	secrets := define(core, &corev1.Secret{}, &corev1.SecretList{}, true)
	secrets.SelectableFields = func(obj runtime.Object) fields.Set {
		return fields.Set{"type": string(obj.(*corev1.Secret).Type)}
	}

	events := define(core, &corev1.Event{}, &corev1.EventList{}, true, "ev")
	events.TTL, events.AllowCreateOnUpdate = time.Hour, true
	events.SelectableFields = eventFields

	deployments := define(appsv1.SchemeGroupVersion, &appsv1.Deployment{}, &appsv1.DeploymentList{}, true, "deploy")
	deployments.Status, deployments.Scale, deployments.Categories = true, true, []string{"all"}
	replicasets := define(appsv1.SchemeGroupVersion, &appsv1.ReplicaSet{}, &appsv1.ReplicaSetList{}, true, "rs")
	replicasets.Status, replicasets.Scale, replicasets.Categories = true, true, []string{"all"}
	replicasets.SelectableFields = func(obj runtime.Object) fields.Set {
		return fields.Set{"status.replicas": fmt.Sprint(obj.(*appsv1.ReplicaSet).Status.Replicas)}
	}

	leases := define(coordinationv1.SchemeGroupVersion, &coordinationv1.Lease{}, &coordinationv1.LeaseList{}, true)
	leases.AllowCreateOnUpdate = true

	slices := define(discoveryv1.SchemeGroupVersion, &discoveryv1.EndpointSlice{}, &discoveryv1.EndpointSliceList{}, true)

	hpas := define(autoscalingv2.SchemeGroupVersion, &autoscalingv2.HorizontalPodAutoscaler{}, &autoscalingv2.HorizontalPodAutoscalerList{}, true, "hpa")
	hpas.Status, hpas.Categories = true, []string{"all"}

	rbac := rbacv1.SchemeGroupVersion
	roles := define(rbac, &rbacv1.Role{}, &rbacv1.RoleList{}, true)
	roleBindings := define(rbac, &rbacv1.RoleBinding{}, &rbacv1.RoleBindingList{}, true)
	clusterRoles := define(rbac, &rbacv1.ClusterRole{}, &rbacv1.ClusterRoleList{}, false)
	clusterRoleBindings := define(rbac, &rbacv1.ClusterRoleBinding{}, &rbacv1.ClusterRoleBindingList{}, false)

	return []*Resource{pods, services, endpoints, nodes, namespaces, configmaps, secrets, events,
		deployments, replicasets, leases, slices, hpas, roles, roleBindings, clusterRoles, clusterRoleBindings}
}

func podFields(obj runtime.Object) fields.Set {
	p := obj.(*corev1.Pod)
	return fields.Set{
		"spec.nodeName":            p.Spec.NodeName,
		"spec.restartPolicy":       string(p.Spec.RestartPolicy),
		"spec.schedulerName":       p.Spec.SchedulerName,
		"spec.serviceAccountName":  p.Spec.ServiceAccountName,
		"spec.hostNetwork":         fmt.Sprint(p.Spec.HostNetwork),
		"status.phase":             string(p.Status.Phase),
		"status.podIP":             p.Status.PodIP,
		"status.nominatedNodeName": p.Status.NominatedNodeName,
	}
}

func eventFields(obj runtime.Object) fields.Set {
	e := obj.(*corev1.Event)
	return fields.Set{
		"involvedObject.kind":            e.InvolvedObject.Kind,
		"involvedObject.namespace":       e.InvolvedObject.Namespace,
		"involvedObject.name":            e.InvolvedObject.Name,
		"involvedObject.uid":             string(e.InvolvedObject.UID),
		"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
		"reason":                         e.Reason,
		"reportingComponent":             e.ReportingController,
		"source":                         e.Source.Component,
		"type":                           e.Type,
	}
}

// qosClass computes a pod's QoS class as Kubernetes does.
func qosClass(spec *corev1.PodSpec) corev1.PodQOSClass {
	requests, limits := 0, 0
	guaranteed := true
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[name]
			lim, hasLim := c.Resources.Limits[name]
			if hasReq && !req.IsZero() {
				requests++
			}
			if hasLim && !lim.IsZero() {
				limits++
			}
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case requests == 0 && limits == 0:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// prepareServiceUpdate does what Kubernetes' service strategy does before
// validating an update: a body that leaves the cluster IP out keeps the
// stored one (also "None" of a headless Service), and a change of type drops
// the fields the new type may not have where the body merely carried them
// over from the stored object (a patch to type ExternalName, or from NodePort
// to ClusterIP, then succeeds instead of failing on fields it never named).
func prepareServiceUpdate(svc, old *corev1.Service) {
	spec, was := &svc.Spec, &old.Spec
	external := spec.Type == corev1.ServiceTypeExternalName
	if !external && was.Type != corev1.ServiceTypeExternalName && spec.ClusterIP == "" && len(spec.ClusterIPs) == 0 {
		spec.ClusterIP, spec.ClusterIPs = was.ClusterIP, append([]string(nil), was.ClusterIPs...)
	}
	if external && was.Type != corev1.ServiceTypeExternalName {
		if spec.ClusterIP == was.ClusterIP && slices.Equal(spec.ClusterIPs, was.ClusterIPs) {
			spec.ClusterIP, spec.ClusterIPs = "", nil
		}
		if slices.Equal(spec.IPFamilies, was.IPFamilies) {
			spec.IPFamilies = nil
		}
		if apiequality.Semantic.DeepEqual(spec.IPFamilyPolicy, was.IPFamilyPolicy) {
			spec.IPFamilyPolicy = nil
		}
		if apiequality.Semantic.DeepEqual(spec.InternalTrafficPolicy, was.InternalTrafficPolicy) {
			spec.InternalTrafficPolicy = nil
		}
	}
	nodePorts := spec.Type == corev1.ServiceTypeNodePort || spec.Type == corev1.ServiceTypeLoadBalancer
	hadNodePorts := was.Type == corev1.ServiceTypeNodePort || was.Type == corev1.ServiceTypeLoadBalancer
	if hadNodePorts && !nodePorts {
		oldPorts := map[int32]bool{}
		for _, p := range was.Ports {
			oldPorts[p.NodePort] = true
		}
		for i := range spec.Ports {
			if oldPorts[spec.Ports[i].NodePort] {
				spec.Ports[i].NodePort = 0
			}
		}
		if spec.ExternalTrafficPolicy == was.ExternalTrafficPolicy {
			spec.ExternalTrafficPolicy = ""
		}
	}
}

// Package validation defaults and validates the typed objects kubeish
// serves. It follows Kubernetes' rules, messages and field paths (so that
// clients see the errors they know), and adds kubeish's own refusals of
// the pod features it does not implement (see podFieldPolicy).
//
// The apiserver calls SetDefaults on every write, then Validate on create,
// ValidateUpdate on update and ValidateStatusUpdate on writes to a
// subresource (status, binding, finalize). Objects of other types get no
// defaults and no errors.
package validation

import (
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validate returns the errors that make obj invalid for a create, and the
// warnings about fields kubeish accepts but ignores.
func Validate(obj runtime.Object) (field.ErrorList, []string) {
	switch o := obj.(type) {
	case *corev1.Pod:
		if o != nil {
			return validatePod(o)
		}
	case *corev1.Service:
		if o != nil {
			return validateService(o), nil
		}
	case *corev1.Node:
		if o != nil {
			return validateNode(o), nil
		}
	case *corev1.Endpoints:
		if o != nil {
			return validateEndpoints(o), nil
		}
	case *corev1.Namespace:
		if o != nil {
			return validateNamespace(o), nil
		}
	case *corev1.ConfigMap:
		if o != nil {
			return validateConfigMap(o), nil
		}
	case *corev1.Secret:
		if o != nil {
			return validateSecret(o), nil
		}
	case *corev1.Event:
		if o != nil {
			return validateEvent(o), nil
		}
	case *appsv1.Deployment:
		if o != nil {
			return validateDeployment(o)
		}
	case *appsv1.ReplicaSet:
		if o != nil {
			return validateReplicaSet(o)
		}
	case *coordinationv1.Lease:
		if o != nil {
			return validateLease(o), nil
		}
	case *discoveryv1.EndpointSlice:
		if o != nil {
			return validateEndpointSlice(o), nil
		}
	case *autoscalingv2.HorizontalPodAutoscaler:
		if o != nil {
			return validateHPA(o), nil
		}
	case *rbacv1.Role:
		if o != nil {
			return validateRole(o), nil
		}
	case *rbacv1.ClusterRole:
		if o != nil {
			return validateClusterRole(o), nil
		}
	case *rbacv1.RoleBinding:
		if o != nil {
			return validateRoleBinding(o), nil
		}
	case *rbacv1.ClusterRoleBinding:
		if o != nil {
			return validateClusterRoleBinding(o), nil
		}
	}
	return nil, nil
}

// ValidateUpdate returns Validate(obj) plus the errors of changing old into
// obj: metadata that may not change and each kind's immutable fields. Its
// warnings are those of obj that old did not already have, so that an
// update does not repeat what its create said.
func ValidateUpdate(obj, old runtime.Object) (field.ErrorList, []string) {
	if !sameType(obj, old) {
		return Validate(obj)
	}
	var errs field.ErrorList
	var warns []string
	switch o := obj.(type) {
	case *corev1.Service:
		// Type-dependent fields left over from old are tolerated.
		errs = validateService(serviceForUpdate(o, old.(*corev1.Service)))
	default:
		errs, warns = Validate(obj)
	}
	if len(warns) > 0 {
		_, oldWarns := Validate(old)
		warns = slices.DeleteFunc(warns, func(w string) bool { return slices.Contains(oldWarns, w) })
		if len(warns) == 0 {
			warns = nil
		}
	}
	errs = append(errs, validateMetaUpdate(metaOf(obj), metaOf(old))...)
	switch o := obj.(type) {
	case *corev1.Pod:
		errs = append(errs, validatePodUpdate(o, old.(*corev1.Pod))...)
	case *corev1.Service:
		errs = append(errs, validateServiceUpdate(o, old.(*corev1.Service))...)
	case *corev1.Node:
		errs = append(errs, validateNodeUpdate(o, old.(*corev1.Node))...)
	case *corev1.ConfigMap:
		errs = append(errs, validateConfigMapUpdate(o, old.(*corev1.ConfigMap))...)
	case *corev1.Secret:
		errs = append(errs, validateSecretUpdate(o, old.(*corev1.Secret))...)
	case *appsv1.Deployment:
		errs = append(errs, apivalidation.ValidateImmutableField(o.Spec.Selector, old.(*appsv1.Deployment).Spec.Selector, specPath.Child("selector"))...)
	case *appsv1.ReplicaSet:
		errs = append(errs, apivalidation.ValidateImmutableField(o.Spec.Selector, old.(*appsv1.ReplicaSet).Spec.Selector, specPath.Child("selector"))...)
	case *discoveryv1.EndpointSlice:
		errs = append(errs, apivalidation.ValidateImmutableField(o.AddressType, old.(*discoveryv1.EndpointSlice).AddressType, field.NewPath("addressType"))...)
	case *rbacv1.RoleBinding:
		errs = append(errs, validateRoleRefUpdate(o.RoleRef, old.(*rbacv1.RoleBinding).RoleRef)...)
	case *rbacv1.ClusterRoleBinding:
		errs = append(errs, validateRoleRefUpdate(o.RoleRef, old.(*rbacv1.ClusterRoleBinding).RoleRef)...)
	}
	return errs, warns
}

// ValidateStatusUpdate validates a write to a subresource (status, and the
// binding of a pod or the finalizing of a namespace): the metadata, the
// metadata that may not change, and the few status rules Kubernetes has.
// The spec rules do not apply.
func ValidateStatusUpdate(obj, old runtime.Object) field.ErrorList {
	if !sameType(obj, old) || metaOf(obj) == nil {
		return nil
	}
	m, isNamespaced, nameFn := metaRules(obj)
	errs := validateMeta(m, isNamespaced, nameFn)
	errs = append(errs, validateMetaUpdate(m, metaOf(old))...)
	return append(errs, validateStatus(obj)...)
}

// sameType reports whether obj and old are non-nil objects of one type.
func sameType(obj, old runtime.Object) bool {
	if metaOf(obj) == nil || metaOf(old) == nil {
		return false
	}
	return fmt.Sprintf("%T", obj) == fmt.Sprintf("%T", old)
}

var (
	metaPath = field.NewPath("metadata")
	specPath = field.NewPath("spec")
)

// metaOf returns the ObjectMeta of a kind handled here, or nil.
func metaOf(obj runtime.Object) *metav1.ObjectMeta {
	switch o := obj.(type) {
	case *corev1.Pod:
		if o != nil {
			return &o.ObjectMeta
		}
	case *corev1.Service:
		if o != nil {
			return &o.ObjectMeta
		}
	case *corev1.Node:
		if o != nil {
			return &o.ObjectMeta
		}
	case *corev1.Endpoints:
		if o != nil {
			return &o.ObjectMeta
		}
	case *corev1.Namespace:
		if o != nil {
			return &o.ObjectMeta
		}
	case *corev1.ConfigMap:
		if o != nil {
			return &o.ObjectMeta
		}
	case *corev1.Secret:
		if o != nil {
			return &o.ObjectMeta
		}
	case *corev1.Event:
		if o != nil {
			return &o.ObjectMeta
		}
	case *appsv1.Deployment:
		if o != nil {
			return &o.ObjectMeta
		}
	case *appsv1.ReplicaSet:
		if o != nil {
			return &o.ObjectMeta
		}
	case *coordinationv1.Lease:
		if o != nil {
			return &o.ObjectMeta
		}
	case *discoveryv1.EndpointSlice:
		if o != nil {
			return &o.ObjectMeta
		}
	case *autoscalingv2.HorizontalPodAutoscaler:
		if o != nil {
			return &o.ObjectMeta
		}
	case *rbacv1.Role:
		if o != nil {
			return &o.ObjectMeta
		}
	case *rbacv1.ClusterRole:
		if o != nil {
			return &o.ObjectMeta
		}
	case *rbacv1.RoleBinding:
		if o != nil {
			return &o.ObjectMeta
		}
	case *rbacv1.ClusterRoleBinding:
		if o != nil {
			return &o.ObjectMeta
		}
	}
	return nil
}

// metaRules returns obj's metadata, whether its kind is namespaced and the
// rule for its name. obj must be of a kind handled here.
func metaRules(obj runtime.Object) (*metav1.ObjectMeta, bool, apivalidation.ValidateNameFunc) {
	m := metaOf(obj)
	switch obj.(type) {
	case *corev1.Namespace:
		return m, false, apivalidation.NameIsDNSLabel
	case *corev1.Node:
		return m, false, apivalidation.NameIsDNSSubdomain
	case *corev1.Service:
		return m, true, apivalidation.NameIsDNSLabel
	}
	return m, true, apivalidation.NameIsDNSSubdomain
}

// validateMeta is Kubernetes' ObjectMeta validation for a create: name (or
// generateName), namespace, labels, annotations, owner references and
// finalizers.
func validateMeta(m *metav1.ObjectMeta, namespaced bool, nameFn apivalidation.ValidateNameFunc) field.ErrorList {
	errs := apivalidation.ValidateObjectMeta(m, namespaced, nameFn, metaPath)
	for i, f := range m.Finalizers {
		errs = append(errs, validateKubeFinalizerName(f, metaPath.Child("finalizers").Index(i))...)
	}
	return errs
}

// standardFinalizers are the finalizer names that need no domain.
var standardFinalizers = []string{
	string(corev1.FinalizerKubernetes), metav1.FinalizerOrphanDependents, metav1.FinalizerDeleteDependents,
}

func validateKubeFinalizerName(name string, p *field.Path) field.ErrorList {
	if !strings.Contains(name, "/") && !slices.Contains(standardFinalizers, name) {
		return field.ErrorList{field.Invalid(p, name, "name is neither a standard finalizer name nor is it fully qualified")}
	}
	return nil
}

// validateMetaUpdate is Kubernetes' ObjectMeta update validation, except
// that an empty resourceVersion is allowed: the server treats it as an
// unconditional update.
func validateMetaUpdate(m, old *metav1.ObjectMeta) field.ErrorList {
	var errs field.ErrorList
	if old.DeletionTimestamp != nil {
		errs = append(errs, apivalidation.ValidateNoNewFinalizers(m.Finalizers, old.Finalizers, metaPath.Child("finalizers"))...)
	}
	if m.Generation < old.Generation {
		errs = append(errs, field.Invalid(metaPath.Child("generation"), m.Generation, "must not be decremented"))
	}
	errs = append(errs, apivalidation.ValidateImmutableField(m.Name, old.Name, metaPath.Child("name"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(m.Namespace, old.Namespace, metaPath.Child("namespace"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(m.UID, old.UID, metaPath.Child("uid"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(m.CreationTimestamp, old.CreationTimestamp, metaPath.Child("creationTimestamp"))...)
	return errs
}

// Messages shared by several kinds, as Kubernetes words them.
const (
	isNegativeErrorMsg   = "must be greater than or equal to 0"
	fileModeErrorMsg     = "must be a number between 0 and 0777 (octal), both inclusive"
	notSupportedMsg      = "not supported by kubeish"
	ignoredMsg           = "ignored by kubeish"
	immutableWhenSetMsg  = "field is immutable when `immutable` is set"
	maxConfigMapDataSize = 1024 * 1024
)

func nonNegative(v int64, p *field.Path) field.ErrorList {
	if v < 0 {
		return field.ErrorList{field.Invalid(p, v, isNegativeErrorMsg)}
	}
	return nil
}

// invalids turns the messages of an apimachinery Is* check into errors.
func invalids(p *field.Path, value any, msgs []string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range msgs {
		errs = append(errs, field.Invalid(p, value, msg))
	}
	return errs
}

// oneOf checks a required enumeration: empty is Required (with detail),
// anything outside allowed is NotSupported listing allowed in order.
func oneOf[T ~string](p *field.Path, v T, allowed []T, detail string) field.ErrorList {
	switch {
	case v == "":
		return field.ErrorList{field.Required(p, detail)}
	case !slices.Contains(allowed, v):
		return field.ErrorList{field.NotSupported(p, v, allowed)}
	}
	return nil
}

package validation

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	namespacePhases = []corev1.NamespacePhase{corev1.NamespaceActive, corev1.NamespaceTerminating}
	hpaMetricTypes  = []autoscalingv2.MetricSourceType{autoscalingv2.ResourceMetricSourceType}
	hpaResources    = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}
	hpaSelects      = []autoscalingv2.ScalingPolicySelect{autoscalingv2.DisabledPolicySelect, autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect}
	hpaPolicyTypes  = []autoscalingv2.HPAScalingPolicyType{autoscalingv2.PercentScalingPolicy, autoscalingv2.PodsScalingPolicy}
)

// --- Node ------------------------------------------------------------------

func validateNode(node *corev1.Node) field.ErrorList {
	errs := validateMeta(&node.ObjectMeta, false, apivalidation.NameIsDNSSubdomain)
	spec := &node.Spec
	if spec.PodCIDR != "" {
		errs = append(errs, validation.IsValidCIDRForLegacyField(specPath.Child("podCIDR"), spec.PodCIDR, true, nil)...)
	}
	cidrsPath := specPath.Child("podCIDRs")
	for i, c := range spec.PodCIDRs {
		errs = append(errs, validation.IsValidCIDRForLegacyField(cidrsPath.Index(i), c, true, nil)...)
	}
	if len(spec.PodCIDRs) > 0 && spec.PodCIDR != "" && spec.PodCIDRs[0] != spec.PodCIDR {
		errs = append(errs, field.Invalid(cidrsPath.Index(0), spec.PodCIDRs[0], "must match spec.podCIDR"))
	}
	if len(spec.PodCIDRs) > 1 && !dualStack(spec.PodCIDRs) {
		errs = append(errs, field.Invalid(cidrsPath, spec.PodCIDRs, "may specify no more than one CIDR for each IP family"))
	}
	errs = append(errs, validateTaints(spec.Taints, specPath.Child("taints"))...)
	return errs
}

// dualStack: one IPv4 and one IPv6 CIDR.
func dualStack(cidrs []string) bool {
	if len(cidrs) != 2 {
		return false
	}
	v4 := 0
	for _, c := range cidrs {
		ip, _, err := net.ParseCIDR(c)
		if err != nil {
			return false
		}
		if ip.To4() != nil {
			v4++
		}
	}
	return v4 == 1
}

func validateTaints(taints []corev1.Taint, at *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[corev1.TaintEffect]sets.Set[string]{}
	for i, t := range taints {
		p := at.Index(i)
		errs = append(errs, metav1validation.ValidateLabelName(t.Key, p.Child("key"))...)
		errs = append(errs, invalids(p.Child("value"), t.Value, content.IsLabelValue(t.Value))...)
		switch {
		case t.Effect == "":
			errs = append(errs, field.Required(p.Child("effect"), ""))
		case !slices.Contains(taintEffects, t.Effect):
			errs = append(errs, field.NotSupported(p.Child("effect"), t.Effect, taintEffects))
		}
		if seen[t.Effect].Has(t.Key) {
			dup := field.Duplicate(p, t.Key+":"+string(t.Effect))
			dup.Detail = "taints must be unique by key and effect pair"
			errs = append(errs, dup)
			continue
		}
		if seen[t.Effect] == nil {
			seen[t.Effect] = sets.New[string]()
		}
		seen[t.Effect].Insert(t.Key)
	}
	return errs
}

// validateNodeUpdate: the pod CIDRs and the provider ID are set once.
func validateNodeUpdate(node, old *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	if old.Spec.PodCIDR != "" && node.Spec.PodCIDR != old.Spec.PodCIDR {
		errs = append(errs, field.Forbidden(specPath.Child("podCIDR"), "node updates may not change podCIDR except from \"\" to valid"))
	}
	if len(old.Spec.PodCIDRs) > 0 && !slices.Equal(node.Spec.PodCIDRs, old.Spec.PodCIDRs) {
		errs = append(errs, field.Forbidden(specPath.Child("podCIDRs"), "node updates may not change podCIDR except from \"\" to valid"))
	}
	if old.Spec.ProviderID != "" && node.Spec.ProviderID != old.Spec.ProviderID {
		errs = append(errs, field.Forbidden(specPath.Child("providerID"), "node updates may not change providerID except from \"\" to valid"))
	}
	return errs
}

func validateNodeStatus(node *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("status")
	for _, list := range []struct {
		name string
		l    corev1.ResourceList
	}{{"capacity", node.Status.Capacity}, {"allocatable", node.Status.Allocatable}} {
		for _, name := range sortedNames(list.l) {
			if q := list.l[name]; q.Sign() < 0 {
				errs = append(errs, field.Invalid(sp.Child(list.name).Key(string(name)), q.String(), isNegativeErrorMsg))
			}
		}
	}
	return errs
}

// --- Namespace -------------------------------------------------------------

func validateNamespace(ns *corev1.Namespace) field.ErrorList {
	errs := validateMeta(&ns.ObjectMeta, false, apivalidation.NameIsDNSLabel)
	return append(errs, validateNamespaceFinalizers(ns)...)
}

func validateNamespaceFinalizers(ns *corev1.Namespace) field.ErrorList {
	var errs field.ErrorList
	for i, f := range ns.Spec.Finalizers {
		p := specPath.Child("finalizers").Index(i)
		errs = append(errs, apivalidation.ValidateFinalizerName(string(f), p)...)
		errs = append(errs, validateKubeFinalizerName(string(f), p)...)
	}
	return errs
}

// --- ConfigMap and Secret --------------------------------------------------

func validateConfigMap(cm *corev1.ConfigMap) field.ErrorList {
	errs := validateMeta(&cm.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	size := 0
	dataPath, binaryPath := field.NewPath("data"), field.NewPath("binaryData")
	for _, k := range sortedKeys(cm.Data) {
		errs = append(errs, invalids(dataPath.Key(k), k, validation.IsConfigMapKey(k))...)
		size += len(k) + len(cm.Data[k])
	}
	for _, k := range sortedKeys(cm.BinaryData) {
		errs = append(errs, invalids(binaryPath.Key(k), k, validation.IsConfigMapKey(k))...)
		if _, ok := cm.Data[k]; ok {
			errs = append(errs, field.Invalid(binaryPath.Key(k), k, "duplicate of key present in data"))
		}
		size += len(k) + len(cm.BinaryData[k])
	}
	if size > maxConfigMapDataSize {
		errs = append(errs, field.TooLong(dataPath, "", maxConfigMapDataSize))
	}
	return errs
}

func validateConfigMapUpdate(cm, old *corev1.ConfigMap) field.ErrorList {
	if old.Immutable == nil || !*old.Immutable {
		return nil
	}
	var errs field.ErrorList
	if cm.Immutable == nil || !*cm.Immutable {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), immutableWhenSetMsg))
	}
	if !sameMap(cm.Data, old.Data) {
		errs = append(errs, field.Forbidden(field.NewPath("data"), immutableWhenSetMsg))
	}
	if !sameMap(cm.BinaryData, old.BinaryData) {
		errs = append(errs, field.Forbidden(field.NewPath("binaryData"), immutableWhenSetMsg))
	}
	return errs
}

func validateSecret(s *corev1.Secret) field.ErrorList {
	errs := validateMeta(&s.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	dataPath := field.NewPath("data")
	size := 0
	for _, k := range sortedKeys(s.Data) {
		errs = append(errs, invalids(dataPath.Key(k), k, validation.IsConfigMapKey(k))...)
		size += len(s.Data[k])
	}
	// Without SetDefaults stringData is still apart.
	for _, k := range sortedKeys(s.StringData) {
		errs = append(errs, invalids(field.NewPath("stringData").Key(k), k, validation.IsConfigMapKey(k))...)
		if _, ok := s.Data[k]; !ok {
			size += len(s.StringData[k])
		}
	}
	if size > maxConfigMapDataSize {
		errs = append(errs, field.TooLong(dataPath, "", maxConfigMapDataSize))
	}
	has := func(k string) bool {
		_, inData := s.Data[k]
		_, inString := s.StringData[k]
		return inData || inString
	}
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		if s.Annotations[corev1.ServiceAccountNameKey] == "" {
			errs = append(errs, field.Required(metaPath.Child("annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg:
		errs = append(errs, validateJSONKey(s, corev1.DockerConfigKey)...)
	case corev1.SecretTypeDockerConfigJson:
		errs = append(errs, validateJSONKey(s, corev1.DockerConfigJsonKey)...)
	case corev1.SecretTypeBasicAuth:
		if !has(corev1.BasicAuthUsernameKey) && !has(corev1.BasicAuthPasswordKey) {
			errs = append(errs, field.Required(dataPath.Key(corev1.BasicAuthUsernameKey), ""),
				field.Required(dataPath.Key(corev1.BasicAuthPasswordKey), ""))
		}
	case corev1.SecretTypeSSHAuth:
		if !has(corev1.SSHAuthPrivateKey) {
			errs = append(errs, field.Required(dataPath.Key(corev1.SSHAuthPrivateKey), ""))
		}
	case corev1.SecretTypeTLS:
		for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
			if !has(k) {
				errs = append(errs, field.Required(dataPath.Key(k), ""))
			}
		}
	}
	return errs
}

// validateJSONKey: a docker config secret holds its config, as JSON.
func validateJSONKey(s *corev1.Secret, key string) field.ErrorList {
	p := field.NewPath("data").Key(key)
	v, ok := s.Data[key]
	if sv, inString := s.StringData[key]; inString {
		v, ok = []byte(sv), true
	}
	if !ok {
		return field.ErrorList{field.Required(p, "")}
	}
	var m map[string]any
	if err := json.Unmarshal(v, &m); err != nil {
		return field.ErrorList{field.Invalid(p, "<secret contents redacted>", err.Error())}
	}
	return nil
}

func validateSecretUpdate(s, old *corev1.Secret) field.ErrorList {
	errs := apivalidation.ValidateImmutableField(s.Type, old.Type, field.NewPath("type"))
	if old.Immutable == nil || !*old.Immutable {
		return errs
	}
	if s.Immutable == nil || !*s.Immutable {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), immutableWhenSetMsg))
	}
	if !sameMap(s.Data, old.Data) || len(s.StringData) > 0 {
		errs = append(errs, field.Forbidden(field.NewPath("data"), immutableWhenSetMsg))
	}
	return errs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// sameMap compares data maps, nil and empty alike.
func sameMap[V string | []byte](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || string(v) != string(w) {
			return false
		}
	}
	return true
}

// --- Event -----------------------------------------------------------------

// Kubernetes' limits on the fields of a new-style Event.
const (
	reportingInstanceMax = 128
	actionMax            = 128
	reasonMax            = 128
	noteMax              = 1024
)

// validateEvent is Kubernetes' validation of a core/v1 Event: the involved
// object must be in the event's namespace, and an event with an eventTime
// (the new style) names its reporter, action and reason.
func validateEvent(ev *corev1.Event) field.ErrorList {
	errs := validateMeta(&ev.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	nsPath := field.NewPath("involvedObject", "namespace")
	involved := ev.InvolvedObject.Namespace
	if ev.EventTime.IsZero() {
		if involved == "" {
			if ev.Namespace != "" && ev.Namespace != "default" {
				errs = append(errs, field.Invalid(nsPath, involved, "does not match event.namespace"))
			}
		} else if ev.Namespace != involved {
			errs = append(errs, field.Invalid(nsPath, involved, "does not match event.namespace"))
		}
		return errs
	}
	if involved == "" && ev.Namespace != "default" && ev.Namespace != "kube-system" {
		errs = append(errs, field.Invalid(nsPath, involved, "does not match event.namespace"))
	}
	rc := field.NewPath("reportingComponent")
	if ev.ReportingController == "" {
		errs = append(errs, field.Required(rc, ""))
	} else {
		errs = append(errs, invalids(rc, ev.ReportingController, content.IsLabelKey(ev.ReportingController))...)
	}
	checkLen := func(name, v string, maxLen int) {
		p := field.NewPath(name)
		if v == "" && name != "message" {
			errs = append(errs, field.Required(p, ""))
		}
		if len(v) > maxLen {
			errs = append(errs, field.Invalid(p, "", fmt.Sprintf("can have at most %d characters", maxLen)))
		}
	}
	checkLen("reportingInstance", ev.ReportingInstance, reportingInstanceMax)
	checkLen("action", ev.Action, actionMax)
	checkLen("reason", ev.Reason, reasonMax)
	checkLen("message", ev.Message, noteMax)
	return errs
}

// --- Lease -----------------------------------------------------------------

func validateLease(l *coordinationv1.Lease) field.ErrorList {
	errs := validateMeta(&l.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	if d := l.Spec.LeaseDurationSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(specPath.Child("leaseDurationSeconds"), *d, "must be greater than 0"))
	}
	if t := l.Spec.LeaseTransitions; t != nil && *t < 0 {
		errs = append(errs, field.Invalid(specPath.Child("leaseTransitions"), *t, isNegativeErrorMsg))
	}
	return errs
}

// --- HorizontalPodAutoscaler -----------------------------------------------

func validateHPA(h *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList {
	errs := validateMeta(&h.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	spec := &h.Spec
	ref := specPath.Child("scaleTargetRef")
	if spec.ScaleTargetRef.Kind == "" {
		errs = append(errs, field.Required(ref.Child("kind"), ""))
	} else {
		errs = append(errs, invalids(ref.Child("kind"), spec.ScaleTargetRef.Kind, content.IsPathSegmentName(spec.ScaleTargetRef.Kind))...)
	}
	if spec.ScaleTargetRef.Name == "" {
		errs = append(errs, field.Required(ref.Child("name"), ""))
	} else {
		errs = append(errs, invalids(ref.Child("name"), spec.ScaleTargetRef.Name, content.IsPathSegmentName(spec.ScaleTargetRef.Name))...)
	}
	if m := spec.MinReplicas; m != nil && *m < 1 {
		errs = append(errs, field.Invalid(specPath.Child("minReplicas"), *m, "must be greater than or equal to 1"))
	}
	if spec.MaxReplicas < 1 {
		errs = append(errs, field.Invalid(specPath.Child("maxReplicas"), spec.MaxReplicas, "must be greater than 0"))
	}
	if m := spec.MinReplicas; m != nil && spec.MaxReplicas < *m {
		errs = append(errs, field.Invalid(specPath.Child("maxReplicas"), spec.MaxReplicas, "must be greater than or equal to `minReplicas`"))
	}
	for i := range spec.Metrics {
		errs = append(errs, validateMetric(&spec.Metrics[i], specPath.Child("metrics").Index(i))...)
	}
	if b := spec.Behavior; b != nil {
		bp := specPath.Child("behavior")
		errs = append(errs, validateScalingRules(b.ScaleUp, bp.Child("scaleUp"))...)
		errs = append(errs, validateScalingRules(b.ScaleDown, bp.Child("scaleDown"))...)
	}
	return errs
}

// validateMetric: kubeish's autoscaler scales on the cpu and memory of
// pods only.
func validateMetric(m *autoscalingv2.MetricSpec, p *field.Path) field.ErrorList {
	if m.Type == "" {
		return field.ErrorList{field.Required(p.Child("type"), "must specify a metric source type")}
	}
	if m.Type != autoscalingv2.ResourceMetricSourceType {
		return field.ErrorList{field.NotSupported(p.Child("type"), m.Type, hpaMetricTypes)}
	}
	var errs field.ErrorList
	rp := p.Child("resource")
	if m.Resource == nil {
		return field.ErrorList{field.Required(rp, "must populate information for the given metric source")}
	}
	switch {
	case m.Resource.Name == "":
		errs = append(errs, field.Required(rp.Child("name"), "must specify a resource name"))
	case !slices.Contains(hpaResources, m.Resource.Name):
		errs = append(errs, field.NotSupported(rp.Child("name"), m.Resource.Name, hpaResources))
	}
	t := &m.Resource.Target
	tp := rp.Child("target")
	switch t.Type {
	case "":
		errs = append(errs, field.Required(tp.Child("type"), "must specify a metric target type"))
	case autoscalingv2.UtilizationMetricType, autoscalingv2.ValueMetricType, autoscalingv2.AverageValueMetricType:
	default:
		errs = append(errs, field.Invalid(tp.Child("type"), t.Type, "must be either Utilization, Value, or AverageValue"))
	}
	if t.Value != nil && t.Value.Sign() != 1 {
		errs = append(errs, field.Invalid(tp.Child("value"), t.Value.String(), "must be positive"))
	}
	if t.AverageValue != nil && t.AverageValue.Sign() != 1 {
		errs = append(errs, field.Invalid(tp.Child("averageValue"), t.AverageValue.String(), "must be positive"))
	}
	if t.AverageUtilization != nil && *t.AverageUtilization < 1 {
		errs = append(errs, field.Invalid(tp.Child("averageUtilization"), *t.AverageUtilization, "must be greater than 0"))
	}
	switch {
	case t.AverageUtilization == nil && t.AverageValue == nil:
		errs = append(errs, field.Required(tp.Child("averageUtilization"), "must set either a target raw value or a target utilization"))
	case t.AverageUtilization != nil && t.AverageValue != nil:
		errs = append(errs, field.Forbidden(tp.Child("averageValue"), "may not set both a target raw value and a target utilization"))
	}
	return errs
}

const (
	maxStabilizationWindow = 3600
	maxPolicyPeriod        = 1800
)

func validateScalingRules(r *autoscalingv2.HPAScalingRules, p *field.Path) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	if w := r.StabilizationWindowSeconds; w != nil && (*w < 0 || *w > maxStabilizationWindow) {
		errs = append(errs, field.Invalid(p.Child("stabilizationWindowSeconds"), *w, fmt.Sprintf("must be greater than or equal to zero and less than or equal to %d", maxStabilizationWindow)))
	}
	if s := r.SelectPolicy; s != nil && !slices.Contains(hpaSelects, *s) {
		errs = append(errs, field.NotSupported(p.Child("selectPolicy"), *s, hpaSelects))
	}
	if r.Policies != nil && len(r.Policies) == 0 {
		errs = append(errs, field.Required(p.Child("policies"), "must specify at least one Policy"))
	}
	for i, pol := range r.Policies {
		pp := p.Child("policies").Index(i)
		if !slices.Contains(hpaPolicyTypes, pol.Type) {
			errs = append(errs, field.NotSupported(pp.Child("type"), pol.Type, hpaPolicyTypes))
		}
		if pol.Value <= 0 {
			errs = append(errs, field.Invalid(pp.Child("value"), pol.Value, "must be greater than zero"))
		}
		if pol.PeriodSeconds <= 0 || pol.PeriodSeconds > maxPolicyPeriod {
			errs = append(errs, field.Invalid(pp.Child("periodSeconds"), pol.PeriodSeconds, fmt.Sprintf("must be greater than zero and less than or equal to %d", maxPolicyPeriod)))
		}
	}
	if t := r.Tolerance; t != nil && t.Sign() < 0 {
		errs = append(errs, field.Invalid(p.Child("tolerance"), t.String(), isNegativeErrorMsg))
	}
	return errs
}

// --- status ----------------------------------------------------------------

// validateStatus holds the rules of a subresource write: the status, and
// the spec fields that /binding and /finalize change.
func validateStatus(obj runtime.Object) field.ErrorList {
	sp := field.NewPath("status")
	switch o := obj.(type) {
	case *corev1.Pod:
		return validatePodStatus(o)
	case *corev1.Service:
		return validateServiceStatus(o)
	case *corev1.Node:
		return validateNodeStatus(o)
	case *corev1.Namespace:
		errs := validateNamespaceFinalizers(o)
		if ph := o.Status.Phase; ph != "" && !slices.Contains(namespacePhases, ph) {
			errs = append(errs, field.NotSupported(sp.Child("phase"), ph, namespacePhases))
		}
		return errs
	case *appsv1.Deployment:
		return validateDeploymentStatus(&o.Status)
	case *appsv1.ReplicaSet:
		return validateReplicaSetStatus(&o.Status)
	case *autoscalingv2.HorizontalPodAutoscaler:
		var errs field.ErrorList
		errs = append(errs, nonNegative(int64(o.Status.CurrentReplicas), sp.Child("currentReplicas"))...)
		errs = append(errs, nonNegative(int64(o.Status.DesiredReplicas), sp.Child("desiredReplicas"))...)
		return errs
	}
	return nil
}

package validation

import (
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var strategyTypes = []appsv1.DeploymentStrategyType{appsv1.RecreateDeploymentStrategyType, appsv1.RollingUpdateDeploymentStrategyType}

func validateDeployment(d *appsv1.Deployment) (field.ErrorList, []string) {
	errs := validateMeta(&d.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	spec := &d.Spec
	more, warns := validateReplicated(spec.Replicas, spec.Selector, &spec.Template, spec.MinReadySeconds)
	errs = append(errs, more...)
	errs = append(errs, validateStrategy(&spec.Strategy, specPath.Child("strategy"))...)
	if spec.RevisionHistoryLimit != nil {
		errs = append(errs, nonNegative(int64(*spec.RevisionHistoryLimit), specPath.Child("revisionHistoryLimit"))...)
	}
	if pds := spec.ProgressDeadlineSeconds; pds != nil {
		pp := specPath.Child("progressDeadlineSeconds")
		errs = append(errs, nonNegative(int64(*pds), pp)...)
		if *pds <= spec.MinReadySeconds {
			errs = append(errs, field.Invalid(pp, *pds, "must be greater than minReadySeconds"))
		}
	}
	return errs, warns
}

func validateReplicaSet(rs *appsv1.ReplicaSet) (field.ErrorList, []string) {
	errs := validateMeta(&rs.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	more, warns := validateReplicated(rs.Spec.Replicas, rs.Spec.Selector, &rs.Spec.Template, rs.Spec.MinReadySeconds)
	return append(errs, more...), warns
}

// validateReplicated validates what a Deployment and a ReplicaSet share:
// replicas, a selector that selects the template, the template and
// minReadySeconds.
func validateReplicated(replicas *int32, selector *metav1.LabelSelector, template *corev1.PodTemplateSpec, minReadySeconds int32) (field.ErrorList, []string) {
	var errs field.ErrorList
	if replicas != nil {
		errs = append(errs, nonNegative(int64(*replicas), specPath.Child("replicas"))...)
	}
	selPath := specPath.Child("selector")
	if selector == nil {
		errs = append(errs, field.Required(selPath, ""))
	} else {
		errs = append(errs, metav1validation.ValidateLabelSelector(selector, metav1validation.LabelSelectorValidationOptions{}, selPath)...)
		if len(selector.MatchLabels)+len(selector.MatchExpressions) == 0 {
			errs = append(errs, field.Invalid(selPath, selector, "empty selector is invalid for deployment"))
		}
		sel, err := metav1.LabelSelectorAsSelector(selector)
		switch {
		case err != nil:
			errs = append(errs, field.Invalid(selPath, selector, "invalid label selector"))
		case !sel.Empty() && !sel.Matches(labels.Set(template.Labels)):
			errs = append(errs, field.Invalid(specPath.Child("template", "metadata", "labels"), template.Labels, "`selector` does not match template `labels`"))
		}
	}
	templateErrs, warns := validatePodTemplate(template, specPath.Child("template"))
	errs = append(errs, templateErrs...)
	errs = append(errs, nonNegative(int64(minReadySeconds), specPath.Child("minReadySeconds"))...)
	return errs, warns
}

func validateStrategy(s *appsv1.DeploymentStrategy, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch s.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if s.RollingUpdate != nil {
			errs = append(errs, field.Forbidden(p.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		ru := s.RollingUpdate
		rp := p.Child("rollingUpdate")
		if ru == nil {
			errs = append(errs, field.Required(rp, "this should be defaulted and never be nil"))
			break
		}
		surge, unavailable := intstr.FromInt32(0), intstr.FromInt32(0)
		if ru.MaxSurge != nil {
			surge = *ru.MaxSurge
			errs = append(errs, validatePositiveIntOrPercent(surge, rp.Child("maxSurge"))...)
		}
		if ru.MaxUnavailable != nil {
			unavailable = *ru.MaxUnavailable
			errs = append(errs, validatePositiveIntOrPercent(unavailable, rp.Child("maxUnavailable"))...)
			if v, ok := percent(unavailable); ok && v > 100 {
				errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), unavailable.String(), "must not be greater than 100%"))
			}
		}
		if intOrPercentValue(surge) == 0 && intOrPercentValue(unavailable) == 0 {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), unavailable.String(), "may not be 0 when `maxSurge` is 0"))
		}
	case "":
		errs = append(errs, field.Required(p.Child("type"), ""))
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), s.Type, strategyTypes))
	}
	return errs
}

// validatePositiveIntOrPercent: a non-negative number, or a percentage.
func validatePositiveIntOrPercent(v intstr.IntOrString, p *field.Path) field.ErrorList {
	if v.Type == intstr.String {
		return invalids(p, v.StrVal, validation.IsValidPercent(v.StrVal))
	}
	return nonNegative(int64(v.IntVal), p)
}

// percent returns the number of a valid percentage.
func percent(v intstr.IntOrString) (int, bool) {
	if v.Type != intstr.String || len(validation.IsValidPercent(v.StrVal)) > 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(v.StrVal, "%"))
	return n, err == nil
}

// intOrPercentValue is the number of v, a percentage's included; -1 when
// it is not valid.
func intOrPercentValue(v intstr.IntOrString) int {
	if v.Type != intstr.String {
		return int(v.IntVal)
	}
	if n, ok := percent(v); ok {
		return n
	}
	return -1
}

func validateDeploymentStatus(s *appsv1.DeploymentStatus) field.ErrorList {
	sp := field.NewPath("status")
	var errs field.ErrorList
	errs = append(errs, nonNegative(s.ObservedGeneration, sp.Child("observedGeneration"))...)
	errs = append(errs, nonNegative(int64(s.Replicas), sp.Child("replicas"))...)
	errs = append(errs, nonNegative(int64(s.UpdatedReplicas), sp.Child("updatedReplicas"))...)
	errs = append(errs, nonNegative(int64(s.ReadyReplicas), sp.Child("readyReplicas"))...)
	errs = append(errs, nonNegative(int64(s.AvailableReplicas), sp.Child("availableReplicas"))...)
	errs = append(errs, nonNegative(int64(s.UnavailableReplicas), sp.Child("unavailableReplicas"))...)
	return errs
}

func validateReplicaSetStatus(s *appsv1.ReplicaSetStatus) field.ErrorList {
	sp := field.NewPath("status")
	var errs field.ErrorList
	errs = append(errs, nonNegative(s.ObservedGeneration, sp.Child("observedGeneration"))...)
	errs = append(errs, nonNegative(int64(s.Replicas), sp.Child("replicas"))...)
	errs = append(errs, nonNegative(int64(s.FullyLabeledReplicas), sp.Child("fullyLabeledReplicas"))...)
	errs = append(errs, nonNegative(int64(s.ReadyReplicas), sp.Child("readyReplicas"))...)
	errs = append(errs, nonNegative(int64(s.AvailableReplicas), sp.Child("availableReplicas"))...)
	return errs
}

package validation

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateLifecycle checks a container's postStart and preStop hooks as
// Kubernetes does: exactly one handler each, an exec command, a valid
// httpGet, and a sleep that fits in the pod's termination grace period
// (the kubelet counts a preStop's time against it). plainInit is an init
// container that is not a sidecar: it runs to completion, so it has no
// hooks. A tcpSocket handler counts as a handler here; podFieldPolicy
// refuses it.
func validateLifecycle(lc *corev1.Lifecycle, grace *int64, plainInit bool, p *field.Path) field.ErrorList {
	if lc == nil {
		return nil
	}
	if plainInit {
		return field.ErrorList{field.Forbidden(p, "may not be set for init containers without restartPolicy=Always")}
	}
	var errs field.ErrorList
	for _, h := range []struct {
		name    string
		handler *corev1.LifecycleHandler
	}{{"postStart", lc.PostStart}, {"preStop", lc.PreStop}} {
		if h.handler != nil {
			errs = append(errs, validateLifecycleHandler(h.handler, grace, p.Child(h.name))...)
		}
	}
	return errs
}

func validateLifecycleHandler(h *corev1.LifecycleHandler, grace *int64, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	var handlers []string
	if h.Exec != nil {
		handlers = append(handlers, "exec")
		if len(h.Exec.Command) == 0 {
			errs = append(errs, field.Required(p.Child("exec", "command"), ""))
		}
	}
	if h.HTTPGet != nil {
		handlers = append(handlers, "httpGet")
		errs = append(errs, validateHTTPGetAction(h.HTTPGet, p.Child("httpGet"))...)
	}
	if h.TCPSocket != nil {
		handlers = append(handlers, "tcpSocket")
	}
	if s := h.Sleep; s != nil {
		handlers = append(handlers, "sleep")
		// Kubernetes' rule (with zero allowed, as since 1.32): a nil grace
		// period is left to the pod's own error.
		if s.Seconds < 0 || (grace != nil && s.Seconds > *grace) {
			bound := "terminationGracePeriodSeconds"
			if grace != nil {
				bound = fmt.Sprintf("terminationGracePeriodSeconds (%d)", *grace)
			}
			errs = append(errs, field.Invalid(p.Child("sleep"), s.Seconds, "must be non-negative and less than or equal to "+bound))
		}
	}
	switch {
	case len(handlers) == 0:
		errs = append(errs, field.Required(p, "must specify a handler type"))
	case len(handlers) > 1:
		for _, n := range handlers[1:] {
			errs = append(errs, field.Forbidden(p.Child(n), "may not specify more than 1 handler type"))
		}
	}
	return errs
}

// validateHTTPGetAction checks an httpGet of a probe or lifecycle hook.
func validateHTTPGetAction(h *corev1.HTTPGetAction, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if h.Path == "" {
		errs = append(errs, field.Required(p.Child("path"), ""))
	}
	errs = append(errs, validatePortNumOrName(h.Port, p.Child("port"))...)
	if !slices.Contains(uriSchemes, h.Scheme) {
		errs = append(errs, field.NotSupported(p.Child("scheme"), h.Scheme, uriSchemes))
	}
	for i, hdr := range h.HTTPHeaders {
		errs = append(errs, invalids(p.Child("httpHeaders").Index(i).Child("name"), hdr.Name, validation.IsHTTPHeaderName(hdr.Name))...)
	}
	return errs
}

package validation

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// policy is what kubeish does with a pod field it does not implement.
type policy int

const (
	// refused fields make the object invalid: field.Invalid, "not
	// supported by kubeish".
	refused policy = iota
	// ignored fields are accepted with a warning "<path>: ignored by
	// kubeish".
	ignored
)

// podField is one entry of podFieldPolicy.
type podField struct {
	// name is the path under the pod spec; [*] stands for each element.
	// containers[*] means every container and init container.
	name   string
	policy policy
	// find calls hit with the path and value of each place the field is
	// set in spec, whose own path is at.
	find func(spec *corev1.PodSpec, at *field.Path, hit func(p *field.Path, value any))
}

// refusalHints follow the refusal message of some podFieldPolicy entries
// (by name): what to use instead, where the plain "not supported" would
// leave a user guessing.
var refusalHints = map[string]string{
	"containers[*].lifecycle.*.tcpSocket": "tcpSocket lifecycle handlers are deprecated in Kubernetes and never run; use exec, httpGet or sleep",
}

// omit renders a field.Invalid without a value, for structs and lists.
var omit = field.OmitValueType{}

// podFieldPolicy is the table of pod fields kubeish refuses or ignores, for
// Pods and pod templates alike. A field counts as set when it differs from
// what Kubernetes would do without it (hostUsers: false is refused, true is
// the default behaviour).
var podFieldPolicy = []podField{
	// Namespaces and privileges kubeish's node agent does not give.
	{"hostPID", refused, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if s.HostPID {
			hit(at.Child("hostPID"), true)
		}
	}},
	{"hostIPC", refused, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if s.HostIPC {
			hit(at.Child("hostIPC"), true)
		}
	}},
	{"shareProcessNamespace", refused, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if s.ShareProcessNamespace != nil && *s.ShareProcessNamespace {
			hit(at.Child("shareProcessNamespace"), true)
		}
	}},
	{"hostUsers", refused, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if s.HostUsers != nil && !*s.HostUsers {
			hit(at.Child("hostUsers"), false)
		}
	}},
	{"containers[*].securityContext.privileged", refused, eachContainer(func(c *corev1.Container, at *field.Path, hit func(*field.Path, any)) {
		if sc := c.SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged {
			hit(at.Child("securityContext", "privileged"), true)
		}
	})},
	{"containers[*].securityContext.capabilities.add", refused, eachContainer(func(c *corev1.Container, at *field.Path, hit func(*field.Path, any)) {
		if sc := c.SecurityContext; sc != nil && sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
			hit(at.Child("securityContext", "capabilities", "add"), sc.Capabilities.Add)
		}
	})},
	// Lifecycle hooks run on the node agent with exec, httpGet and sleep
	// handlers (validateLifecycle checks them). A tcpSocket handler never
	// did anything in Kubernetes either (it is deprecated and kept only
	// for compatibility, the kubelet fails the hook at runtime), so it is
	// refused here rather than accepted and then failing on the node.
	{"containers[*].lifecycle.*.tcpSocket", refused, eachContainer(func(c *corev1.Container, at *field.Path, hit func(*field.Path, any)) {
		if c.Lifecycle == nil {
			return
		}
		for _, h := range []struct {
			name    string
			handler *corev1.LifecycleHandler
		}{{"postStart", c.Lifecycle.PostStart}, {"preStop", c.Lifecycle.PreStop}} {
			if h.handler != nil && h.handler.TCPSocket != nil {
				hit(at.Child("lifecycle", h.name, "tcpSocket"), omit)
			}
		}
	})},
	{"containers[*].lifecycle.stopSignal", refused, eachContainer(func(c *corev1.Container, at *field.Path, hit func(*field.Path, any)) {
		if c.Lifecycle != nil && c.Lifecycle.StopSignal != nil {
			hit(at.Child("lifecycle", "stopSignal"), string(*c.Lifecycle.StopSignal))
		}
	})},
	{"ephemeralContainers", refused, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if len(s.EphemeralContainers) > 0 {
			hit(at.Child("ephemeralContainers"), omit)
		}
	}},
	{"runtimeClassName", refused, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if s.RuntimeClassName != nil {
			hit(at.Child("runtimeClassName"), *s.RuntimeClassName)
		}
	}},
	{"os", refused, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if s.OS != nil {
			hit(at.Child("os"), omit)
		}
	}},
	{"overhead", refused, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if len(s.Overhead) > 0 {
			hit(at.Child("overhead"), omit)
		}
	}},
	// Dynamic resource allocation.
	{"resourceClaims", refused, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if len(s.ResourceClaims) > 0 {
			hit(at.Child("resourceClaims"), omit)
		}
	}},
	{"containers[*].resources.claims", refused, eachContainer(func(c *corev1.Container, at *field.Path, hit func(*field.Path, any)) {
		if len(c.Resources.Claims) > 0 {
			hit(at.Child("resources", "claims"), omit)
		}
	})},
	// Scheduling kubeish's scheduler cannot honour: hard constraints are
	// refused, soft ones ignored.
	{"affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution", refused, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if a := s.Affinity; a != nil && a.PodAffinity != nil && len(a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0 {
			hit(at.Child("affinity", "podAffinity", "requiredDuringSchedulingIgnoredDuringExecution"), omit)
		}
	}},
	{"affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution", refused, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if a := s.Affinity; a != nil && a.PodAntiAffinity != nil && len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) > 0 {
			hit(at.Child("affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution"), omit)
		}
	}},
	{"topologySpreadConstraints[*].whenUnsatisfiable: DoNotSchedule", refused, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		for i, c := range s.TopologySpreadConstraints {
			if c.WhenUnsatisfiable == corev1.DoNotSchedule {
				hit(at.Child("topologySpreadConstraints").Index(i).Child("whenUnsatisfiable"), string(c.WhenUnsatisfiable))
			}
		}
	}},
	{"affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution", ignored, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if a := s.Affinity; a != nil && a.PodAffinity != nil && len(a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0 {
			hit(at.Child("affinity", "podAffinity", "preferredDuringSchedulingIgnoredDuringExecution"), nil)
		}
	}},
	{"affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution", ignored, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if a := s.Affinity; a != nil && a.PodAntiAffinity != nil && len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0 {
			hit(at.Child("affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution"), nil)
		}
	}},
	{"topologySpreadConstraints[*] with whenUnsatisfiable: ScheduleAnyway", ignored, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		for i, c := range s.TopologySpreadConstraints {
			if c.WhenUnsatisfiable == corev1.ScheduleAnyway {
				hit(at.Child("topologySpreadConstraints").Index(i), nil)
			}
		}
	}},
	{"priorityClassName", ignored, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if s.PriorityClassName != "" {
			hit(at.Child("priorityClassName"), nil)
		}
	}},
	// No service accounts, image pull credentials, DNS or readiness gates.
	{"serviceAccountName other than default", ignored, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if s.ServiceAccountName != "" && s.ServiceAccountName != "default" {
			hit(at.Child("serviceAccountName"), nil)
		}
	}},
	{"imagePullSecrets", ignored, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if len(s.ImagePullSecrets) > 0 {
			hit(at.Child("imagePullSecrets"), nil)
		}
	}},
	{"dnsConfig", ignored, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if s.DNSConfig != nil {
			hit(at.Child("dnsConfig"), nil)
		}
	}},
	{"readinessGates", ignored, func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		if len(s.ReadinessGates) > 0 {
			hit(at.Child("readinessGates"), nil)
		}
	}},
}

// eachContainer runs check on every init container and container.
func eachContainer(check func(c *corev1.Container, at *field.Path, hit func(*field.Path, any))) func(*corev1.PodSpec, *field.Path, func(*field.Path, any)) {
	return func(s *corev1.PodSpec, at *field.Path, hit func(*field.Path, any)) {
		for i := range s.InitContainers {
			check(&s.InitContainers[i], at.Child("initContainers").Index(i), hit)
		}
		for i := range s.Containers {
			check(&s.Containers[i], at.Child("containers").Index(i), hit)
		}
	}
}

// checkPodFieldPolicy applies podFieldPolicy to the pod spec at path at.
func checkPodFieldPolicy(spec *corev1.PodSpec, at *field.Path) (field.ErrorList, []string) {
	var errs field.ErrorList
	var warns []string
	for _, f := range podFieldPolicy {
		f.find(spec, at, func(p *field.Path, value any) {
			if f.policy == refused {
				msg := notSupportedMsg
				if h := refusalHints[f.name]; h != "" {
					msg += ": " + h
				}
				errs = append(errs, field.Invalid(p, value, msg))
			} else {
				warns = append(warns, fmt.Sprintf("%s: %s", p, ignoredMsg))
			}
		})
	}
	return errs, warns
}

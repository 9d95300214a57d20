package validation

import (
	"fmt"
	"math"
	"path"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/api/validate/content"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Enumerations, in Kubernetes' order for NotSupported messages.
var (
	restartPolicies   = []corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}
	dnsPolicies       = []corev1.DNSPolicy{corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone}
	portProtocols     = []corev1.Protocol{corev1.ProtocolSCTP, corev1.ProtocolTCP, corev1.ProtocolUDP}
	pullPolicies      = []corev1.PullPolicy{corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever}
	terminationPols   = []corev1.TerminationMessagePolicy{corev1.TerminationMessageFallbackToLogsOnError, corev1.TerminationMessageReadFile}
	uriSchemes        = []corev1.URIScheme{corev1.URISchemeHTTP, corev1.URISchemeHTTPS}
	mountPropagations = []corev1.MountPropagationMode{corev1.MountPropagationBidirectional, corev1.MountPropagationHostToContainer, corev1.MountPropagationNone}
	hostPathTypes     = []corev1.HostPathType{corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory,
		corev1.HostPathFileOrCreate, corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev}
	taintEffects   = []corev1.TaintEffect{corev1.TaintEffectNoExecute, corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule}
	unsatisfiables = []corev1.UnsatisfiableConstraintAction{corev1.DoNotSchedule, corev1.ScheduleAnyway}
	podPhases      = []corev1.PodPhase{corev1.PodFailed, corev1.PodPending, corev1.PodRunning, corev1.PodSucceeded, corev1.PodUnknown}
	envFieldPaths  = []string{"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
		"spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"}
	envResourcePaths = []string{"limits.cpu", "limits.ephemeral-storage", "limits.memory",
		"requests.cpu", "requests.ephemeral-storage", "requests.memory"}
)

// supportedVolumes are the volume sources kubeish's node agent mounts.
var supportedVolumes = []string{"configMap", "emptyDir", "hostPath", "secret"}

func validatePod(pod *corev1.Pod) (field.ErrorList, []string) {
	errs := validateMeta(&pod.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	specErrs, warns := validatePodSpec(&pod.Spec, specPath)
	return append(errs, specErrs...), warns
}

// validatePodTemplate validates the template of a Deployment or ReplicaSet.
func validatePodTemplate(t *corev1.PodTemplateSpec, at *field.Path) (field.ErrorList, []string) {
	mp := at.Child("metadata")
	errs := metav1validation.ValidateLabels(t.Labels, mp.Child("labels"))
	errs = append(errs, apivalidation.ValidateAnnotations(t.Annotations, mp.Child("annotations"))...)
	specErrs, warns := validatePodSpec(&t.Spec, at.Child("spec"))
	errs = append(errs, specErrs...)
	sp := at.Child("spec")
	if t.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(sp.Child("restartPolicy"), t.Spec.RestartPolicy, []corev1.RestartPolicy{corev1.RestartPolicyAlways}))
	}
	if t.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Invalid(sp.Child("activeDeadlineSeconds"), *t.Spec.ActiveDeadlineSeconds, "activeDeadlineSeconds in ReplicaSet is not Supported"))
	}
	return errs, warns
}

// validatePodSpec validates the pod spec at path at.
func validatePodSpec(spec *corev1.PodSpec, at *field.Path) (field.ErrorList, []string) {
	vols, errs := validateVolumes(spec.Volumes, at.Child("volumes"))

	names := sets.New[string]()
	if len(spec.Containers) == 0 {
		errs = append(errs, field.Required(at.Child("containers"), ""))
	}
	for i := range spec.Containers {
		errs = append(errs, validateContainer(&spec.Containers[i], spec, vols, names, false, at.Child("containers").Index(i))...)
	}
	for i := range spec.InitContainers {
		errs = append(errs, validateContainer(&spec.InitContainers[i], spec, vols, names, true, at.Child("initContainers").Index(i))...)
	}

	errs = append(errs, oneOf(at.Child("restartPolicy"), spec.RestartPolicy, restartPolicies, "")...)
	if e := oneOf(at.Child("dnsPolicy"), spec.DNSPolicy, dnsPolicies, ""); e != nil {
		errs = append(errs, e...)
	} else if spec.DNSPolicy == corev1.DNSNone && spec.DNSConfig == nil {
		errs = append(errs, field.Required(at.Child("dnsConfig"), "must provide `dnsConfig` when `dnsPolicy` is None"))
	}
	errs = append(errs, metav1validation.ValidateLabels(spec.NodeSelector, at.Child("nodeSelector"))...)
	if spec.NodeName != "" {
		errs = append(errs, invalids(at.Child("nodeName"), spec.NodeName, validation.IsDNS1123Subdomain(spec.NodeName))...)
	}
	if spec.ServiceAccountName != "" {
		errs = append(errs, invalids(at.Child("serviceAccountName"), spec.ServiceAccountName, validation.IsDNS1123Subdomain(spec.ServiceAccountName))...)
	}
	if spec.Hostname != "" {
		errs = append(errs, invalids(at.Child("hostname"), spec.Hostname, validation.IsDNS1123Label(spec.Hostname))...)
	}
	if spec.Subdomain != "" {
		errs = append(errs, invalids(at.Child("subdomain"), spec.Subdomain, validation.IsDNS1123Label(spec.Subdomain))...)
	}
	if d := spec.ActiveDeadlineSeconds; d != nil && (*d < 1 || *d > math.MaxInt32) {
		errs = append(errs, field.Invalid(at.Child("activeDeadlineSeconds"), *d, validation.InclusiveRangeError(1, math.MaxInt32)))
	}
	errs = append(errs, validateTolerations(spec.Tolerations, at.Child("tolerations"))...)
	for i, c := range spec.TopologySpreadConstraints {
		p := at.Child("topologySpreadConstraints").Index(i)
		if c.MaxSkew <= 0 {
			errs = append(errs, field.Invalid(p.Child("maxSkew"), c.MaxSkew, "must be greater than zero"))
		}
		if c.TopologyKey == "" {
			errs = append(errs, field.Required(p.Child("topologyKey"), "can not be empty"))
		} else {
			errs = append(errs, metav1validation.ValidateLabelName(c.TopologyKey, p.Child("topologyKey"))...)
		}
		if !slices.Contains(unsatisfiables, c.WhenUnsatisfiable) {
			errs = append(errs, field.NotSupported(p.Child("whenUnsatisfiable"), c.WhenUnsatisfiable, unsatisfiables))
		}
	}

	refused, warns := checkPodFieldPolicy(spec, at)
	return append(errs, refused...), warns
}

// validateVolumes returns the volumes by name, for the mounts to look up.
func validateVolumes(volumes []corev1.Volume, at *field.Path) (map[string]*corev1.Volume, field.ErrorList) {
	var errs field.ErrorList
	byName := map[string]*corev1.Volume{}
	for i := range volumes {
		v := &volumes[i]
		p := at.Index(i)
		switch {
		case v.Name == "":
			errs = append(errs, field.Required(p.Child("name"), ""))
		case len(validation.IsDNS1123Label(v.Name)) > 0:
			errs = append(errs, invalids(p.Child("name"), v.Name, validation.IsDNS1123Label(v.Name))...)
		case byName[v.Name] != nil:
			errs = append(errs, field.Duplicate(p.Child("name"), v.Name))
		default:
			byName[v.Name] = v
		}
		sources := volumeSources(&v.VolumeSource)
		if len(sources) == 0 {
			errs = append(errs, field.Required(p, "must specify a volume type"))
		}
		for j, s := range sources {
			if j > 0 {
				errs = append(errs, field.Forbidden(p.Child(s), "may not specify more than 1 volume type"))
			} else if !slices.Contains(supportedVolumes, s) {
				errs = append(errs, field.Invalid(p.Child(s), omit, notSupportedMsg))
			}
		}
		errs = append(errs, validateVolumeSource(&v.VolumeSource, p)...)
	}
	return byName, errs
}

func validateVolumeSource(vs *corev1.VolumeSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if hp := vs.HostPath; hp != nil {
		hpp := p.Child("hostPath")
		if hp.Path == "" {
			errs = append(errs, field.Required(hpp.Child("path"), ""))
		}
		if hp.Type != nil && !slices.Contains(hostPathTypes, *hp.Type) {
			errs = append(errs, field.NotSupported(hpp.Child("type"), *hp.Type, hostPathTypes))
		}
	}
	if ed := vs.EmptyDir; ed != nil && ed.SizeLimit != nil && ed.SizeLimit.Sign() < 0 {
		errs = append(errs, field.Forbidden(p.Child("emptyDir", "sizeLimit"), "SizeLimit field must be a valid resource quantity"))
	}
	if cm := vs.ConfigMap; cm != nil {
		cp := p.Child("configMap")
		if cm.Name == "" {
			errs = append(errs, field.Required(cp.Child("name"), ""))
		}
		errs = append(errs, validateFileMode(cm.DefaultMode, cp.Child("defaultMode"))...)
		errs = append(errs, validateKeysToPaths(cm.Items, cp.Child("items"))...)
	}
	if s := vs.Secret; s != nil {
		sp := p.Child("secret")
		if s.SecretName == "" {
			errs = append(errs, field.Required(sp.Child("secretName"), ""))
		}
		errs = append(errs, validateFileMode(s.DefaultMode, sp.Child("defaultMode"))...)
		errs = append(errs, validateKeysToPaths(s.Items, sp.Child("items"))...)
	}
	return errs
}

func validateFileMode(mode *int32, p *field.Path) field.ErrorList {
	if mode != nil && (*mode < 0 || *mode > 0o777) {
		return field.ErrorList{field.Invalid(p, *mode, fileModeErrorMsg)}
	}
	return nil
}

func validateKeysToPaths(items []corev1.KeyToPath, at *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, kp := range items {
		p := at.Index(i)
		if kp.Key == "" {
			errs = append(errs, field.Required(p.Child("key"), ""))
		}
		if kp.Path == "" {
			errs = append(errs, field.Required(p.Child("path"), ""))
		} else {
			errs = append(errs, validateLocalDescendingPath(kp.Path, p.Child("path"))...)
			if strings.HasPrefix(path.Clean(kp.Path), "..") {
				errs = append(errs, field.Invalid(p.Child("path"), kp.Path, "must not start with '..'"))
			}
		}
		errs = append(errs, validateFileMode(kp.Mode, p.Child("mode"))...)
	}
	return errs
}

// validateLocalDescendingPath: a relative path with no "..".
func validateLocalDescendingPath(target string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if path.IsAbs(target) {
		errs = append(errs, field.Invalid(p, target, "must be a relative path"))
	}
	if slices.Contains(strings.Split(strings.ReplaceAll(target, `\`, "/"), "/"), "..") {
		errs = append(errs, field.Invalid(p, target, "must not contain '..'"))
	}
	return errs
}

// validateContainer validates a container or init container; names holds
// the names seen so far, across both lists.
func validateContainer(c *corev1.Container, spec *corev1.PodSpec, vols map[string]*corev1.Volume, names sets.Set[string], init bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case c.Name == "":
		errs = append(errs, field.Required(p.Child("name"), ""))
	case len(validation.IsDNS1123Label(c.Name)) > 0:
		errs = append(errs, invalids(p.Child("name"), c.Name, validation.IsDNS1123Label(c.Name))...)
	case names.Has(c.Name):
		errs = append(errs, field.Duplicate(p.Child("name"), c.Name))
	default:
		names.Insert(c.Name)
	}
	switch {
	case c.Image == "":
		errs = append(errs, field.Required(p.Child("image"), ""))
	case c.Image != strings.TrimSpace(c.Image):
		errs = append(errs, field.Invalid(p.Child("image"), c.Image, "must not have leading or trailing whitespace"))
	}
	errs = append(errs, oneOf(p.Child("imagePullPolicy"), c.ImagePullPolicy, pullPolicies, "")...)
	errs = append(errs, oneOf(p.Child("terminationMessagePolicy"), c.TerminationMessagePolicy, terminationPols, "must be 'File' or 'FallbackToLogsOnError'")...)

	sidecar := false
	if c.RestartPolicy != nil {
		switch {
		case !init:
			errs = append(errs, field.Forbidden(p.Child("restartPolicy"), "may not be set for non-init containers"))
		case *c.RestartPolicy != corev1.ContainerRestartPolicyAlways:
			errs = append(errs, field.NotSupported(p.Child("restartPolicy"), *c.RestartPolicy, []corev1.ContainerRestartPolicy{corev1.ContainerRestartPolicyAlways}))
		default:
			sidecar = true
		}
	}

	errs = append(errs, validateContainerPorts(c.Ports, spec.HostNetwork, p.Child("ports"))...)
	errs = append(errs, validateEnv(c.Env, p.Child("env"))...)
	errs = append(errs, validateEnvFrom(c.EnvFrom, p.Child("envFrom"))...)
	errs = append(errs, validateResources(&c.Resources, p.Child("resources"))...)
	errs = append(errs, validateVolumeMounts(c, vols, p)...)

	probes := []struct {
		name  string
		probe *corev1.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}}
	for _, pr := range probes {
		if pr.probe == nil {
			continue
		}
		if init && !sidecar {
			errs = append(errs, field.Forbidden(p.Child(pr.name), "may not be set for init containers without restartPolicy=Always"))
			continue
		}
		errs = append(errs, validateProbe(pr.probe, pr.name != "readinessProbe", p.Child(pr.name))...)
	}
	errs = append(errs, validateLifecycle(c.Lifecycle, spec.TerminationGracePeriodSeconds, init && !sidecar, p.Child("lifecycle"))...)
	return errs
}

func validateContainerPorts(ports []corev1.ContainerPort, hostNetwork bool, at *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	for i, port := range ports {
		p := at.Index(i)
		if port.Name != "" {
			if msgs := validation.IsValidPortName(port.Name); len(msgs) > 0 {
				errs = append(errs, invalids(p.Child("name"), port.Name, msgs)...)
			} else if names.Has(port.Name) {
				errs = append(errs, field.Duplicate(p.Child("name"), port.Name))
			} else {
				names.Insert(port.Name)
			}
		}
		if port.ContainerPort == 0 {
			errs = append(errs, field.Required(p.Child("containerPort"), ""))
		} else {
			errs = append(errs, invalids(p.Child("containerPort"), port.ContainerPort, validation.IsValidPortNum(int(port.ContainerPort)))...)
		}
		if port.HostPort != 0 {
			errs = append(errs, invalids(p.Child("hostPort"), port.HostPort, validation.IsValidPortNum(int(port.HostPort)))...)
			if hostNetwork && port.HostPort != port.ContainerPort {
				errs = append(errs, field.Invalid(p.Child("hostPort"), port.HostPort, "must match `containerPort` when `hostNetwork` is true"))
			}
		}
		errs = append(errs, validateProtocol(port.Protocol, p.Child("protocol"))...)
	}
	return errs
}

func validateProtocol(proto corev1.Protocol, p *field.Path) field.ErrorList {
	switch {
	case proto == "":
		return field.ErrorList{field.Required(p, "")}
	case !slices.Contains(portProtocols, proto):
		return field.ErrorList{field.NotSupported(p, proto, portProtocols)}
	}
	return nil
}

func validateEnv(env []corev1.EnvVar, at *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ev := range env {
		p := at.Index(i)
		if ev.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		} else {
			errs = append(errs, invalids(p.Child("name"), ev.Name, validation.IsEnvVarName(ev.Name))...)
		}
		if ev.ValueFrom != nil {
			errs = append(errs, validateEnvVarSource(ev.ValueFrom, ev.Value != "", p.Child("valueFrom"))...)
		}
	}
	return errs
}

func validateEnvVarSource(vf *corev1.EnvVarSource, hasValue bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	if f := vf.FieldRef; f != nil {
		n++
		fp := p.Child("fieldRef")
		switch {
		case f.FieldPath == "":
			errs = append(errs, field.Required(fp.Child("fieldPath"), ""))
		case strings.HasPrefix(f.FieldPath, "metadata.labels['") || strings.HasPrefix(f.FieldPath, "metadata.annotations['"):
			_, rest, _ := strings.Cut(f.FieldPath, "['")
			key, ok := strings.CutSuffix(rest, "']")
			if !ok {
				errs = append(errs, field.Invalid(fp.Child("fieldPath"), f.FieldPath, "must be of the form metadata.labels['<key>']"))
			} else {
				errs = append(errs, invalids(fp.Child("fieldPath"), f.FieldPath, content.IsLabelKey(strings.ToLower(key)))...)
			}
		case !slices.Contains(envFieldPaths, f.FieldPath):
			errs = append(errs, field.NotSupported(fp.Child("fieldPath"), f.FieldPath, envFieldPaths))
		}
		if f.APIVersion == "" {
			errs = append(errs, field.Required(fp.Child("apiVersion"), ""))
		}
	}
	if r := vf.ResourceFieldRef; r != nil {
		n++
		rp := p.Child("resourceFieldRef")
		if r.Resource == "" {
			errs = append(errs, field.Required(rp.Child("resource"), ""))
		} else if !slices.Contains(envResourcePaths, r.Resource) && !strings.HasPrefix(r.Resource, "limits.hugepages-") && !strings.HasPrefix(r.Resource, "requests.hugepages-") {
			errs = append(errs, field.NotSupported(rp.Child("resource"), r.Resource, envResourcePaths))
		}
	}
	if r := vf.ConfigMapKeyRef; r != nil {
		n++
		errs = append(errs, validateKeyRef(r.Name, r.Key, p.Child("configMapKeyRef"))...)
	}
	if r := vf.SecretKeyRef; r != nil {
		n++
		errs = append(errs, validateKeyRef(r.Name, r.Key, p.Child("secretKeyRef"))...)
	}
	if vf.FileKeyRef != nil {
		n++
	}
	switch {
	case n == 0:
		errs = append(errs, field.Invalid(p, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
	case n > 1:
		errs = append(errs, field.Invalid(p, "", "may not have more than one field specified at a time"))
	}
	if hasValue {
		errs = append(errs, field.Invalid(p, "", "may not be specified when `value` is not empty"))
	}
	return errs
}

func validateKeyRef(name, key string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else {
		errs = append(errs, invalids(p.Child("name"), name, validation.IsDNS1123Subdomain(name))...)
	}
	if key == "" {
		errs = append(errs, field.Required(p.Child("key"), ""))
	} else {
		errs = append(errs, invalids(p.Child("key"), key, validation.IsConfigMapKey(key))...)
	}
	return errs
}

func validateEnvFrom(envFrom []corev1.EnvFromSource, at *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ef := range envFrom {
		p := at.Index(i)
		if ef.Prefix != "" {
			errs = append(errs, invalids(p.Child("prefix"), ef.Prefix, validation.IsEnvVarName(ef.Prefix))...)
		}
		n := 0
		if ef.ConfigMapRef != nil {
			n++
			if ef.ConfigMapRef.Name == "" {
				errs = append(errs, field.Required(p.Child("configMapRef", "name"), ""))
			}
		}
		if ef.SecretRef != nil {
			n++
			if ef.SecretRef.Name == "" {
				errs = append(errs, field.Required(p.Child("secretRef", "name"), ""))
			}
		}
		switch {
		case n == 0:
			errs = append(errs, field.Invalid(p, "", "must specify one of: `configMapRef` or `secretRef`"))
		case n > 1:
			errs = append(errs, field.Invalid(p, "", "may not have more than one field specified at a time"))
		}
	}
	return errs
}

// validateResources: resource names, non-negative quantities, requests no
// more than limits, and requests equal to limits for resources that cannot
// be overcommitted (huge pages and extended resources).
func validateResources(r *corev1.ResourceRequirements, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	limPath, reqPath := p.Child("limits"), p.Child("requests")
	for _, name := range sortedNames(r.Limits) {
		q := r.Limits[name]
		errs = append(errs, validateContainerResource(name, q, limPath.Key(string(name)))...)
	}
	for _, name := range sortedNames(r.Requests) {
		q := r.Requests[name]
		rp := reqPath.Key(string(name))
		errs = append(errs, validateContainerResource(name, q, rp)...)
		limit, hasLimit := r.Limits[name]
		switch {
		case overcommittable(name):
			if hasLimit && q.Cmp(limit) > 0 {
				errs = append(errs, field.Invalid(rp, q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, limit.String())))
			}
		case !hasLimit:
			errs = append(errs, field.Required(limPath, "Limit must be set for non overcommitable resources"))
		case q.Cmp(limit) != 0:
			errs = append(errs, field.Invalid(rp, q.String(), fmt.Sprintf("must be equal to %s limit of %s", name, limit.String())))
		}
	}
	return errs
}

func sortedNames(l corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}

func overcommittable(name corev1.ResourceName) bool {
	return name == corev1.ResourceCPU || name == corev1.ResourceMemory || name == corev1.ResourceEphemeralStorage
}

// validateContainerResource: a standard container resource (cpu, memory,
// ephemeral-storage, hugepages-<size>) or a domain-prefixed extended one,
// with a quantity that is not negative.
func validateContainerResource(name corev1.ResourceName, q resource.Quantity, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if msgs := content.IsLabelKey(string(name)); len(msgs) > 0 {
		errs = append(errs, invalids(p, string(name), msgs)...)
	} else if !strings.Contains(string(name), "/") && !overcommittable(name) && !strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix) {
		errs = append(errs, field.Invalid(p, string(name), "must be a standard resource for containers"))
	}
	if q.Sign() < 0 {
		errs = append(errs, field.Invalid(p, q.String(), isNegativeErrorMsg))
	}
	return errs
}

func validateVolumeMounts(c *corev1.Container, vols map[string]*corev1.Volume, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	mountPaths := sets.New[string]()
	privileged := c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
	for i, m := range c.VolumeMounts {
		mp := p.Child("volumeMounts").Index(i)
		if m.Name == "" {
			errs = append(errs, field.Required(mp.Child("name"), ""))
		} else if vols[m.Name] == nil {
			errs = append(errs, field.NotFound(mp.Child("name"), m.Name))
		}
		if m.MountPath == "" {
			errs = append(errs, field.Required(mp.Child("mountPath"), ""))
		} else if mountPaths.Has(m.MountPath) {
			errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be unique"))
		}
		mountPaths.Insert(m.MountPath)
		if m.SubPath != "" {
			errs = append(errs, validateLocalDescendingPath(m.SubPath, mp.Child("subPath"))...)
		}
		if m.SubPathExpr != "" {
			if m.SubPath != "" {
				errs = append(errs, field.Invalid(mp.Child("subPathExpr"), m.SubPathExpr, "subPathExpr and subPath are mutually exclusive"))
			}
			errs = append(errs, validateLocalDescendingPath(m.SubPathExpr, mp.Child("subPathExpr"))...)
		}
		if mode := m.MountPropagation; mode != nil {
			switch {
			case !slices.Contains(mountPropagations, *mode):
				errs = append(errs, field.NotSupported(mp.Child("mountPropagation"), *mode, mountPropagations))
			case *mode == corev1.MountPropagationBidirectional && !privileged:
				errs = append(errs, field.Forbidden(mp.Child("mountPropagation"), "Bidirectional mount propagation is available only to privileged containers"))
			}
		}
	}
	for i, d := range c.VolumeDevices {
		dp := p.Child("volumeDevices").Index(i)
		switch {
		case d.Name == "":
			errs = append(errs, field.Required(dp.Child("name"), ""))
		case vols[d.Name] == nil:
			errs = append(errs, field.NotFound(dp.Child("name"), d.Name))
		case vols[d.Name].PersistentVolumeClaim == nil && vols[d.Name].Ephemeral == nil:
			errs = append(errs, field.Invalid(dp.Child("name"), d.Name, "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode"))
		}
		if d.DevicePath == "" {
			errs = append(errs, field.Required(dp.Child("devicePath"), ""))
		}
	}
	return errs
}

// validateProbe: exactly one handler and sane numbers; liveness and
// startup probes (notReadiness) must succeed once.
func validateProbe(pr *corev1.Probe, notReadiness bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	var handlers []string
	if pr.Exec != nil {
		handlers = append(handlers, "exec")
		if len(pr.Exec.Command) == 0 {
			errs = append(errs, field.Required(p.Child("exec", "command"), ""))
		}
	}
	if h := pr.HTTPGet; h != nil {
		handlers = append(handlers, "httpGet")
		errs = append(errs, validateHTTPGetAction(h, p.Child("httpGet"))...)
	}
	if t := pr.TCPSocket; t != nil {
		handlers = append(handlers, "tcpSocket")
		errs = append(errs, validatePortNumOrName(t.Port, p.Child("tcpSocket", "port"))...)
	}
	if g := pr.GRPC; g != nil {
		handlers = append(handlers, "grpc")
		errs = append(errs, invalids(p.Child("grpc", "port"), g.Port, validation.IsValidPortNum(int(g.Port)))...)
	}
	switch {
	case len(handlers) == 0:
		errs = append(errs, field.Required(p, "must specify a handler type"))
	case len(handlers) > 1:
		for _, h := range handlers[1:] {
			errs = append(errs, field.Forbidden(p.Child(h), "may not specify more than 1 handler type"))
		}
	}
	errs = append(errs, nonNegative(int64(pr.InitialDelaySeconds), p.Child("initialDelaySeconds"))...)
	errs = append(errs, nonNegative(int64(pr.TimeoutSeconds), p.Child("timeoutSeconds"))...)
	errs = append(errs, nonNegative(int64(pr.PeriodSeconds), p.Child("periodSeconds"))...)
	errs = append(errs, nonNegative(int64(pr.SuccessThreshold), p.Child("successThreshold"))...)
	errs = append(errs, nonNegative(int64(pr.FailureThreshold), p.Child("failureThreshold"))...)
	if notReadiness && pr.SuccessThreshold != 1 {
		errs = append(errs, field.Invalid(p.Child("successThreshold"), pr.SuccessThreshold, "must be 1"))
	}
	if g := pr.TerminationGracePeriodSeconds; g != nil {
		switch {
		case !notReadiness:
			errs = append(errs, field.Invalid(p.Child("terminationGracePeriodSeconds"), *g, "must not be set for readinessProbes"))
		case *g <= 0:
			errs = append(errs, field.Invalid(p.Child("terminationGracePeriodSeconds"), *g, "must be greater than 0"))
		}
	}
	return errs
}

// validatePortNumOrName: a port number, or the name of a container port.
func validatePortNumOrName(port intstr.IntOrString, p *field.Path) field.ErrorList {
	if port.Type == intstr.String {
		return invalids(p, port.StrVal, validation.IsValidPortName(port.StrVal))
	}
	return invalids(p, port.IntVal, validation.IsValidPortNum(int(port.IntVal)))
}

func validateTolerations(tolerations []corev1.Toleration, at *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, t := range tolerations {
		p := at.Index(i)
		if t.Key != "" {
			errs = append(errs, metav1validation.ValidateLabelName(t.Key, p.Child("key"))...)
		} else if t.Operator != corev1.TolerationOpExists {
			errs = append(errs, field.Invalid(p.Child("operator"), t.Operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			errs = append(errs, field.Invalid(p.Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
		switch t.Operator {
		case corev1.TolerationOpEqual, "":
			errs = append(errs, invalids(p.Child("operator"), t.Value, content.IsLabelValue(t.Value))...)
		case corev1.TolerationOpExists:
			if t.Value != "" {
				errs = append(errs, field.Invalid(p.Child("operator"), t.Value, "value must be empty when `operator` is 'Exists'"))
			}
		default:
			errs = append(errs, field.NotSupported(p.Child("operator"), t.Operator, []corev1.TolerationOperator{corev1.TolerationOpEqual, corev1.TolerationOpExists}))
		}
		if t.Effect != "" && !slices.Contains(taintEffects, t.Effect) {
			errs = append(errs, field.NotSupported(p.Child("effect"), t.Effect, taintEffects))
		}
	}
	return errs
}

// --- updates -----------------------------------------------------------

const podUpdateMsg = "pod updates may not change fields other than `spec.containers[*].image`," +
	"`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`," +
	"`spec.tolerations` (only additions to existing tolerations)," +
	"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"

// validatePodUpdate: a pod's spec is immutable but for its images, a
// shorter activeDeadlineSeconds and added tolerations.
func validatePodUpdate(pod, old *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	if len(pod.Spec.Containers) != len(old.Spec.Containers) {
		errs = append(errs, field.Forbidden(specPath.Child("containers"), "pod updates may not add or remove containers"))
	}
	if len(pod.Spec.InitContainers) != len(old.Spec.InitContainers) {
		errs = append(errs, field.Forbidden(specPath.Child("initContainers"), "pod updates may not add or remove containers"))
	}
	if len(errs) > 0 {
		return errs
	}
	adsPath := specPath.Child("activeDeadlineSeconds")
	switch ads, oldADS := pod.Spec.ActiveDeadlineSeconds, old.Spec.ActiveDeadlineSeconds; {
	case ads == nil && oldADS != nil:
		errs = append(errs, field.Invalid(adsPath, ads, "must not update from a positive integer to nil value"))
	case ads != nil && oldADS != nil && *ads > *oldADS:
		errs = append(errs, field.Invalid(adsPath, *ads, "must be less than or equal to previous value"))
	}
	errs = append(errs, validateOnlyAddedTolerations(pod.Spec.Tolerations, old.Spec.Tolerations, specPath.Child("tolerations"))...)

	if equality.Semantic.DeepEqual(pod.Spec, old.Spec) {
		return errs
	}
	// Mask what may change, then compare.
	masked := pod.Spec.DeepCopy()
	for i := range masked.Containers {
		masked.Containers[i].Image = old.Spec.Containers[i].Image
	}
	for i := range masked.InitContainers {
		masked.InitContainers[i].Image = old.Spec.InitContainers[i].Image
	}
	masked.ActiveDeadlineSeconds = old.Spec.ActiveDeadlineSeconds
	masked.Tolerations = old.Spec.Tolerations
	if g, og := masked.TerminationGracePeriodSeconds, old.Spec.TerminationGracePeriodSeconds; g != nil && og != nil && *og < 0 && *g == 1 {
		masked.TerminationGracePeriodSeconds = og
	}
	if !equality.Semantic.DeepEqual(*masked, old.Spec) {
		errs = append(errs, field.Forbidden(specPath, podUpdateMsg))
	}
	return errs
}

// validateOnlyAddedTolerations: every old toleration is still there, but
// for its tolerationSeconds.
func validateOnlyAddedTolerations(tolerations, old []corev1.Toleration, p *field.Path) field.ErrorList {
	for _, o := range old {
		found := false
		for _, t := range tolerations {
			o.TolerationSeconds = t.TolerationSeconds
			if equality.Semantic.DeepEqual(o, t) {
				found = true
				break
			}
		}
		if !found {
			return field.ErrorList{field.Forbidden(p, "existing toleration can not be modified except its tolerationSeconds")}
		}
	}
	return nil
}

func validatePodStatus(pod *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("status")
	if ph := pod.Status.Phase; ph != "" && !slices.Contains(podPhases, ph) {
		errs = append(errs, field.NotSupported(sp.Child("phase"), ph, podPhases))
	}
	if pod.Spec.NodeName != "" {
		errs = append(errs, invalids(specPath.Child("nodeName"), pod.Spec.NodeName, validation.IsDNS1123Subdomain(pod.Spec.NodeName))...)
	}
	if pod.Status.PodIP != "" {
		errs = append(errs, validation.IsValidIPForLegacyField(sp.Child("podIP"), pod.Status.PodIP, true, nil)...)
	}
	for i, ip := range pod.Status.PodIPs {
		errs = append(errs, validation.IsValidIPForLegacyField(sp.Child("podIPs").Index(i).Child("ip"), ip.IP, true, nil)...)
	}
	if pod.Status.HostIP != "" {
		errs = append(errs, validation.IsValidIPForLegacyField(sp.Child("hostIP"), pod.Status.HostIP, true, nil)...)
	}
	for i, ip := range pod.Status.HostIPs {
		errs = append(errs, validation.IsValidIPForLegacyField(sp.Child("hostIPs").Index(i).Child("ip"), ip.IP, true, nil)...)
	}
	return errs
}

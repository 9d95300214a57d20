package validation

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestDefaultPod(t *testing.T) {
	p := newPod(func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Ports = []corev1.ContainerPort{{ContainerPort: 80}, {ContainerPort: 53, Protocol: corev1.ProtocolUDP}}
		c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80)}}}
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"x"}}}, PeriodSeconds: 3, FailureThreshold: 1}
		c.Env = []corev1.EnvVar{{Name: "N", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
		c.Resources = corev1.ResourceRequirements{
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
		}
		p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "x:1", Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}}}
		p.Spec.Volumes = []corev1.Volume{
			{Name: "e"},
			{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}},
			{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s", DefaultMode: ptr.To[int32](0o400)}}},
			{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}},
		}
	})
	SetDefaults(p)
	s := &p.Spec
	eq(t, "restartPolicy", s.RestartPolicy, corev1.RestartPolicyAlways)
	eq(t, "dnsPolicy", s.DNSPolicy, corev1.DNSClusterFirst)
	eq(t, "terminationGracePeriodSeconds", *s.TerminationGracePeriodSeconds, 30)
	eq(t, "schedulerName", s.SchedulerName, "default-scheduler")
	eq(t, "serviceAccountName", s.ServiceAccountName, "default")
	eq(t, "serviceAccount", s.DeprecatedServiceAccount, "default")
	eq(t, "securityContext set", s.SecurityContext != nil, true)
	eq(t, "enableServiceLinks", *s.EnableServiceLinks, true)

	c := &s.Containers[0]
	eq(t, "imagePullPolicy", c.ImagePullPolicy, corev1.PullIfNotPresent)
	eq(t, "terminationMessagePath", c.TerminationMessagePath, "/dev/termination-log")
	eq(t, "terminationMessagePolicy", c.TerminationMessagePolicy, corev1.TerminationMessageReadFile)
	eq(t, "ports[0].protocol", c.Ports[0].Protocol, corev1.ProtocolTCP)
	eq(t, "ports[1].protocol", c.Ports[1].Protocol, corev1.ProtocolUDP)
	eq(t, "ports[0].hostPort", c.Ports[0].HostPort, 0)
	eq(t, "fieldRef.apiVersion", c.Env[0].ValueFrom.FieldRef.APIVersion, "v1")
	lp := c.LivenessProbe
	eq(t, "liveness timeout", lp.TimeoutSeconds, 1)
	eq(t, "liveness period", lp.PeriodSeconds, 10)
	eq(t, "liveness success", lp.SuccessThreshold, 1)
	eq(t, "liveness failure", lp.FailureThreshold, 3)
	eq(t, "liveness path", lp.HTTPGet.Path, "/")
	eq(t, "liveness scheme", lp.HTTPGet.Scheme, corev1.URISchemeHTTP)
	rp := c.ReadinessProbe
	eq(t, "readiness period kept", rp.PeriodSeconds, 3)
	eq(t, "readiness failure kept", rp.FailureThreshold, 1)
	eq(t, "requests[cpu] kept", c.Resources.Requests.Cpu().String(), "100m")
	eq(t, "requests[memory] from limit", c.Resources.Requests.Memory().String(), "1Gi")
	eq(t, "init requests[memory] from limit", s.InitContainers[0].Resources.Requests.Memory().String(), "64Mi")
	eq(t, "init imagePullPolicy", s.InitContainers[0].ImagePullPolicy, corev1.PullIfNotPresent)

	eq(t, "volume without source", s.Volumes[0].EmptyDir != nil, true)
	eq(t, "configMap defaultMode", *s.Volumes[1].ConfigMap.DefaultMode, 0o644)
	eq(t, "secret defaultMode kept", *s.Volumes[2].Secret.DefaultMode, 0o400)
	eq(t, "hostPath type", *s.Volumes[3].HostPath.Type, corev1.HostPathUnset)
}

func TestDefaultPodKeeps(t *testing.T) {
	p := newPod(func(p *corev1.Pod) {
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Spec.DNSPolicy = corev1.DNSDefault
		p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](0)
		p.Spec.SchedulerName = "mine"
		p.Spec.DeprecatedServiceAccount = "builder"
		p.Spec.EnableServiceLinks = ptr.To(false)
		p.Spec.HostNetwork = true
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
		p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	})
	SetDefaults(p)
	s := &p.Spec
	eq(t, "restartPolicy", s.RestartPolicy, corev1.RestartPolicyNever)
	eq(t, "dnsPolicy", s.DNSPolicy, corev1.DNSDefault)
	eq(t, "terminationGracePeriodSeconds", *s.TerminationGracePeriodSeconds, 0)
	eq(t, "schedulerName", s.SchedulerName, "mine")
	eq(t, "serviceAccountName from serviceAccount", s.ServiceAccountName, "builder")
	eq(t, "enableServiceLinks", *s.EnableServiceLinks, false)
	eq(t, "hostPort with hostNetwork", s.Containers[0].Ports[0].HostPort, 8080)
	eq(t, "imagePullPolicy", s.Containers[0].ImagePullPolicy, corev1.PullNever)
}

func TestDefaultImagePullPolicy(t *testing.T) {
	digest := "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for image, want := range map[string]corev1.PullPolicy{
		"nginx":                          corev1.PullAlways,
		"nginx:latest":                   corev1.PullAlways,
		"docker.io/library/nginx:latest": corev1.PullAlways,
		"nginx:1.27":                     corev1.PullIfNotPresent,
		"nginx" + digest:                 corev1.PullIfNotPresent,
		"nginx:1.27" + digest:            corev1.PullIfNotPresent,
		"nginx:latest" + digest:          corev1.PullAlways, // as Kubernetes: the tag decides
		"localhost:5000/app":             corev1.PullAlways,
		"localhost:5000/app:v2":          corev1.PullIfNotPresent,
		"":                               corev1.PullIfNotPresent,
	} {
		p := newPod(func(p *corev1.Pod) { p.Spec.Containers[0].Image = image })
		SetDefaults(p)
		eq(t, image, p.Spec.Containers[0].ImagePullPolicy, want)
	}
}

func TestDefaultTemplates(t *testing.T) {
	d := newDeployment()
	SetDefaults(d)
	eq(t, "replicas", *d.Spec.Replicas, 1)
	eq(t, "strategy", d.Spec.Strategy.Type, appsv1.RollingUpdateDeploymentStrategyType)
	eq(t, "maxSurge", d.Spec.Strategy.RollingUpdate.MaxSurge.String(), "25%")
	eq(t, "maxUnavailable", d.Spec.Strategy.RollingUpdate.MaxUnavailable.String(), "25%")
	eq(t, "revisionHistoryLimit", *d.Spec.RevisionHistoryLimit, 10)
	eq(t, "progressDeadlineSeconds", *d.Spec.ProgressDeadlineSeconds, 600)
	ts := &d.Spec.Template.Spec
	eq(t, "template restartPolicy", ts.RestartPolicy, corev1.RestartPolicyAlways)
	eq(t, "template dnsPolicy", ts.DNSPolicy, corev1.DNSClusterFirst)
	eq(t, "template terminationGracePeriodSeconds", *ts.TerminationGracePeriodSeconds, 30)
	eq(t, "template schedulerName", ts.SchedulerName, "default-scheduler")
	eq(t, "template securityContext", ts.SecurityContext != nil, true)
	eq(t, "template imagePullPolicy", ts.Containers[0].ImagePullPolicy, corev1.PullIfNotPresent)
	// What Kubernetes sets on Pods only (admission, SetDefaults_Pod).
	eq(t, "template serviceAccountName", ts.ServiceAccountName, "")
	eq(t, "template enableServiceLinks", ts.EnableServiceLinks == nil, true)

	d = newDeployment(func(d *appsv1.Deployment) {
		d.Spec.Replicas = ptr.To[int32](0)
		d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: ptr.To(intstr.FromInt32(1))}}
	})
	SetDefaults(d)
	eq(t, "replicas kept", *d.Spec.Replicas, 0)
	eq(t, "maxSurge kept", d.Spec.Strategy.RollingUpdate.MaxSurge.String(), "1")
	eq(t, "maxUnavailable", d.Spec.Strategy.RollingUpdate.MaxUnavailable.String(), "25%")

	d = newDeployment(func(d *appsv1.Deployment) { d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType })
	SetDefaults(d)
	eq(t, "Recreate has no rollingUpdate", d.Spec.Strategy.RollingUpdate == nil, true)

	rs := newReplicaSet()
	SetDefaults(rs)
	eq(t, "replicaset replicas", *rs.Spec.Replicas, 1)
	eq(t, "replicaset template restartPolicy", rs.Spec.Template.Spec.RestartPolicy, corev1.RestartPolicyAlways)
}

func TestDefaultService(t *testing.T) {
	s := newService(func(s *corev1.Service) {
		s.Spec.Ports = []corev1.ServicePort{{Name: "a", Port: 80}, {Name: "b", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")}}
	})
	SetDefaults(s)
	eq(t, "type", s.Spec.Type, corev1.ServiceTypeClusterIP)
	eq(t, "sessionAffinity", s.Spec.SessionAffinity, corev1.ServiceAffinityNone)
	eq(t, "ports[0].protocol", s.Spec.Ports[0].Protocol, corev1.ProtocolTCP)
	eq(t, "ports[0].targetPort", s.Spec.Ports[0].TargetPort, intstr.FromInt32(80))
	eq(t, "ports[1].protocol", s.Spec.Ports[1].Protocol, corev1.ProtocolUDP)
	eq(t, "ports[1].targetPort", s.Spec.Ports[1].TargetPort, intstr.FromString("dns"))
	eq(t, "internalTrafficPolicy", *s.Spec.InternalTrafficPolicy, corev1.ServiceInternalTrafficPolicyCluster)
	eq(t, "externalTrafficPolicy", s.Spec.ExternalTrafficPolicy, "")
	eq(t, "ipFamilyPolicy", *s.Spec.IPFamilyPolicy, corev1.IPFamilyPolicySingleStack)
	eq(t, "ipFamilies", len(s.Spec.IPFamilies) == 1 && s.Spec.IPFamilies[0] == corev1.IPv4Protocol, true)
	eq(t, "clusterIPs (allocated later)", len(s.Spec.ClusterIPs), 0)

	s = newService(func(s *corev1.Service) {
		s.Spec.Type, s.Spec.ClusterIP = corev1.ServiceTypeNodePort, "10.96.0.10"
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	})
	SetDefaults(s)
	eq(t, "NodePort externalTrafficPolicy", s.Spec.ExternalTrafficPolicy, corev1.ServiceExternalTrafficPolicyCluster)
	eq(t, "clusterIPs", len(s.Spec.ClusterIPs) == 1 && s.Spec.ClusterIPs[0] == "10.96.0.10", true)
	eq(t, "ClientIP timeout", *s.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds, 10800)

	s = newService(func(s *corev1.Service) { s.Spec.ClusterIPs = []string{"10.96.0.11"} })
	SetDefaults(s)
	eq(t, "clusterIP from clusterIPs", s.Spec.ClusterIP, "10.96.0.11")

	s = newService(func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone })
	SetDefaults(s)
	eq(t, "headless ipFamilies", len(s.Spec.IPFamilies), 0)
	eq(t, "headless ipFamilyPolicy", s.Spec.IPFamilyPolicy == nil, true)
	eq(t, "headless internalTrafficPolicy", *s.Spec.InternalTrafficPolicy, corev1.ServiceInternalTrafficPolicyCluster)

	s = newService(func(s *corev1.Service) {
		s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "db.example.com"
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{}
	})
	SetDefaults(s)
	eq(t, "ExternalName ipFamilies", len(s.Spec.IPFamilies), 0)
	eq(t, "ExternalName ipFamilyPolicy", s.Spec.IPFamilyPolicy == nil, true)
	eq(t, "ExternalName internalTrafficPolicy", s.Spec.InternalTrafficPolicy == nil, true)
	eq(t, "sessionAffinityConfig dropped with None", s.Spec.SessionAffinityConfig == nil, true)
}

func TestDefaultOthers(t *testing.T) {
	sec := newSecret()
	SetDefaults(sec)
	eq(t, "secret type", sec.Type, corev1.SecretTypeOpaque)
	eq(t, "stringData merged", string(sec.Data["user"]), "me")
	eq(t, "data kept", string(sec.Data["token"]), "t0k3n")
	eq(t, "stringData cleared", sec.StringData == nil, true)
	sec = newSecret(func(s *corev1.Secret) {
		s.Type = corev1.SecretTypeTLS
		s.StringData = map[string]string{"token": "new"}
	})
	SetDefaults(sec)
	eq(t, "secret type kept", sec.Type, corev1.SecretTypeTLS)
	eq(t, "stringData wins", string(sec.Data["token"]), "new")

	h := newHPA()
	SetDefaults(h)
	eq(t, "minReplicas", *h.Spec.MinReplicas, 1)
	eq(t, "default metric", len(h.Spec.Metrics) == 1 && h.Spec.Metrics[0].Resource.Name == corev1.ResourceCPU &&
		*h.Spec.Metrics[0].Resource.Target.AverageUtilization == 80, true)
	h = newHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) {
		h.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](60)}}
	})
	SetDefaults(h)
	eq(t, "scaleUp policies", len(h.Spec.Behavior.ScaleUp.Policies), 2)
	eq(t, "scaleDown window kept", *h.Spec.Behavior.ScaleDown.StabilizationWindowSeconds, 60)
	eq(t, "scaleDown select", *h.Spec.Behavior.ScaleDown.SelectPolicy, autoscalingv2.MaxChangePolicySelect)

	ns := newNamespace()
	SetDefaults(ns)
	eq(t, "namespace phase", ns.Status.Phase, corev1.NamespaceActive)
	eq(t, "namespace finalizers", len(ns.Spec.Finalizers) == 1 && ns.Spec.Finalizers[0] == corev1.FinalizerKubernetes, true)
	// Finalizing: an empty list stays empty.
	ns = newNamespace(func(n *corev1.Namespace) {
		n.ResourceVersion, n.DeletionTimestamp = "12", ptr.To(metav1.Now())
		n.Spec.Finalizers, n.Status.Phase = nil, corev1.NamespaceTerminating
	})
	SetDefaults(ns)
	eq(t, "finalized namespace", len(ns.Spec.Finalizers), 0)
	eq(t, "terminating phase kept", ns.Status.Phase, corev1.NamespaceTerminating)

	ep := newEndpoints()
	SetDefaults(ep)
	eq(t, "endpoints protocol", ep.Subsets[0].Ports[0].Protocol, corev1.ProtocolTCP)
	sl := newSlice(func(s *discoveryv1.EndpointSlice) { s.Ports = append(s.Ports, discoveryv1.EndpointPort{}) })
	SetDefaults(sl)
	eq(t, "slice protocol", *sl.Ports[0].Protocol, corev1.ProtocolTCP)
	eq(t, "slice port name", *sl.Ports[1].Name, "")

	n := newNode(func(n *corev1.Node) {
		n.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}
	})
	SetDefaults(n)
	eq(t, "node podCIDRs", len(n.Spec.PodCIDRs) == 1 && n.Spec.PodCIDRs[0] == "10.244.1.0/24", true)
	eq(t, "node allocatable", n.Status.Allocatable.Cpu().String(), "4")
	n = newNode(func(n *corev1.Node) { n.Spec.PodCIDR, n.Spec.PodCIDRs = "", []string{"10.244.3.0/24"} })
	SetDefaults(n)
	eq(t, "node podCIDR from podCIDRs", n.Spec.PodCIDR, "10.244.3.0/24")
}

// TestDefaultsIdempotent: defaulting twice is defaulting once, and leaves
// the valid objects valid.
func TestDefaultsIdempotent(t *testing.T) {
	for _, obj := range validObjects() {
		SetDefaults(obj)
		again := obj.DeepCopyObject()
		SetDefaults(again)
		if !equality.Semantic.DeepEqual(obj, again) {
			t.Errorf("%s: second SetDefaults changed the object", kindOf(obj))
		}
	}
}

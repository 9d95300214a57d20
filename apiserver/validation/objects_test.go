package validation

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// Valid objects of every kind, before defaulting, and helpers for the
// tables that check errors by field path and type.

func objMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "x"}}
}

func newPod(mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: objMeta("web-0"),
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: "echo:v1"}},
		},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

// fullPod uses most of what kubeish supports.
func fullPod() *corev1.Pod {
	return newPod(func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(resource.MustParse("1Gi"))}}},
			{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/log", Type: ptr.To(corev1.HostPathDirectory)}}},
			{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "conf"},
				Items:                []corev1.KeyToPath{{Key: "a.yaml", Path: "etc/a.yaml", Mode: ptr.To[int32](0o600)}},
			}}},
			{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds", DefaultMode: ptr.To[int32](0o400)}}},
			{Name: "defaulted"}, // becomes an emptyDir
		}
		p.Spec.InitContainers = []corev1.Container{
			{Name: "init", Image: "busybox:1.36", Command: []string{"true"}},
			{Name: "sidecar", Image: "proxy:v2", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(15000)}}}},
		}
		p.Spec.Containers = []corev1.Container{{
			Name:  "app",
			Image: "registry.local:5000/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {ContainerPort: 9090, Protocol: corev1.ProtocolUDP, HostPort: 9090}},
			Env: []corev1.EnvVar{
				{Name: "MODE", Value: "prod"},
				{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "TIER", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"}}},
				{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
				{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "token"}}},
			},
			EnvFrom: []corev1.EnvFromSource{{Prefix: "CONF_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}}}},
			Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("256Mi"), "example.com/gpu": resource.MustParse("1")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")},
			},
			VolumeMounts: []corev1.VolumeMount{
				{Name: "scratch", MountPath: "/tmp"},
				{Name: "conf", MountPath: "/etc/app", ReadOnly: true, SubPath: "etc"},
				{Name: "creds", MountPath: "/var/run/creds"},
				{Name: "host", MountPath: "/host/log", MountPropagation: ptr.To(corev1.MountPropagationHostToContainer)},
				{Name: "defaulted", MountPath: "/data"},
			},
			LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("http")}}, TerminationGracePeriodSeconds: ptr.To[int64](5)},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"ready"}}}, SuccessThreshold: 2},
			StartupProbe:   &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090}}, FailureThreshold: 30},
		}}
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
		p.Spec.Tolerations = []corev1.Toleration{
			{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
			{Key: "dedicated", Value: "web", Effect: corev1.TaintEffectNoSchedule},
		}
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}}
		p.Spec.Hostname, p.Spec.Subdomain = "web-0", "web"
		p.Spec.ActiveDeadlineSeconds = ptr.To[int64](3600)
		p.Spec.ServiceAccountName = "default"
	})
}

func template() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "echo:v1"}}},
	}
}

func newDeployment(mutate ...func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: objMeta("web"),
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
			Template: template(),
		},
	}
	for _, m := range mutate {
		m(d)
	}
	return d
}

func newReplicaSet(mutate ...func(*appsv1.ReplicaSet)) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: objMeta("web-1234"),
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
			Template: template(),
		},
	}
	for _, m := range mutate {
		m(rs)
	}
	return rs
}

func newService(mutate ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: objMeta("web"),
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "x"},
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func newNode(mutate ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{"kubernetes.io/hostname": "node-1"}},
		Spec:       corev1.NodeSpec{PodCIDR: "10.244.1.0/24"},
	}
	for _, m := range mutate {
		m(n)
	}
	return n
}

func newEndpoints(mutate ...func(*corev1.Endpoints)) *corev1.Endpoints {
	e := &corev1.Endpoints{
		ObjectMeta: objMeta("web"),
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "10.244.0.5", NodeName: ptr.To("node-1")}},
			Ports:     []corev1.EndpointPort{{Port: 80}},
		}},
	}
	for _, m := range mutate {
		m(e)
	}
	return e
}

func newSlice(mutate ...func(*discoveryv1.EndpointSlice)) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  objMeta("web-abcde"),
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.5"}, NodeName: ptr.To("node-1")}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](80)}},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func newNamespace(mutate ...func(*corev1.Namespace)) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}
	for _, m := range mutate {
		m(ns)
	}
	return ns
}

func newConfigMap(mutate ...func(*corev1.ConfigMap)) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		ObjectMeta: objMeta("conf"),
		Data:       map[string]string{"a.yaml": "x: 1", "MODE": "prod"},
		BinaryData: map[string][]byte{"blob.bin": {0, 1}},
	}
	for _, m := range mutate {
		m(cm)
	}
	return cm
}

func newSecret(mutate ...func(*corev1.Secret)) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: objMeta("creds"),
		Data:       map[string][]byte{"token": []byte("t0k3n")},
		StringData: map[string]string{"user": "me"},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func newEvent(mutate ...func(*corev1.Event)) *corev1.Event {
	e := &corev1.Event{
		ObjectMeta:     objMeta("web-0.17a3f"),
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-0", Namespace: "default"},
		Reason:         "Started", Message: "started", Type: corev1.EventTypeNormal,
	}
	for _, m := range mutate {
		m(e)
	}
	return e
}

func newLease(mutate ...func(*coordinationv1.Lease)) *coordinationv1.Lease {
	l := &coordinationv1.Lease{
		ObjectMeta: objMeta("node-1"),
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("node-1"), LeaseDurationSeconds: ptr.To[int32](40)},
	}
	for _, m := range mutate {
		m(l)
	}
	return l
}

func newHPA(mutate ...func(*autoscalingv2.HorizontalPodAutoscaler)) *autoscalingv2.HorizontalPodAutoscaler {
	h := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: objMeta("web"),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MaxReplicas:    5,
		},
	}
	for _, m := range mutate {
		m(h)
	}
	return h
}

// validObjects is one valid object of every kind, and a fuller pod.
func validObjects() []runtime.Object {
	return []runtime.Object{newPod(), fullPod(), newService(), newNode(), newEndpoints(), newNamespace(),
		newConfigMap(), newSecret(), newEvent(), newDeployment(), newReplicaSet(), newLease(), newSlice(), newHPA()}
}

// fe is an expected error: its field path and type.
type fe struct {
	Field string
	Type  field.ErrorType
}

func (e fe) String() string { return fmt.Sprintf("%s(%s)", e.Field, e.Type) }

func req(p string) fe  { return fe{p, field.ErrorTypeRequired} }
func inv(p string) fe  { return fe{p, field.ErrorTypeInvalid} }
func dup(p string) fe  { return fe{p, field.ErrorTypeDuplicate} }
func nf(p string) fe   { return fe{p, field.ErrorTypeNotFound} }
func ns(p string) fe   { return fe{p, field.ErrorTypeNotSupported} }
func forb(p string) fe { return fe{p, field.ErrorTypeForbidden} }
func long(p string) fe { return fe{p, field.ErrorTypeTooLong} }

// checkErrs fails unless errs are exactly want, in any order.
func checkErrs(t *testing.T, errs field.ErrorList, want ...fe) {
	t.Helper()
	var got []string
	for _, e := range errs {
		got = append(got, fe{e.Field, e.Type}.String())
	}
	var wanted []string
	for _, w := range want {
		wanted = append(wanted, w.String())
	}
	slices.Sort(got)
	slices.Sort(wanted)
	if !slices.Equal(got, wanted) {
		t.Errorf("errors:\n  got  %v\n  want %v\nfull: %v", got, wanted, errs.ToAggregate())
	}
}

func checkWarns(t *testing.T, warns []string, want ...string) {
	t.Helper()
	got := slices.Clone(warns)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\n  got  %q\n  want %q", got, want)
	}
}

// errCase is a row of the validation tables: an object, defaulted then
// validated, and the errors and warnings it must give.
type errCase struct {
	name  string
	obj   runtime.Object
	want  []fe
	warns []string
}

func runCases(t *testing.T, cases []errCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			SetDefaults(c.obj)
			errs, warns := Validate(c.obj)
			checkErrs(t, errs, c.want...)
			checkWarns(t, warns, c.warns...)
			for _, e := range errs {
				if strings.TrimSpace(e.Error()) == "" {
					t.Errorf("empty error message for %s", e.Field)
				}
			}
		})
	}
}

package validation

import (
	"fmt"
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

func TestValidObjects(t *testing.T) {
	for _, obj := range validObjects() {
		t.Run(kindOf(obj), func(t *testing.T) {
			SetDefaults(obj)
			errs, warns := Validate(obj)
			checkErrs(t, errs)
			checkWarns(t, warns)
			errs, warns = ValidateUpdate(obj, obj.DeepCopyObject())
			checkErrs(t, errs)
			checkWarns(t, warns)
			checkErrs(t, ValidateStatusUpdate(obj, obj.DeepCopyObject()))
		})
	}
}

// kindOf names obj's type for subtests, e.g. "Pod".
func kindOf(obj runtime.Object) string {
	s := fmt.Sprintf("%T", obj)
	return s[strings.LastIndex(s, ".")+1:]
}

func TestUnknownTypes(t *testing.T) {
	for _, obj := range []runtime.Object{&corev1.PersistentVolumeClaim{}, &appsv1.StatefulSet{}, nil, (*corev1.Pod)(nil)} {
		SetDefaults(obj)
		errs, warns := Validate(obj)
		checkErrs(t, errs)
		checkWarns(t, warns)
		errs, warns = ValidateUpdate(obj, obj)
		checkErrs(t, errs)
		checkWarns(t, warns)
		checkErrs(t, ValidateStatusUpdate(obj, obj))
	}
}

func TestMetadata(t *testing.T) {
	runCases(t, []errCase{
		{"no name", newPod(func(p *corev1.Pod) { p.Name = "" }), []fe{req("metadata.name")}, nil},
		{"generateName only", newPod(func(p *corev1.Pod) { p.Name, p.GenerateName = "", "web-" }), []fe{req("metadata.name")}, nil},
		{"bad generateName", newPod(func(p *corev1.Pod) { p.GenerateName = "Web-" }), []fe{inv("metadata.generateName")}, nil},
		{"pod name subdomain", newPod(func(p *corev1.Pod) { p.Name = "web.0" }), nil, nil},
		{"pod name uppercase", newPod(func(p *corev1.Pod) { p.Name = "Web" }), []fe{inv("metadata.name")}, nil},
		{"no namespace", newPod(func(p *corev1.Pod) { p.Namespace = "" }), []fe{req("metadata.namespace")}, nil},
		{"bad namespace", newPod(func(p *corev1.Pod) { p.Namespace = "a.b" }), []fe{inv("metadata.namespace")}, nil},
		{"bad label key", newPod(func(p *corev1.Pod) { p.Labels = map[string]string{"-x": "y"} }), []fe{inv("metadata.labels")}, nil},
		{"bad label value", newPod(func(p *corev1.Pod) { p.Labels = map[string]string{"x": "a b"} }), []fe{inv("metadata.labels")}, nil},
		{"bad annotation key", newPod(func(p *corev1.Pod) { p.Annotations = map[string]string{"a b": "y"} }), []fe{inv("metadata.annotations")}, nil},
		{"annotations with any value", newPod(func(p *corev1.Pod) { p.Annotations = map[string]string{"example.com/note": "any thing\n"} }), nil, nil},
		{"bad finalizer", newPod(func(p *corev1.Pod) { p.Finalizers = []string{"cleanup"} }), []fe{inv("metadata.finalizers[0]")}, nil},
		{"qualified finalizer", newPod(func(p *corev1.Pod) { p.Finalizers = []string{"example.com/cleanup", "foregroundDeletion"} }), nil, nil},
		{"service name is a label", newService(func(s *corev1.Service) { s.Name = "web.internal" }), []fe{inv("metadata.name")}, nil},
		{"service name may start with a digit", newService(func(s *corev1.Service) { s.Name = "1web" }), nil, nil},
		{"namespace name is a label", newNamespace(func(n *corev1.Namespace) { n.Name = "team.a" }), []fe{inv("metadata.name")}, nil},
		{"node has no namespace", newNode(func(n *corev1.Node) { n.Namespace = "default" }), []fe{forb("metadata.namespace")}, nil},
		{"node name subdomain", newNode(func(n *corev1.Node) { n.Name = "node-1.example.com" }), nil, nil},
		{"configmap name", newConfigMap(func(c *corev1.ConfigMap) { c.Name = "Conf" }), []fe{inv("metadata.name")}, nil},
		{"owner reference without uid", newPod(func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-1"}}
		}), []fe{req("metadata.ownerReferences[0].uid")}, nil},
	})
}

func TestPod(t *testing.T) {
	c0 := "spec.containers[0]"
	withContainer := func(f func(c *corev1.Container)) *corev1.Pod {
		return newPod(func(p *corev1.Pod) { f(&p.Spec.Containers[0]) })
	}
	withVolume := func(v corev1.Volume) *corev1.Pod {
		return newPod(func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{v} })
	}
	probe := func(h corev1.ProbeHandler) *corev1.Probe { return &corev1.Probe{ProbeHandler: h} }
	tcp := corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}
	hook := func(h corev1.LifecycleHandler) *corev1.LifecycleHandler { return &h }
	runCases(t, []errCase{
		{"minimal", newPod(), nil, nil},
		{"full", fullPod(), nil, nil},

		// containers
		{"no containers", newPod(func(p *corev1.Pod) { p.Spec.Containers = nil }), []fe{req("spec.containers")}, nil},
		{"container without name", withContainer(func(c *corev1.Container) { c.Name = "" }), []fe{req(c0 + ".name")}, nil},
		{"container name not a label", withContainer(func(c *corev1.Container) { c.Name = "Web_1" }), []fe{inv(c0 + ".name")}, nil},
		{"duplicate container", newPod(func(p *corev1.Pod) { p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0]) }),
			[]fe{dup("spec.containers[1].name")}, nil},
		{"init container named as a container", newPod(func(p *corev1.Pod) { p.Spec.InitContainers = []corev1.Container{{Name: "c", Image: "x"}} }),
			[]fe{dup("spec.initContainers[0].name")}, nil},
		{"no image", withContainer(func(c *corev1.Container) { c.Image = "" }), []fe{req(c0 + ".image")}, nil},
		{"image with spaces", withContainer(func(c *corev1.Container) { c.Image = " echo" }), []fe{inv(c0 + ".image")}, nil},
		{"bad pull policy", withContainer(func(c *corev1.Container) { c.ImagePullPolicy = "Sometimes" }), []fe{ns(c0 + ".imagePullPolicy")}, nil},
		{"bad termination message policy", withContainer(func(c *corev1.Container) { c.TerminationMessagePolicy = "Log" }), []fe{ns(c0 + ".terminationMessagePolicy")}, nil},
		{"restartPolicy on a container", withContainer(func(c *corev1.Container) { c.RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways) }),
			[]fe{forb(c0 + ".restartPolicy")}, nil},
		{"init container restartPolicy Never", newPod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "x", RestartPolicy: ptr.To(corev1.ContainerRestartPolicy("Never"))}}
		}), []fe{ns("spec.initContainers[0].restartPolicy")}, nil},

		// ports
		{"port 0", withContainer(func(c *corev1.Container) { c.Ports = []corev1.ContainerPort{{ContainerPort: 0}} }), []fe{req(c0 + ".ports[0].containerPort")}, nil},
		{"port too big", withContainer(func(c *corev1.Container) { c.Ports = []corev1.ContainerPort{{ContainerPort: 65536}} }), []fe{inv(c0 + ".ports[0].containerPort")}, nil},
		{"port 65535", withContainer(func(c *corev1.Container) { c.Ports = []corev1.ContainerPort{{ContainerPort: 65535}} }), nil, nil},
		{"bad host port", withContainer(func(c *corev1.Container) { c.Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: -1}} }), []fe{inv(c0 + ".ports[0].hostPort")}, nil},
		{"bad protocol", withContainer(func(c *corev1.Container) { c.Ports = []corev1.ContainerPort{{ContainerPort: 80, Protocol: "ICMP"}} }), []fe{ns(c0 + ".ports[0].protocol")}, nil},
		{"SCTP", withContainer(func(c *corev1.Container) {
			c.Ports = []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolSCTP}}
		}), nil, nil},
		{"bad port name", withContainer(func(c *corev1.Container) { c.Ports = []corev1.ContainerPort{{Name: "http_1", ContainerPort: 80}} }), []fe{inv(c0 + ".ports[0].name")}, nil},
		{"duplicate port name", withContainer(func(c *corev1.Container) {
			c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 80}, {Name: "http", ContainerPort: 81}}
		}), []fe{dup(c0 + ".ports[1].name")}, nil},
		{"host network host port defaulted", newPod(func(p *corev1.Pod) {
			p.Spec.HostNetwork = true
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80}}
		}), nil, nil},
		{"host network host port differs", newPod(func(p *corev1.Pod) {
			p.Spec.HostNetwork = true
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
		}), []fe{inv(c0 + ".ports[0].hostPort")}, nil},

		// env
		{"env without name", withContainer(func(c *corev1.Container) { c.Env = []corev1.EnvVar{{Value: "x"}} }), []fe{req(c0 + ".env[0].name")}, nil},
		{"env name not an identifier", withContainer(func(c *corev1.Container) { c.Env = []corev1.EnvVar{{Name: "1A"}} }), []fe{inv(c0 + ".env[0].name")}, nil},
		{"env name with dots and dashes", withContainer(func(c *corev1.Container) { c.Env = []corev1.EnvVar{{Name: "a.b-c_D"}} }), nil, nil},
		{"env valueFrom empty", withContainer(func(c *corev1.Container) { c.Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{}}} }),
			[]fe{inv(c0 + ".env[0].valueFrom")}, nil},
		{"env value and valueFrom", withContainer(func(c *corev1.Container) {
			c.Env = []corev1.EnvVar{{Name: "A", Value: "x", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
		}), []fe{inv(c0 + ".env[0].valueFrom")}, nil},
		{"env two sources", withContainer(func(c *corev1.Container) {
			c.Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{
				FieldRef:        &corev1.ObjectFieldSelector{FieldPath: "metadata.name"},
				ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}, Key: "k"},
			}}}
		}), []fe{inv(c0 + ".env[0].valueFrom")}, nil},
		{"env bad fieldPath", withContainer(func(c *corev1.Container) {
			c.Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.hostPID"}}}}
		}), []fe{ns(c0 + ".env[0].valueFrom.fieldRef.fieldPath")}, nil},
		{"env configMapKeyRef without key", withContainer(func(c *corev1.Container) {
			c.Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}}}
		}), []fe{req(c0 + ".env[0].valueFrom.configMapKeyRef.key")}, nil},
		{"env bad resourceFieldRef", withContainer(func(c *corev1.Container) {
			c.Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.gpu"}}}}
		}), []fe{ns(c0 + ".env[0].valueFrom.resourceFieldRef.resource")}, nil},
		{"envFrom without source", withContainer(func(c *corev1.Container) { c.EnvFrom = []corev1.EnvFromSource{{Prefix: "A_"}} }), []fe{inv(c0 + ".envFrom[0]")}, nil},

		// resources
		{"request above limit", withContainer(func(c *corev1.Container) {
			c.Resources = corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m")},
			}
		}), []fe{inv(c0 + ".resources.requests[cpu]")}, nil},
		{"request equal to limit in other units", withContainer(func(c *corev1.Container) {
			c.Resources = corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
				Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1024Mi")},
			}
		}), nil, nil},
		{"negative quantity", withContainer(func(c *corev1.Container) {
			c.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("-1")}
		}), []fe{inv(c0 + ".resources.requests[memory]")}, nil},
		{"unknown resource", withContainer(func(c *corev1.Container) {
			c.Resources.Limits = corev1.ResourceList{"gpu": resource.MustParse("1")}
		}), []fe{inv(c0 + ".resources.limits[gpu]"), inv(c0 + ".resources.requests[gpu]")}, nil},
		{"extended resource without limit", withContainer(func(c *corev1.Container) {
			c.Resources.Requests = corev1.ResourceList{"example.com/gpu": resource.MustParse("1")}
		}), []fe{req(c0 + ".resources.limits")}, nil},
		{"extended resource request not the limit", withContainer(func(c *corev1.Container) {
			c.Resources = corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{"example.com/gpu": resource.MustParse("2")},
				Requests: corev1.ResourceList{"example.com/gpu": resource.MustParse("1")},
			}
		}), []fe{inv(c0 + ".resources.requests[example.com/gpu]")}, nil},

		// volumes
		{"volume without name", withVolume(corev1.Volume{}), []fe{req("spec.volumes[0].name")}, nil},
		{"volume name not a label", withVolume(corev1.Volume{Name: "Data"}), []fe{inv("spec.volumes[0].name")}, nil},
		{"duplicate volume", newPod(func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{{Name: "a"}, {Name: "a"}} }), []fe{dup("spec.volumes[1].name")}, nil},
		{"persistentVolumeClaim", withVolume(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}), []fe{inv("spec.volumes[0].persistentVolumeClaim")}, nil},
		{"nfs", withVolume(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "s", Path: "/"}}}),
			[]fe{inv("spec.volumes[0].nfs")}, nil},
		{"projected", withVolume(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}}),
			[]fe{inv("spec.volumes[0].projected")}, nil},
		{"image volume", withVolume(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "x"}}}),
			[]fe{inv("spec.volumes[0].image")}, nil},
		{"two sources", withVolume(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{}, Secret: &corev1.SecretVolumeSource{SecretName: "s"}}}), []fe{forb("spec.volumes[0].secret")}, nil},
		{"hostPath without path", withVolume(corev1.Volume{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{}}}),
			[]fe{req("spec.volumes[0].hostPath.path")}, nil},
		{"hostPath bad type", withVolume(corev1.Volume{Name: "h", VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: "/x", Type: ptr.To(corev1.HostPathType("Pipe"))}}}), []fe{ns("spec.volumes[0].hostPath.type")}, nil},
		{"configMap without name", withVolume(corev1.Volume{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}}),
			[]fe{req("spec.volumes[0].configMap.name")}, nil},
		{"configMap bad mode", withVolume(corev1.Volume{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "c"}, DefaultMode: ptr.To[int32](0o1000)}}}), []fe{inv("spec.volumes[0].configMap.defaultMode")}, nil},
		{"configMap item escapes", withVolume(corev1.Volume{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "c"}, Items: []corev1.KeyToPath{{Key: "k", Path: "../k"}}}}}),
			[]fe{inv("spec.volumes[0].configMap.items[0].path"), inv("spec.volumes[0].configMap.items[0].path")}, nil},
		{"configMap item absolute", withVolume(corev1.Volume{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "c"}, Items: []corev1.KeyToPath{{Path: "/k"}}}}}),
			[]fe{req("spec.volumes[0].configMap.items[0].key"), inv("spec.volumes[0].configMap.items[0].path")}, nil},
		{"secret without name", withVolume(corev1.Volume{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{}}}),
			[]fe{req("spec.volumes[0].secret.secretName")}, nil},
		{"emptyDir negative size", withVolume(corev1.Volume{Name: "e", VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(resource.MustParse("-1Mi"))}}}), []fe{forb("spec.volumes[0].emptyDir.sizeLimit")}, nil},

		// volume mounts
		{"mount of no volume", withContainer(func(c *corev1.Container) { c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}} }),
			[]fe{nf(c0 + ".volumeMounts[0].name")}, nil},
		{"mount without path", newPod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "data"}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data"}}
		}), []fe{req(c0 + ".volumeMounts[0].mountPath")}, nil},
		{"mount without name", withContainer(func(c *corev1.Container) { c.VolumeMounts = []corev1.VolumeMount{{MountPath: "/data"}} }),
			[]fe{req(c0 + ".volumeMounts[0].name")}, nil},
		{"two mounts at one path", newPod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "a"}, {Name: "b"}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "a", MountPath: "/data"}, {Name: "b", MountPath: "/data"}}
		}), []fe{inv(c0 + ".volumeMounts[1].mountPath")}, nil},
		{"mount subPath escapes", newPod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "a"}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "a", MountPath: "/data", SubPath: "../x"}}
		}), []fe{inv(c0 + ".volumeMounts[0].subPath")}, nil},
		{"bidirectional unprivileged", newPod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "a"}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "a", MountPath: "/data", MountPropagation: ptr.To(corev1.MountPropagationBidirectional)}}
		}), []fe{forb(c0 + ".volumeMounts[0].mountPropagation")}, nil},
		{"volume device on emptyDir", newPod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "a"}}
			p.Spec.Containers[0].VolumeDevices = []corev1.VolumeDevice{{Name: "a", DevicePath: "/dev/xvda"}}
		}), []fe{inv(c0 + ".volumeDevices[0].name")}, nil},

		// probes
		{"probe without handler", withContainer(func(c *corev1.Container) { c.LivenessProbe = &corev1.Probe{} }), []fe{req(c0 + ".livenessProbe")}, nil},
		{"probe with two handlers", withContainer(func(c *corev1.Container) {
			c.ReadinessProbe = probe(corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"x"}}, TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}})
		}), []fe{forb(c0 + ".readinessProbe.tcpSocket")}, nil},
		{"liveness success threshold", withContainer(func(c *corev1.Container) {
			c.LivenessProbe = probe(tcp)
			c.LivenessProbe.SuccessThreshold = 2
		}), []fe{inv(c0 + ".livenessProbe.successThreshold")}, nil},
		{"probe negative delay", withContainer(func(c *corev1.Container) {
			c.StartupProbe = probe(tcp)
			c.StartupProbe.InitialDelaySeconds = -1
		}), []fe{inv(c0 + ".startupProbe.initialDelaySeconds")}, nil},
		{"probe bad port", withContainer(func(c *corev1.Container) {
			c.ReadinessProbe = probe(corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(0)}})
		}), []fe{inv(c0 + ".readinessProbe.httpGet.port")}, nil},
		{"probe bad port name", withContainer(func(c *corev1.Container) {
			c.ReadinessProbe = probe(corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("Not_A_Name")}})
		}), []fe{inv(c0 + ".readinessProbe.tcpSocket.port")}, nil},
		{"probe bad scheme", withContainer(func(c *corev1.Container) {
			c.ReadinessProbe = probe(corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80), Scheme: "FTP"}})
		}), []fe{ns(c0 + ".readinessProbe.httpGet.scheme")}, nil},
		{"exec without command", withContainer(func(c *corev1.Container) { c.LivenessProbe = probe(corev1.ProbeHandler{Exec: &corev1.ExecAction{}}) }),
			[]fe{req(c0 + ".livenessProbe.exec.command")}, nil},
		{"readiness grace period", withContainer(func(c *corev1.Container) {
			c.ReadinessProbe = probe(tcp)
			c.ReadinessProbe.TerminationGracePeriodSeconds = ptr.To[int64](5)
		}), []fe{inv(c0 + ".readinessProbe.terminationGracePeriodSeconds")}, nil},
		{"init container probe", newPod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "x", LivenessProbe: probe(tcp)}}
		}), []fe{forb("spec.initContainers[0].livenessProbe")}, nil},

		// lifecycle hooks
		{"preStop sleep, httpGet postStart", withContainer(func(c *corev1.Container) {
			c.Lifecycle = &corev1.Lifecycle{PreStop: hook(corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}),
				PostStart: hook(corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/started", Port: intstr.FromString("http"),
					HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Hook", Value: "1"}}}})}
		}), nil, nil},
		{"exec preStop and postStart", withContainer(func(c *corev1.Container) {
			c.Lifecycle = &corev1.Lifecycle{PreStop: hook(corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/drain"}}}),
				PostStart: hook(corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/warm"}}})}
		}), nil, nil},
		{"sleep 0", withContainer(func(c *corev1.Container) {
			c.Lifecycle = &corev1.Lifecycle{PreStop: hook(corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 0}})}
		}), nil, nil},
		{"sleep the whole grace period", newPod(func(p *corev1.Pod) {
			p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](10)
			p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: hook(corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 10}})}
		}), nil, nil},
		{"sleep past the grace period", newPod(func(p *corev1.Pod) {
			p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](10)
			p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: hook(corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 11}})}
		}), []fe{inv(c0 + ".lifecycle.preStop.sleep")}, nil},
		{"sleep past the default grace period", withContainer(func(c *corev1.Container) {
			c.Lifecycle = &corev1.Lifecycle{PostStart: hook(corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 31}})}
		}), []fe{inv(c0 + ".lifecycle.postStart.sleep")}, nil},
		{"negative sleep", withContainer(func(c *corev1.Container) {
			c.Lifecycle = &corev1.Lifecycle{PreStop: hook(corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: -1}})}
		}), []fe{inv(c0 + ".lifecycle.preStop.sleep")}, nil},
		{"hook without handler", withContainer(func(c *corev1.Container) { c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{}} }),
			[]fe{req(c0 + ".lifecycle.preStop")}, nil},
		{"hook with two handlers", withContainer(func(c *corev1.Container) {
			c.Lifecycle = &corev1.Lifecycle{PreStop: hook(corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"x"}}, Sleep: &corev1.SleepAction{Seconds: 1}})}
		}), []fe{forb(c0 + ".lifecycle.preStop.sleep")}, nil},
		{"hook exec without command", withContainer(func(c *corev1.Container) {
			c.Lifecycle = &corev1.Lifecycle{PostStart: hook(corev1.LifecycleHandler{Exec: &corev1.ExecAction{}})}
		}), []fe{req(c0 + ".lifecycle.postStart.exec.command")}, nil},
		{"hook httpGet bad port and scheme", withContainer(func(c *corev1.Container) {
			c.Lifecycle = &corev1.Lifecycle{PreStop: hook(corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(0), Scheme: "FTP"}})}
		}), []fe{inv(c0 + ".lifecycle.preStop.httpGet.port"), ns(c0 + ".lifecycle.preStop.httpGet.scheme")}, nil},
		{"hook tcpSocket refused", withContainer(func(c *corev1.Container) {
			c.Lifecycle = &corev1.Lifecycle{PreStop: hook(corev1.LifecycleHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}})}
		}), []fe{inv(c0 + ".lifecycle.preStop.tcpSocket")}, nil},
		{"init container hooks", newPod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "x",
				Lifecycle: &corev1.Lifecycle{PreStop: hook(corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}})}}}
		}), []fe{forb("spec.initContainers[0].lifecycle")}, nil},
		{"sidecar hooks", newPod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "x", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
				Lifecycle: &corev1.Lifecycle{PreStop: hook(corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}})}}}
		}), nil, nil},

		// pod-level fields
		{"bad restartPolicy", newPod(func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }), []fe{ns("spec.restartPolicy")}, nil},
		{"restartPolicy Never", newPod(func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }), nil, nil},
		{"bad dnsPolicy", newPod(func(p *corev1.Pod) { p.Spec.DNSPolicy = "Google" }), []fe{ns("spec.dnsPolicy")}, nil},
		{"dnsPolicy None without dnsConfig", newPod(func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSNone }), []fe{req("spec.dnsConfig")}, nil},
		{"bad activeDeadlineSeconds", newPod(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](0) }), []fe{inv("spec.activeDeadlineSeconds")}, nil},
		{"bad nodeName", newPod(func(p *corev1.Pod) { p.Spec.NodeName = "Node_1" }), []fe{inv("spec.nodeName")}, nil},
		{"bad nodeSelector", newPod(func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"a": "b c"} }), []fe{inv("spec.nodeSelector")}, nil},
		{"bad hostname", newPod(func(p *corev1.Pod) { p.Spec.Hostname = "a.b" }), []fe{inv("spec.hostname")}, nil},
		{"toleration Exists with value", newPod(func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Value: "v"}}
		}), []fe{inv("spec.tolerations[0].operator")}, nil},
		{"toleration seconds without NoExecute", newPod(func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: ptr.To[int64](1)}}
		}), []fe{inv("spec.tolerations[0].effect")}, nil},
		{"toleration bad effect", newPod(func(p *corev1.Pod) { p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Effect: "Never"}} }),
			[]fe{ns("spec.tolerations[0].effect")}, nil},
		{"spread maxSkew 0", newPod(func(p *corev1.Pod) {
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{TopologyKey: "zone", WhenUnsatisfiable: corev1.ScheduleAnyway}}
		}), []fe{inv("spec.topologySpreadConstraints[0].maxSkew")}, []string{"spec.topologySpreadConstraints[0]: ignored by kubeish"}},
		{"spread bad action", newPod(func(p *corev1.Pod) {
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: "Maybe"}}
		}), []fe{ns("spec.topologySpreadConstraints[0].whenUnsatisfiable")}, nil},
	})
}

// TestPodFieldPolicy covers every entry of podFieldPolicy, in a Pod and in
// a Deployment's template.
func TestPodFieldPolicy(t *testing.T) {
	podTerm := []corev1.PodAffinityTerm{{TopologyKey: "kubernetes.io/hostname"}}
	weighted := []corev1.WeightedPodAffinityTerm{{Weight: 1, PodAffinityTerm: podTerm[0]}}
	cases := []struct {
		entry  string // the podFieldPolicy entry covered
		mutate func(*corev1.PodSpec)
		path   string // under the pod spec
	}{
		{"hostPID", func(s *corev1.PodSpec) { s.HostPID = true }, "hostPID"},
		{"hostIPC", func(s *corev1.PodSpec) { s.HostIPC = true }, "hostIPC"},
		{"shareProcessNamespace", func(s *corev1.PodSpec) { s.ShareProcessNamespace = ptr.To(true) }, "shareProcessNamespace"},
		{"hostUsers", func(s *corev1.PodSpec) { s.HostUsers = ptr.To(false) }, "hostUsers"},
		{"containers[*].securityContext.privileged", func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
		}, "containers[0].securityContext.privileged"},
		{"containers[*].securityContext.privileged", func(s *corev1.PodSpec) {
			s.InitContainers = []corev1.Container{{Name: "i", Image: "x", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}
		}, "initContainers[0].securityContext.privileged"},
		{"containers[*].securityContext.capabilities.add", func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}}
		}, "containers[0].securityContext.capabilities.add"},
		{"containers[*].lifecycle.*.tcpSocket", func(s *corev1.PodSpec) {
			s.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}}
		}, "containers[0].lifecycle.postStart.tcpSocket"},
		{"containers[*].lifecycle.*.tcpSocket", func(s *corev1.PodSpec) {
			s.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}}}
		}, "containers[0].lifecycle.preStop.tcpSocket"},
		{"containers[*].lifecycle.stopSignal", func(s *corev1.PodSpec) {
			s.Containers[0].Lifecycle = &corev1.Lifecycle{StopSignal: ptr.To(corev1.SIGTERM)}
		}, "containers[0].lifecycle.stopSignal"},
		{"ephemeralContainers", func(s *corev1.PodSpec) {
			s.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}}
		}, "ephemeralContainers"},
		{"runtimeClassName", func(s *corev1.PodSpec) { s.RuntimeClassName = ptr.To("gvisor") }, "runtimeClassName"},
		{"os", func(s *corev1.PodSpec) { s.OS = &corev1.PodOS{Name: corev1.Linux} }, "os"},
		{"overhead", func(s *corev1.PodSpec) {
			s.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
		}, "overhead"},
		{"resourceClaims", func(s *corev1.PodSpec) { s.ResourceClaims = []corev1.PodResourceClaim{{Name: "gpu"}} }, "resourceClaims"},
		{"containers[*].resources.claims", func(s *corev1.PodSpec) {
			s.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "gpu"}}
		}, "containers[0].resources.claims"},
		{"affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution", func(s *corev1.PodSpec) {
			s.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: podTerm}}
		}, "affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution"},
		{"affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution", func(s *corev1.PodSpec) {
			s.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: podTerm}}
		}, "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution"},
		{"topologySpreadConstraints[*].whenUnsatisfiable: DoNotSchedule", func(s *corev1.PodSpec) {
			s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule}}
		}, "topologySpreadConstraints[0].whenUnsatisfiable"},

		{"affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution", func(s *corev1.PodSpec) {
			s.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{PreferredDuringSchedulingIgnoredDuringExecution: weighted}}
		}, "affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution"},
		{"affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution", func(s *corev1.PodSpec) {
			s.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: weighted}}
		}, "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution"},
		{"topologySpreadConstraints[*] with whenUnsatisfiable: ScheduleAnyway", func(s *corev1.PodSpec) {
			s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.ScheduleAnyway}}
		}, "topologySpreadConstraints[0]"},
		{"priorityClassName", func(s *corev1.PodSpec) { s.PriorityClassName = "high" }, "priorityClassName"},
		{"serviceAccountName other than default", func(s *corev1.PodSpec) { s.ServiceAccountName = "builder" }, "serviceAccountName"},
		{"imagePullSecrets", func(s *corev1.PodSpec) { s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}} }, "imagePullSecrets"},
		{"dnsConfig", func(s *corev1.PodSpec) { s.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}} }, "dnsConfig"},
		{"readinessGates", func(s *corev1.PodSpec) { s.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "x"}} }, "readinessGates"},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.entry] = true
		var entry *podField
		for i := range podFieldPolicy {
			if podFieldPolicy[i].name == c.entry {
				entry = &podFieldPolicy[i]
			}
		}
		if entry == nil {
			t.Fatalf("no podFieldPolicy entry %q", c.entry)
		}
		for _, kind := range []string{"Pod", "Deployment"} {
			t.Run(kind+"/"+c.path, func(t *testing.T) {
				var obj runtime.Object
				prefix := "spec."
				if kind == "Pod" {
					p := newPod()
					c.mutate(&p.Spec)
					obj = p
				} else {
					d := newDeployment()
					c.mutate(&d.Spec.Template.Spec)
					obj, prefix = d, "spec.template.spec."
				}
				SetDefaults(obj)
				errs, warns := Validate(obj)
				if entry.policy == refused {
					checkErrs(t, errs, inv(prefix+c.path))
					checkWarns(t, warns)
					want := ": not supported by kubeish"
					if h := refusalHints[c.entry]; h != "" {
						want += ": " + h
					}
					if len(errs) == 1 && !strings.HasSuffix(errs[0].Error(), want) {
						t.Errorf("message %q, want it to end in %q", errs[0].Error(), want)
					}
				} else {
					checkErrs(t, errs)
					checkWarns(t, warns, prefix+c.path+": ignored by kubeish")
				}
			})
		}
	}
	for _, f := range podFieldPolicy {
		if !covered[f.name] {
			t.Errorf("podFieldPolicy entry %q has no test", f.name)
		}
	}
	// Set to what Kubernetes does anyway, they are fine.
	p := newPod(func(p *corev1.Pod) {
		p.Spec.ShareProcessNamespace = ptr.To(false)
		p.Spec.HostUsers = ptr.To(true)
		p.Spec.ServiceAccountName = "default"
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(false),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	})
	SetDefaults(p)
	errs, warns := Validate(p)
	checkErrs(t, errs)
	checkWarns(t, warns)
}

func TestVolumeErrorMessage(t *testing.T) {
	p := newPod(func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
	})
	SetDefaults(p)
	errs, _ := Validate(p)
	if len(errs) != 1 || errs[0].Error() != "spec.volumes[0].persistentVolumeClaim: Invalid value: not supported by kubeish" {
		t.Fatalf("got %v", errs)
	}
}

func TestDeployment(t *testing.T) {
	rolling := func(surge, unavailable intstr.IntOrString) func(*appsv1.Deployment) {
		return func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable}
		}
	}
	runCases(t, []errCase{
		{"valid", newDeployment(), nil, nil},
		{"valid Recreate", newDeployment(func(d *appsv1.Deployment) { d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType }), nil, nil},
		{"valid expressions", newDeployment(func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"x", "y"}}}}
		}), nil, nil},
		{"no selector", newDeployment(func(d *appsv1.Deployment) { d.Spec.Selector = nil }), []fe{req("spec.selector")}, nil},
		{"empty selector", newDeployment(func(d *appsv1.Deployment) { d.Spec.Selector = &metav1.LabelSelector{} }), []fe{inv("spec.selector")}, nil},
		{"bad selector", newDeployment(func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}
		}), []fe{inv("spec.selector.matchExpressions[0].operator"), inv("spec.selector")}, nil},
		{"bad selector label", newDeployment(func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a b"}}
		}), []fe{inv("spec.selector.matchLabels"), inv("spec.selector")}, nil},
		{"selector does not match", newDeployment(func(d *appsv1.Deployment) { d.Spec.Template.Labels = map[string]string{"app": "y"} }),
			[]fe{inv("spec.template.metadata.labels")}, nil},
		{"bad template label", newDeployment(func(d *appsv1.Deployment) { d.Spec.Template.Labels["-bad"] = "x" }),
			[]fe{inv("spec.template.metadata.labels")}, nil},
		{"negative replicas", newDeployment(func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](-1) }), []fe{inv("spec.replicas")}, nil},
		{"zero replicas", newDeployment(func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](0) }), nil, nil},
		{"bad strategy", newDeployment(func(d *appsv1.Deployment) { d.Spec.Strategy.Type = "BlueGreen" }), []fe{ns("spec.strategy.type")}, nil},
		{"Recreate with rollingUpdate", newDeployment(func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{}}
		}), []fe{forb("spec.strategy.rollingUpdate")}, nil},
		{"surge and unavailable 0", newDeployment(rolling(intstr.FromInt32(0), intstr.FromString("0%"))),
			[]fe{inv("spec.strategy.rollingUpdate.maxUnavailable")}, nil},
		{"surge only", newDeployment(rolling(intstr.FromInt32(1), intstr.FromInt32(0))), nil, nil},
		{"unavailable only", newDeployment(rolling(intstr.FromString("0%"), intstr.FromString("100%"))), nil, nil},
		{"bad percentage", newDeployment(rolling(intstr.FromString("half"), intstr.FromInt32(1))),
			[]fe{inv("spec.strategy.rollingUpdate.maxSurge")}, nil},
		{"negative surge", newDeployment(rolling(intstr.FromInt32(-1), intstr.FromInt32(1))),
			[]fe{inv("spec.strategy.rollingUpdate.maxSurge")}, nil},
		{"unavailable above 100%", newDeployment(rolling(intstr.FromInt32(1), intstr.FromString("150%"))),
			[]fe{inv("spec.strategy.rollingUpdate.maxUnavailable")}, nil},
		{"negative minReadySeconds", newDeployment(func(d *appsv1.Deployment) { d.Spec.MinReadySeconds = -1 }), []fe{inv("spec.minReadySeconds")}, nil},
		{"progress deadline not after minReadySeconds", newDeployment(func(d *appsv1.Deployment) {
			d.Spec.MinReadySeconds, d.Spec.ProgressDeadlineSeconds = 30, ptr.To[int32](30)
		}), []fe{inv("spec.progressDeadlineSeconds")}, nil},
		{"negative revisionHistoryLimit", newDeployment(func(d *appsv1.Deployment) { d.Spec.RevisionHistoryLimit = ptr.To[int32](-1) }),
			[]fe{inv("spec.revisionHistoryLimit")}, nil},
		{"template restartPolicy", newDeployment(func(d *appsv1.Deployment) { d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure }),
			[]fe{ns("spec.template.spec.restartPolicy")}, nil},
		{"template activeDeadlineSeconds", newDeployment(func(d *appsv1.Deployment) { d.Spec.Template.Spec.ActiveDeadlineSeconds = ptr.To[int64](10) }),
			[]fe{inv("spec.template.spec.activeDeadlineSeconds")}, nil},
		{"template container", newDeployment(func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "" }),
			[]fe{req("spec.template.spec.containers[0].image")}, nil},
		{"template volume", newDeployment(func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "d"}}}}
		}), []fe{inv("spec.template.spec.volumes[0].persistentVolumeClaim")}, nil},
		{"template warning", newDeployment(func(d *appsv1.Deployment) { d.Spec.Template.Spec.PriorityClassName = "high" }),
			nil, []string{"spec.template.spec.priorityClassName: ignored by kubeish"}},
	})
}

func TestReplicaSet(t *testing.T) {
	runCases(t, []errCase{
		{"valid", newReplicaSet(), nil, nil},
		{"no selector", newReplicaSet(func(rs *appsv1.ReplicaSet) { rs.Spec.Selector = nil }), []fe{req("spec.selector")}, nil},
		{"empty selector", newReplicaSet(func(rs *appsv1.ReplicaSet) { rs.Spec.Selector = &metav1.LabelSelector{} }), []fe{inv("spec.selector")}, nil},
		{"selector does not match", newReplicaSet(func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Labels = nil }),
			[]fe{inv("spec.template.metadata.labels")}, nil},
		{"negative replicas", newReplicaSet(func(rs *appsv1.ReplicaSet) { rs.Spec.Replicas = ptr.To[int32](-3) }), []fe{inv("spec.replicas")}, nil},
		{"negative minReadySeconds", newReplicaSet(func(rs *appsv1.ReplicaSet) { rs.Spec.MinReadySeconds = -1 }), []fe{inv("spec.minReadySeconds")}, nil},
		{"template", newReplicaSet(func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Spec.HostIPC = true }), []fe{inv("spec.template.spec.hostIPC")}, nil},
	})
}

func TestService(t *testing.T) {
	twoPorts := func(a, b string) []corev1.ServicePort {
		return []corev1.ServicePort{{Name: a, Port: 80}, {Name: b, Port: 443}}
	}
	runCases(t, []errCase{
		{"valid", newService(), nil, nil},
		{"valid with clusterIP", newService(func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.10" }), nil, nil},
		{"valid NodePort", newService(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = 30080
		}), nil, nil},
		{"valid ExternalName", newService(func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalName, s.Spec.Selector, s.Spec.Ports = corev1.ServiceTypeExternalName, "db.example.com.", nil, nil
		}), nil, nil},
		{"valid headless without selector or ports", newService(func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.Selector, s.Spec.Ports = corev1.ClusterIPNone, nil, nil
		}), nil, nil},
		{"valid headless with selector and no ports", newService(func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.Ports = corev1.ClusterIPNone, nil }), nil, nil},
		{"valid ClientIP affinity", newService(func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP }), nil, nil},
		{"valid named target port", newService(func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("http") }), nil, nil},

		{"LoadBalancer", newService(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer }), []fe{ns("spec.type")}, nil},
		{"unknown type", newService(func(s *corev1.Service) { s.Spec.Type = "Mesh" }), []fe{ns("spec.type")}, nil},
		{"no ports", newService(func(s *corev1.Service) { s.Spec.Ports = nil }), []fe{req("spec.ports")}, nil},
		{"two ports without names", newService(func(s *corev1.Service) { s.Spec.Ports = twoPorts("", "") }),
			[]fe{req("spec.ports[0].name"), req("spec.ports[1].name")}, nil},
		{"two ports, one name", newService(func(s *corev1.Service) { s.Spec.Ports = twoPorts("http", "") }), []fe{req("spec.ports[1].name")}, nil},
		{"two ports, one name twice", newService(func(s *corev1.Service) { s.Spec.Ports = twoPorts("http", "http") }), []fe{dup("spec.ports[1].name")}, nil},
		{"bad port name", newService(func(s *corev1.Service) { s.Spec.Ports[0].Name = "HTTP" }), []fe{inv("spec.ports[0].name")}, nil},
		{"port 0", newService(func(s *corev1.Service) { s.Spec.Ports[0].Port, s.Spec.Ports[0].TargetPort = 0, intstr.FromInt32(80) }),
			[]fe{inv("spec.ports[0].port")}, nil},
		{"port too big", newService(func(s *corev1.Service) {
			s.Spec.Ports[0].Port, s.Spec.Ports[0].TargetPort = 70000, intstr.FromInt32(80)
		}),
			[]fe{inv("spec.ports[0].port")}, nil},
		{"bad target port", newService(func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromInt32(-5) }), []fe{inv("spec.ports[0].targetPort")}, nil},
		{"bad protocol", newService(func(s *corev1.Service) { s.Spec.Ports[0].Protocol = "HTTP" }), []fe{ns("spec.ports[0].protocol")}, nil},
		{"same port twice", newService(func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "a", Port: 80}, {Name: "b", Port: 80}}
		}),
			[]fe{dup("spec.ports[1]")}, nil},
		{"same port, other protocol", newService(func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "a", Port: 53}, {Name: "b", Port: 53, Protocol: corev1.ProtocolUDP}}
		}), nil, nil},
		{"nodePort on ClusterIP", newService(func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30080 }), []fe{forb("spec.ports[0].nodePort")}, nil},
		{"bad nodePort", newService(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports[0].NodePort = 70000
		}), []fe{inv("spec.ports[0].nodePort")}, nil},
		{"duplicate nodePort", newService(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports = []corev1.ServicePort{{Name: "a", Port: 80, NodePort: 30080}, {Name: "b", Port: 81, NodePort: 30080}}
		}), []fe{dup("spec.ports[1].nodePort")}, nil},
		{"NodePort headless", newService(func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ClusterIP = corev1.ServiceTypeNodePort, corev1.ClusterIPNone
		}), []fe{inv("spec.clusterIP")}, nil},
		{"bad clusterIP", newService(func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.300" }), []fe{inv("spec.clusterIP")}, nil},
		{"IPv6 clusterIP", newService(func(s *corev1.Service) { s.Spec.ClusterIP = "fd00::10" }), []fe{inv("spec.clusterIP")}, nil},
		{"clusterIP with leading zeros", newService(func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.010" }), []fe{inv("spec.clusterIP")}, nil},
		{"clusterIPs not clusterIP", newService(func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.10", []string{"10.96.0.11"} }),
			[]fe{inv("spec.clusterIPs[0]")}, nil},
		{"two clusterIPs", newService(func(s *corev1.Service) { s.Spec.ClusterIPs = []string{"10.96.0.10", "fd00::10"} }),
			[]fe{inv("spec.clusterIPs")}, nil},
		{"IPv6 family", newService(func(s *corev1.Service) { s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol} }),
			[]fe{ns("spec.ipFamilies[0]")}, nil},
		{"RequireDualStack", newService(func(s *corev1.Service) { s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack) }),
			[]fe{inv("spec.ipFamilyPolicy")}, nil},
		{"PreferDualStack", newService(func(s *corev1.Service) { s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyPreferDualStack) }), nil, nil},
		{"bad sessionAffinity", newService(func(s *corev1.Service) { s.Spec.SessionAffinity = "Cookie" }), []fe{ns("spec.sessionAffinity")}, nil},
		{"ClientIP timeout too long", newService(func(s *corev1.Service) {
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](86401)}}
		}), []fe{inv("spec.sessionAffinityConfig.clientIP.timeoutSeconds")}, nil},
		{"bad selector", newService(func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "a/b"} }), []fe{inv("spec.selector")}, nil},
		{"ExternalName without name", newService(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeExternalName }),
			[]fe{req("spec.externalName")}, nil},
		{"ExternalName bad name", newService(func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "not a host"
		}), []fe{inv("spec.externalName")}, nil},
		{"ExternalName with clusterIP", newService(func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalName, s.Spec.ClusterIP = corev1.ServiceTypeExternalName, "db.example.com", "10.96.0.10"
		}), []fe{forb("spec.clusterIP")}, nil},
		{"ExternalName with families", newService(func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "db.example.com"
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		}), []fe{forb("spec.ipFamilies")}, nil},
		{"externalTrafficPolicy on ClusterIP", newService(func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }),
			[]fe{inv("spec.externalTrafficPolicy")}, nil},
		{"bad internalTrafficPolicy", newService(func(s *corev1.Service) {
			s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicy("Zone"))
		}),
			[]fe{ns("spec.internalTrafficPolicy")}, nil},
		{"load balancer field", newService(func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr.To("example.com/lb") }),
			[]fe{forb("spec.loadBalancerClass")}, nil},
		{"bad externalIP", newService(func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"1.2.3"} }), []fe{inv("spec.externalIPs[0]")}, nil},
	})
}

func TestEndpoints(t *testing.T) {
	runCases(t, []errCase{
		{"valid", newEndpoints(), nil, nil},
		{"valid loopback", newEndpoints(func(e *corev1.Endpoints) { e.Subsets[0].Addresses[0].IP = "127.0.0.1" }), nil, nil},
		{"valid empty", newEndpoints(func(e *corev1.Endpoints) { e.Subsets = nil }), nil, nil},
		{"valid not ready only", newEndpoints(func(e *corev1.Endpoints) {
			e.Subsets[0].NotReadyAddresses, e.Subsets[0].Addresses = e.Subsets[0].Addresses, nil
		}), nil, nil},
		{"no addresses", newEndpoints(func(e *corev1.Endpoints) { e.Subsets[0].Addresses = nil }), []fe{req("subsets[0]")}, nil},
		{"bad IP", newEndpoints(func(e *corev1.Endpoints) { e.Subsets[0].Addresses[0].IP = "10.244.0" }), []fe{inv("subsets[0].addresses[0].ip")}, nil},
		{"unspecified IP", newEndpoints(func(e *corev1.Endpoints) { e.Subsets[0].Addresses[0].IP = "0.0.0.0" }), []fe{inv("subsets[0].addresses[0].ip")}, nil},
		{"link-local IP", newEndpoints(func(e *corev1.Endpoints) {
			e.Subsets[0].NotReadyAddresses = []corev1.EndpointAddress{{IP: "169.254.1.1"}}
		}),
			[]fe{inv("subsets[0].notReadyAddresses[0].ip")}, nil},
		{"bad nodeName", newEndpoints(func(e *corev1.Endpoints) { e.Subsets[0].Addresses[0].NodeName = ptr.To("Node 1") }),
			[]fe{inv("subsets[0].addresses[0].nodeName")}, nil},
		{"port 0", newEndpoints(func(e *corev1.Endpoints) { e.Subsets[0].Ports[0].Port = 0 }), []fe{inv("subsets[0].ports[0].port")}, nil},
		{"bad protocol", newEndpoints(func(e *corev1.Endpoints) { e.Subsets[0].Ports[0].Protocol = "ICMP" }), []fe{ns("subsets[0].ports[0].protocol")}, nil},
		{"two ports without names", newEndpoints(func(e *corev1.Endpoints) {
			e.Subsets[0].Ports = []corev1.EndpointPort{{Port: 80}, {Name: "b", Port: 81}}
		}),
			[]fe{req("subsets[0].ports[0].name")}, nil},
	})
}

func TestEndpointSlice(t *testing.T) {
	runCases(t, []errCase{
		{"valid", newSlice(), nil, nil},
		{"valid loopback", newSlice(func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = []string{"127.0.0.1"} }), nil, nil},
		{"valid FQDN", newSlice(func(s *discoveryv1.EndpointSlice) {
			s.AddressType, s.Endpoints[0].Addresses = discoveryv1.AddressTypeFQDN, []string{"db.example.com"}
		}), nil, nil},
		{"valid all ports", newSlice(func(s *discoveryv1.EndpointSlice) { s.Ports = []discoveryv1.EndpointPort{{}} }), nil, nil},
		{"no address type", newSlice(func(s *discoveryv1.EndpointSlice) { s.AddressType = "" }), []fe{req("addressType")}, nil},
		{"bad address type", newSlice(func(s *discoveryv1.EndpointSlice) { s.AddressType = "MAC" }), []fe{ns("addressType")}, nil},
		{"bad address", newSlice(func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = []string{"web"} }), []fe{inv("endpoints[0].addresses[0]")}, nil},
		{"IPv6 in IPv4 slice", newSlice(func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = []string{"fd00::5"} }),
			[]fe{inv("endpoints[0].addresses[0]")}, nil},
		{"no addresses", newSlice(func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Addresses = nil }), []fe{req("endpoints[0].addresses")}, nil},
		{"bad hostname", newSlice(func(s *discoveryv1.EndpointSlice) { s.Endpoints[0].Hostname = ptr.To("a.b") }), []fe{inv("endpoints[0].hostname")}, nil},
		{"port 0", newSlice(func(s *discoveryv1.EndpointSlice) { s.Ports[0].Port = ptr.To[int32](0) }), []fe{inv("ports[0].port")}, nil},
		{"bad port name", newSlice(func(s *discoveryv1.EndpointSlice) { s.Ports[0].Name = ptr.To("HTTP") }), []fe{inv("ports[0].name")}, nil},
		{"same port name", newSlice(func(s *discoveryv1.EndpointSlice) { s.Ports = append(s.Ports, s.Ports[0]) }), []fe{dup("ports[1].name")}, nil},
		{"bad protocol", newSlice(func(s *discoveryv1.EndpointSlice) { s.Ports[0].Protocol = ptr.To(corev1.Protocol("ICMP")) }), []fe{ns("ports[0].protocol")}, nil},
	})
}

func TestNode(t *testing.T) {
	runCases(t, []errCase{
		{"valid", newNode(), nil, nil},
		{"valid without CIDR", newNode(func(n *corev1.Node) { n.Spec.PodCIDR = "" }), nil, nil},
		{"valid dual-stack", newNode(func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.244.1.0/24", "fd00:1::/64"} }), nil, nil},
		{"bad podCIDR", newNode(func(n *corev1.Node) { n.Spec.PodCIDR = "10.244.1.0/33" }), []fe{inv("spec.podCIDR"), inv("spec.podCIDRs[0]")}, nil},
		{"podCIDR not a CIDR", newNode(func(n *corev1.Node) { n.Spec.PodCIDR, n.Spec.PodCIDRs = "10.244.1.0", []string{"10.244.1.0"} }),
			[]fe{inv("spec.podCIDR"), inv("spec.podCIDRs[0]")}, nil},
		{"podCIDRs not podCIDR", newNode(func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.244.2.0/24"} }), []fe{inv("spec.podCIDRs[0]")}, nil},
		{"two IPv4 podCIDRs", newNode(func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.244.1.0/24", "10.245.1.0/24"} }), []fe{inv("spec.podCIDRs")}, nil},
		{"taint without effect", newNode(func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "web"}} }),
			[]fe{req("spec.taints[0].effect")}, nil},
		{"taint bad key", newNode(func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "-x", Effect: corev1.TaintEffectNoSchedule}}
		}),
			[]fe{inv("spec.taints[0].key")}, nil},
		{"taint twice", newNode(func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "a", Effect: corev1.TaintEffectNoSchedule}, {Key: "a", Value: "b", Effect: corev1.TaintEffectNoSchedule}}
		}), []fe{dup("spec.taints[1]")}, nil},
	})
}

func TestNamespace(t *testing.T) {
	runCases(t, []errCase{
		{"valid", newNamespace(), nil, nil},
		{"bad name", newNamespace(func(n *corev1.Namespace) { n.Name = "Team" }), []fe{inv("metadata.name")}, nil},
		{"bad finalizer", newNamespace(func(n *corev1.Namespace) { n.Spec.Finalizers = []corev1.FinalizerName{"kubernetes", "mine"} }),
			[]fe{inv("spec.finalizers[1]")}, nil},
		{"qualified finalizer", newNamespace(func(n *corev1.Namespace) { n.Spec.Finalizers = []corev1.FinalizerName{"example.com/mine"} }), nil, nil},
	})
}

func TestConfigMapAndSecret(t *testing.T) {
	big := strings.Repeat("x", 1024*1024)
	runCases(t, []errCase{
		{"configmap valid", newConfigMap(), nil, nil},
		{"configmap empty", newConfigMap(func(c *corev1.ConfigMap) { c.Data, c.BinaryData = nil, nil }), nil, nil},
		{"configmap bad key", newConfigMap(func(c *corev1.ConfigMap) { c.Data["a b"] = "x" }), []fe{inv("data[a b]")}, nil},
		{"configmap key ..", newConfigMap(func(c *corev1.ConfigMap) { c.Data[".."] = "x" }), []fe{inv("data[..]")}, nil},
		{"configmap bad binary key", newConfigMap(func(c *corev1.ConfigMap) { c.BinaryData["a/b"] = nil }), []fe{inv("binaryData[a/b]")}, nil},
		{"configmap key in both", newConfigMap(func(c *corev1.ConfigMap) { c.BinaryData["MODE"] = []byte("x") }), []fe{inv("binaryData[MODE]")}, nil},
		{"configmap too big", newConfigMap(func(c *corev1.ConfigMap) { c.Data["big"] = big }), []fe{long("data")}, nil},

		{"secret valid", newSecret(), nil, nil},
		{"secret bad key", newSecret(func(s *corev1.Secret) { s.Data["a b"] = nil }), []fe{inv("data[a b]")}, nil},
		{"secret bad stringData key", newSecret(func(s *corev1.Secret) { s.StringData["a:b"] = "x" }), []fe{inv("data[a:b]")}, nil},
		{"secret too big", newSecret(func(s *corev1.Secret) { s.StringData["big"] = big }), []fe{long("data")}, nil},
		{"secret TLS", newSecret(func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeTLS
			s.Data = map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")}
		}), nil, nil},
		{"secret TLS without key", newSecret(func(s *corev1.Secret) { s.Type = corev1.SecretTypeTLS }),
			[]fe{req("data[tls.crt]"), req("data[tls.key]")}, nil},
		{"secret basic auth", newSecret(func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeBasicAuth
			s.StringData = map[string]string{"password": "p"}
		}), nil, nil},
		{"secret basic auth empty", newSecret(func(s *corev1.Secret) { s.Type = corev1.SecretTypeBasicAuth; s.StringData = nil }),
			[]fe{req("data[username]"), req("data[password]")}, nil},
		{"secret ssh", newSecret(func(s *corev1.Secret) { s.Type = corev1.SecretTypeSSHAuth }), []fe{req("data[ssh-privatekey]")}, nil},
		{"secret docker config", newSecret(func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeDockerConfigJson
			s.StringData = map[string]string{".dockerconfigjson": `{"auths":{}}`}
		}), nil, nil},
		{"secret docker config not JSON", newSecret(func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeDockerConfigJson
			s.StringData = map[string]string{".dockerconfigjson": `{`}
		}), []fe{inv("data[.dockerconfigjson]")}, nil},
		{"secret service account token", newSecret(func(s *corev1.Secret) { s.Type = corev1.SecretTypeServiceAccountToken }),
			[]fe{req("metadata.annotations[kubernetes.io/service-account.name]")}, nil},
		{"secret custom type", newSecret(func(s *corev1.Secret) { s.Type = "example.com/thing" }), nil, nil},
	})
}

func TestEvent(t *testing.T) {
	runCases(t, []errCase{
		{"valid", newEvent(), nil, nil},
		{"valid cluster-scoped object", newEvent(func(e *corev1.Event) { e.InvolvedObject = corev1.ObjectReference{Kind: "Node", Name: "node-1"} }), nil, nil},
		{"cluster-scoped object elsewhere", newEvent(func(e *corev1.Event) {
			e.Namespace, e.InvolvedObject = "kube-system", corev1.ObjectReference{Kind: "Node", Name: "node-1"}
		}), []fe{inv("involvedObject.namespace")}, nil},
		{"other namespace", newEvent(func(e *corev1.Event) { e.InvolvedObject.Namespace = "kube-system" }), []fe{inv("involvedObject.namespace")}, nil},
		{"valid new style", newEvent(func(e *corev1.Event) {
			e.EventTime = metav1.NowMicro()
			e.ReportingController, e.ReportingInstance, e.Action = "kubeish.io/scheduler", "scheduler-1", "Binding"
		}), nil, nil},
		{"new style without reporter", newEvent(func(e *corev1.Event) { e.EventTime = metav1.NowMicro() }),
			[]fe{req("reportingComponent"), req("reportingInstance"), req("action")}, nil},
	})
}

func TestLease(t *testing.T) {
	runCases(t, []errCase{
		{"valid", newLease(), nil, nil},
		{"valid without holder", newLease(func(l *coordinationv1.Lease) { l.Spec = coordinationv1.LeaseSpec{} }), nil, nil},
		{"valid transitions", newLease(func(l *coordinationv1.Lease) { l.Spec.LeaseTransitions = ptr.To[int32](0) }), nil, nil},
		{"zero duration", newLease(func(l *coordinationv1.Lease) { l.Spec.LeaseDurationSeconds = ptr.To[int32](0) }), []fe{inv("spec.leaseDurationSeconds")}, nil},
		{"negative transitions", newLease(func(l *coordinationv1.Lease) { l.Spec.LeaseTransitions = ptr.To[int32](-1) }), []fe{inv("spec.leaseTransitions")}, nil},
	})
}

func TestHPA(t *testing.T) {
	metric := func(m autoscalingv2.MetricSpec) func(*autoscalingv2.HorizontalPodAutoscaler) {
		return func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.Metrics = []autoscalingv2.MetricSpec{m} }
	}
	resourceMetric := func(name corev1.ResourceName, target autoscalingv2.MetricTarget) autoscalingv2.MetricSpec {
		return autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: name, Target: target}}
	}
	utilization := autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](70)}
	runCases(t, []errCase{
		{"valid", newHPA(), nil, nil},
		{"valid memory", newHPA(metric(resourceMetric(corev1.ResourceMemory,
			autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(resource.MustParse("500Mi"))}))), nil, nil},
		{"valid behavior", newHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](60)}}
		}), nil, nil},
		{"no kind", newHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.ScaleTargetRef.Kind = "" }), []fe{req("spec.scaleTargetRef.kind")}, nil},
		{"no name", newHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.ScaleTargetRef.Name = "" }), []fe{req("spec.scaleTargetRef.name")}, nil},
		{"bad name", newHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.ScaleTargetRef.Name = "a/b" }), []fe{inv("spec.scaleTargetRef.name")}, nil},
		{"minReplicas 0", newHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MinReplicas = ptr.To[int32](0) }), []fe{inv("spec.minReplicas")}, nil},
		{"max below min", newHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MinReplicas = ptr.To[int32](6) }), []fe{inv("spec.maxReplicas")}, nil},
		{"max equal to min", newHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MinReplicas = ptr.To[int32](5) }), nil, nil},
		{"maxReplicas 0", newHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MaxReplicas = 0 }),
			[]fe{inv("spec.maxReplicas"), inv("spec.maxReplicas")}, nil},
		{"Pods metric", newHPA(metric(autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType})), []fe{ns("spec.metrics[0].type")}, nil},
		{"External metric", newHPA(metric(autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType})), []fe{ns("spec.metrics[0].type")}, nil},
		{"no metric type", newHPA(metric(autoscalingv2.MetricSpec{})), []fe{req("spec.metrics[0].type")}, nil},
		{"Resource metric without resource", newHPA(metric(autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType})),
			[]fe{req("spec.metrics[0].resource")}, nil},
		{"gpu metric", newHPA(metric(resourceMetric("nvidia.com/gpu", utilization))), []fe{ns("spec.metrics[0].resource.name")}, nil},
		{"utilization 0", newHPA(metric(resourceMetric(corev1.ResourceCPU,
			autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](0)}))),
			[]fe{inv("spec.metrics[0].resource.target.averageUtilization")}, nil},
		{"no target", newHPA(metric(resourceMetric(corev1.ResourceCPU, autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType}))),
			[]fe{req("spec.metrics[0].resource.target.averageUtilization")}, nil},
		{"bad target type", newHPA(metric(resourceMetric(corev1.ResourceCPU,
			autoscalingv2.MetricTarget{Type: "Most", AverageUtilization: ptr.To[int32](50)}))), []fe{inv("spec.metrics[0].resource.target.type")}, nil},
		{"bad behavior", newHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{
				StabilizationWindowSeconds: ptr.To[int32](-1),
				Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: "Nodes", Value: 0, PeriodSeconds: 15}},
			}}
		}), []fe{inv("spec.behavior.scaleUp.stabilizationWindowSeconds"), ns("spec.behavior.scaleUp.policies[0].type"),
			inv("spec.behavior.scaleUp.policies[0].value")}, nil},
	})
}

// updateCase: old and obj are defaulted, then ValidateUpdate(obj, old).
type updateCase struct {
	name     string
	old, obj runtime.Object
	want     []fe
}

func runUpdates(t *testing.T, cases []updateCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			SetDefaults(c.old)
			SetDefaults(c.obj)
			errs, _ := ValidateUpdate(c.obj, c.old)
			checkErrs(t, errs, c.want...)
		})
	}
}

func TestUpdate(t *testing.T) {
	otherSelector := func(d *appsv1.Deployment) {
		d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "y"}}
		d.Spec.Template.Labels = map[string]string{"app": "y"}
	}
	svcIP := func(ip string) func(*corev1.Service) { return func(s *corev1.Service) { s.Spec.ClusterIP = ip } }
	nodePort := func(s *corev1.Service) {
		s.Spec.Type, s.Spec.ClusterIP = corev1.ServiceTypeNodePort, "10.96.0.10"
		s.Spec.Ports[0].NodePort = 30080
	}
	immutable := func(c *corev1.ConfigMap) { c.Immutable = ptr.To(true) }
	immutableSecret := func(s *corev1.Secret) { s.Immutable = ptr.To(true) }
	runUpdates(t, []updateCase{
		// metadata
		{"labels", newPod(), newPod(func(p *corev1.Pod) { p.Labels["step"] = "2" }), nil},
		{"name", newPod(), newPod(func(p *corev1.Pod) { p.Name = "web-1" }), []fe{inv("metadata.name")}},
		{"namespace", newConfigMap(), newConfigMap(func(c *corev1.ConfigMap) { c.Namespace = "other" }), []fe{inv("metadata.namespace")}},
		{"uid", newConfigMap(func(c *corev1.ConfigMap) { c.UID = "a" }), newConfigMap(func(c *corev1.ConfigMap) { c.UID = "b" }), []fe{inv("metadata.uid")}},
		{"generation decremented", newDeployment(func(d *appsv1.Deployment) { d.Generation = 3 }), newDeployment(func(d *appsv1.Deployment) { d.Generation = 2 }),
			[]fe{inv("metadata.generation")}},
		{"finalizer added while deleting", newConfigMap(func(c *corev1.ConfigMap) { c.DeletionTimestamp = ptr.To(metav1.Now()) }),
			newConfigMap(func(c *corev1.ConfigMap) { c.Finalizers = []string{"example.com/x"} }), []fe{forb("metadata.finalizers")}},
		{"also Validate", newConfigMap(), newConfigMap(func(c *corev1.ConfigMap) { c.Data["a b"] = "" }), []fe{inv("data[a b]")}},

		// Deployment and ReplicaSet
		{"deployment replicas and image", newDeployment(), newDeployment(func(d *appsv1.Deployment) {
			d.Spec.Replicas = ptr.To[int32](3)
			d.Spec.Template.Spec.Containers[0].Image = "echo:v2"
		}), nil},
		{"deployment selector", newDeployment(), newDeployment(otherSelector), []fe{inv("spec.selector")}},
		{"replicaset selector", newReplicaSet(), newReplicaSet(func(rs *appsv1.ReplicaSet) {
			rs.Spec.Selector.MatchLabels["tier"] = "web"
			rs.Spec.Template.Labels["tier"] = "web"
		}), []fe{inv("spec.selector")}},

		// Service
		{"service clusterIP kept", newService(svcIP("10.96.0.10")), newService(svcIP("10.96.0.10")), nil},
		{"service clusterIP set", newService(), newService(svcIP("10.96.0.10")), nil},
		{"service clusterIP left empty", newService(svcIP("10.96.0.10")), newService(), nil},
		{"service clusterIP changed", newService(svcIP("10.96.0.10")), newService(svcIP("10.96.0.11")), []fe{inv("spec.clusterIP")}},
		{"service to headless", newService(svcIP("10.96.0.10")), newService(svcIP(corev1.ClusterIPNone)), []fe{inv("spec.clusterIP")}},
		{"headless to ClusterIP", newService(svcIP(corev1.ClusterIPNone)), newService(svcIP("10.96.0.10")), []fe{inv("spec.clusterIP")}},
		{"headless left empty", newService(svcIP(corev1.ClusterIPNone)), newService(), []fe{inv("spec.clusterIP")}},
		{"service to ExternalName", newService(svcIP("10.96.0.10")), newService(svcIP("10.96.0.10"), func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "db.example.com"
		}), nil},
		{"ExternalName to ClusterIP", newService(func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "db.example.com"
		}), newService(), nil},
		{"NodePort to ClusterIP", newService(nodePort), newService(nodePort, func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP }), nil},
		{"new nodePort on ClusterIP", newService(nodePort), newService(nodePort, func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeClusterIP
			s.Spec.Ports[0].NodePort = 30081
		}), []fe{forb("spec.ports[0].nodePort")}},

		// Pod
		{"pod image", newPod(), newPod(func(p *corev1.Pod) { p.Spec.Containers[0].Image = "echo:v2" }), nil},
		{"pod init image", fullPod(), func() *corev1.Pod { p := fullPod(); p.Spec.InitContainers[0].Image = "busybox:1.37"; return p }(), nil},
		{"pod env", newPod(), newPod(func(p *corev1.Pod) { p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A"}} }), []fe{forb("spec")}},
		{"pod nodeName", newPod(), newPod(func(p *corev1.Pod) { p.Spec.NodeName = "node-1" }), []fe{forb("spec")}},
		{"pod added container", newPod(), newPod(func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "d", Image: "x"})
		}),
			[]fe{forb("spec.containers")}},
		{"pod image removed", newPod(), newPod(func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }), []fe{req("spec.containers[0].image")}},
		{"pod activeDeadlineSeconds shortened", newPod(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](60) }),
			newPod(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](30) }), nil},
		{"pod activeDeadlineSeconds set", newPod(), newPod(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](30) }), nil},
		{"pod activeDeadlineSeconds lengthened", newPod(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](60) }),
			newPod(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](61) }), []fe{inv("spec.activeDeadlineSeconds")}},
		{"pod activeDeadlineSeconds removed", newPod(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr.To[int64](60) }),
			newPod(), []fe{inv("spec.activeDeadlineSeconds")}},
		{"pod toleration added", newPod(), newPod(func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}
		}), nil},
		{"pod toleration seconds changed", fullPod(), func() *corev1.Pod {
			p := fullPod()
			p.Spec.Tolerations[0].TolerationSeconds = ptr.To[int64](5)
			return p
		}(), nil},
		{"pod toleration removed", fullPod(), func() *corev1.Pod { p := fullPod(); p.Spec.Tolerations = p.Spec.Tolerations[1:]; return p }(),
			[]fe{forb("spec.tolerations")}},
		{"pod grace period from negative to 1", newPod(func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](-1) }),
			newPod(func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1) }), nil},
		{"pod grace period", newPod(), newPod(func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](5) }), []fe{forb("spec")}},

		// ConfigMap and Secret
		{"configmap data", newConfigMap(), newConfigMap(func(c *corev1.ConfigMap) { c.Data["b"] = "2" }), nil},
		{"configmap made immutable", newConfigMap(), newConfigMap(immutable), nil},
		{"immutable configmap labels", newConfigMap(immutable), newConfigMap(immutable, func(c *corev1.ConfigMap) { c.Labels["b"] = "2" }), nil},
		{"immutable configmap data", newConfigMap(immutable), newConfigMap(immutable, func(c *corev1.ConfigMap) { c.Data["b"] = "2" }), []fe{forb("data")}},
		{"immutable configmap binaryData", newConfigMap(immutable), newConfigMap(immutable, func(c *corev1.ConfigMap) { c.BinaryData = nil }),
			[]fe{forb("binaryData")}},
		{"immutable configmap unset", newConfigMap(immutable), newConfigMap(), []fe{forb("immutable")}},
		{"secret data", newSecret(), newSecret(func(s *corev1.Secret) { s.StringData["user"] = "you" }), nil},
		{"immutable secret same", newSecret(immutableSecret), newSecret(immutableSecret), nil},
		{"immutable secret data", newSecret(immutableSecret), newSecret(immutableSecret, func(s *corev1.Secret) { s.StringData["user"] = "you" }),
			[]fe{forb("data")}},
		{"secret type", newSecret(), newSecret(func(s *corev1.Secret) { s.Type = "example.com/x" }), []fe{inv("type")}},

		// Node
		{"node podCIDR set", newNode(func(n *corev1.Node) { n.Spec.PodCIDR = "" }), newNode(), nil},
		{"node podCIDR changed", newNode(), newNode(func(n *corev1.Node) { n.Spec.PodCIDR = "10.244.2.0/24" }),
			[]fe{forb("spec.podCIDR"), forb("spec.podCIDRs")}},
		{"node podCIDR removed", newNode(), newNode(func(n *corev1.Node) { n.Spec.PodCIDR = "" }), []fe{forb("spec.podCIDR"), forb("spec.podCIDRs")}},
		{"node unschedulable", newNode(), newNode(func(n *corev1.Node) { n.Spec.Unschedulable = true }), nil},
		{"node providerID", newNode(func(n *corev1.Node) { n.Spec.ProviderID = "kubeish://a" }), newNode(func(n *corev1.Node) { n.Spec.ProviderID = "kubeish://b" }),
			[]fe{forb("spec.providerID")}},

		// EndpointSlice
		{"slice addressType", newSlice(), newSlice(func(s *discoveryv1.EndpointSlice) {
			s.AddressType, s.Endpoints[0].Addresses = discoveryv1.AddressTypeIPv6, []string{"fd00::5"}
		}), []fe{inv("addressType")}},
		{"slice endpoints", newSlice(), newSlice(func(s *discoveryv1.EndpointSlice) { s.Endpoints = nil }), nil},

		// kinds without update rules
		{"lease", newLease(), newLease(func(l *coordinationv1.Lease) { l.Spec.HolderIdentity = ptr.To("node-2") }), nil},
		{"hpa", newHPA(), newHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MaxReplicas = 10 }), nil},
		{"event", newEvent(), newEvent(func(e *corev1.Event) { e.Count = 2 }), nil},
		{"endpoints", newEndpoints(), newEndpoints(func(e *corev1.Endpoints) { e.Subsets = nil }), nil},
		{"namespace", newNamespace(), newNamespace(func(n *corev1.Namespace) { n.Labels = map[string]string{"a": "b"} }), nil},
		{"different types", newPod(), newConfigMap(), nil},
	})
}

func TestUpdateWarnings(t *testing.T) {
	old := newPod(func(p *corev1.Pod) { p.Spec.PriorityClassName = "high" })
	SetDefaults(old)
	// An update does not repeat the warnings old had...
	obj := old.DeepCopy()
	obj.Labels["b"] = "2"
	_, warns := ValidateUpdate(obj, old)
	checkWarns(t, warns)
	// ...but gives those it brings.
	d := newDeployment()
	SetDefaults(d)
	d2 := d.DeepCopy()
	d2.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	_, warns = ValidateUpdate(d2, d)
	checkWarns(t, warns, "spec.template.spec.imagePullSecrets: ignored by kubeish")
}

func TestPodUpdateMessage(t *testing.T) {
	old := newPod()
	obj := newPod(func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever })
	SetDefaults(old)
	SetDefaults(obj)
	errs, _ := ValidateUpdate(obj, old)
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`") {
		t.Fatalf("got %v", errs)
	}
}

func TestStatusUpdate(t *testing.T) {
	type statusCase struct {
		name     string
		old, obj runtime.Object
		want     []fe
	}
	phase := func(ph corev1.PodPhase) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Status.Phase = ph } }
	for _, c := range []statusCase{
		{"pod phase", newPod(), newPod(phase(corev1.PodRunning), func(p *corev1.Pod) {
			p.Status.PodIP, p.Status.PodIPs = "10.244.0.5", []corev1.PodIP{{IP: "10.244.0.5"}}
		}), nil},
		{"pod bad phase", newPod(), newPod(phase("Sleeping")), []fe{ns("status.phase")}},
		{"pod bad IP", newPod(), newPod(func(p *corev1.Pod) { p.Status.PodIP = "10.244.0.500" }), []fe{inv("status.podIP")}},
		{"pod binding", newPod(), newPod(func(p *corev1.Pod) { p.Spec.NodeName = "node-1" }), nil},
		{"pod bad binding", newPod(), newPod(func(p *corev1.Pod) { p.Spec.NodeName = "Node 1" }), []fe{inv("spec.nodeName")}},
		{"pod spec rules do not apply", newPod(), newPod(func(p *corev1.Pod) { p.Spec.Containers = nil; p.Status.Phase = corev1.PodFailed }), nil},
		{"pod name", newPod(), newPod(func(p *corev1.Pod) { p.Name = "web-1" }), []fe{inv("metadata.name")}},
		{"pod bad label", newPod(), newPod(func(p *corev1.Pod) { p.Labels["x"] = "a b" }), []fe{inv("metadata.labels")}},
		{"namespace finalized", newNamespace(), newNamespace(func(n *corev1.Namespace) {
			n.Spec.Finalizers, n.Status.Phase = []corev1.FinalizerName{}, corev1.NamespaceTerminating
		}), nil},
		{"namespace bad phase", newNamespace(), newNamespace(func(n *corev1.Namespace) { n.Status.Phase = "Gone" }), []fe{ns("status.phase")}},
		{"deployment status", newDeployment(), newDeployment(func(d *appsv1.Deployment) { d.Status.Replicas, d.Status.ReadyReplicas = 3, 2 }), nil},
		{"deployment bad status", newDeployment(), newDeployment(func(d *appsv1.Deployment) { d.Status.Replicas = -1 }), []fe{inv("status.replicas")}},
		{"replicaset bad status", newReplicaSet(), newReplicaSet(func(rs *appsv1.ReplicaSet) { rs.Status.AvailableReplicas = -1 }),
			[]fe{inv("status.availableReplicas")}},
		{"node status", newNode(), newNode(func(n *corev1.Node) {
			n.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("-1")}
		}), []fe{inv("status.capacity[cpu]"), inv("status.allocatable[cpu]")}},
		{"service status", newService(), newService(func(s *corev1.Service) {
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "nope"}}
		}), []fe{inv("status.loadBalancer.ingress[0].ip")}},
		{"hpa status", newHPA(), newHPA(func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Status.DesiredReplicas = -1 }), []fe{inv("status.desiredReplicas")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			SetDefaults(c.old)
			SetDefaults(c.obj)
			checkErrs(t, ValidateStatusUpdate(c.obj, c.old), c.want...)
		})
	}
}

// TestErrorTypes keeps the expectations honest: the helpers name the types
// field's constructors give.
func TestErrorTypes(t *testing.T) {
	p := field.NewPath("x")
	for _, c := range []struct {
		err  *field.Error
		want fe
	}{
		{field.Required(p, ""), req("x")}, {field.Invalid(p, 1, ""), inv("x")}, {field.Duplicate(p, 1), dup("x")},
		{field.NotFound(p, 1), nf("x")}, {field.NotSupported(p, "a", []string{"b"}), ns("x")}, {field.Forbidden(p, ""), forb("x")},
		{field.TooLong(p, "", 1), long("x")},
	} {
		if got := (fe{c.err.Field, c.err.Type}); got != c.want {
			t.Errorf("got %v, want %v", got, c.want)
		}
	}
}

package app

import (
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/scheduler/framework"
)

// TestSlimPodKeepsWhatSchedulingReads: the slim pod gives the same
// PodInfo (requests, host ports, affinity, owner) and keeps the fields
// filters read, while the node-reported status and container details go.
func TestSlimPodKeepsWhatSchedulingReads(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	isController := true
	full := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u", Labels: map[string]string{"app": "a"},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "m"}},
			OwnerReferences: []metav1.OwnerReference{{UID: "rs", Controller: &isController}}},
		Spec: v1.PodSpec{
			NodeName:     "n1",
			NodeSelector: map[string]string{"disk": "ssd"},
			Tolerations:  []v1.Toleration{{Key: "k", Operator: v1.TolerationOpExists}},
			Affinity: &v1.Affinity{NodeAffinity: &v1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []v1.PreferredSchedulingTerm{{
				Weight: 1, Preference: v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "z", Operator: v1.NodeSelectorOpIn, Values: []string{"a"}}}}}}}},
			InitContainers: []v1.Container{{Name: "side", Image: "side:1", RestartPolicy: &always,
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("50m")}}}},
			Containers: []v1.Container{{Name: "app", Image: "app:1", Command: []string{"run"}, Env: []v1.EnvVar{{Name: "A", Value: "b"}},
				Ports:     []v1.ContainerPort{{ContainerPort: 80, HostPort: 8080}},
				Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("64Mi")}}}},
			Volumes: []v1.Volume{{Name: "v"}},
		},
		Status: v1.PodStatus{Phase: v1.PodRunning, NominatedNodeName: "n2", PodIP: "10.0.0.1",
			Conditions:        []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}, {Type: v1.PodScheduled, Status: v1.ConditionTrue}},
			ContainerStatuses: []v1.ContainerStatus{{Name: "app", Ready: true}}},
	}
	want := framework.NewPodInfo(full.DeepCopy())
	obj, err := slimPod(full.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	slim := obj.(*v1.Pod)
	got := framework.NewPodInfo(slim)
	got.Pod, want.Pod = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PodInfo of the slim pod differs:\n got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(slim.Spec.NodeSelector, full.Spec.NodeSelector) || !reflect.DeepEqual(slim.Spec.Tolerations, full.Spec.Tolerations) ||
		slim.Spec.NodeName != "n1" || !reflect.DeepEqual(slim.Labels, full.Labels) {
		t.Errorf("placement fields lost: %+v", slim.Spec)
	}
	if slim.Status.Phase != v1.PodRunning || slim.Status.NominatedNodeName != "n2" ||
		len(slim.Status.Conditions) != 1 || slim.Status.Conditions[0].Type != v1.PodScheduled {
		t.Errorf("status kept wrong: %+v", slim.Status)
	}
	if slim.ManagedFields != nil || slim.Spec.Volumes != nil || slim.Status.PodIP != "" || slim.Status.ContainerStatuses != nil ||
		slim.Spec.Containers[0].Image != "" || slim.Spec.Containers[0].Env != nil || slim.Spec.Containers[0].Command != nil {
		t.Errorf("fields scheduling never reads were kept: %+v", slim)
	}
	if other, _ := slimPod("not a pod"); other != "not a pod" {
		t.Errorf("a non-pod changed: %v", other)
	}
}

package framework

import (
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
)

func rl(kv ...string) v1.ResourceList {
	out := v1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

// TestPodRequestsFastPath checks the direct sum against component-helpers
// (the reference) on pods without init containers.
func TestPodRequestsFastPath(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	pods := map[string]v1.PodSpec{
		"empty":          {Containers: []v1.Container{{Name: "a"}}},
		"cpu only":       {Containers: []v1.Container{{Name: "a", Resources: v1.ResourceRequirements{Requests: rl("cpu", "250m")}}}},
		"mem only":       {Containers: []v1.Container{{Name: "a", Resources: v1.ResourceRequirements{Requests: rl("memory", "1Gi")}}}},
		"two containers": {Containers: []v1.Container{{Name: "a", Resources: v1.ResourceRequirements{Requests: rl("cpu", "1", "memory", "1Gi")}}, {Name: "b"}}},
		"extended": {Containers: []v1.Container{
			{Name: "a", Resources: v1.ResourceRequirements{Requests: rl("example.com/gpu", "2", "ephemeral-storage", "1Gi")}},
			{Name: "b", Resources: v1.ResourceRequirements{Requests: rl("cpu", "1", "memory", "1Gi", "example.com/gpu", "1")}},
		}},
		"init (slow path)": {
			InitContainers: []v1.Container{{Name: "i", Resources: v1.ResourceRequirements{Requests: rl("cpu", "3")}}},
			Containers:     []v1.Container{{Name: "a", Resources: v1.ResourceRequirements{Requests: rl("cpu", "1")}}},
		},
		"sidecar (slow path)": {
			InitContainers: []v1.Container{{Name: "s", RestartPolicy: &always, Resources: v1.ResourceRequirements{Requests: rl("cpu", "500m")}}},
			Containers:     []v1.Container{{Name: "a", Resources: v1.ResourceRequirements{Requests: rl("cpu", "1")}}},
		},
		"overhead (slow path)": {Overhead: rl("cpu", "100m"), Containers: []v1.Container{{Name: "a", Resources: v1.ResourceRequirements{Requests: rl("cpu", "1")}}}},
	}
	for name, spec := range pods {
		t.Run(name, func(t *testing.T) {
			pod := &v1.Pod{Spec: spec}
			req, nz := podRequests(pod)
			want := NewResource(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
			if !reflect.DeepEqual(req, want) {
				t.Errorf("requests %+v, want %+v", req, want)
			}
			wnz := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{NonMissingContainerRequests: nonZeroDefaults})
			if nz.MilliCPU != wnz.Cpu().MilliValue() || nz.Memory != wnz.Memory().Value() {
				t.Errorf("non-zero %+v, want cpu %v memory %v", nz, wnz.Cpu(), wnz.Memory())
			}
		})
	}
}

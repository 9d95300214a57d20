package pod

import (
	"reflect"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/kubeletish/runtime"
	"github.com/kubeish/kubeish/kubeletish/stats"
)

func TestStatsPod(t *testing.T) {
	started := time.Unix(100, 0)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1"}}
	withStart := pod.DeepCopy()
	withStart.Status.StartTime = &metav1.Time{Time: started}
	for _, tc := range []struct {
		name    string
		pod     *v1.Pod
		running []runtime.Container
		want    stats.Pod
	}{
		{
			name: "containers sorted by name, cgroups below the pod's",
			pod:  withStart,
			running: []runtime.Container{
				{ID: "ns_web_b_u1_0", Name: "b", StartedAt: started},
				{ID: "ns_web_a_u1_2", Name: "a", StartedAt: started},
			},
			want: stats.Pod{Namespace: "ns", Name: "web", UID: "u1", StartTime: started, CgroupPath: "/kubeish/n1/podu1", Containers: []stats.Container{
				{Name: "a", StartTime: started, CgroupPath: "/kubeish/n1/podu1/ns_web_a_u1_2"},
				{Name: "b", StartTime: started, CgroupPath: "/kubeish/n1/podu1/ns_web_b_u1_0"},
			}},
		},
		{
			name:    "no start time yet",
			pod:     pod,
			running: []runtime.Container{{ID: "x", Name: "c"}},
			want:    stats.Pod{Namespace: "ns", Name: "web", UID: "u1", CgroupPath: "/kubeish/n1/podu1", Containers: []stats.Container{{Name: "c", CgroupPath: "/kubeish/n1/podu1/x"}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statsPod(tc.pod, "/kubeish/n1/podu1", tc.running); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

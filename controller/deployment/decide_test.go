package deployment

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestResolveFenceposts(t *testing.T) {
	i, s := intstr.FromInt32, intstr.FromString
	for _, tc := range []struct {
		name           string
		surge, unavail *intstr.IntOrString
		replicas       int32
		wantS, wantU   int32
		wantErr        bool
	}{
		{"defaults 25% of 10", nil, nil, 10, 3, 2, false},
		{"ints", ptr.To(i(2)), ptr.To(i(1)), 6, 2, 1, false},
		{"percent surge rounds up", ptr.To(s("10%")), ptr.To(i(0)), 5, 1, 0, false},
		{"percent unavailable rounds down", ptr.To(i(0)), ptr.To(s("30%")), 5, 0, 1, false},
		{"both zero: unavailable 1", ptr.To(i(0)), ptr.To(i(0)), 5, 0, 1, false},
		{"both percent zero", ptr.To(s("0%")), ptr.To(s("0%")), 5, 0, 1, false},
		{"100% surge", ptr.To(s("100%")), ptr.To(i(0)), 3, 3, 0, false},
		{"zero replicas", nil, nil, 0, 0, 1, false},
		{"bad percent", ptr.To(s("x%")), nil, 5, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gs, gu, err := ResolveFenceposts(tc.surge, tc.unavail, tc.replicas)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if !tc.wantErr && (gs != tc.wantS || gu != tc.wantU) {
				t.Errorf("= %d, %d, want %d, %d", gs, gu, tc.wantS, tc.wantU)
			}
		})
	}
}

func TestNewRSReplicas(t *testing.T) {
	for _, tc := range []struct {
		name                                 string
		replicas, surge, currentTotal, newRS int32
		want                                 int32
	}{
		{"fresh rollout grows by surge", 10, 3, 10, 0, 3},
		{"surge used up: no growth", 10, 3, 13, 3, 3},
		{"old pods gone: grows to fill", 10, 3, 8, 5, 10},
		{"never past replicas", 10, 5, 10, 8, 10},
		{"already full", 10, 3, 10, 10, 10},
		{"over replicas: shrink to replicas", 5, 1, 8, 8, 5},
		{"zero surge waits for old to shrink", 4, 0, 4, 0, 0},
		{"zero surge after old shrank", 4, 0, 3, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NewRSReplicas(tc.replicas, tc.surge, tc.currentTotal, tc.newRS); got != tc.want {
				t.Errorf("= %d, want %d", got, tc.want)
			}
		})
	}
}

func TestMaxOldScaleDown(t *testing.T) {
	for _, tc := range []struct {
		all, minAvail, newSpec, newAvail, want int32
	}{
		{13, 8, 3, 0, 2},  // 10 old available, 3 new not yet: only the slack
		{13, 8, 3, 3, 5},  // new ones available: more room
		{10, 10, 0, 0, 0}, // maxUnavailable 0 and no surge yet
		{8, 9, 2, 0, 0},   // never negative
	} {
		if got := MaxOldScaleDown(tc.all, tc.minAvail, tc.newSpec, tc.newAvail); got != tc.want {
			t.Errorf("MaxOldScaleDown(%d,%d,%d,%d) = %d, want %d", tc.all, tc.minAvail, tc.newSpec, tc.newAvail, got, tc.want)
		}
	}
}

func TestScaleDownOld(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		old                      []RSCount
		maxDown, avail, minAvail int32
		want                     []int32
	}{
		{"availability bound", []RSCount{{10, 10}}, 5, 12, 9, []int32{7}},
		{"budget bound", []RSCount{{10, 10}}, 2, 15, 9, []int32{8}},
		{"unhealthy first, free of availability", []RSCount{{5, 2}}, 3, 2, 2, []int32{2}},
		{"oldest first", []RSCount{{2, 2}, {4, 4}}, 10, 8, 4, []int32{0, 2}},
		{"unhealthy in every set, then oldest", []RSCount{{3, 2}, {3, 1}}, 4, 6, 2, []int32{1, 1}},
		{"nothing to give", []RSCount{{4, 4}}, 0, 4, 4, []int32{4}},
		{"minAvailable reached", []RSCount{{4, 4}}, 4, 6, 6, []int32{4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ScaleDownOld(tc.old, tc.maxDown, tc.avail, tc.minAvail); !slices.Equal(got, tc.want) {
				t.Errorf("= %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProportions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int32
		delta int32
		want  []int32
	}{
		{"up even", []int32{5, 5}, 4, []int32{7, 7}},
		{"up with rounding to first", []int32{4, 2}, 4, []int32{7, 3}},
		{"down", []int32{6, 3}, -3, []int32{4, 2}},
		{"down rounding", []int32{5, 1}, -3, []int32{2, 1}},
		{"down to zero", []int32{2, 1}, -3, []int32{0, 0}},
		{"all empty", []int32{0, 0}, 3, []int32{3, 0}},
		{"no change", []int32{3, 3}, 0, []int32{3, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Proportions(tc.sizes, tc.delta)
			if !slices.Equal(got, tc.want) {
				t.Errorf("= %v, want %v", got, tc.want)
			}
			var sum, before int32
			for i := range got {
				sum += got[i]
				before += tc.sizes[i]
			}
			if want := max(before+tc.delta, 0); sum != want {
				t.Errorf("sum %d, want %d", sum, want)
			}
		})
	}
}

func TestTemplateHash(t *testing.T) {
	a := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x:1"}}}}
	b := a.DeepCopy()
	b.Spec.Containers[0].Image = "x:2"
	if TemplateHash(a, nil) != TemplateHash(a.DeepCopy(), nil) {
		t.Error("hash not stable")
	}
	if TemplateHash(a, nil) == TemplateHash(b, nil) {
		t.Error("different templates, same hash")
	}
	if TemplateHash(a, nil) == TemplateHash(a, ptr.To[int32](1)) {
		t.Error("collision count does not change the hash")
	}
}

func TestCompleteAndProgressed(t *testing.T) {
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3)}}
	d.Generation = 2
	done := appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3, ObservedGeneration: 2}
	if !Complete(d, &done) {
		t.Error("complete rollout not complete")
	}
	for _, st := range []appsv1.DeploymentStatus{
		{Replicas: 4, UpdatedReplicas: 3, AvailableReplicas: 3, ObservedGeneration: 2}, // an old pod left
		{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 2, ObservedGeneration: 2},
		{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3, ObservedGeneration: 1},
	} {
		if Complete(d, &st) {
			t.Errorf("%+v counted complete", st)
		}
	}
	prev := appsv1.DeploymentStatus{Replicas: 5, UpdatedReplicas: 2, ReadyReplicas: 4, AvailableReplicas: 4}
	for _, tc := range []struct {
		cur  appsv1.DeploymentStatus
		want bool
	}{
		{prev, false},
		{appsv1.DeploymentStatus{Replicas: 5, UpdatedReplicas: 3, ReadyReplicas: 4, AvailableReplicas: 4}, true},
		{appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, ReadyReplicas: 4, AvailableReplicas: 4}, true},
		{appsv1.DeploymentStatus{Replicas: 5, UpdatedReplicas: 2, ReadyReplicas: 5, AvailableReplicas: 4}, true},
		{appsv1.DeploymentStatus{Replicas: 5, UpdatedReplicas: 2, ReadyReplicas: 3, AvailableReplicas: 3}, false},
	} {
		if got := Progressed(&prev, &tc.cur); got != tc.want {
			t.Errorf("Progressed(%+v) = %v, want %v", tc.cur, got, tc.want)
		}
	}
}

func TestReplicaFailure(t *testing.T) {
	failing := func(name, msg string) *appsv1.ReplicaSet {
		rs := &appsv1.ReplicaSet{}
		rs.Name = name
		rs.Status.Conditions = []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: msg}}
		return rs
	}
	healthy := &appsv1.ReplicaSet{}
	for _, tc := range []struct {
		name    string
		newRS   *appsv1.ReplicaSet
		olds    []*appsv1.ReplicaSet
		wantMsg string // "" for no condition
	}{
		{"none failing", healthy, []*appsv1.ReplicaSet{healthy}, ""},
		{"no sets", nil, nil, ""},
		{"new set failing", failing("new", "quota"), nil, "quota"},
		{"old set failing", healthy, []*appsv1.ReplicaSet{failing("old", "forbidden")}, "forbidden"},
		{"new set's failure first", failing("new", "quota"), []*appsv1.ReplicaSet{failing("old", "forbidden")}, "quota"},
		{"old set failing without a new set", nil, []*appsv1.ReplicaSet{failing("old", "forbidden")}, "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ReplicaFailure(tc.newRS, tc.olds)
			switch {
			case tc.wantMsg == "" && got != nil:
				t.Fatalf("= %+v, want none", got)
			case tc.wantMsg != "" && got == nil:
				t.Fatalf("= nil, want message %q", tc.wantMsg)
			case got != nil && (got.Type != appsv1.DeploymentReplicaFailure || got.Status != corev1.ConditionTrue ||
				got.Reason != "FailedCreate" || got.Message != tc.wantMsg):
				t.Fatalf("= %+v, want ReplicaFailure True FailedCreate %q", got, tc.wantMsg)
			}
		})
	}
}

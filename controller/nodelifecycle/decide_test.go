package nodelifecycle

import (
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestCIDRSet(t *testing.T) {
	s, err := NewCIDRSet("10.244.0.0/22", 24)
	if err != nil {
		t.Fatal(err)
	}
	if s.Size() != 4 {
		t.Fatalf("size %d, want 4", s.Size())
	}
	if err := s.Occupy("10.244.1.0/24"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		c, err := s.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	want := []string{"10.244.0.0/24", "10.244.2.0/24", "10.244.3.0/24"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("allocation %d = %s, want %s", i, got[i], want[i])
		}
	}
	if _, err := s.Allocate(); !errors.Is(err, ErrCIDRsExhausted) {
		t.Errorf("full set: %v", err)
	}
	if err := s.Release("10.244.2.0/24"); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Allocate(); c != "10.244.2.0/24" {
		t.Errorf("after release got %s", c)
	}
	for _, bad := range []string{"10.245.0.0/24", "10.244.0.0/25", "10.244.0.1/24", "nonsense"} {
		if err := s.Occupy(bad); err == nil {
			t.Errorf("Occupy(%s) accepted", bad)
		}
	}
	if s.Used() != 4 {
		t.Errorf("used %d", s.Used())
	}
	for _, tc := range []struct {
		cidr string
		mask int
		ok   bool
	}{
		{"10.244.0.0/16", 24, true}, {"10.0.0.0/8", 24, true}, {"10.0.0.0/8", 25, false}, {"10.244.0.0/16", 8, false},
		{"fd00::/48", 64, true}, {"bogus", 24, false},
	} {
		if _, err := NewCIDRSet(tc.cidr, tc.mask); (err == nil) != tc.ok {
			t.Errorf("NewCIDRSet(%s, %d): %v", tc.cidr, tc.mask, err)
		}
	}
	v6, _ := NewCIDRSet("fd00::/62", 64)
	if c, _ := v6.Allocate(); c != "fd00::/64" {
		t.Errorf("v6 first = %s", c)
	}
	if c, _ := v6.Allocate(); c != "fd00:0:0:1::/64" {
		t.Errorf("v6 second = %s", c)
	}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func node(status corev1.ConditionStatus, since time.Duration) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour))}}
	if status != "" {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, LastTransitionTime: metav1.NewTime(t0.Add(since))}}
	}
	return n
}

func TestDecide(t *testing.T) {
	grace, evict := 20*time.Second, 30*time.Second
	for _, tc := range []struct {
		name  string
		node  *corev1.Node
		heard time.Duration // before now
		now   time.Duration // after t0
		want  Plan
	}{
		{"healthy", node(corev1.ConditionTrue, 0), time.Second, time.Minute, Plan{}},
		{"lease just stale", node(corev1.ConditionTrue, 0), 21 * time.Second, time.Minute,
			Plan{MarkUnknown: true, Taint: UnreachableTaint, PodsNotReady: true, Wait: evict}},
		{"within grace", node(corev1.ConditionTrue, 0), 19 * time.Second, time.Minute, Plan{}},
		{"unknown, waiting to evict", node(corev1.ConditionUnknown, 50*time.Second), 40 * time.Second, time.Minute,
			Plan{Taint: UnreachableTaint, PodsNotReady: true, Wait: 20 * time.Second}},
		{"unknown past eviction timeout", node(corev1.ConditionUnknown, 0), time.Minute, time.Minute,
			Plan{Taint: UnreachableTaint, PodsNotReady: true, Evict: true}},
		{"not ready (agent reports it)", node(corev1.ConditionFalse, 50*time.Second), time.Second, time.Minute,
			Plan{Taint: NotReadyTaint, Wait: 20 * time.Second}},
		{"not ready long", node(corev1.ConditionFalse, 0), time.Second, time.Minute, Plan{Taint: NotReadyTaint, Evict: true}},
		{"never reported", node("", 0), 30 * time.Second, time.Minute,
			Plan{MarkUnknown: true, Taint: UnreachableTaint, PodsNotReady: true, Wait: evict}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0.Add(tc.now)
			if got := Decide(tc.node, now.Add(-tc.heard), now, grace, evict); got != tc.want {
				t.Errorf("= %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestTolerates(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tols    []corev1.Toleration
		forever bool
		for_    time.Duration
	}{
		{"none", nil, false, 0},
		{"exists forever", []corev1.Toleration{{Key: UnreachableTaint.Key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}, true, 0},
		{"for 300s", []corev1.Toleration{{Key: UnreachableTaint.Key, Operator: corev1.TolerationOpExists, TolerationSeconds: ptr.To[int64](300)}}, false, 300 * time.Second},
		{"wildcard", []corev1.Toleration{{Operator: corev1.TolerationOpExists}}, true, 0},
		{"other key", []corev1.Toleration{{Key: "x", Operator: corev1.TolerationOpExists}}, false, 0},
		{"other effect", []corev1.Toleration{{Key: UnreachableTaint.Key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}, false, 0},
	} {
		p := &corev1.Pod{Spec: corev1.PodSpec{Tolerations: tc.tols}}
		forever, d := Tolerates(p, UnreachableTaint)
		if forever != tc.forever || d != tc.for_ {
			t.Errorf("%s: = %v, %s; want %v, %s", tc.name, forever, d, tc.forever, tc.for_)
		}
	}
}

package endpoints

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func svc(ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "svc-uid"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: ports}}
}

func pod(name, ip string, ready bool, ports ...corev1.ContainerPort) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: "uid-" + "name"},
		Spec:   corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip}}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
	return p
}

func TestResolvePort(t *testing.T) {
	p := pod("a", "10.0.0.1", true, corev1.ContainerPort{Name: "http", ContainerPort: 8080}, corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP})
	for _, tc := range []struct {
		sp   corev1.ServicePort
		want int32
		ok   bool
	}{
		{corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("http")}, 8080, true},
		{corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(9090)}, 9090, true},
		{corev1.ServicePort{Port: 80}, 80, true},
		{corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("missing")}, 0, false},
		{corev1.ServicePort{Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")}, 53, true},
		{corev1.ServicePort{Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("dns")}, 0, false},
	} {
		got, ok := ResolvePort(p, tc.sp)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ResolvePort(%v) = %d, %v; want %d, %v", tc.sp.TargetPort.String(), got, ok, tc.want, tc.ok)
		}
	}
}

func TestSubsets(t *testing.T) {
	named := corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}
	now := metav1.NewTime(time.Now())
	terminating := pod("t", "10.0.0.9", true, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
	terminating.DeletionTimestamp = &now
	done := pod("d", "10.0.0.8", false, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
	done.Status.Phase = corev1.PodSucceeded
	pods := []*corev1.Pod{
		pod("b", "10.0.0.2", true, corev1.ContainerPort{Name: "http", ContainerPort: 8080}),
		pod("a", "10.0.0.1", false, corev1.ContainerPort{Name: "http", ContainerPort: 8080}),
		pod("c", "10.0.0.3", true, corev1.ContainerPort{Name: "http", ContainerPort: 9090}), // another port: another subset
		pod("noip", "", true, corev1.ContainerPort{Name: "http", ContainerPort: 8080}),
		pod("noport", "10.0.0.4", true),
		terminating, done,
	}
	got := Subsets(svc(named), pods)
	want := []string{"8080: ready [10.0.0.2] notReady [10.0.0.1]", "9090: ready [10.0.0.3] notReady []"}
	if len(got) != len(want) {
		t.Fatalf("%d subsets, want %d: %+v", len(got), len(want), got)
	}
	for i, s := range got {
		if d := describe(s); d != want[i] {
			t.Errorf("subset %d = %s, want %s", i, d, want[i])
		}
	}
	// publishNotReadyAddresses: every pod with an IP is ready.
	s := svc(named)
	s.Spec.PublishNotReadyAddresses = true
	if got := Subsets(s, pods[:2]); len(got) != 1 || len(got[0].Addresses) != 2 || len(got[0].NotReadyAddresses) != 0 {
		t.Errorf("publishNotReadyAddresses: %+v", got)
	}
	if got := Subsets(svc(named), nil); got != nil {
		t.Errorf("no pods: %+v", got)
	}
}

func describe(s corev1.EndpointSubset) string {
	ips := func(as []corev1.EndpointAddress) []string {
		out := []string{}
		for _, a := range as {
			out = append(out, a.IP)
		}
		return out
	}
	return fmt.Sprintf("%d: ready %v notReady %v", s.Ports[0].Port, ips(s.Addresses), ips(s.NotReadyAddresses))
}

func TestSlices(t *testing.T) {
	port := corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}
	var pods []*corev1.Pod
	for i := range 150 {
		pods = append(pods, pod(fmt.Sprintf("p%03d", i), fmt.Sprintf("10.0.%d.%d", i/200, i%200+1), i%2 == 0))
	}
	now := metav1.NewTime(time.Now())
	term := pod("term", "10.1.0.1", true)
	term.DeletionTimestamp = &now
	v6 := pod("v6", "fd00::1", true)
	pods = append(pods, term, v6)
	got := Slices(svc(port), pods)
	if len(got) != 3 {
		t.Fatalf("%d slices, want 3 (100 + 51 IPv4, 1 IPv6)", len(got))
	}
	counts := map[discoveryv1.AddressType]int{}
	for _, s := range got {
		counts[s.AddressType] += len(s.Endpoints)
		if s.Labels[ServiceNameLabel] != "web" || s.Labels[ManagedByLabel] != ManagedByValue {
			t.Errorf("slice %s labels %v", s.Name, s.Labels)
		}
		if ref := metav1.GetControllerOf(s); ref == nil || ref.UID != "svc-uid" {
			t.Errorf("slice %s not owned by the service", s.Name)
		}
		if len(s.Ports) != 1 || *s.Ports[0].Port != 8080 || *s.Ports[0].Name != "http" {
			t.Errorf("slice %s ports %+v", s.Name, s.Ports)
		}
		if len(s.Endpoints) > MaxPerSlice {
			t.Errorf("slice %s has %d endpoints", s.Name, len(s.Endpoints))
		}
		for _, e := range s.Endpoints {
			if e.TargetRef.Name == "term" && (*e.Conditions.Ready || !*e.Conditions.Terminating || !*e.Conditions.Serving) {
				t.Errorf("terminating endpoint conditions %+v", e.Conditions)
			}
		}
	}
	if counts[discoveryv1.AddressTypeIPv4] != 151 || counts[discoveryv1.AddressTypeIPv6] != 1 {
		t.Errorf("endpoints per family %v", counts)
	}
	// Names are stable, so a sync updates in place.
	again := Slices(svc(port), pods)
	for i := range got {
		if got[i].Name != again[i].Name {
			t.Errorf("slice name changed: %s → %s", got[i].Name, again[i].Name)
		}
	}
}

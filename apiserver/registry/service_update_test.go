package registry_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubeish/kubeish/pkg/testenv"
)

// TestServiceTypeChanges updates Services the way kubectl and users do,
// with bodies that carry over or leave out the allocated fields.
func TestServiceTypeChanges(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	svcs := env.Client.CoreV1().Services("default")
	port := []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}
	create := func(name string, spec corev1.ServiceSpec) *corev1.Service {
		t.Helper()
		if spec.Ports == nil {
			spec.Ports = port
		}
		s, err := svcs.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return s
	}

	t.Run("update without clusterIP keeps it", func(t *testing.T) {
		s := create("keep", corev1.ServiceSpec{})
		ip := s.Spec.ClusterIP
		s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil
		s.Labels = map[string]string{"x": "y"}
		got, err := svcs.Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.ClusterIP != ip || len(got.Spec.ClusterIPs) != 1 || got.Spec.ClusterIPs[0] != ip {
			t.Fatalf("clusterIP %q %v, want %q kept", got.Spec.ClusterIP, got.Spec.ClusterIPs, ip)
		}
	})

	t.Run("headless stays headless", func(t *testing.T) {
		s := create("headless", corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone})
		s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil
		got, err := svcs.Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Fatalf("clusterIP %q, want None", got.Spec.ClusterIP)
		}
	})

	t.Run("to ExternalName drops and frees the cluster IP", func(t *testing.T) {
		s := create("ext", corev1.ServiceSpec{})
		ip := s.Spec.ClusterIP
		patch := `{"spec":{"type":"ExternalName","externalName":"db.example.com"}}`
		got, err := svcs.Patch(ctx, "ext", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.ClusterIP != "" || got.Spec.ClusterIPs != nil || got.Spec.IPFamilies != nil {
			t.Fatalf("ExternalName service kept %q %v %v", got.Spec.ClusterIP, got.Spec.ClusterIPs, got.Spec.IPFamilies)
		}
		// The address is free again: another Service may ask for it.
		if again := create("reuse", corev1.ServiceSpec{ClusterIP: ip}); again.Spec.ClusterIP != ip {
			t.Fatalf("got %q, want the freed %q", again.Spec.ClusterIP, ip)
		}
	})

	t.Run("NodePort to ClusterIP drops node ports", func(t *testing.T) {
		s := create("np", corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort})
		np := s.Spec.Ports[0].NodePort
		if np == 0 {
			t.Fatal("no node port allocated")
		}
		got, err := svcs.Patch(ctx, "np", types.MergePatchType, []byte(`{"spec":{"type":"ClusterIP"}}`), metav1.PatchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.Ports[0].NodePort != 0 || got.Spec.ExternalTrafficPolicy != "" {
			t.Fatalf("ClusterIP service kept nodePort %d, externalTrafficPolicy %q", got.Spec.Ports[0].NodePort, got.Spec.ExternalTrafficPolicy)
		}
		// And the node port is free again.
		reuse := create("np-reuse", corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
			Ports: []corev1.ServicePort{{Port: 80, NodePort: np}}})
		if reuse.Spec.Ports[0].NodePort != np {
			t.Fatalf("got node port %d, want the freed %d", reuse.Spec.Ports[0].NodePort, np)
		}
	})
}

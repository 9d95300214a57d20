package endpoints_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubeish/kubeish/controller/endpoints"
	"github.com/kubeish/kubeish/controller/internal/ctltest"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

var ctx = context.Background()

func TestEndpointsFollowPods(t *testing.T) {
	env := testenv.Start(t)
	cs := env.Client
	ctltest.Start(t, env, nil)
	ns := ctltest.Namespace(t, cs, "ep")
	kl := ctltest.StartKubelet(t, cs, ns, func(p *corev1.Pod) bool { return p.Labels["ready"] == "no" })

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"},
		Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
	}}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mkPod := func(name, ready string, port int32) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "web", "ready": ready}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "app:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port}}}}}}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkPod("a", "yes", 8080)
	mkPod("b", "yes", 9090) // the named port resolves per pod
	mkPod("c", "no", 8080)
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: ns, Labels: map[string]string{"app": "db"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "db:1"}}}}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// c gets an IP but stays not ready.
	poll.Until(t, 10*time.Second, "pod c exists", func() (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "c", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		cp := p.DeepCopy()
		cp.Status.PodIP = "10.244.9.9"
		cp.Status.Phase = corev1.PodRunning
		_, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
		return err == nil, err
	})

	describe := func() (string, error) {
		ep, err := cs.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		var parts []string
		for _, s := range ep.Subsets {
			var ready, notReady []string
			for _, a := range s.Addresses {
				ready = append(ready, a.TargetRef.Name)
			}
			for _, a := range s.NotReadyAddresses {
				notReady = append(notReady, a.TargetRef.Name)
			}
			parts = append(parts, fmt.Sprintf("%d:%v/%v", s.Ports[0].Port, ready, notReady))
		}
		sort.Strings(parts)
		return strings.Join(parts, " "), nil
	}
	slices := func() (string, error) {
		list, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return "", err
		}
		var parts []string
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				parts = append(parts, fmt.Sprintf("%s:%d:%v", e.TargetRef.Name, *s.Ports[0].Port, *e.Conditions.Ready))
			}
			if s.Labels[endpoints.ManagedByLabel] != endpoints.ManagedByValue {
				return "", fmt.Errorf("slice %s labels %v", s.Name, s.Labels)
			}
		}
		sort.Strings(parts)
		return strings.Join(parts, " "), nil
	}
	want := "8080:[a]/[c] 9090:[b]/[]"
	wantSlices := "a:8080:true b:9090:true c:8080:false"
	poll.Until(t, 10*time.Second, "endpoints "+want, func() (bool, error) {
		got, err := describe()
		gotS, errS := slices()
		return got == want && gotS == wantSlices, fmt.Errorf("endpoints %q slices %q (%v, %v)", got, gotS, err, errS)
	})

	// c becomes ready; a goes.
	c, _ := cs.CoreV1().Pods(ns).Get(ctx, "c", metav1.GetOptions{})
	c.Status.Phase = corev1.PodPending // let the fake kubelet's MarkReady take over
	if err := kl.MarkReady(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want, wantSlices = "8080:[c]/[] 9090:[b]/[]", "b:9090:true c:8080:true"
	poll.Until(t, 10*time.Second, "endpoints "+want, func() (bool, error) {
		got, err := describe()
		gotS, errS := slices()
		return got == want && gotS == wantSlices, fmt.Errorf("endpoints %q slices %q (%v, %v)", got, gotS, err, errS)
	})

	// A hand edit of the Endpoints is put back.
	ep, _ := cs.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{})
	ep.Subsets = nil
	if _, err := cs.CoreV1().Endpoints(ns).Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "endpoints restored", func() (bool, error) {
		got, err := describe()
		return got == want, fmt.Errorf("%q (%v)", got, err)
	})

	// The Service goes: so do its Endpoints and slices.
	if err := cs.CoreV1().Services(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "endpoints and slices removed", func() (bool, error) {
		_, err := cs.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{})
		list, lerr := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{})
		if lerr != nil {
			return false, lerr
		}
		return apierrors.IsNotFound(err) && len(list.Items) == 0, fmt.Errorf("endpoints err %v, %d slices", err, len(list.Items))
	})
}

package hollow

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	coordv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubeish/kubeish/kubeletish/node"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

func TestSubnets(t *testing.T) {
	cases := []struct {
		cidr    string
		size, n int
		want    []string
		wantErr bool
	}{
		{"10.244.0.0/16", 24, 3, []string{"10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"}, false},
		{"10.0.0.0/8", 26, 2, []string{"10.0.0.0/26", "10.0.0.64/26"}, false},
		{"10.244.0.0/16", 24, 257, nil, true},
		{"10.244.0.0/16", 8, 1, nil, true},
		{"fd00::/64", 80, 1, nil, true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%d×%d", c.cidr, c.size, c.n), func(t *testing.T) {
			got, err := subnets(c.cidr, c.size, c.n)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestHollowPod(t *testing.T) {
	plain := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c",
		ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}}}}}}
	if got := hollowPod(plain); got != plain {
		t.Fatal("a pod that needs no change must be passed on as it is")
	}
	p := &v1.Pod{Spec: v1.PodSpec{
		Volumes: []v1.Volume{{Name: "h", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/etc"}}}},
		Containers: []v1.Container{{Name: "c",
			ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromInt32(80)}}, PeriodSeconds: 3},
			LivenessProbe:  &v1.Probe{ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(80)}}},
			Lifecycle:      &v1.Lifecycle{PreStop: &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromInt32(80)}}},
		}}}}
	got := hollowPod(p)
	c := got.Spec.Containers[0]
	if c.ReadinessProbe.Exec == nil || c.ReadinessProbe.HTTPGet != nil || c.ReadinessProbe.PeriodSeconds != 3 ||
		c.LivenessProbe.Exec == nil || c.LivenessProbe.TCPSocket != nil ||
		c.Lifecycle.PreStop.Exec == nil || c.Lifecycle.PreStop.HTTPGet != nil ||
		got.Spec.Volumes[0].HostPath != nil || got.Spec.Volumes[0].EmptyDir == nil {
		t.Fatalf("not hollowed: %+v", got.Spec)
	}
	if p.Spec.Containers[0].ReadinessProbe.HTTPGet == nil || p.Spec.Volumes[0].HostPath == nil {
		t.Fatal("the informer's object was changed")
	}
}

// TestHollowNodes runs 5 hollow nodes against a real apiserver: they
// register and become Ready, renew their Leases, run pods to Running and
// Ready (one with an HTTP readiness probe, which a hollow node passes
// without sending anything) and stop a gracefully deleted pod, then delete
// it.
func TestHollowNodes(t *testing.T) {
	env := testenv.Start(t)
	cs := env.Client
	r, err := New(Config{Nodes: 5, NamePrefix: "hollow-", PodCIDRRange: "10.244.0.0/16", LeaseInterval: time.Second,
		RelistPeriod: 200 * time.Millisecond, RootDir: t.TempDir(), Client: cs,
		Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	bg := context.Background()

	poll.Until(t, 30*time.Second, "5 Ready hollow nodes", func() (bool, error) {
		nodes, err := cs.CoreV1().Nodes().List(bg, metav1.ListOptions{LabelSelector: LabelHollow + "=true"})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == 5, fmt.Errorf("%d of %d nodes ready", ready, len(nodes.Items))
	})

	first := map[string]time.Time{}
	poll.Until(t, 10*time.Second, "5 leases", func() (bool, error) {
		for _, name := range r.NodeNames() {
			l, err := cs.CoordinationV1().Leases(node.LeaseNamespace).Get(bg, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			first[name] = renewTime(l)
		}
		return true, nil
	})
	poll.Until(t, 10*time.Second, "every lease renewed", func() (bool, error) {
		for _, name := range r.NodeNames() {
			l, err := cs.CoordinationV1().Leases(node.LeaseNamespace).Get(bg, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if !renewTime(l).After(first[name]) {
				return false, fmt.Errorf("lease %s not renewed since %s", name, first[name])
			}
		}
		return true, nil
	})

	mk := func(name, nodeName string, probe bool) *v1.Pod {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: v1.PodSpec{NodeName: nodeName,
			Containers: []v1.Container{{Name: "app", Image: "example.test/app:1"}}}}
		if probe {
			// 192.0.2.1 (TEST-NET-1): were the probe really sent, it would
			// fail, and the pod would never be Ready.
			p.Spec.Containers[0].ReadinessProbe = &v1.Probe{PeriodSeconds: 1,
				ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Host: "192.0.2.1", Port: intstr.FromInt32(80), Path: "/ready"}}}
		}
		return p
	}
	pods := []*v1.Pod{mk("a", "hollow-0", false), mk("b", "hollow-0", true), mk("c", "hollow-3", false)}
	for _, p := range pods {
		if _, err := cs.CoreV1().Pods("default").Create(bg, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range pods {
		_, cidr, _ := net.ParseCIDR(map[string]string{"hollow-0": "10.244.0.0/24", "hollow-3": "10.244.3.0/24"}[p.Spec.NodeName])
		poll.Until(t, 30*time.Second, "pod "+p.Name+" Running and Ready", func() (bool, error) {
			got, err := cs.CoreV1().Pods("default").Get(bg, p.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if got.Status.Phase != v1.PodRunning || !podReady(got) {
				return false, fmt.Errorf("phase %s, conditions %+v", got.Status.Phase, got.Status.Conditions)
			}
			if ip := net.ParseIP(got.Status.PodIP); ip == nil || !cidr.Contains(ip) || got.Status.HostIP != "127.0.0.1" {
				return false, fmt.Errorf("pod IP %q (want one in %s), host IP %q", got.Status.PodIP, cidr, got.Status.HostIP)
			}
			if i == 1 {
				// Its neighbour on the node has another address.
				a, err := cs.CoreV1().Pods("default").Get(bg, "a", metav1.GetOptions{})
				if err != nil || a.Status.PodIP == got.Status.PodIP {
					return false, fmt.Errorf("pods a and b share %s (%v)", got.Status.PodIP, err)
				}
			}
			return true, nil
		})
	}

	// A graceful delete: the node stops the containers, then deletes the
	// pod for good.
	if err := cs.CoreV1().Pods("default").Delete(bg, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "pod a deleted by its node", func() (bool, error) {
		p, err := cs.CoreV1().Pods("default").Get(bg, "a", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return false, fmt.Errorf("still there, deletionTimestamp %v", p.DeletionTimestamp)
	})
	n := r.nodes[0]
	poll.Until(t, 10*time.Second, "pod a's containers and sandbox gone from hollow-0", func() (bool, error) {
		sbs, _ := n.runtime.ListSandboxes(bg)
		ctrs, _ := n.runtime.ListContainers(bg, "")
		return len(sbs) == 1 && len(ctrs) == 1, fmt.Errorf("%d sandboxes, %d containers", len(sbs), len(ctrs))
	})
}

func renewTime(l *coordv1.Lease) time.Time {
	if l.Spec.RenewTime == nil {
		return time.Time{}
	}
	return l.Spec.RenewTime.Time
}

func podReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

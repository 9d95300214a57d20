//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/pkg/poll"
)

// fakeNode stands in for a node agent through the API only: a Ready Node
// with 4 CPUs, 8 GiB and 110 pods, a Lease renewed every second, and the
// pods bound to it reported Running and Ready with an IP from its pod CIDR
// (once the controller has allocated one). A graceful delete is confirmed
// at once, as an agent does when the containers are gone.
type fakeNode struct {
	name   string
	client kubernetes.Interface
	paused atomic.Bool // true: no lease renewals, no pod updates (the node died)
	cancel context.CancelFunc

	mu     sync.Mutex
	cidr   *net.IPNet // the node's pod CIDR, once allocated
	nextIP int
}

func startFakeNode(t *testing.T, cs kubernetes.Interface, name string) *fakeNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n := &fakeNode{name: name, client: cs, cancel: cancel, nextIP: 2}
	t.Cleanup(cancel)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating node %s: %v", name, err)
	}
	n.reportReady(ctx, t)

	go n.heartbeat(ctx)
	f := informers.NewSharedInformerFactoryWithOptions(cs, 2*time.Second, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", name).String()
	}))
	pods := f.Core().V1().Pods().Informer()
	queue := make(chan *corev1.Pod, 1024)
	handle := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			select {
			case queue <- p:
			case <-ctx.Done():
			}
		}
	}
	_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: handle, UpdateFunc: func(_, o any) { handle(o) }})
	f.Start(ctx.Done())
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-queue:
				if !n.paused.Load() {
					n.syncPod(ctx, p)
				}
			}
		}
	}()
	return n
}

func (n *fakeNode) reportReady(ctx context.Context, t *testing.T) {
	t.Helper()
	poll.Until(t, 10*time.Second, "node status of "+n.name, func() (bool, error) {
		node, err := n.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		res := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("4"),
			corev1.ResourceMemory: resource.MustParse("8Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
		}
		now := metav1.Now()
		node.Status = corev1.NodeStatus{
			Capacity: res, Allocatable: res,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
				Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		}
		_, err = n.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err == nil, err
	})
}

func (n *fakeNode) heartbeat(ctx context.Context) {
	leases := n.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if !n.paused.Load() {
			now := metav1.NewMicroTime(time.Now())
			l, err := leases.Get(ctx, n.name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				_, _ = leases.Create(ctx, &coordinationv1.Lease{
					ObjectMeta: metav1.ObjectMeta{Name: n.name},
					Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(n.name),
						LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now},
				}, metav1.CreateOptions{})
			case err == nil:
				l.Spec.RenewTime = &now
				_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// syncPod reports a pod Running and Ready, or confirms its deletion.
func (n *fakeNode) syncPod(ctx context.Context, p *corev1.Pod) {
	pods := n.client.CoreV1().Pods(p.Namespace)
	if p.DeletionTimestamp != nil {
		_ = pods.Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0),
			Preconditions: &metav1.Preconditions{UID: &p.UID}})
		return
	}
	if p.Status.Phase == corev1.PodRunning {
		return
	}
	ip, err := n.podIP(ctx)
	if err != nil {
		return // no pod CIDR yet; the informer's 2 s resync brings the pod back
	}
	now := metav1.Now()
	p = p.DeepCopy()
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP, p.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
	p.Status.HostIP = "127.0.0.1"
	p.Status.StartTime = &now
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, Ready: true, Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	_, _ = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
}

func (n *fakeNode) podIP(ctx context.Context) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cidr == nil {
		// The controller allocates the node's pod CIDR once; ask until then.
		node, err := n.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		_, cidr, err := net.ParseCIDR(node.Spec.PodCIDR)
		if err != nil {
			return "", fmt.Errorf("node %s has no pod CIDR yet", n.name)
		}
		n.cidr = cidr
	}
	ip := n.cidr.IP.To4()
	i := n.nextIP
	n.nextIP++
	return fmt.Sprintf("%d.%d.%d.%d", ip[0], ip[1], ip[2], int(ip[3])+i), nil
}

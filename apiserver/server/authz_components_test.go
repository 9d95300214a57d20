package server_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/apiserver/auth/authz"
	"github.com/kubeish/kubeish/apiserver/auth/user"
	controllerapp "github.com/kubeish/kubeish/controller/app"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
	schedulerapp "github.com/kubeish/kubeish/scheduler/app"
)

// TestAuthzBuiltinComponentRoles runs the real controller and scheduler
// with their own identities (bound only by the built-in policy) and a
// simulated node agent as system:node:n1, through a Deployment's life and
// its namespace's deletion, and checks that the apiserver refused none of
// their requests: the built-in roles cover what they do.
func TestAuthzBuiltinComponentRoles(t *testing.T) {
	e := testenv.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	admin := client(t, e, "kubernetes-admin", user.MastersGroup)

	co := controllerapp.NewOptions()
	co.BindAddress = "127.0.0.1:0"
	// Without leader election: controller/app's Run reads the loops'
	// error while the elector's goroutine may still write it (a data race
	// that -race reports). The scheduler's election covers the Lease rules.
	co.LeaderElection.Enabled = false
	ctl, err := controllerapp.New(co, e.ConfigFor(t, authz.ControllerUser), log.Named("controller"))
	if err != nil {
		t.Fatal(err)
	}
	so := schedulerapp.NewOptions()
	so.BindAddress = "127.0.0.1:0"
	so.LeaderElection.RetryPeriod = 200 * time.Millisecond
	sched, err := schedulerapp.NewForConfig(so, e.ConfigFor(t, authz.SchedulerUser), log.Named("scheduler"))
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = ctl.Run(ctx) })
	wg.Go(func() { _ = sched.Run(ctx) })

	node := client(t, e, user.NodeUserPrefix+"n1", user.NodesGroup)
	registerNode(t, node, "n1")
	wg.Go(func() { fakeKubelet(ctx, node, "n1") })

	_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "work"}}, metav1.CreateOptions{})
	wantOK(t, "creating namespace work", err)
	labels := map[string]string{"app": "web"}
	_, err = admin.AppsV1().Deployments("work").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "web:1"}}}}}}, metav1.CreateOptions{})
	wantOK(t, "creating the deployment", err)
	_, err = admin.CoreV1().Services("work").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}}, metav1.CreateOptions{})
	wantOK(t, "creating the service", err)

	poll.Until(t, 30*time.Second, "the deployment's pods to run on n1 and be the service's endpoints", func() (bool, error) {
		ep, err := admin.CoreV1().Endpoints("work").Get(ctx, "web", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		n := 0
		for _, s := range ep.Subsets {
			n += len(s.Addresses)
		}
		return n == 2, nil
	})
	_, err = admin.CoordinationV1().Leases("kube-system").Get(ctx, "kube-scheduler", metav1.GetOptions{})
	wantOK(t, "the scheduler's leader lease", err)

	_, err = admin.RbacV1().RoleBindings("work").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alice"},
		Subjects: []rbacv1.Subject{userSubject("alice")}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"}},
		metav1.CreateOptions{})
	wantOK(t, "binding alice in work", err)
	wantOK(t, "deleting namespace work", admin.CoreV1().Namespaces().Delete(ctx, "work", metav1.DeleteOptions{}))
	poll.Until(t, 60*time.Second, "namespace work to go", func() (bool, error) {
		_, err := admin.CoreV1().Namespaces().Get(ctx, "work", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})

	// A namespace made again with the name does not inherit its bindings.
	rbs, err := admin.RbacV1().RoleBindings("work").List(ctx, metav1.ListOptions{})
	wantOK(t, "listing work's rolebindings", err)
	if len(rbs.Items) > 0 {
		t.Errorf("rolebindings outlived namespace work: %v", rbs.Items)
	}
	if refused := forbiddenRequests(t, e); len(refused) > 0 {
		t.Errorf("the apiserver refused built-in components' requests:\n%s", strings.Join(refused, "\n"))
	}
}

// registerNode creates a ready node with room for pods, and its Lease, as
// the node agent does.
func registerNode(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	ctx := context.Background()
	n, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"kubernetes.io/hostname": name}}}, metav1.CreateOptions{})
	wantOK(t, "registering "+name, err)
	room := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods: resource.MustParse("110")}
	n.Status = corev1.NodeStatus{Capacity: room, Allocatable: room,
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}},
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.250.0.2"}}}
	_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
	wantOK(t, "node status", err)
	now := metav1.NewMicroTime(time.Now())
	_, err = cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: coordinationv1.LeaseSpec{HolderIdentity: &name, RenewTime: &now,
			LeaseDurationSeconds: ptr.To[int32](40)}}, metav1.CreateOptions{})
	wantOK(t, "node lease", err)
}

// fakeKubelet does, as node name, what the node agent does with pods: it
// reports its pods running and ready, renews its Lease, and deletes the
// pods being deleted once "stopped".
func fakeKubelet(ctx context.Context, cs kubernetes.Interface, name string) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if l, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{}); err == nil {
			now := metav1.NewMicroTime(time.Now())
			l.Spec.RenewTime = &now
			_, _ = cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(ctx, l, metav1.UpdateOptions{})
		}
		pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", name).String()})
		if err != nil {
			continue
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp != nil {
				_ = cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0),
					Preconditions: &metav1.Preconditions{UID: &p.UID}})
				continue
			}
			if p.Status.Phase == corev1.PodRunning {
				continue
			}
			p.Status.Phase = corev1.PodRunning
			p.Status.PodIPs = []corev1.PodIP{{IP: "10.244.0." + string(rune('2'+i))}}
			p.Status.PodIP = p.Status.PodIPs[0].IP
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}}
			_, _ = cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		}
	}
}

// forbiddenRequests returns the apiserver_request_total series that
// answered 403.
func forbiddenRequests(t *testing.T, e *testenv.Env) []string {
	t.Helper()
	resp, err := http.Get(e.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "apiserver_request_total{") && strings.Contains(line, `code="403"`) {
			out = append(out, line)
		}
	}
	return out
}

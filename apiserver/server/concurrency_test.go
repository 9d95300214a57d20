package server_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeish/kubeish/apiserver/app"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// TestConcurrentIncrements: N clients increment one counter with GET+PUT;
// optimistic concurrency makes every lost race a 409 that the client
// retries, so no increment is lost.
func TestConcurrentIncrements(t *testing.T) {
	e := testenv.Start(t)
	ctx := context.Background()
	cms := e.Client.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "counter", Labels: map[string]string{"n": "0"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; {
				cm, err := cms.Get(ctx, "counter", metav1.GetOptions{})
				if err != nil {
					errs <- err
					return
				}
				n, _ := strconv.Atoi(cm.Labels["n"])
				cm.Labels["n"] = strconv.Itoa(n + 1)
				_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
				switch {
				case apierrors.IsConflict(err):
					mu.Lock()
					conflicts++
					mu.Unlock()
				case err != nil:
					errs <- err
					return
				default:
					i++
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cm, err := cms.Get(ctx, "counter", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels["n"] != strconv.Itoa(workers*each) {
		t.Fatalf("counter is %s, want %d (lost updates)", cm.Labels["n"], workers*each)
	}
	t.Logf("%d increments, %d conflicts retried", workers*each, conflicts)
}

// TestTwoAPIServersAllocate: two apiservers over one etcd (the second
// through --etcd-servers, the external path) creating Services at the
// same time never hand out one ClusterIP or NodePort twice.
func TestTwoAPIServersAllocate(t *testing.T) {
	// A tiny range makes collisions certain if the allocation were not
	// transactional: 29 addresses to pick from (the first is kept for
	// default/kubernetes) for 28 Services.
	one := testenv.Start(t, func(o *app.Options) {
		o.ServiceClusterRange = "10.97.0.0/27"
		o.ServiceNodePorts = "30000-30029"
	})
	two := testenv.Start(t, testenv.WithEtcd(one.EtcdEndpoints...), func(o *app.Options) {
		o.ServiceClusterRange = "10.97.0.0/27"
		o.ServiceNodePorts = "30000-30029"
	})
	if two.Etcd != nil {
		t.Fatal("second apiserver started its own etcd")
	}
	ctx := context.Background()
	const perServer = 14
	var wg sync.WaitGroup
	errs := make(chan error, 2*perServer)
	for i, c := range []kubernetes.Interface{one.Client, two.Client} {
		for j := range perServer {
			wg.Add(1)
			go func() {
				defer wg.Done()
				svc := &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s-%d-%d", i, j)},
					Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
						Ports: []corev1.ServicePort{{Port: 80}}},
				}
				if _, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	list, err := one.Client.CoreV1().Services("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ips, ports := map[string]string{}, map[int32]string{}
	for _, s := range list.Items {
		if prev, dup := ips[s.Spec.ClusterIP]; dup {
			t.Fatalf("ClusterIP %s given to %s and %s", s.Spec.ClusterIP, prev, s.Name)
		}
		ips[s.Spec.ClusterIP] = s.Name
		for _, p := range s.Spec.Ports {
			if p.NodePort == 0 {
				continue
			}
			if prev, dup := ports[p.NodePort]; dup {
				t.Fatalf("NodePort %d given to %s and %s", p.NodePort, prev, s.Name)
			}
			ports[p.NodePort] = s.Name
		}
	}
	if len(ips) != 2*perServer+1 { // + default/kubernetes
		t.Fatalf("%d ClusterIPs for %d Services", len(ips), len(list.Items))
	}
	// Deleting frees the values: after one delete two more fit, then the
	// range is full.
	if err := two.Client.CoreV1().Services("default").Delete(ctx, "s-0-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"extra-1", "extra-2", "extra-3"} {
		_, err := one.Client.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
		if name != "extra-3" && err != nil {
			t.Fatalf("%s, after a delete freed an address: %v", name, err)
		}
		if name == "extra-3" && !apierrors.IsInvalid(err) {
			t.Fatalf("with the range exhausted: %v, want Invalid", err)
		}
	}
	// The kubernetes Endpoints list both apiservers.
	ep, err := one.Client.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ep.Subsets) != 1 || len(ep.Subsets[0].Addresses) != 1 {
		// Both listen on 127.0.0.1: one address, deduplicated.
		t.Fatalf("kubernetes endpoints: %+v", ep.Subsets)
	}
}

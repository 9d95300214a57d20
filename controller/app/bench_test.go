package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/controller/app"
	"github.com/kubeish/kubeish/controller/internal/ctltest"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// reconcileSeconds sums kubeish_controller_reconcile_duration_seconds per
// controller from the registry.
func reconcileSeconds(b *testing.B, c *app.Controller) map[string]float64 {
	mfs, err := c.Registry().Gather()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "kubeish_controller_reconcile_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" {
					out[l.GetValue()] += m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	return out
}

// BenchmarkDeployment1000 measures how long a Deployment of 1,000 replicas
// takes from create to 1,000 pods existing (created by the ReplicaSet
// loop in slow-start batches), and what the loops spend per pod: the
// ReplicaSet loop's reconcile time, and all loops' together (deployment,
// gc, endpoints, …), from their duration histograms. "unlimited" lifts
// the client-side rate limit; "qps100" is client-go-style throttling at
// --kube-api-qps 100, --kube-api-burst 200 (the binary's default was that
// until it became 2,000 / 4,000).
func BenchmarkDeployment1000(b *testing.B) {
	const replicas = 1000
	for _, tc := range []struct {
		name  string
		qps   float32
		burst int
	}{{"unlimited", -1, 0}, {"qps100", 100, 200}} {
		b.Run(tc.name, func(b *testing.B) {
			env := testenv.Start(b)
			cfg := rest.CopyConfig(env.Config)
			cfg.QPS, cfg.Burst = tc.qps, tc.burst
			o := app.NewOptions()
			o.LeaderElection.Enabled = false
			o.BindAddress = "127.0.0.1:0"
			c, err := app.New(o, cfg, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			b.Cleanup(func() { cancel(); <-done })
			cs := env.Client
			var rsSecs, allSecs float64
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				ns := ctltest.Namespace(b, cs, fmt.Sprintf("bench-%d", i))
				w, err := cs.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{})
				if err != nil {
					b.Fatal(err)
				}
				before := reconcileSeconds(b, c)
				labels := map[string]string{"app": "bench"}
				d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: ns}, Spec: appsv1.DeploymentSpec{
					Replicas: ptr.To[int32](replicas), Selector: &metav1.LabelSelector{MatchLabels: labels},
					Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
						Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}}}
				b.StartTimer()
				start := time.Now()
				if _, err := cs.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
				added := 0
				timeout := time.After(5 * time.Minute)
				for added < replicas {
					select {
					case ev := <-w.ResultChan():
						if ev.Type == watch.Added {
							added++
						}
					case <-timeout:
						b.Fatalf("only %d pods after 5 minutes", added)
					}
				}
				took := time.Since(start)
				b.StopTimer()
				w.Stop()
				// Let the loops finish the statuses the creations caused, so
				// their cost is counted and does not spill into the next run.
				poll.Until(b, time.Minute, "deployment status", func() (bool, error) {
					got, err := cs.AppsV1().Deployments(ns).Get(context.Background(), "bench", metav1.GetOptions{})
					return err == nil && got.Status.Replicas == replicas, err
				})
				after := reconcileSeconds(b, c)
				rsSecs += after["replicaset"] - before["replicaset"]
				for k := range after {
					allSecs += after[k] - before[k]
				}
				b.Logf("run %d: %d pods in %s", i, replicas, took.Round(time.Millisecond))
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(rsSecs/float64(b.N*replicas)*1e6, "rs-reconcile-µs/pod")
			b.ReportMetric(allSecs/float64(b.N*replicas)*1e6, "all-reconcile-µs/pod")
			b.ReportMetric(float64(b.N*replicas)/b.Elapsed().Seconds(), "pods/s")
		})
	}
}

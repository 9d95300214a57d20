package cmd_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/kubeletish/stats"
)

// usage is what a fake node reports for one pod (or itself).
type usage struct {
	ref            stats.PodReference
	milliCPU, mebi uint64
}

// fakeStatsNode serves /stats/summary on loopback as a node agent does and
// registers a Ready Node at that address, with 2 cores and 4Gi
// allocatable.
func fakeStatsNode(t *testing.T, k *kctl, name string, node usage, pods ...usage) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := metav1.Now()
		sample := func(u usage) (*stats.CPUStats, *stats.MemoryStats) {
			nc, ws := u.milliCPU*1e6, u.mebi<<20
			return &stats.CPUStats{Time: now, UsageNanoCores: &nc}, &stats.MemoryStats{Time: now, WorkingSetBytes: &ws}
		}
		s := stats.Summary{}
		s.Node.NodeName = name
		s.Node.CPU, s.Node.Memory = sample(node)
		for _, p := range pods {
			c, m := sample(p)
			s.Pods = append(s.Pods, stats.PodStats{PodRef: p.ref, Containers: []stats.ContainerStats{{Name: "app", CPU: c, Memory: m}}})
		}
		_ = json.NewEncoder(w).Encode(&s)
	}))
	t.Cleanup(srv.Close)
	_, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(p)
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"node": name}}, Status: corev1.NodeStatus{
		Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
		Allocatable:     corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi")},
	}}
	if _, err := k.env.Client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func makePod(t *testing.T, k *kctl, ns, name, app string) stats.PodReference {
	t.Helper()
	ctx := context.Background()
	if ns != "default" {
		if _, err := k.env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			if _, err := k.env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	p, err := k.env.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "echo:v1"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return stats.PodReference{Namespace: ns, Name: name, UID: string(p.UID)}
}

func TestTop(t *testing.T) {
	k := newKctl(t)
	web1 := makePod(t, k, "default", "web-1", "web")
	web2 := makePod(t, k, "default", "web-2", "web")
	db := makePod(t, k, "data", "db", "db")
	makePod(t, k, "default", "new", "web") // no metrics yet
	fakeStatsNode(t, k, "node-1", usage{milliCPU: 500, mebi: 1024}, usage{ref: web1, milliCPU: 250, mebi: 64}, usage{ref: db, milliCPU: 40, mebi: 512})
	fakeStatsNode(t, k, "node-2", usage{milliCPU: 1500, mebi: 2048}, usage{ref: web2, milliCPU: 750, mebi: 32})
	// A node that stopped answering: listed, its figures unknown.
	fakeStatsNode(t, k, "node-3", usage{})
	nodes, _ := k.env.Client.CoreV1().Nodes().Get(context.Background(), "node-3", metav1.GetOptions{})
	nodes.Status.DaemonEndpoints.KubeletEndpoint.Port = 1 // nothing listens there
	if _, err := k.env.Client.CoreV1().Nodes().UpdateStatus(context.Background(), nodes, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	k.env.Metrics.Scrape(context.Background())

	tests := []struct {
		name string
		args []string
		want string // the whole output, columns split on spaces
	}{
		{"nodes", []string{"top", "nodes"}, `
NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%
node-1 500m 25% 1024Mi 25%
node-2 1500m 75% 2048Mi 50%
node-3 <unknown> <unknown> <unknown> <unknown>`},
		{"one node", []string{"top", "node", "node-2", "--no-headers"}, `
node-2 1500m 75% 2048Mi 50%`},
		{"nodes by label, sorted by cpu", []string{"top", "no", "-l", "node in (node-1,node-2)", "--sort-by", "cpu"}, `
NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%
node-2 1500m 75% 2048Mi 50%
node-1 500m 25% 1024Mi 25%`},
		{"pods of the namespace", []string{"top", "pods"}, `
NAME CPU(cores) MEMORY(bytes)
web-1 250m 64Mi
web-2 750m 32Mi`},
		{"pods of every namespace by memory", []string{"top", "pod", "-A", "--sort-by", "memory"}, `
NAMESPACE NAME CPU(cores) MEMORY(bytes)
data db 40m 512Mi
default web-1 250m 64Mi
default web-2 750m 32Mi`},
		{"pods by label in a namespace", []string{"top", "po", "-n", "data", "-l", "app=db"}, `
NAME CPU(cores) MEMORY(bytes)
db 40m 512Mi`},
		{"one pod's containers", []string{"top", "pod", "web-2", "--containers"}, `
POD NAME CPU(cores) MEMORY(bytes)
web-2 app 750m 32Mi`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := k.ok(tc.args...)
			var got []string
			for _, r := range tableRows(out) {
				got = append(got, strings.Join(r, " "))
			}
			if want := strings.TrimPrefix(tc.want, "\n"); strings.Join(got, "\n") != want {
				t.Fatalf("got\n%s\nwant\n%s", out, want)
			}
		})
	}

	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"pods without metrics yet", []string{"top", "pods", "-l", "app=web", "--field-selector", "metadata.name=new"}, "metrics not available yet"},
		{"unknown pod", []string{"top", "pod", "nope"}, `podmetrics.metrics.k8s.io "nope" not found`},
		{"unknown node", []string{"top", "node", "nope"}, `nodemetrics.metrics.k8s.io "nope" not found`},
		{"bad sort", []string{"top", "pods", "--sort-by", "disk"}, "--sort-by takes cpu or memory"},
		{"bad selector", []string{"top", "pods", "-l", "a==="}, `-l "a==="`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := k.run(tc.args...)
			if r.code != 1 || !strings.Contains(r.err, tc.wantErr) {
				t.Fatalf("exit %d, stderr %q, want %q", r.code, r.err, tc.wantErr)
			}
		})
	}
	if r := k.run("top", "pods", "-n", "empty"); r.code != 0 || r.err != "No resources found in empty namespace.\n" {
		t.Fatalf("empty namespace: exit %d, %q %q", r.code, r.out, r.err)
	}
}

func TestAutoscale(t *testing.T) {
	k := newKctl(t)
	ctx := context.Background()
	k.ok("apply", "-f", k.file("app.yaml", strings.Replace(manifests, "%s", "1", 1)))
	if out := k.ok("autoscale", "deployment", "web", "--min", "2", "--max", "10", "--cpu-percent", "50"); out != "horizontalpodautoscaler.autoscaling/web autoscaled\n" {
		t.Fatalf("got %q", out)
	}
	h, err := k.env.Client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref := h.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != "web" || *h.Spec.MinReplicas != 2 || h.Spec.MaxReplicas != 10 ||
		len(h.Spec.Metrics) != 1 || *h.Spec.Metrics[0].Resource.Target.AverageUtilization != 50 || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Fatalf("hpa spec %+v", h.Spec)
	}
	// Defaults from the server: min 1, cpu 80%.
	k.ok("autoscale", "deploy/web", "--max", "3", "--name", "web-default")
	if out := k.ok("autoscale", "deploy", "web", "--max", "3", "--name", "dry", "--dry-run"); !strings.HasSuffix(out, "autoscaled (dry run)\n") {
		t.Fatalf("dry run: %q", out)
	}
	if _, err := k.env.Client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "dry", metav1.GetOptions{}); err == nil {
		t.Fatal("a client dry run created the autoscaler")
	}

	// kctl get hpa: the server's columns.
	h.Status = autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 3, DesiredReplicas: 3, CurrentMetrics: []autoscalingv2.MetricStatus{{
		Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{Name: corev1.ResourceCPU,
			Current: autoscalingv2.MetricValueStatus{AverageUtilization: func() *int32 { v := int32(42); return &v }()}}}}}
	if _, err := k.env.Client.AutoscalingV2().HorizontalPodAutoscalers("default").UpdateStatus(ctx, h, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	out := k.ok("get", "hpa")
	if head := tableRows(out)[0]; strings.Join(head, " ") != "NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE" {
		t.Fatalf("header %q", head)
	}
	if r := row(t, out, "web"); strings.Join(r[:7], " ") != "web Deployment/web cpu: 42%/50% 2 10 3" {
		t.Fatalf("row %q", r)
	}
	if r := row(t, out, "web-default"); strings.Join(r[:7], " ") != "web-default Deployment/web cpu: <unknown>/80% 1 3 0" {
		t.Fatalf("row %q", r)
	}

	// The example manifest applies as it is, with no warning.
	if r := k.run("apply", "-f", "../../manifests/hpa.yaml"); r.code != 0 || r.err != "" {
		t.Fatalf("manifests/hpa.yaml: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if r := row(t, k.ok("get", "hpa"), "burner"); strings.Join(r[:6], " ") != "burner Deployment/burner cpu: <unknown>/50% 1 5" {
		t.Fatalf("burner row %q", r)
	}

	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no max", []string{"autoscale", "deployment", "web"}, "--max=MAXPODS is required"},
		{"max below min", []string{"autoscale", "deployment", "web", "--min", "5", "--max", "2"}, "must be larger or equal to --min"},
		{"min zero", []string{"autoscale", "deployment", "web", "--name", "zero", "--min", "0", "--max", "2"}, "spec.minReplicas"},
		{"no such deployment", []string{"autoscale", "deployment", "nope", "--max", "2"}, `"nope" not found`},
		{"not scalable", []string{"autoscale", "configmap", "web-config", "--max", "2"}, "cannot autoscale a configmap"},
		{"exists", []string{"autoscale", "deployment", "web", "--max", "2"}, "already exists"},
		{"bad percent", []string{"autoscale", "deployment", "web", "--max", "2", "--cpu-percent", "0"}, "--cpu-percent must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := k.run(tc.args...)
			if r.code != 1 || !strings.Contains(r.err, tc.wantErr) {
				t.Fatalf("exit %d, stderr %q, want %q", r.code, r.err, tc.wantErr)
			}
		})
	}
}

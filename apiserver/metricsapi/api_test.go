package metricsapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/kubeish/kubeish/apiserver/app"
	"github.com/kubeish/kubeish/kubeletish/stats"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// fakeNode serves /stats/summary on loopback as a node agent would, with
// usage the test sets.
type fakeNode struct {
	srv      *httptest.Server
	cpuMilli atomic.Int64
	pods     []stats.PodReference
}

func startFakeNode(t *testing.T, pods ...stats.PodReference) *fakeNode {
	f := &fakeNode{pods: pods}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stats/summary" {
			http.NotFound(w, r)
			return
		}
		now := metav1.Now()
		nc := uint64(f.cpuMilli.Load()) * 1e6
		ws := uint64(64 << 20)
		s := stats.Summary{Node: stats.NodeStats{NodeName: "n", CPU: &stats.CPUStats{Time: now, UsageNanoCores: &nc},
			Memory: &stats.MemoryStats{Time: now, WorkingSetBytes: &ws}}}
		for _, p := range f.pods {
			s.Pods = append(s.Pods, stats.PodStats{PodRef: p, Containers: []stats.ContainerStats{{Name: "app",
				CPU: &stats.CPUStats{Time: now, UsageNanoCores: &nc}, Memory: &stats.MemoryStats{Time: now, WorkingSetBytes: &ws}}}})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&s)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeNode) port(t *testing.T) int32 {
	_, p, err := net.SplitHostPort(f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return int32(n)
}

func createNode(t *testing.T, cs kubernetes.Interface, name string, port int32, ready corev1.ConditionStatus, lbl map[string]string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbl},
		Status: corev1.NodeStatus{
			Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}},
			Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: port}},
		}}
	if _, err := cs.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func createPod(t *testing.T, cs kubernetes.Interface, ns, name string, lbl map[string]string) stats.PodReference {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbl},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "echo:v1"}}}}
	p, err := cs.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return stats.PodReference{Namespace: ns, Name: name, UID: string(p.UID)}
}

// TestMetricsAPI runs the real apiserver with a short resolution against
// fake nodes on loopback: what they report comes out of
// metrics.k8s.io/v1beta1 through the k8s.io/metrics clientset, as kubectl
// top reads it; a node that does not answer, or is not Ready, is left out.
func TestMetricsAPI(t *testing.T) {
	env := testenv.Start(t, func(o *app.Options) { o.MetricResolution = 100 * time.Millisecond })
	cs := env.Client
	ctx := context.Background()
	web1 := createPod(t, cs, "default", "web-1", map[string]string{"app": "web"})
	db := createPod(t, cs, "default", "db", map[string]string{"app": "db"})
	n1 := startFakeNode(t, web1, db)
	n1.cpuMilli.Store(250)
	createNode(t, cs, "n1", n1.port(t), corev1.ConditionTrue, map[string]string{"zone": "a"})
	notReady := startFakeNode(t)
	createNode(t, cs, "n2", notReady.port(t), corev1.ConditionFalse, nil)
	// A closed port: the node is Ready in the API but does not answer.
	closed := startFakeNode(t)
	port := closed.port(t)
	closed.srv.Close()
	createNode(t, cs, "n3", port, corev1.ConditionTrue, nil)

	groups, err := cs.Discovery().ServerGroups()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, g := range groups.Groups {
		found = found || (g.Name == "metrics.k8s.io" && g.PreferredVersion.Version == "v1beta1")
	}
	if !found {
		t.Fatalf("discovery does not list metrics.k8s.io/v1beta1: %+v", groups.Groups)
	}
	rl, err := cs.Discovery().ServerResourcesForGroupVersion("metrics.k8s.io/v1beta1")
	if err != nil || len(rl.APIResources) != 2 {
		t.Fatalf("metrics.k8s.io/v1beta1 resources: %v %+v", err, rl)
	}

	mc := metricsclient.NewForConfigOrDie(env.Config)
	poll.Until(t, 10*time.Second, "pod metrics of web-1 and db", func() (bool, error) {
		l, err := mc.MetricsV1beta1().PodMetricses("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		return len(l.Items) == 2, nil
	})
	nodes, err := mc.MetricsV1beta1().NodeMetricses().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 1 || nodes.Items[0].Name != "n1" || nodes.Items[0].Usage.Cpu().MilliValue() != 250 || nodes.Items[0].Labels["zone"] != "a" {
		t.Fatalf("node metrics: want only n1 at 250m, got %+v", nodes.Items)
	}
	web, err := mc.MetricsV1beta1().PodMetricses("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(web.Items) != 1 || web.Items[0].Name != "web-1" || web.Items[0].Containers[0].Usage.Cpu().MilliValue() != 250 {
		t.Fatalf("app=web: %v %+v", err, web)
	}
	if all, err := mc.MetricsV1beta1().PodMetricses("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=db"}); err != nil || len(all.Items) != 1 {
		t.Fatalf("all namespaces, metadata.name=db: %v %+v", err, all)
	}
	if m, err := mc.MetricsV1beta1().PodMetricses("default").Get(ctx, "db", metav1.GetOptions{}); err != nil || m.Containers[0].Usage.Memory().Value() != 64<<20 {
		t.Fatalf("get db: %v %+v", err, m)
	}
	if _, err := mc.MetricsV1beta1().NodeMetricses().Get(ctx, "n3", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("unreachable node n3: want NotFound, got %v", err)
	}
	// kubectl may ask for protobuf first.
	pcfg := *env.Config
	pcfg.ContentType, pcfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf", "application/vnd.kubernetes.protobuf,application/json"
	if l, err := metricsclient.NewForConfigOrDie(&pcfg).MetricsV1beta1().PodMetricses("default").List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) != 2 {
		t.Fatalf("pod metrics in protobuf: %v %+v", err, l)
	}
	n1.cpuMilli.Store(900)
	poll.Until(t, 10*time.Second, "n1's new usage", func() (bool, error) {
		m, err := mc.MetricsV1beta1().NodeMetricses().Get(ctx, "n1", metav1.GetOptions{})
		return err == nil && m.Usage.Cpu().MilliValue() == 900, err
	})

	// Bad input answers a Status, never a 500.
	for _, tc := range []struct {
		method, path string
		code         int
		reason       metav1.StatusReason
	}{
		{"GET", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=a%3D%3D%3Db", 400, metav1.StatusReasonBadRequest},
		{"GET", "/apis/metrics.k8s.io/v1beta1/nodes?fieldSelector=spec.nodeName%3Dx", 400, metav1.StatusReasonBadRequest},
		{"POST", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods", 405, metav1.StatusReasonMethodNotAllowed},
		{"DELETE", "/apis/metrics.k8s.io/v1beta1/nodes/n1", 405, metav1.StatusReasonMethodNotAllowed},
		{"GET", "/apis/metrics.k8s.io/v1beta1/nodes?watch=true", 405, metav1.StatusReasonMethodNotAllowed},
		{"GET", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope", 404, metav1.StatusReasonNotFound},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, env.URL+tc.path, strings.NewReader("{}"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var st metav1.Status
			body, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(body, &st); err != nil || resp.StatusCode != tc.code || st.Reason != tc.reason || st.Kind != "Status" {
				t.Fatalf("got %d %s, want %d with reason %s", resp.StatusCode, body, tc.code, tc.reason)
			}
		})
	}

	// A Table, as kubectl get podmetrics asks.
	req, _ := http.NewRequest("GET", env.URL+"/apis/metrics.k8s.io/v1beta1/namespaces/default/pods", nil)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var table metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&table); err != nil || len(table.Rows) != 2 || table.ColumnDefinitions[1].Name != "CPU" {
		t.Fatalf("table: %v %+v", err, table)
	}
}

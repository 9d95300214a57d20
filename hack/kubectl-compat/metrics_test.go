package compat

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKubelet serves /stats/summary (the kubelet Summary API's JSON, cut
// to CPU and memory as kubeish's node agent serves it) for one node and
// the pods given to it. CPU is only the cumulative usageCoreNanoSeconds,
// so the apiserver's scraper has to take a rate between two of its
// rounds: every answer is one second later on a clock of the summary's
// own (timestamps travel with whole seconds) and adds each cgroup's
// usage over that second.
type fakeKubelet struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex
	node   string
	start  time.Time
	n      int
	cpu    int64 // the node's millicores
	memory int64 // the node's working set, bytes
	pods   []fakePod
	bad    []string // requests for anything but the summary
}

type fakePod struct {
	name, namespace, uid, container string
	milliCPU, memory                int64
}

func newFakeKubelet(t *testing.T, node string, milliCPU, memory int64) *fakeKubelet {
	k := &fakeKubelet{t: t, node: node, cpu: milliCPU, memory: memory,
		start: time.Now().Add(-time.Hour).Truncate(time.Second)}
	k.srv = httptest.NewServer(http.HandlerFunc(k.serve))
	t.Cleanup(k.srv.Close)
	return k
}

// addPod puts a pod in the summaries from now on.
func (k *fakeKubelet) addPod(p fakePod) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pods = append(k.pods, p)
}

// hostPort is where the fake listens (on 127.0.0.1).
func (k *fakeKubelet) hostPort() (string, string) {
	host, port, _ := net.SplitHostPort(k.srv.Listener.Addr().String())
	return host, port
}

func (k *fakeKubelet) serve(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r.Method != http.MethodGet || r.URL.Path != "/stats/summary" {
		k.bad = append(k.bad, r.Method+" "+r.URL.String())
		http.NotFound(w, r)
		return
	}
	k.n++
	at := k.start.Add(time.Duration(k.n) * time.Second).UTC().Format(time.RFC3339)
	started := k.start.UTC().Format(time.RFC3339)
	// usage is a cgroup's CPU and memory after n seconds at milliCPU.
	usage := func(milliCPU, memory int64) (map[string]any, map[string]any) {
		return map[string]any{"time": at, "usageCoreNanoSeconds": int64(k.n) * milliCPU * int64(time.Millisecond)},
			map[string]any{"time": at, "workingSetBytes": memory, "usageBytes": memory + 1<<20}
	}
	nodeCPU, nodeMem := usage(k.cpu, k.memory)
	pods := []any{}
	for _, p := range k.pods {
		cpu, mem := usage(p.milliCPU, p.memory)
		pods = append(pods, map[string]any{
			"podRef":    map[string]any{"name": p.name, "namespace": p.namespace, "uid": p.uid},
			"startTime": started,
			"containers": []any{map[string]any{
				"name": p.container, "startTime": started, "cpu": cpu, "memory": mem,
			}},
			"cpu": cpu, "memory": mem,
		})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"node": map[string]any{"nodeName": k.node, "startTime": started, "cpu": nodeCPU, "memory": nodeMem},
		"pods": pods,
	})
}

func (k *fakeKubelet) check() {
	k.t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.bad) > 0 {
		k.t.Fatalf("the node was asked for %v", k.bad)
	}
}

// nonBlank is the lines of a describe with each run of blanks (tabwriter
// padding) made one space.
func nonBlank(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}

// row is a table row's fields joined by single spaces, without the last n
// (AGE and the like).
func row(t *testing.T, out, name string, drop int) string {
	t.Helper()
	r := rowOf(t, out, name)
	return strings.Join(r[:len(r)-drop], " ")
}

// TestKubectlTopAndAutoscale runs kubectl top against the resource metrics
// API (metrics.k8s.io/v1beta1) the apiserver serves from scraping a node's
// /stats/summary (here an httptest server on loopback), and kubectl
// autoscale, get and describe against autoscaling/v2
// HorizontalPodAutoscalers.
func TestKubectlTopAndAutoscale(t *testing.T) {
	const mi = 1 << 20
	kubelet := newFakeKubelet(t, "node-1", 250, 512*mi)
	c := startCluster(t, "--metric-resolution", "1s", "--kubelet-insecure-http")
	// kubectl top runs kubectl several times a check: not every 20ms.
	poll := func(what string, cond func() (bool, error)) {
		t.Helper()
		untilEvery(t, 250*time.Millisecond, 60*time.Second, what, cond)
	}

	host, port := kubelet.hostPort()
	t.Run("a Ready node and its pods", func(t *testing.T) {
		want(t, "create node", c.ok("create", "-f", c.file("node.yaml", "apiVersion: v1\nkind: Node\nmetadata: {name: node-1, labels: {pool: a}}\n")), "node/node-1 created\n")
		status := fmt.Sprintf(`{"status":{"addresses":[{"type":"InternalIP","address":%q}],"daemonEndpoints":{"kubeletEndpoint":{"Port":%s}},`+
			`"capacity":{"cpu":"2","memory":"4Gi","pods":"110"},"allocatable":{"cpu":"2","memory":"4Gi","pods":"110"},`+
			`"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"fake kubelet"}]}}`, host, port)
		want(t, "node status", c.ok("patch", "node", "node-1", "--subresource=status", "--type=merge", "-p", status), "node/node-1 patched\n")
		want(t, "ready", strings.Join(rowOf(t, c.ok("get", "node", "node-1"), "node-1")[:2], " "), "node-1 Ready")

		want(t, "namespace", c.ok("create", "namespace", "other"), "namespace/other created\n")
		for _, p := range []fakePod{
			{name: "web-1", namespace: "default", container: "web", milliCPU: 100, memory: 64 * mi},
			{name: "db-0", namespace: "other", container: "db", milliCPU: 30, memory: 20 * mi},
		} {
			app := strings.Split(p.name, "-")[0]
			want(t, "run", c.ok("run", p.name, "-n", p.namespace, "--image=example/"+app+":1", "--labels=app="+app), "pod/"+p.name+" created\n")
			resp, err := http.Post(c.url+"/api/v1/namespaces/"+p.namespace+"/pods/"+p.name+"/binding", "application/json",
				strings.NewReader(`{"apiVersion":"v1","kind":"Binding","metadata":{"name":"`+p.name+`"},"target":{"kind":"Node","name":"node-1"}}`))
			if err != nil || resp.StatusCode != http.StatusCreated {
				t.Fatalf("binding %s: %v %v", p.name, err, resp)
			}
			resp.Body.Close()
			want(t, "pod status", c.ok("patch", "pod", p.name, "-n", p.namespace, "--subresource=status", "--type=merge",
				"-p", `{"status":{"phase":"Running","podIP":"10.244.0.9","conditions":[{"type":"Ready","status":"True"}]}}`), "pod/"+p.name+" patched\n")
			p.uid = c.ok("get", "pod", p.name, "-n", p.namespace, "-o", "jsonpath={.metadata.uid}")
			kubelet.addPod(p)
		}
		// A pod on the node the API does not know (deleted, or an older
		// pod of a name) is in no PodMetrics.
		kubelet.addPod(fakePod{name: "web-1", namespace: "other", uid: "gone", container: "web", milliCPU: 900, memory: 900 * mi})
		kubelet.addPod(fakePod{name: "db-0", namespace: "other", uid: "older", container: "db", milliCPU: 900, memory: 900 * mi})
	})

	t.Run("top nodes", func(t *testing.T) {
		var out string
		poll("kubectl top nodes to show node-1's usage", func() (bool, error) {
			r := c.run("top", "nodes")
			out = r.out
			return r.code == 0 && strings.Contains(r.out, "node-1"), fmt.Errorf("exit %d: %s%s", r.code, r.out, r.err)
		})
		// 250m of 2 cores and 512Mi of 4Gi: 12% each.
		want(t, "header", strings.Join(columns(out)[0], " "), "NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)")
		want(t, "node-1", row(t, out, "node-1", 0), "node-1 250m 12% 512Mi 12%")
		want(t, "rows", fmt.Sprint(len(columns(out))), "2")
		want(t, "by name", row(t, c.ok("top", "node", "node-1", "--no-headers"), "node-1", 0), "node-1 250m 12% 512Mi 12%")
		want(t, "selector", row(t, c.ok("top", "nodes", "-l", "pool=a"), "node-1", 0), "node-1 250m 12% 512Mi 12%")
		r := c.run("top", "nodes", "-l", "pool=b")
		if r.code == 0 || !strings.Contains(r.err, "metrics not available yet") {
			t.Fatalf("top nodes -l pool=b: exit %d %q %q", r.code, r.out, r.err)
		}
		// The API itself, and its server-side table.
		raw := c.ok("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes/node-1")
		contains(t, "raw NodeMetrics", raw, `"kind":"NodeMetrics"`, `"apiVersion":"metrics.k8s.io/v1beta1"`, `"cpu":"250m"`, `"memory":"512Mi"`, `"window":"1s"`)
		tab := c.ok("get", "nodes.metrics.k8s.io")
		want(t, "nodemetrics table header", strings.Join(columns(tab)[0], " "), "NAME CPU MEMORY WINDOW")
		want(t, "nodemetrics table", row(t, tab, "node-1", 0), "node-1 250m 512Mi 1s")
	})

	t.Run("top pods", func(t *testing.T) {
		var out string
		poll("kubectl top pods -A to show both pods", func() (bool, error) {
			r := c.run("top", "pods", "-A")
			out = r.out
			return r.code == 0 && strings.Contains(r.out, "web-1") && strings.Contains(r.out, "db-0"), fmt.Errorf("exit %d: %s%s", r.code, r.out, r.err)
		})
		want(t, "-A", out, strings.Join([]string{
			"NAMESPACE   NAME    CPU(cores)   MEMORY(bytes)   ",
			"default     web-1   100m         64Mi            ",
			"other       db-0    30m          20Mi            ",
		}, "\n")+"\n")

		def := c.ok("top", "pods")
		want(t, "header", strings.Join(columns(def)[0], " "), "NAME CPU(cores) MEMORY(bytes)")
		want(t, "default namespace", row(t, def, "web-1", 0), "web-1 100m 64Mi")
		want(t, "rows", fmt.Sprint(len(columns(def))), "2")

		other := c.ok("top", "pods", "-n", "other")
		want(t, "-n other", row(t, other, "db-0", 0), "db-0 30m 20Mi")
		want(t, "-n other rows", fmt.Sprint(len(columns(other))), "2")

		sel := c.ok("top", "pods", "-A", "-l", "app=db")
		want(t, "-A -l app=db", row(t, sel, "other", 0), "other db-0 30m 20Mi")
		want(t, "-A -l app=db rows", fmt.Sprint(len(columns(sel))), "2")
		sel = c.ok("top", "pods", "-l", "app in (web,db)")
		want(t, "-l set", row(t, sel, "web-1", 0), "web-1 100m 64Mi")
		want(t, "-l set rows", fmt.Sprint(len(columns(sel))), "2")

		ctr := c.ok("top", "pod", "web-1", "--containers")
		want(t, "--containers header", strings.Join(columns(ctr)[0], " "), "POD NAME CPU(cores) MEMORY(bytes)")
		want(t, "--containers", row(t, ctr, "web-1", 0), "web-1 web 100m 64Mi")
		sorted := columns(c.ok("top", "pods", "-A", "--sort-by=memory", "--no-headers"))
		if len(sorted) != 2 || sorted[0][1] != "web-1" || sorted[1][1] != "db-0" {
			t.Fatalf("--sort-by=memory: %v", sorted)
		}

		r := c.run("top", "pod", "nope")
		if r.code == 0 || strings.TrimSpace(r.err) != `Error from server (NotFound): podmetrics.metrics.k8s.io "nope" not found` {
			t.Fatalf("top pod nope: exit %d %q %q", r.code, r.out, r.err)
		}
		r = c.run("top", "pods", "-n", "kube-system")
		if r.code != 0 || r.out != "" || !strings.Contains(r.err, "No resources found in kube-system namespace.") {
			t.Fatalf("top pods in an empty namespace: exit %d %q %q", r.code, r.out, r.err)
		}
		tab := c.ok("get", "pods.metrics.k8s.io", "-A")
		want(t, "podmetrics table header", strings.Join(columns(tab)[0], " "), "NAMESPACE NAME CPU MEMORY WINDOW")
		want(t, "podmetrics table", row(t, tab, "default", 0), "default web-1 100m 64Mi 1s")
		kubelet.check()
	})

	t.Run("autoscale", func(t *testing.T) {
		want(t, "deployment", c.ok("create", "deployment", "web", "--image=example/web:1", "--replicas=2"), "deployment.apps/web created\n")
		r := c.run("autoscale", "deployment", "web", "--min=1", "--max=5", "--cpu-percent=50")
		if r.code != 0 {
			t.Fatalf("autoscale: exit %d %q %q", r.code, r.out, r.err)
		}
		want(t, "autoscale", r.out, "horizontalpodautoscaler.autoscaling/web autoscaled\n")
		contains(t, "autoscale stderr", r.err, "--cpu-percent has been deprecated")
		want(t, "stored", c.ok("get", "hpa", "web", "-o",
			`jsonpath={.apiVersion} {.spec.scaleTargetRef.apiVersion} {.spec.scaleTargetRef.kind}/{.spec.scaleTargetRef.name} {.spec.minReplicas}-{.spec.maxReplicas} {.spec.metrics[0].type} {.spec.metrics[0].resource.name} {.spec.metrics[0].resource.target.type} {.spec.metrics[0].resource.target.averageUtilization}`),
			"autoscaling/v2 apps/v1 Deployment/web 1-5 Resource cpu Utilization 50")
		want(t, "second", c.ok("autoscale", "deployment/web", "--name=web-quantities", "--max=3", "--cpu=200m", "--memory=256Mi"),
			"horizontalpodautoscaler.autoscaling/web-quantities autoscaled\n")
		// Autoscaling a target again fails with AlreadyExists from
		// autoscaling/v2. kubectl then falls back to autoscaling/v1 for a
		// configuration v1 can express (as this one): the apiserver
		// serves HorizontalPodAutoscalers in v2 only, so that attempt ends
		// in NotFound where Kubernetes says AlreadyExists again; -v=1
		// shows the v2 answer either way.
		r = c.run("autoscale", "deployment", "web", "--max=3", "--cpu=50%", "-v=1")
		if r.code == 0 || !strings.Contains(r.err, `horizontalpodautoscalers.autoscaling "web" already exists`) {
			t.Fatalf("autoscale again: exit %d %q %q", r.code, r.out, r.err)
		}
		want(t, "unchanged", c.ok("get", "hpa", "web", "-o", "jsonpath={.spec.maxReplicas}"), "5")
		c.ok("create", "configmap", "not-scalable")
		r = c.run("autoscale", "configmap", "not-scalable", "--max=3")
		if r.code == 0 {
			t.Fatalf("autoscale a ConfigMap: exit 0 %q", r.out)
		}

		out := c.ok("get", "hpa")
		want(t, "header", strings.Join(columns(out)[0], " "), "NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE")
		want(t, "web", row(t, out, "web", 1), "web Deployment/web cpu: <unknown>/50% 1 5 0")
		want(t, "web-quantities", row(t, out, "web-quantities", 1), "web-quantities Deployment/web cpu: <unknown>/200m, memory: <unknown>/256Mi 1 3 0")
		want(t, "short name", c.ok("get", "horizontalpodautoscalers.autoscaling", "-o", "name"),
			"horizontalpodautoscaler.autoscaling/web\nhorizontalpodautoscaler.autoscaling/web-quantities\n")

		// The autoscaler's part, written by hand: a measurement.
		status := `{"status":{"currentReplicas":2,"desiredReplicas":3,"currentMetrics":[{"type":"Resource","resource":{"name":"cpu","current":{"averageUtilization":75,"averageValue":"150m"}}}],` +
			`"conditions":[{"type":"AbleToScale","status":"True","reason":"SucceededRescale","message":"the HPA controller was able to update the target scale to 3","lastTransitionTime":"2026-01-02T03:04:05Z"}]}}`
		want(t, "status", c.ok("patch", "hpa", "web", "--subresource=status", "--type=merge", "-p", status), "horizontalpodautoscaler.autoscaling/web patched\n")
		want(t, "measured", row(t, c.ok("get", "hpa", "web"), "web", 1), "web Deployment/web cpu: 75%/50% 1 5 2")
		contains(t, "-A", c.ok("get", "hpa", "-A"), "NAMESPACE", "default")

		d := nonBlank(c.ok("describe", "hpa", "web"))
		contains(t, "describe hpa", d, "Name: web\n", "Namespace: default\n", "Reference: Deployment/web\n",
			"Metrics: ( current / target )\n", "resource cpu on pods (as a percentage of request): 75% (150m) / 50%\n",
			"Min replicas: 1\n", "Max replicas: 5\n", "Deployment pods: 2 current / 3 desired\n",
			"AbleToScale True SucceededRescale the HPA controller was able to update the target scale to 3\n")
		d = nonBlank(c.ok("describe", "hpa", "web-quantities"))
		contains(t, "describe web-quantities", d, "resource cpu on pods: <unknown> / 200m\n", "resource memory on pods: <unknown> / 256Mi\n",
			"Min replicas: 1\n", "Max replicas: 3\n", "Deployment pods: 0 current / 0 desired\n")
		contains(t, "describe all", c.ok("describe", "hpa"), "Name:", "web-quantities")

		want(t, "delete", c.ok("delete", "hpa", "web-quantities"), "horizontalpodautoscaler.autoscaling \"web-quantities\" deleted from default namespace\n")
	})
}

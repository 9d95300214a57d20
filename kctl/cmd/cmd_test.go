package cmd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

const manifests = `apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  GREETING: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: example/web:%s
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
`

func TestApplyGetDescribeDelete(t *testing.T) {
	k := newKctl(t)
	ctx := context.Background()
	file := k.file("app.yaml", fmt.Sprintf(manifests, "1"))

	t.Run("apply creates", func(t *testing.T) {
		out := k.ok("apply", "-f", file)
		want := "configmap/web-config created\ndeployment.apps/web created\nservice/web created\n"
		if out != want {
			t.Fatalf("got %q, want %q", out, want)
		}
	})
	t.Run("apply again is unchanged", func(t *testing.T) {
		out := k.ok("apply", "-f", file)
		want := "configmap/web-config unchanged\ndeployment.apps/web unchanged\nservice/web unchanged\n"
		if out != want {
			t.Fatalf("got %q, want %q", out, want)
		}
	})
	t.Run("apply keeps a container added by someone else", func(t *testing.T) {
		patch := `{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"example/sidecar:1"}]}}}}`
		if _, err := k.env.Client.AppsV1().Deployments("default").Patch(ctx, "web", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		k.file("app.yaml", fmt.Sprintf(manifests, "2"))
		out := k.ok("apply", "-f", file)
		if !strings.Contains(out, "deployment.apps/web configured\n") || !strings.Contains(out, "service/web unchanged\n") {
			t.Fatalf("got %q", out)
		}
		d, err := k.env.Client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		images := map[string]string{}
		for _, c := range d.Spec.Template.Spec.Containers {
			images[c.Name] = c.Image
		}
		if len(images) != 2 || images["web"] != "example/web:2" || images["sidecar"] != "example/sidecar:1" {
			t.Fatalf("containers after apply: %v", images)
		}
	})

	t.Run("get table", func(t *testing.T) {
		out := k.ok("get", "deployments")
		if h := tableRows(out)[0]; strings.Join(h, " ") != "NAME READY UP-TO-DATE AVAILABLE AGE" {
			t.Fatalf("header %q", h)
		}
		if r := row(t, out, "web"); strings.Join(r[:4], " ") != "web 0/2 0 0" {
			t.Fatalf("row %q", r)
		}
	})
	t.Run("get wide", func(t *testing.T) {
		out := k.ok("get", "deploy", "web", "-o", "wide")
		if h := tableRows(out)[0]; strings.Join(h, " ") != "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR" {
			t.Fatalf("header %q", h)
		}
		r := row(t, out, "web")
		if c, i := r[5], r[6]; (c != "web,sidecar" || i != "example/web:2,example/sidecar:1") && (c != "sidecar,web" || i != "example/sidecar:1,example/web:2") || r[7] != "app=web" {
			t.Fatalf("row %q", r)
		}
	})
	t.Run("short names", func(t *testing.T) {
		for kind, name := range map[string]string{"svc": "web", "cm": "web-config", "deploy": "web", "ns": "kube-system", "ep": "kubernetes"} {
			out := k.ok("get", kind)
			row(t, out, name)
		}
		if out := k.ok("get", "svc", "web"); strings.Join(tableRows(out)[0], " ") != "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE" || row(t, out, "web")[4] != "80/TCP" {
			t.Fatalf("services:\n%s", out)
		}
	})
	t.Run("all namespaces", func(t *testing.T) {
		out := k.ok("get", "svc", "-A")
		if h := tableRows(out)[0]; h[0] != "NAMESPACE" || h[1] != "NAME" {
			t.Fatalf("header %q", h)
		}
		if r := row(t, out, "default"); r[1] != "kubernetes" && r[1] != "web" {
			t.Fatalf("row %q", r)
		}
	})
	t.Run("several kinds", func(t *testing.T) {
		out := k.ok("get", "deploy,svc")
		row(t, out, "deployment.apps/web")
		row(t, out, "service/web")
	})
	t.Run("-o name", func(t *testing.T) {
		if out := k.ok("get", "deploy", "-o", "name"); out != "deployment.apps/web\n" {
			t.Fatalf("got %q", out)
		}
		if out := k.ok("get", "cm/web-config", "-o", "name"); out != "configmap/web-config\n" {
			t.Fatalf("got %q", out)
		}
	})
	t.Run("-o yaml and json", func(t *testing.T) {
		var d appsv1.Deployment
		if err := yaml.UnmarshalStrict([]byte(k.ok("get", "deploy", "web", "-o", "yaml")), &d); err != nil || d.Kind != "Deployment" || d.Name != "web" || d.Annotations["kubectl.kubernetes.io/last-applied-configuration"] == "" {
			t.Fatalf("yaml: %v %+v", err, d.ObjectMeta)
		}
		var list corev1.List
		if err := json.Unmarshal([]byte(k.ok("get", "cm", "-o", "json")), &list); err != nil || list.Kind != "List" || len(list.Items) < 1 {
			t.Fatalf("json list: %v %+v", err, list)
		}
	})
	t.Run("not found", func(t *testing.T) {
		r := k.run("get", "deploy", "nope")
		if r.code != 1 || strings.TrimSpace(r.err) != `error: deployments.apps "nope" not found` {
			t.Fatalf("exit %d, stderr %q", r.code, r.err)
		}
		r = k.run("get", "widgets")
		if r.code != 1 || !strings.Contains(r.err, `the server doesn't have a resource type "widgets"`) {
			t.Fatalf("exit %d, stderr %q", r.code, r.err)
		}
		r = k.run("get", "pods")
		if r.code != 0 || r.out != "" || r.err != "No resources found in default namespace.\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.out, r.err)
		}
	})
	t.Run("describe", func(t *testing.T) {
		_, err := k.env.Client.CoreV1().Events("default").Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "web.1"},
			InvolvedObject: corev1.ObjectReference{Kind: "Deployment", Namespace: "default", Name: "web", APIVersion: "apps/v1"},
			Reason:         "ScalingReplicaSet", Message: "Scaled up replica set web-abc to 2", Type: "Normal",
			Source: corev1.EventSource{Component: "deployment-controller"}, Count: 1,
			FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(),
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := k.ok("describe", "deploy", "web")
		for _, want := range []string{"Name:", "web\n", "Namespace:", "Labels:", "app=web", "Replicas:", "2 desired | 0 updated | 0 total | 0 available | 0 unavailable",
			"Images:", "web=example/web:2", "sidecar=example/sidecar:1", "Spec:", "Events:", "ScalingReplicaSet", "deployment-controller", "Scaled up replica set web-abc to 2"} {
			if !strings.Contains(out, want) {
				t.Errorf("describe lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "last-applied-configuration") {
			t.Errorf("describe shows the last-applied annotation:\n%s", out)
		}
		events := k.ok("get", "events")
		if h := tableRows(events)[0]; strings.Join(h, " ") != "LAST SEEN TYPE REASON OBJECT MESSAGE" {
			t.Fatalf("events header %q", h)
		}
		if !strings.Contains(events, "deployment/web") || !strings.Contains(events, "ScalingReplicaSet") {
			t.Fatalf("events:\n%s", events)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if out := k.ok("delete", "deploy", "web"); out != "deployment.apps \"web\" deleted\n" {
			t.Fatalf("got %q", out)
		}
		r := k.run("delete", "deploy", "web")
		if r.code != 1 || !strings.Contains(r.err, `deployments.apps "web" not found`) {
			t.Fatalf("exit %d, stderr %q", r.code, r.err)
		}
		if r := k.run("delete", "deploy", "web", "--ignore-not-found"); r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.err)
		}
		r = k.run("delete", "-f", file)
		if r.code != 1 || !strings.Contains(r.out, "configmap \"web-config\" deleted") || !strings.Contains(r.out, "service \"web\" deleted") {
			t.Fatalf("exit %d: %s %s", r.code, r.out, r.err)
		}
		if _, err := k.env.Client.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{}); err == nil {
			t.Fatal("service still there")
		}
	})
}

func TestApplyStdinAndDir(t *testing.T) {
	k := newKctl(t)
	out := k.runStdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-stdin, namespace: kube-public}\n", "apply", "-f", "-")
	if out.code != 0 || out.out != "configmap/from-stdin created\n" {
		t.Fatalf("%+v", out)
	}
	k.file("dir/a.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n")
	k.file("dir/b.json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}`)
	k.file("dir/ignored.txt", "not a manifest")
	k.file("dir/prometheus.yml", "global: {scrape_interval: 15s}\nscrape_configs: []\n")
	if r := k.run("apply", "-f", k.dir+"/dir"); r.code != 0 || r.out != "namespace/team-a created\nconfigmap/b created\n" ||
		!strings.Contains(r.err, "skipping "+k.dir+"/dir/prometheus.yml: not a Kubernetes manifest") {
		t.Fatalf("%+v", r)
	}
	// A manifest with a mistake in a directory is still an error, and
	// a non-manifest named explicitly is too.
	k.file("bad/c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\nmetadata: {name: d}\n")
	if r := k.run("apply", "-f", k.dir+"/bad"); r.code != 1 || !strings.Contains(r.err, "no apiVersion or kind") {
		t.Fatalf("%+v", r)
	}
	if r := k.run("apply", "-f", k.dir+"/dir/prometheus.yml"); r.code != 1 || !strings.Contains(r.err, "no apiVersion or kind") {
		t.Fatalf("%+v", r)
	}
	if got := k.ok("-n", "kube-public", "get", "cm", "from-stdin", "-o", "name"); got != "configmap/from-stdin\n" {
		t.Fatalf("got %q", got)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "cm", "from-stdin", "-o", "jsonpath={.metadata.name}"}, "from-stdin"},
		{[]string{"get", "cm", "from-stdin", "-o", "jsonpath='{.kind} {.metadata.namespace}'"}, "ConfigMap kube-public"},
		{[]string{"get", "cm", "from-stdin", "-o", "jsonpath={.data.missing}"}, ""},
		{[]string{"get", "cm", "-o", "jsonpath={.items[*].metadata.name}"}, "from-stdin"},
	} {
		if got := k.ok(append([]string{"-n", "kube-public"}, tc.args...)...); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.args, got, tc.want)
		}
	}
	if r := k.run("get", "cm", "-o", "jsonpath={.items["); r.code == 0 || !strings.Contains(r.err, "jsonpath") {
		t.Fatalf("bad template: %+v", r)
	}
	// An unknown field is refused by the server (fieldValidation=Strict).
	r := k.runStdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndatta: {a: b}\n", "apply", "-f", "-")
	if r.code != 1 || !strings.Contains(r.err, "datta") {
		t.Fatalf("exit %d, stderr %q", r.code, r.err)
	}
	r = k.runStdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-stdin, namespace: kube-public}\n", "create", "-f", "-")
	if r.code != 1 || !strings.Contains(r.err, `configmaps "from-stdin" already exists`) {
		t.Fatalf("exit %d, stderr %q", r.code, r.err)
	}
}

func TestDryRunAndDiff(t *testing.T) {
	k := newKctl(t)
	ctx := context.Background()
	file := k.file("app.yaml", fmt.Sprintf(manifests, "1"))
	if out := k.ok("apply", "-f", file, "--dry-run=server"); !strings.Contains(out, "deployment.apps/web created (server dry run)") {
		t.Fatalf("got %q", out)
	}
	if out := k.ok("apply", "-f", file, "--dry-run=client"); !strings.Contains(out, "service/web created (dry run)") {
		t.Fatalf("got %q", out)
	}
	if _, err := k.env.Client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{}); err == nil {
		t.Fatal("a dry run created the deployment")
	}
	k.ok("apply", "-f", file)
	if r := k.run("diff", "-f", file); r.code != 0 || r.out != "" {
		t.Fatalf("diff of an applied manifest: exit %d: %s%s", r.code, r.out, r.err)
	}
	k.file("app.yaml", fmt.Sprintf(manifests, "2"))
	r := k.run("diff", "-f", file)
	if r.code != 1 || !strings.Contains(r.out, "--- live/deployment.apps.default.web") ||
		!strings.Contains(r.out, "-      - image: example/web:1") || !strings.Contains(r.out, "+      - image: example/web:2") {
		t.Fatalf("exit %d:\n%s%s", r.code, r.out, r.err)
	}
	d, _ := k.env.Client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "example/web:1" {
		t.Fatalf("diff changed the deployment: %s", img)
	}
}

func TestScale(t *testing.T) {
	k := newKctl(t)
	k.ok("apply", "-f", k.file("app.yaml", fmt.Sprintf(manifests, "1")))
	if out := k.ok("scale", "deployment", "web", "--replicas", "5"); out != "deployment.apps/web scaled\n" {
		t.Fatalf("got %q", out)
	}
	d, err := k.env.Client.AppsV1().Deployments("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 5 {
		t.Fatalf("replicas %v, %v", d.Spec.Replicas, err)
	}
	if r := k.run("scale", "deploy/nope", "--replicas", "1"); r.code != 1 || !strings.Contains(r.err, `"nope" not found`) {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	if r := k.run("scale", "cm/web-config", "--replicas", "1"); r.code != 1 {
		t.Fatalf("scaling a configmap: exit %d", r.code)
	}
}

func TestGetWatch(t *testing.T) {
	k := newKctl(t)
	ctx := context.Background()
	k.ok("apply", "-f", k.file("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n"))
	w := k.start("get", "cm", "-w")
	w.waitFor(t, "NAME", "DATA", "first")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "second"}, Data: map[string]string{"a": "1", "b": "2"}}
	if _, err := k.env.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "second")
	if r := row(t, w.String(), "second"); r[1] != "2" {
		t.Fatalf("row %q", r)
	}
	if strings.Count(w.String(), "NAME") != 1 {
		t.Fatalf("header printed more than once:\n%s", w.String())
	}
	w.cancel()
	if code := <-w.done; code != 0 {
		t.Fatalf("get -w exit %d", code)
	}

	y := k.start("get", "cm", "second", "-w", "-o", "yaml")
	y.waitFor(t, "name: second")
	if _, err := k.env.Client.CoreV1().ConfigMaps("default").Patch(ctx, "second", types.MergePatchType, []byte(`{"data":{"c":"3"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	y.waitFor(t, "---", `c: "3"`)
}

func TestLogs(t *testing.T) {
	var gotPath, gotQuery string
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotQuery = r.URL.Path, r.URL.RawQuery
		fmt.Fprint(w, "line 1\nline 2\n")
	}))
	defer node.Close()
	host, port, _ := net.SplitHostPort(node.Listener.Addr().String())
	portN, _ := strconv.Atoi(port)

	k := newKctl(t)
	ctx := context.Background()
	cs := k.env.Client
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: host}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(portN)}},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example/c:1"}, {Name: "d", Image: "example/d:1"}}}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods("default").Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out := k.ok("logs", "p", "-c", "d", "--tail", "2"); out != "line 1\nline 2\n" || gotPath != "/containerLogs/default/p/d" || !strings.Contains(gotQuery, "tailLines=2") {
		t.Fatalf("log %q via %s?%s", out, gotPath, gotQuery)
	}
	if r := k.run("logs", "nope"); r.code != 1 || !strings.Contains(r.err, `pods "nope" not found`) {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	out := k.ok("get", "po", "-o", "wide")
	if r := row(t, out, "p"); strings.Join(r, " ") != "p 0/2 Pending 0 "+r[4]+" <none> node-1 <none> <none>" {
		t.Fatalf("row %q", r)
	}
}

func TestAPIResources(t *testing.T) {
	k := newKctl(t)
	if out := k.ok("version"); !strings.Contains(out, "Client Version: ") || !strings.Contains(out, "Server Version: v1.") {
		t.Fatalf("version: %q", out)
	}
	out := k.ok("api-resources")
	for name, want := range map[string]string{
		"pods":        "pods po v1 true Pod",
		"deployments": "deployments deploy apps/v1 true Deployment",
		"nodes":       "nodes no v1 false Node",
	} {
		if got := strings.Join(row(t, out, name), " "); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

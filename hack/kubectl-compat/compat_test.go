// Package compat runs the real kubectl, built from k8s.io/kubectl at the
// release pinned in go.mod, against a real kubeish apiserver process, and
// checks what kubectl prints. Run it with `make test-kubectl`, which
// builds both binaries and passes them in $KUBECTL and $KUBEISH_APISERVER.
package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// cluster is one apiserver process and a kubectl pointed at it, over TLS
// with the admin kubeconfig the apiserver wrote into its --cert-dir.
type cluster struct {
	t       *testing.T
	url     string // the plain-HTTP development listener, for raw requests the test makes itself
	secure  string // https://…, what kubectl talks to
	certDir string // the apiserver's --cert-dir: the cluster CA
	kubectl string
	dir     string
	env     []string
}

func binary(t *testing.T, name string) string {
	t.Helper()
	p := os.Getenv(name)
	if p == "" {
		t.Fatalf("$%s is not set: run `make test-kubectl`, which builds the binaries and sets it", name)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("$%s: %v", name, err)
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCluster starts bin/apiserver on a free loopback port with its own
// embedded etcd and data dir, and stops it (by its PID) when the test ends.
// flags are added to the apiserver's command line.
func startCluster(t *testing.T, flags ...string) *cluster {
	t.Helper()
	apiserver, kubectl := binary(t, "KUBEISH_APISERVER"), binary(t, "KUBECTL")
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	insecure := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	certDir := filepath.Join(dir, "pki")
	logf, err := os.Create(filepath.Join(dir, "apiserver.log"))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--listen-address", addr, "--insecure-listen-address", insecure,
		"--cert-dir", certDir, "--data-dir", filepath.Join(dir, "etcd"),
		"--etcd-listen-client-url", "http://127.0.0.1:0", "--etcd-listen-peer-url", "http://127.0.0.1:0", "--log-level", "warn"}, flags...)
	cmd := exec.Command(apiserver, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			if data, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("apiserver log:\n%s", data)
			}
		}
	})
	url := "http://" + insecure
	until(t, 60*time.Second, "apiserver at "+url+" ready", func() (bool, error) {
		select {
		case err := <-exited:
			t.Fatalf("apiserver exited: %v", err)
		default:
		}
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("readyz %d", resp.StatusCode)
	})
	kc := filepath.Join(certDir, "admin.kubeconfig")
	if _, err := os.Stat(kc); err != nil {
		t.Fatalf("the apiserver wrote no admin kubeconfig: %v", err)
	}
	// HOME in the test's directory: kubectl's discovery cache starts empty
	// and nothing of the machine's ~/.kube is read or written.
	env := append(os.Environ(), "KUBECONFIG="+kc, "HOME="+dir)
	return &cluster{t: t, url: url, secure: "https://" + addr, certDir: certDir, kubectl: kubectl, dir: dir, env: env}
}

type result struct {
	out, err string
	code     int
}

func (c *cluster) run(args ...string) result {
	c.t.Helper()
	return c.runStdin("", args...)
}

func (c *cluster) runStdin(stdin string, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.kubectl, args...)
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return result{out: out.String(), err: errOut.String(), code: code}
}

// ok runs kubectl, which must succeed, and returns its stdout.
func (c *cluster) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("kubectl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

func (c *cluster) file(name, content string) string {
	c.t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// want fails unless got is exactly want.
func want(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

// contains fails unless got has every one of wants.
func contains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Fatalf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// columns splits a table's lines into fields.
func columns(out string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if strings.TrimSpace(l) != "" {
			rows = append(rows, strings.Fields(l))
		}
	}
	return rows
}

func rowOf(t *testing.T, out, name string) []string {
	t.Helper()
	for _, r := range columns(out) {
		if len(r) > 0 && r[0] == name {
			return r
		}
	}
	t.Fatalf("no row %q in:\n%s", name, out)
	return nil
}

const configMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  GREETING: hello
`

const deployment = `apiVersion: apps/v1
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
        ports:
        - containerPort: 8080
`

func TestKubectl(t *testing.T) {
	// The test's node is a plain-HTTP httptest server.
	c := startCluster(t, "--kubelet-insecure-http")

	t.Run("version", func(t *testing.T) {
		contains(t, "version", c.ok("version"), "Client Version: v1.", "Server Version: v1.")
	})
	t.Run("api-resources", func(t *testing.T) {
		out := c.ok("api-resources")
		want(t, "pods", strings.Join(rowOf(t, out, "pods"), " "), "pods po v1 true Pod")
		want(t, "deployments", strings.Join(rowOf(t, out, "deployments"), " "), "deployments deploy apps/v1 true Deployment")
		want(t, "nodes", strings.Join(rowOf(t, out, "nodes"), " "), "nodes no v1 false Node")
		want(t, "leases", strings.Join(rowOf(t, out, "leases"), " "), "leases coordination.k8s.io/v1 true Lease")
	})

	cmFile := c.file("cm.yaml", configMap)
	t.Run("create", func(t *testing.T) {
		want(t, "create", c.ok("create", "-f", cmFile), "configmap/web-config created\n")
		r := c.run("create", "-f", cmFile)
		if r.code == 0 || !strings.Contains(r.err, `Error from server (AlreadyExists): error when creating "`+cmFile+`": configmaps "web-config" already exists`) {
			t.Fatalf("second create: exit %d: %s", r.code, r.err)
		}
	})

	depFile := c.file("deploy.yaml", fmt.Sprintf(deployment, "1"))
	t.Run("apply twice keeps a container added in between", func(t *testing.T) {
		want(t, "apply", c.ok("apply", "-f", depFile), "deployment.apps/web created\n")
		want(t, "apply again", c.ok("apply", "-f", depFile), "deployment.apps/web unchanged\n")
		want(t, "patch", c.ok("patch", "deployment", "web", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"example/sidecar:1"}]}}}}`), "deployment.apps/web patched\n")
		c.file("deploy.yaml", fmt.Sprintf(deployment, "2"))
		want(t, "apply changed", c.ok("apply", "-f", depFile), "deployment.apps/web configured\n")
		got := c.ok("get", "deployment", "web", "-o", `jsonpath={range .spec.template.spec.containers[*]}{.name}={.image};{end}`)
		if got != "web=example/web:2;sidecar=example/sidecar:1;" && got != "sidecar=example/sidecar:1;web=example/web:2;" {
			t.Fatalf("containers after the second apply: %q", got)
		}
	})
	t.Run("apply with a typo is refused by the server", func(t *testing.T) {
		r := c.runStdin("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo}\ndatta: {a: b}\n", "apply", "-f", "-")
		if r.code == 0 || !strings.Contains(r.err, `unknown field "datta"`) {
			t.Fatalf("exit %d: %s", r.code, r.err)
		}
	})

	t.Run("get", func(t *testing.T) {
		out := c.ok("get", "deployments")
		want(t, "header", strings.Join(columns(out)[0], " "), "NAME READY UP-TO-DATE AVAILABLE AGE")
		want(t, "row", strings.Join(rowOf(t, out, "web")[:4], " "), "web 0/2 0 0")
		wide := c.ok("get", "deploy", "-o", "wide")
		want(t, "wide header", strings.Join(columns(wide)[0], " "), "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR")
		svc := c.ok("get", "svc", "-A")
		want(t, "services header", strings.Join(columns(svc)[0], " "), "NAMESPACE NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE")
		want(t, "kubernetes service", strings.Join(rowOf(t, svc, "default")[1:3], " "), "kubernetes ClusterIP")
		want(t, "-o name", c.ok("get", "deploy", "-o", "name"), "deployment.apps/web\n")

		y := c.ok("get", "deploy", "web", "-o", "yaml")
		contains(t, "-o yaml", y, "apiVersion: apps/v1\n", "kind: Deployment\n", "  name: web\n", "kubectl.kubernetes.io/last-applied-configuration", "image: example/web:2")
		var list struct {
			Kind  string `json:"kind"`
			Items []struct {
				Metadata struct{ Name string } `json:"metadata"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(c.ok("get", "cm", "-o", "json")), &list); err != nil || list.Kind != "List" || len(list.Items) == 0 {
			t.Fatalf("-o json: %v %+v", err, list)
		}
		r := c.run("get", "pods")
		if r.code != 0 || r.out != "" || !strings.Contains(r.err, "No resources found in default namespace.") {
			t.Fatalf("empty list: exit %d %q %q", r.code, r.out, r.err)
		}
		r = c.run("get", "deploy", "nope")
		if r.code == 0 || strings.TrimSpace(r.err) != `Error from server (NotFound): deployments.apps "nope" not found` {
			t.Fatalf("not found: exit %d %q", r.code, r.err)
		}
	})

	t.Run("get -w", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cmd := exec.CommandContext(ctx, c.kubectl, "get", "configmaps", "-w")
		cmd.Env = c.env
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		defer func() { cancel(); <-done }()
		waitOutput(t, out, 1, "web-config")
		want(t, "create", c.ok("create", "configmap", "second", "--from-literal=a=1"), "configmap/second created\n")
		waitOutput(t, out, 1, "second")
		want(t, "label", c.ok("label", "configmap", "second", "seen=yes"), "configmap/second labeled\n")
		waitOutput(t, out, 2, "second")
		if n := strings.Count(out.String(), "NAME"); n != 1 {
			t.Fatalf("%d headers:\n%s", n, out.String())
		}
		want(t, "row", strings.Join(rowOf(t, out.String(), "second")[:2], " "), "second 1")
	})

	t.Run("scale", func(t *testing.T) {
		want(t, "scale", c.ok("scale", "deployment", "web", "--replicas=4"), "deployment.apps/web scaled\n")
		want(t, "replicas", c.ok("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"), "4")
		contains(t, "scale subresource", c.ok("get", "--raw", "/apis/apps/v1/namespaces/default/deployments/web/scale"),
			`"kind":"Scale"`, `"apiVersion":"autoscaling/v1"`, `"replicas":4`)
	})
	t.Run("rollout status", func(t *testing.T) {
		// The Deployment controller's part, written by hand: the status
		// of a rollout that is done.
		gen := c.ok("get", "deploy", "web", "-o", "jsonpath={.metadata.generation}")
		r := c.run("rollout", "status", "deployment", "web", "--watch=false")
		want(t, "before", r.out, "Waiting for deployment spec update to be observed...\n")
		status := fmt.Sprintf(`{"status":{"observedGeneration":%s,"replicas":4,"updatedReplicas":4,"readyReplicas":4,"availableReplicas":4}}`, gen)
		req, _ := http.NewRequest("PATCH", c.url+"/apis/apps/v1/namespaces/default/deployments/web/status", strings.NewReader(status))
		req.Header.Set("Content-Type", "application/merge-patch+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("status: %v %v", err, resp)
		}
		resp.Body.Close()
		want(t, "after", c.ok("rollout", "status", "deployment", "web", "--timeout=20s"), "deployment \"web\" successfully rolled out\n")
		want(t, "table", strings.Join(rowOf(t, c.ok("get", "deploy", "web"), "web")[:4], " "), "web 4/4 4 4")
	})
	t.Run("label and annotate", func(t *testing.T) {
		want(t, "label", c.ok("label", "configmap", "web-config", "tier=front"), "configmap/web-config labeled\n")
		want(t, "annotate", c.ok("annotate", "configmap", "web-config", "note=hi"), "configmap/web-config annotated\n")
		want(t, "selected", c.ok("get", "cm", "-l", "tier=front", "-o", "name"), "configmap/web-config\n")
		want(t, "annotation", c.ok("get", "cm", "web-config", "-o", "jsonpath={.metadata.annotations.note}"), "hi")
		want(t, "unlabel", c.ok("label", "configmap", "web-config", "tier-"), "configmap/web-config unlabeled\n")
		r := c.run("get", "cm", "-l", "tier=front")
		contains(t, "after unlabel", r.err, "No resources found")
	})
	t.Run("describe", func(t *testing.T) {
		out := c.ok("describe", "deployment", "web")
		contains(t, "describe deployment", out, "Name:", "web", "Namespace:", "default", "Replicas:", "4 desired | 4 updated | 4 total | 4 available | 0 unavailable",
			"StrategyType:", "RollingUpdate", "Image:", "example/web:2", "example/sidecar:1")
		contains(t, "describe configmap", c.ok("describe", "cm", "web-config"), "Name:", "web-config", "GREETING", "hello")
	})
	t.Run("explain", func(t *testing.T) {
		contains(t, "explain pod", c.ok("explain", "pod"), "KIND:", "Pod", "VERSION:", "v1", "Pod is a collection of containers", "spec", "<PodSpec>")
		contains(t, "explain deployment.spec.replicas", c.ok("explain", "deployment.spec.replicas"), "GROUP:", "apps", "replicas", "<integer>")
	})
	t.Run("dry run and diff", func(t *testing.T) {
		c.file("deploy.yaml", fmt.Sprintf(deployment, "3"))
		want(t, "server dry run", c.ok("apply", "-f", depFile, "--dry-run=server"), "deployment.apps/web configured (server dry run)\n")
		want(t, "unchanged image", c.ok("get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[?(@.name==\"web\")].image}"), "example/web:2")
		r := c.run("diff", "-f", depFile)
		if r.code != 1 {
			t.Fatalf("diff: exit %d: %s %s", r.code, r.out, r.err)
		}
		contains(t, "diff", r.out, "-      - image: example/web:2", "+      - image: example/web:3")
	})
	t.Run("pods and logs", func(t *testing.T) {
		var mu sync.Mutex
		var gotPath, gotQuery string
		node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			gotPath, gotQuery = r.URL.Path, r.URL.RawQuery
			mu.Unlock()
			fmt.Fprint(w, "hello from p\n")
		}))
		defer node.Close()
		host, port, _ := net.SplitHostPort(node.Listener.Addr().String())
		nodeFile := c.file("node.yaml", fmt.Sprintf("apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\nstatus:\n  addresses: [{type: InternalIP, address: %q}]\n  daemonEndpoints: {kubeletEndpoint: {Port: %s}}\n", host, port))
		want(t, "create node", c.ok("create", "-f", nodeFile), "node/node-1 created\n")
		want(t, "run", c.ok("run", "p", "--image=example/p:1"), "pod/p created\n")
		wide := c.ok("get", "pods", "-o", "wide")
		want(t, "pods wide header", strings.Join(columns(wide)[0], " "), "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES")
		want(t, "pending pod", strings.Join(rowOf(t, wide, "p")[:4], " "), "p 0/1 Pending 0")
		// The scheduler's part: bind the pod to node-1.
		resp, err := http.Post(c.url+"/api/v1/namespaces/default/pods/p/binding", "application/json",
			strings.NewReader(`{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p"},"target":{"kind":"Node","name":"node-1"}}`))
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("binding: %v %v", err, resp)
		}
		resp.Body.Close()
		want(t, "node column", rowOf(t, c.ok("get", "po", "p", "-o", "wide"), "p")[6], "node-1")
		want(t, "logs", c.ok("logs", "p", "--tail=1"), "hello from p\n")
		mu.Lock()
		if gotPath != "/containerLogs/default/p/p" || !strings.Contains(gotQuery, "tailLines=1") {
			t.Fatalf("the node was asked %s?%s", gotPath, gotQuery)
		}
		mu.Unlock()
		contains(t, "describe pod", c.ok("describe", "pod", "p"), "Name:", "p", "Node:", "node-1", "Containers:", "Image:", "example/p:1")
	})
	t.Run("delete", func(t *testing.T) {
		want(t, "delete", c.ok("delete", "deployment", "web"), "deployment.apps \"web\" deleted from default namespace\n")
		r := c.run("get", "deployment", "web")
		if r.code == 0 || !strings.Contains(r.err, `deployments.apps "web" not found`) {
			t.Fatalf("after delete: exit %d %q", r.code, r.err)
		}
		want(t, "delete -f", c.ok("delete", "-f", cmFile), "configmap \"web-config\" deleted from default namespace\n")
		// A pod on a node is deleted gracefully: --wait=false returns
		// at once, the pod stays Terminating until its node confirms.
		want(t, "delete pod", c.ok("delete", "pod", "p", "--wait=false"), "pod \"p\" deleted from default namespace\n")
		want(t, "terminating", rowOf(t, c.ok("get", "pod", "p"), "p")[2], "Terminating")
		want(t, "force", strings.TrimSpace(c.ok("delete", "pod", "p", "--grace-period=0", "--force")), "pod \"p\" force deleted from default namespace")
	})
}

// syncBuffer is a bytes.Buffer safe for a process writing while the test
// reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitOutput polls until s occurs at least n times in the output.
func waitOutput(t *testing.T, b *syncBuffer, n int, s string) {
	t.Helper()
	until(t, 30*time.Second, fmt.Sprintf("%d× %q", n, s), func() (bool, error) {
		out := b.String()
		return strings.Count(out, s) >= n, fmt.Errorf("output so far:\n%s", out)
	})
}

// until checks cond every 20ms until it reports done, and fails t when
// timeout passes first, naming the last error cond returned. (The main
// module's pkg/poll does the same; this module does not depend on it.)
func until(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	untilEvery(t, 20*time.Millisecond, timeout, what, cond)
}

// untilEvery is until checking every interval: for conditions that run
// kubectl, a process per check.
func untilEvery(t *testing.T, interval, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), interval, timeout, true, func(context.Context) (bool, error) {
		done, err := cond()
		last = err
		return done, nil
	})
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s (last: %v)", timeout, what, last)
	}
}

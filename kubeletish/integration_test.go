package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeish/kubeish/kubeletish/stats"
	"github.com/kubeish/kubeish/pkg/image"
	"github.com/kubeish/kubeish/pkg/pki"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
	"github.com/kubeish/kubeish/pkg/testhost"
)

var (
	agentBin  string
	echoImage string // archive
)

const echoRef = "kubeish.local/echo:v1"

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		os.Exit(m.Run()) // the integration test skips itself
	}
	dir, err := os.MkdirTemp("", "kubeletish-bin-")
	if err != nil {
		panic(err)
	}
	agentBin = filepath.Join(dir, "kubeletish")
	goTool := filepath.Join(goruntime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		goTool = p
	}
	if b, err := exec.Command(goTool, "build", "-o", agentBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building kubeletish: %v\n%s", err, b)
		os.Exit(1)
	}
	echoBin := filepath.Join(dir, "echo")
	if err := image.BuildGoBinary("../hack/images/echo", ".", echoBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	echoImage = filepath.Join(dir, "echo.tar")
	if err := image.BuildFile(image.Spec{Ref: echoRef, Files: map[string]string{"/echo": echoBin}, Entrypoint: []string{"/echo"}, ExposedPorts: []string{"8080/tcp"}}, "amd64", echoImage); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type node struct {
	t       testing.TB
	host    *testhost.Host
	ctd     *testhost.Containerd
	server  string
	rootDir string
	name    string
	cmd     *exec.Cmd
	logf    *os.File
	// extraArgs are added to the agent's flags (e.g. --insecure-registries).
	extraArgs []string
	// pkiDir holds the agent's serving certificate and the cluster CA;
	// clientTLS is the apiserver's side: the CA trusted, the apiserver's
	// kubelet-client certificate presented.
	pkiDir    string
	clientTLS *tls.Config
}

// agentURL is the node agent's API: TLS on the node's address.
const agentURL = "https://10.250.0.2:10250"

// setupPKI makes a cluster CA, the agent's serving certificate for ip and
// the apiserver's client certificate, as `make up` does.
func (n *node) setupPKI(ip net.IP) {
	n.t.Helper()
	n.pkiDir = n.t.TempDir()
	ca, err := pki.NewCA("kubeish-ca")
	if err != nil {
		n.t.Fatal(err)
	}
	if err := ca.Write(n.pkiDir); err != nil {
		n.t.Fatal(err)
	}
	serving, err := ca.Issue(pki.Spec{CommonName: n.name, IPs: []net.IP{ip}, Usage: pki.Server})
	if err != nil {
		n.t.Fatal(err)
	}
	if err := serving.Write(filepath.Join(n.pkiDir, "kubelet.crt"), filepath.Join(n.pkiDir, "kubelet.key")); err != nil {
		n.t.Fatal(err)
	}
	client, err := ca.Issue(pki.Spec{CommonName: pki.APIServerKubeletClientUser, Organizations: []string{pki.MastersGroup}, Usage: pki.Client})
	if err != nil {
		n.t.Fatal(err)
	}
	cert, err := client.TLSCertificate()
	if err != nil {
		n.t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	n.clientTLS = &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}
}

func (n *node) start() {
	n.t.Helper()
	args := []string{"--server", n.server, "--node-name", n.name, "--node-ip", n.host.IP.String(),
		"--containerd-address", n.ctd.Address, "--containerd-namespace", "kubeish-" + n.name,
		"--root-dir", n.rootDir, "--pod-cidr", "10.244.1.0/24", "--port", "10250",
		"--cgroup-parent", "/kubeish-test/" + n.name, "--log-level", n.logLevel(), "--lease-interval", "2s",
		"--tls-cert-file", filepath.Join(n.pkiDir, "kubelet.crt"), "--tls-private-key-file", filepath.Join(n.pkiDir, "kubelet.key"),
		"--client-ca-file", filepath.Join(n.pkiDir, pki.CACertFile)}
	n.cmd = n.host.Command(context.Background(), agentBin, append(args, n.extraArgs...)...)
	n.cmd.Stdout, n.cmd.Stderr = n.logf, n.logf
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
}

// logLevel is debug for tests, where the log explains failures, and info
// for benchmarks, where debug logging would be measured too.
func (n *node) logLevel() string {
	if _, ok := n.t.(*testing.B); ok {
		return "info"
	}
	return "debug"
}

// kill ends the agent (nsenter execs it, so the PID is the agent's).
func (n *node) kill() {
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		_, _ = n.cmd.Process.Wait()
		n.cmd = nil
	}
}

// httpClient dials from inside the node's host; towards the agent's API it
// is the apiserver (its client certificate).
func (n *node) httpClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: n.transport()}
}

func (n *node) transport() *http.Transport {
	return &http.Transport{DialContext: n.host.DialContext, DisableKeepAlives: true, TLSClientConfig: n.clientTLS}
}

func (n *node) get(u string) (string, error) {
	resp, err := n.httpClient().Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return string(b), err
}

func waitPod(t testing.TB, cs kubernetes.Interface, name string, timeout time.Duration, what string, cond func(*v1.Pod) bool) *v1.Pod {
	t.Helper()
	var last *v1.Pod
	err := testhost.WaitFor(context.Background(), timeout, 200*time.Millisecond, func() (bool, error) {
		p, err := cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s: waiting for %s: %v\nlast status: %+v", name, what, err, last.Status)
	}
	return last
}

// cluster is one node agent in a test host, with its own containerd and a
// test apiserver; everything is removed when the test ends.
type cluster struct {
	n       *node
	cs      kubernetes.Interface
	ctd     *testhost.Containerd
	host    *testhost.Host
	rootDir string
	name    string
}

// startNode starts containerd, an apiserver, a host namespace and the
// agent in it, with the echo image imported; setup (before the agent
// starts) may add flags, e.g. for a registry it starts in the host.
func startNode(t testing.TB, setup func(c *cluster)) *cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: containerd, network namespaces, cgroups")
	}
	testhost.Require(t, "containerd", "runc", "ip", "nsenter", "iptables")
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		t.Skip("needs the CNI plugins in /usr/lib/cni (apt-get install containernetworking-plugins)")
	}
	ctx := context.Background()
	ctd := testhost.StartContainerd(t)
	name := fmt.Sprintf("node-%d", os.Getpid()%10000)
	ctd.CgroupParents = append(ctd.CgroupParents, "/kubeish-test/"+name)
	env := testenv.Start(t)
	nw := testhost.NewNetwork(t)
	host := nw.AddHost("10.250.0.2/24")
	u, _ := url.Parse(env.URL)
	fwd := host.Forward(t, u.Host)

	rootDir := t.TempDir()
	logf, err := os.Create(filepath.Join(t.TempDir(), "kubeletish.log"))
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, host: host, ctd: ctd, server: "http://" + fwd, rootDir: rootDir, name: name, logf: logf}
	n.setupPKI(host.IP)
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("kubeletish log (tail):\n%s", tailStr(string(b), 15000))
		}
		// Containers first (containerd's own cleanup runs later and
		// removes them), then the sandboxes' namespaces under the root dir.
		ctd.KillContainers()
		testhost.UnmountUnder(rootDir)
	})
	c := &cluster{n: n, cs: env.Client, ctd: ctd, host: host, rootDir: rootDir, name: name}
	if setup != nil {
		setup(c)
	}

	// Image import through the node-side command.
	if out, err := exec.Command(agentBin, "images", "import", "--containerd-address", ctd.Address, "--containerd-namespace", "kubeish-"+name, echoImage).CombinedOutput(); err != nil {
		t.Fatalf("images import: %v\n%s", err, out)
	}
	n.start()

	// The node registers with its address and port, and becomes Ready.
	cs := env.Client
	err = testhost.WaitFor(ctx, 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		nd, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range nd.Status.Conditions {
			if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue {
				return nd.Status.DaemonEndpoints.KubeletEndpoint.Port == 10250 && nd.Status.Addresses[0].Address == "10.250.0.2", nil
			}
		}
		return false, fmt.Errorf("not ready: %+v", nd.Status.Conditions)
	})
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	if _, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Fatalf("lease: %v", err)
	}
	return c
}

func TestNodeRunsPods(t *testing.T) {
	ctx := context.Background()
	var reg *testRegistry
	c := startNode(t, func(c *cluster) {
		reg = startRegistry(t, c.host)
		c.n.extraArgs = append(c.n.extraArgs, "--insecure-registries", reg.hostAddr)
	})
	n, cs, name, rootDir := c.n, c.cs, c.name, c.rootDir

	// A pod with env and a configMap volume.
	_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"},
		Data: map[string]string{"greeting": "hi there", "file.txt": "from a configmap"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	grace := int64(5)
	echo := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: v1.PodSpec{
			NodeName:                      name,
			TerminationGracePeriodSeconds: &grace,
			Containers: []v1.Container{{
				Name: "echo", Image: echoRef, ImagePullPolicy: v1.PullNever,
				Env: []v1.EnvVar{
					{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "GREETING", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Key: "greeting"}}},
				},
				VolumeMounts: []v1.VolumeMount{{Name: "cfg", MountPath: "/etc/config"}},
				ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intOrStr(8080)}},
					PeriodSeconds: 1},
			}},
			Volumes: []v1.Volume{{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}}}},
		},
	}
	start := time.Now()
	if _, err := cs.CoreV1().Pods("default").Create(ctx, echo, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Pods whose images come from the registry, or from nowhere: made now
	// so their pulls and back-offs run alongside what follows.
	pulls := startPullPods(t, cs, name, reg)
	hooks := startHookPods(t, cs, name)
	p := waitPod(t, cs, "echo", 60*time.Second, "Running and Ready", func(p *v1.Pod) bool {
		return p.Status.Phase == v1.PodRunning && p.Status.PodIP != "" && isReady(p)
	})
	t.Logf("pod Running and Ready after %v with IP %s", time.Since(start).Round(time.Millisecond), p.Status.PodIP)
	if p.Status.HostIP != "10.250.0.2" {
		t.Errorf("hostIP = %q", p.Status.HostIP)
	}
	base := "http://" + net.JoinHostPort(p.Status.PodIP, "8080")
	for path, want := range map[string]string{
		"/":                               "hello from echo\n",
		"/env?name=GREETING":              "hi there",
		"/file?path=/etc/config/file.txt": "from a configmap",
	} {
		got, err := n.get(base + path)
		if err != nil || got != want {
			t.Errorf("GET %s = %q, %v; want %q", path, got, err, want)
		}
	}
	containerID := p.Status.ContainerStatuses[0].ContainerID

	// The node reports the running container's usage from its cgroup.
	checkStats(t, n, name, "echo", "echo")

	// Logs through the node's server.
	logURL := agentURL + "/containerLogs/default/echo/echo"
	err = testhost.WaitFor(ctx, 10*time.Second, 200*time.Millisecond, func() (bool, error) {
		got, err := n.get(logURL + "?tailLines=5")
		return strings.Contains(got, `echo: starting as pod "echo"`), err
	})
	if err != nil {
		t.Errorf("containerLogs: %v", err)
	}
	// Without the apiserver's certificate, only the health checks answer.
	anon := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: n.host.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: n.clientTLS.RootCAs}}}
	for path, want := range map[string]int{"/containerLogs/default/echo/echo": 401, "/stats/summary": 401, "/metrics/cadvisor": 401, "/healthz": 200} {
		resp, err := anon.Get(agentURL + path)
		if err != nil {
			t.Errorf("GET %s without a client certificate: %v", path, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without a client certificate: %s, want %d", path, resp.Status, want)
		}
	}

	// Following the log streams what the container prints next.
	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	req, _ := http.NewRequestWithContext(fctx, http.MethodGet, logURL+"?follow=true&tailLines=0", nil)
	resp, err := (&http.Client{Transport: n.transport()}).Do(req)
	if err != nil {
		t.Fatalf("follow: %v", err)
	}
	followed := make(chan string, 1)
	go func() {
		var got []byte
		buf := make([]byte, 4096)
		for {
			k, err := resp.Body.Read(buf)
			got = append(got, buf[:k]...)
			if strings.Contains(string(got), "followed-line") || err != nil {
				followed <- string(got)
				return
			}
		}
	}()
	// Print until the follower sees it (it may attach after the first one).
	var got string
	for fctx.Err() == nil && got == "" {
		_, _ = n.get(base + "/log?msg=followed-line")
		select {
		case got = <-followed:
		case <-time.After(300 * time.Millisecond):
		}
	}
	if !strings.Contains(got, "followed-line") {
		t.Errorf("follow got %q, want the new line", got)
	}
	fcancel()
	resp.Body.Close()

	// A crashing container goes to CrashLoopBackOff.
	crash := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "crash"},
		Spec: v1.PodSpec{NodeName: name, Containers: []v1.Container{{
			Name: "crash", Image: echoRef, ImagePullPolicy: v1.PullNever, Args: []string{"--exit-after=100ms", "--exit-code=3"}}}},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, crash, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, cs, "crash", 60*time.Second, "CrashLoopBackOff", func(p *v1.Pod) bool {
		if len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		s := p.Status.ContainerStatuses[0]
		return s.State.Waiting != nil && s.State.Waiting.Reason == "CrashLoopBackOff" && s.RestartCount >= 1 &&
			s.LastTerminationState.Terminated != nil && s.LastTerminationState.Terminated.ExitCode == 3
	})
	t.Logf("crash: %s restarts=%d", p.Status.ContainerStatuses[0].State.Waiting.Message, p.Status.ContainerStatuses[0].RestartCount)
	crashFirst := p.Status.ContainerStatuses[0]

	// A failing liveness probe restarts the container; readiness flips Ready.
	probe := &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intOrStr(8080)}}, PeriodSeconds: 1, FailureThreshold: 1}
	sick := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sick"},
		Spec: v1.PodSpec{NodeName: name, Containers: []v1.Container{{
			Name: "sick", Image: echoRef, ImagePullPolicy: v1.PullNever, Args: []string{"--unhealthy-file=/data/unhealthy"},
			VolumeMounts:   []v1.VolumeMount{{Name: "data", MountPath: "/data"}},
			LivenessProbe:  &v1.Probe{ProbeHandler: probe.ProbeHandler, PeriodSeconds: 1, FailureThreshold: 2},
			ReadinessProbe: probe,
		}}, Volumes: []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}},
	}
	sickPod, err := cs.CoreV1().Pods("default").Create(ctx, sick, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitPod(t, cs, "sick", 30*time.Second, "Ready", isReady)
	// The emptyDir is a folder of the node: make the container unhealthy.
	marker := filepath.Join(rootDir, "pods", string(sickPod.UID), "volumes", "empty-dir", "data", "unhealthy")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitPod(t, cs, "sick", 30*time.Second, "not Ready", func(p *v1.Pod) bool { return !isReady(p) })
	waitPod(t, cs, "sick", 30*time.Second, "a liveness restart", func(p *v1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	os.Remove(marker)
	waitPod(t, cs, "sick", 30*time.Second, "Ready again", isReady)

	// A memory limit is enforced: OOMKilled.
	oom := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "oom"},
		Spec: v1.PodSpec{NodeName: name, RestartPolicy: v1.RestartPolicyNever, Containers: []v1.Container{{
			Name: "oom", Image: echoRef, ImagePullPolicy: v1.PullNever, Args: []string{"--eat-memory-mb=256"},
			Resources: v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("32Mi")}},
		}}},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, oom, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, cs, "oom", 30*time.Second, "OOMKilled", func(p *v1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Terminated != nil
	})
	if term := p.Status.ContainerStatuses[0].State.Terminated; term.Reason != "OOMKilled" || p.Status.Phase != v1.PodFailed {
		t.Errorf("oom pod: phase %s, terminated %+v; want Failed, OOMKilled", p.Status.Phase, term)
	}
	// A finished pod gives its sandbox (and address) back, and keeps its IP in the status.
	err = testhost.WaitFor(ctx, 10*time.Second, 200*time.Millisecond, func() (bool, error) {
		_, err := os.Stat(filepath.Join(rootDir, "network", "sandboxes", string(p.UID)+".json"))
		return os.IsNotExist(err), err
	})
	if err != nil {
		t.Errorf("finished pod's sandbox: %v", err)
	}
	if p, _ := cs.CoreV1().Pods("default").Get(ctx, "oom", metav1.GetOptions{}); p == nil || p.Status.PodIP == "" {
		t.Errorf("finished pod lost its IP in the status")
	}

	hooks.check(t, c)

	// Checked before the agent restarts, which forgets back-offs.
	checkCrashBackoffGrows(t, cs, crashFirst)
	pulls.check(t)

	// kill -9 the agent and start it again: the container is adopted.
	n.kill()
	n.start()
	err = testhost.WaitFor(ctx, 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		_, err := n.get(agentURL + "/healthz")
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("restarted agent not healthy: %v", err)
	}
	// Through several relists and resyncs, the adopted container stays.
	poll.Never(t, 4*time.Second, "adopted container kept", func() error {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "echo", metav1.GetOptions{})
		if err != nil {
			return err
		}
		s := p.Status.ContainerStatuses[0]
		if s.ContainerID != containerID || s.RestartCount != 0 || s.State.Running == nil {
			return fmt.Errorf("after agent restart: container %s restarts=%d state=%+v, want %s still running", s.ContainerID, s.RestartCount, s.State, containerID)
		}
		return nil
	})
	if got, err := n.get(base + "/"); err != nil || got != "hello from echo\n" {
		t.Errorf("after agent restart: GET / = %q, %v", got, err)
	}

	// Graceful delete: SIGTERM, then the agent deletes the pod.
	if err := cs.CoreV1().Pods("default").Delete(ctx, "echo", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = testhost.WaitFor(ctx, 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		_, err := cs.CoreV1().Pods("default").Get(ctx, "echo", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		t.Fatalf("graceful delete: %v", err)
	}
	logs, _ := filepath.Glob(filepath.Join(rootDir, "logs", "default_echo_*", "echo", "0.log"))
	if len(logs) == 1 {
		b, _ := os.ReadFile(logs[0])
		if !strings.Contains(string(b), "got terminated") {
			t.Errorf("container log has no SIGTERM line:\n%s", b)
		}
	} else {
		t.Errorf("log files: %v", logs)
	}
	for _, pn := range append([]string{"crash", "sick", "oom"}, pulls.names...) {
		if err := cs.CoreV1().Pods("default").Delete(ctx, pn, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	err = testhost.WaitFor(ctx, 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		l, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 0, err
	})
	if err != nil {
		t.Fatalf("deleting the other pods: %v", err)
	}
	// Nothing is left of the pods on the node.
	if ents, _ := os.ReadDir(filepath.Join(rootDir, "network", "sandboxes")); len(ents) != 0 {
		t.Errorf("sandboxes left: %v", ents)
	}
}

func isReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

func tailStr(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func intOrStr(p int) intstr.IntOrString { return intstr.FromInt32(int32(p)) }

// testRegistry is an OCI registry the test runs on its own loopback,
// holding the echo image. Pulls happen in the agent's process (the
// containerd client resolves and fetches), which runs in the node's
// namespace: the registry reaches it through a forwarder on the node's
// loopback, as the apiserver does.
type testRegistry struct {
	// hostAddr is the registry as the node sees it (127.0.0.1:port in its
	// namespace), for image names and --insecure-registries.
	hostAddr string
	// digest of the pushed echo image's manifest: the imageID a pull gives.
	digest string
}

func startRegistry(t testing.TB, host *testhost.Host) *testRegistry {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	digest, err := pushArchive(srv.URL, "kubeish/echo", "pulled", echoImage)
	if err != nil {
		t.Fatalf("pushing the echo image to the test registry: %v", err)
	}
	return &testRegistry{hostAddr: host.Forward(t, strings.TrimPrefix(srv.URL, "http://")), digest: digest}
}

// pushArchive pushes the one image of an OCI archive (as pkg/image
// writes them) to repo:tag through the distribution API: each blob in one
// POST, then the manifest. (go-containerregistry's remote package would
// do it too, but pulls in Docker's credential helpers, which the module
// graph does not have.) It returns the manifest's digest.
func pushArchive(base, repo, tag, file string) (string, error) {
	blobs := map[string][]byte{}
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		if blobs[h.Name], err = io.ReadAll(tr); err != nil {
			return "", err
		}
	}
	blob := func(digest string) []byte { return blobs["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")] }
	var index struct {
		Manifests []struct{ MediaType, Digest string }
	}
	var manifest struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal(blobs["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		return "", fmt.Errorf("index.json: %v %s", err, blobs["index.json"])
	}
	m := index.Manifests[0]
	if err := json.Unmarshal(blob(m.Digest), &manifest); err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	do := func(method, url, contentType string, body []byte) error {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, b)
		}
		return nil
	}
	digests := []string{manifest.Config.Digest}
	for _, l := range manifest.Layers {
		digests = append(digests, l.Digest)
	}
	for _, d := range digests {
		if err := do(http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/?digest="+d, "application/octet-stream", blob(d)); err != nil {
			return "", err
		}
	}
	if err := do(http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, m.MediaType, blob(m.Digest)); err != nil {
		return "", err
	}
	return m.Digest, nil
}

// pullPods are pods exercising image pulls; a watch records every waiting
// reason they go through, so short-lived states are not missed.
type pullPods struct {
	cs     kubernetes.Interface
	reg    *testRegistry
	names  []string
	cancel context.CancelFunc

	mu      sync.Mutex
	reasons map[string][]string // pod → waiting reasons in order, repeats folded
}

func startPullPods(t testing.TB, cs kubernetes.Interface, nodeName string, reg *testRegistry) *pullPods {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pp := &pullPods{cs: cs, reg: reg, cancel: cancel, reasons: map[string][]string{}}
	w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "test=pull"})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*v1.Pod)
			if !ok || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil {
				continue
			}
			r := p.Status.ContainerStatuses[0].State.Waiting.Reason
			pp.mu.Lock()
			if l := pp.reasons[p.Name]; len(l) == 0 || l[len(l)-1] != r {
				pp.reasons[p.Name] = append(l, r)
			}
			pp.mu.Unlock()
		}
	}()
	absent := reg.hostAddr + "/kubeish/absent:v1"
	for _, pc := range []struct {
		name, image string
		policy      v1.PullPolicy
	}{
		{"pulled", reg.hostAddr + "/kubeish/echo:pulled", v1.PullIfNotPresent},
		{"never-pull", absent, v1.PullNever},
		{"bad-pull", absent, v1.PullIfNotPresent},
	} {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pc.name, Labels: map[string]string{"test": "pull"}},
			Spec: v1.PodSpec{NodeName: nodeName, Containers: []v1.Container{{Name: "c", Image: pc.image, ImagePullPolicy: pc.policy}}}}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pp.names = append(pp.names, pc.name)
	}
	return pp
}

func (pp *pullPods) seen(pod string) []string {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return append([]string(nil), pp.reasons[pod]...)
}

// check: the registry's image is pulled and runs; an absent image with
// policy Never waits as ErrImageNeverPull; an absent image to pull fails
// as ErrImagePull, then backs off as ImagePullBackOff.
func (pp *pullPods) check(t *testing.T) {
	t.Helper()
	p := waitPod(t, pp.cs, "pulled", 60*time.Second, "Running from the pulled image", func(p *v1.Pod) bool {
		return p.Status.Phase == v1.PodRunning
	})
	if got := p.Status.ContainerStatuses[0].ImageID; got != pp.reg.digest {
		t.Errorf("pulled pod's imageID = %q, want the pushed manifest %s", got, pp.reg.digest)
	}
	waitPod(t, pp.cs, "never-pull", 30*time.Second, "ErrImageNeverPull", func(p *v1.Pod) bool {
		s := p.Status.ContainerStatuses
		return len(s) == 1 && s[0].State.Waiting != nil && s[0].State.Waiting.Reason == "ErrImageNeverPull"
	})
	err := testhost.WaitFor(context.Background(), 30*time.Second, 200*time.Millisecond, func() (bool, error) {
		l := pp.seen("bad-pull")
		i := slices.Index(l, "ErrImagePull")
		return i >= 0 && slices.Contains(l[i:], "ImagePullBackOff"), nil
	})
	if err != nil {
		t.Errorf("bad-pull: waiting reasons %v, want ErrImagePull then ImagePullBackOff", pp.seen("bad-pull"))
	}
	if l := pp.seen("never-pull"); slices.Contains(l, "ErrImagePull") {
		t.Errorf("never-pull tried a pull: %v", l)
	}
	t.Logf("pulls: bad-pull went through %v", pp.seen("bad-pull"))
}

var backoffMessage = regexp.MustCompile(`^back-off (\S+) restarting failed container`)

// checkCrashBackoffGrows waits for the next restart of the crash pod after
// first (a CrashLoopBackOff status): the restart waited first's back-off,
// and the back-off doubled.
func checkCrashBackoffGrows(t *testing.T, cs kubernetes.Interface, first v1.ContainerStatus) {
	t.Helper()
	delay := func(s v1.ContainerStatus) time.Duration {
		m := backoffMessage.FindStringSubmatch(s.State.Waiting.Message)
		if m == nil {
			t.Fatalf("back-off message %q", s.State.Waiting.Message)
		}
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d1 := delay(first)
	p := waitPod(t, cs, "crash", d1+30*time.Second, "the next crash loop restart", func(p *v1.Pod) bool {
		s := p.Status.ContainerStatuses[0]
		return s.RestartCount > first.RestartCount && s.State.Waiting != nil && s.State.Waiting.Reason == "CrashLoopBackOff"
	})
	next := p.Status.ContainerStatuses[0]
	d2 := delay(next)
	steps := next.RestartCount - first.RestartCount
	if want := min(d1<<steps, 5*time.Minute); d2 != want {
		t.Errorf("back-off after %d more restarts = %v, want %v (from %v)", steps, d2, want, d1)
	}
	if steps == 1 {
		// The restart came d1 after the exit before it (API times are in
		// whole seconds).
		gap := next.LastTerminationState.Terminated.StartedAt.Sub(first.LastTerminationState.Terminated.FinishedAt.Time)
		if gap < d1-time.Second {
			t.Errorf("restart %d came %v after the exit before it, want about %v", next.RestartCount, gap, d1)
		}
		t.Logf("crash: restart %d waited %v, next back-off %v", next.RestartCount, gap, d2)
	}
}

// checkStats polls the node's /stats/summary and /metrics/cadvisor until
// both report the running container with memory and CPU (a CPU rate needs
// two reads a second apart).
func checkStats(t *testing.T, n *node, nodeName, pod, container string) {
	t.Helper()
	var last string
	err := testhost.WaitFor(context.Background(), 20*time.Second, 500*time.Millisecond, func() (bool, error) {
		body, err := n.get(agentURL + "/stats/summary")
		last = body
		if err != nil {
			return false, err
		}
		var s stats.Summary
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			return false, err
		}
		if s.Node.NodeName != nodeName || s.Node.Memory == nil || s.Node.Memory.WorkingSetBytes == nil || *s.Node.Memory.WorkingSetBytes == 0 {
			return false, fmt.Errorf("node figures missing")
		}
		for _, p := range s.Pods {
			if p.PodRef.Name != pod || p.PodRef.Namespace != "default" || p.PodRef.UID == "" || p.Memory == nil {
				continue
			}
			for _, c := range p.Containers {
				if c.Name == container && c.Memory != nil && c.CPU != nil && *c.Memory.WorkingSetBytes > 0 &&
					*c.CPU.UsageCoreNanoSeconds > 0 && c.CPU.UsageNanoCores != nil {
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("/stats/summary has no usage of %s/%s: %v\n%s", pod, container, err, tailStr(last, 3000))
	}
	body, err := n.get(agentURL + "/metrics/cadvisor")
	if err != nil {
		t.Fatalf("/metrics/cadvisor: %v", err)
	}
	labels := fmt.Sprintf(`{container=%q,namespace="default",pod=%q} `, container, pod)
	for _, m := range []string{"container_memory_working_set_bytes", "container_cpu_usage_seconds_total"} {
		v := -1.0
		for _, l := range strings.Split(body, "\n") {
			if rest, ok := strings.CutPrefix(l, m+labels); ok {
				v, _ = strconv.ParseFloat(rest, 64)
			}
		}
		if v <= 0 {
			t.Errorf("/metrics/cadvisor: %s%s = %v, want > 0:\n%s", m, labels, v, tailStr(body, 3000))
		}
	}
}

// hookPods are echo pods with lifecycle hooks, made at the start so that
// they run while the rest of the test does.
type hookPods struct{ cs kubernetes.Interface }

func startHookPods(t *testing.T, cs kubernetes.Interface, nodeName string) *hookPods {
	t.Helper()
	grace := int64(10)
	hookPod := func(name string, lc *v1.Lifecycle) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"test": "hooks"}},
			Spec: v1.PodSpec{NodeName: nodeName, TerminationGracePeriodSeconds: &grace, Containers: []v1.Container{{
				Name: "app", Image: echoRef, ImagePullPolicy: v1.PullNever, Lifecycle: lc,
				Env: []v1.EnvVar{{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
			}}}}
	}
	exec := func(cmd ...string) *v1.LifecycleHandler {
		return &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: cmd}}
	}
	for _, p := range []*v1.Pod{
		// Serves through a 3 s preStop sleep after its delete.
		hookPod("prestop-sleep", &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 3}}}),
		// The image has only /echo: a second echo in the container, on
		// :9090 for 3 s, shows the exec hook ran there. Its postStart is
		// a short-lived one that succeeds.
		hookPod("prestop-exec", &v1.Lifecycle{
			PostStart: exec("/echo", "--listen=:9091", "--exit-after=10ms", "--exit-code=0"),
			PreStop:   exec("/echo", "--listen=:9090", "--exit-after=3s", "--exit-code=0")}),
		// The hook's request makes the app print a line to its log.
		hookPod("prestop-http", &v1.Lifecycle{PreStop: &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/log?msg=prestop-http-ran", Port: intOrStr(8080)}}}),
		// A postStart command the image does not have: the container is
		// killed and restarted.
		hookPod("poststart-fail", &v1.Lifecycle{PostStart: exec("/no-such-hook")}),
	} {
		if _, err := cs.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return &hookPods{cs: cs}
}

// check: a failed postStart restarts its container with an event; a
// deleted pod with a preStop sleep serves HTTP through the sleep, gets
// SIGTERM only after it, and is then gone; preStop exec and httpGet hooks
// run in and against the container before its SIGTERM.
func (h *hookPods) check(t *testing.T, c *cluster) {
	t.Helper()
	ctx := context.Background()
	cs, n := h.cs, c.n
	waitPod(t, cs, "poststart-fail", 60*time.Second, "restarted after its postStart failed", func(p *v1.Pod) bool {
		s := p.Status.ContainerStatuses
		return len(s) == 1 && s[0].RestartCount >= 1 && s[0].LastTerminationState.Terminated != nil
	})
	err := testhost.WaitFor(ctx, 10*time.Second, 200*time.Millisecond, func() (bool, error) {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=poststart-fail"})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Reason == "FailedPostStartHook" && strings.Contains(e.Message, "/no-such-hook") {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no FailedPostStartHook event for poststart-fail: %v", err)
	}

	ips := map[string]string{}
	for _, name := range []string{"prestop-sleep", "prestop-exec", "prestop-http"} {
		p := waitPod(t, cs, name, 30*time.Second, "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && p.Status.PodIP != "" })
		ips[name] = p.Status.PodIP
	}
	// Taken before the first request: the node may act on it before it
	// returns.
	deleted := time.Now()
	for _, name := range []string{"prestop-sleep", "prestop-exec", "prestop-http", "poststart-fail"} {
		if err := cs.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// The exec hook's echo answers on :9090 while it runs.
	execSeen := make(chan error, 1)
	go func() {
		execSeen <- testhost.WaitFor(ctx, 3*time.Second, 100*time.Millisecond, func() (bool, error) {
			got, err := n.get("http://" + net.JoinHostPort(ips["prestop-exec"], "9090") + "/")
			return got == "hello from prestop-exec\n", err
		})
	}()
	// The sleeping pod serves on through most of its 3 s sleep.
	sleepURL := "http://" + net.JoinHostPort(ips["prestop-sleep"], "8080") + "/"
	poll.Never(t, 2500*time.Millisecond-time.Since(deleted), "prestop-sleep serves during its preStop sleep", func() error {
		if got, err := n.get(sleepURL); err != nil || got != "hello from prestop-sleep\n" {
			return fmt.Errorf("%v after its delete: %q, %v; want it still serving", time.Since(deleted).Round(time.Millisecond), got, err)
		}
		return nil
	})
	if err := <-execSeen; err != nil {
		t.Errorf("preStop exec: no echo on :9090 of prestop-exec: %v", err)
	}
	for _, name := range []string{"prestop-sleep", "prestop-exec", "prestop-http"} {
		err := testhost.WaitFor(ctx, 20*time.Second, 200*time.Millisecond, func() (bool, error) {
			_, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			t.Errorf("%s not gone after its delete: %v", name, err)
		}
	}
	if took := time.Since(deleted); took < 3*time.Second {
		t.Errorf("prestop-sleep gone %v after its delete, within its preStop sleep", took)
	}
	if _, err := n.get(sleepURL); err == nil {
		t.Errorf("prestop-sleep still serves after it is gone")
	}

	// The container logs (kept on the node) date the SIGTERM, and show
	// the httpGet hook's line before it.
	logLine := func(pod, substr string) (time.Time, int) {
		files, _ := filepath.Glob(filepath.Join(c.rootDir, "logs", "default_"+pod+"_*", "app", "0.log"))
		if len(files) != 1 {
			t.Errorf("%s: log files %v", pod, files)
			return time.Time{}, -1
		}
		b, _ := os.ReadFile(files[0])
		for i, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, substr) {
				ts, _ := time.Parse(time.RFC3339Nano, strings.Fields(l)[0])
				return ts, i
			}
		}
		t.Errorf("%s: no %q in its log:\n%s", pod, substr, b)
		return time.Time{}, -1
	}
	if term, _ := logLine("prestop-sleep", "got terminated"); !term.IsZero() {
		if term.Sub(deleted) < 3*time.Second {
			t.Errorf("prestop-sleep got SIGTERM %v after its delete, before its 3 s preStop sleep ended", term.Sub(deleted))
		}
		t.Logf("prestop-sleep got SIGTERM %v after its delete", term.Sub(deleted).Round(time.Millisecond))
	}
	_, hook := logLine("prestop-http", "prestop-http-ran")
	_, term := logLine("prestop-http", "got terminated")
	if hook < 0 || term < 0 || hook > term {
		t.Errorf("prestop-http: hook line %d, SIGTERM line %d; want the hook's first", hook, term)
	}
}

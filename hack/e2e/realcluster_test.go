//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubeish/kubeish/pkg/pki"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testhost"
)

// The local topology (DESIGN.md): the control plane on 10.250.0.1, node-N
// on 10.250.0.(N+1), all on a bridge in a namespace of the test's own. The
// addresses live only inside the test's namespaces, so they are the same
// as `make up`'s (and manifests/prometheus.yml's) without clashing with it.
const (
	cpIP         = "10.250.0.1"
	apiPort      = 6443
	clusterCIDR  = "10.244.0.0/16"
	serviceCIDR  = "10.96.0.0/16"
	kubeletPort  = 10250
	inClusterAPI = "https://10.250.0.1:6443"
)

var clusterSeq atomic.Int32

// realOptions shape a realCluster.
type realOptions struct {
	nodes       int // default 3
	controllers int // default 1; more run active/standby
	schedulers  int // default 1
	// apiserverArgs are added to the apiserver's flags, controllerArgs to
	// every controller's.
	apiserverArgs  []string
	controllerArgs []string
}

// realCluster is the local topology of `make up NODES=3`, made by the
// test: a network of host namespaces (kubeish-cp and one per node), a
// containerd the test started (a containerd namespace per node), the
// apiserver with its embedded etcd, controller and scheduler processes in
// the control-plane host, and one kubeletish per node host with the echo
// images imported. The test reaches the apiserver through a forwarder on
// its own loopback, and everything else from inside the hosts.
type realCluster struct {
	t      *testing.T
	opts   realOptions
	dir    string // short (unix socket paths), under /tmp
	procs  *procGroup
	ctd    *testhost.Containerd
	cp     *testhost.Host
	nodes  []*realNode
	cgroup string // the cgroup parent above every node's

	pki        *clusterPKI
	apiURL     string               // https://127.0.0.1:PORT, forwarded into the cp host
	kubeconfig string               // the admin's, for kctl, naming apiURL
	client     kubernetes.Interface // the admin's; requests time out after 30 s
	watcher    kubernetes.Interface // no timeout, for watches
	config     *rest.Config         // the admin's (system:masters)
}

// realNode is one node host and its agent.
type realNode struct {
	name    string
	host    *testhost.Host
	ip      string
	rootDir string
	cgroup  string
}

func (n *realNode) String() string { return n.name }

// newRealCluster starts a cluster and waits until its nodes are Ready;
// cleanup ends every process by PID and removes the containers, mounts,
// cgroups, namespaces and files, also when the test fails (after printing
// the components' logs).
func newRealCluster(t *testing.T, opts realOptions) *realCluster {
	t.Helper()
	testhost.Require(t, "containerd", "runc", "ip", "nsenter", "iptables")
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		t.Skip("needs the CNI plugins in /usr/lib/cni (apt-get install containernetworking-plugins)")
	}
	if opts.nodes == 0 {
		opts.nodes = 3
	}
	if opts.controllers == 0 {
		opts.controllers = 1
	}
	if opts.schedulers == 0 {
		opts.schedulers = 1
	}
	start := time.Now()
	c := &realCluster{t: t, opts: opts}
	nw := testhost.NewNetwork(t)
	c.cp = nw.AddHost(cpIP + "/24")
	c.ctd = testhost.StartContainerd(t)
	c.cgroup = fmt.Sprintf("/kubeish-e2e-%d-%d", os.Getpid(), clusterSeq.Add(1))
	c.ctd.CgroupParents = append(c.ctd.CgroupParents, c.cgroup)
	dir, err := os.MkdirTemp("/tmp", "ke2e-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	// Runs after the processes are stopped (cleanups run last-in first-out)
	// and before containerd's cleanup and the namespaces' removal.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- containerd log (last 40 lines) ---\n%s", tail([]byte(c.ctd.Log()), 40))
		}
		c.ctd.KillContainers()
		for _, n := range c.nodes {
			testhost.UnmountUnder(n.rootDir)
		}
		testhost.UnmountUnder(c.dir)
		if err := os.RemoveAll(c.dir); err != nil {
			t.Logf("removing %s: %v", c.dir, err)
		}
	})
	c.procs = newProcGroup(t, dir)
	c.pki = newClusterPKI(t, filepath.Join(dir, "pki"))

	c.startAPIServer()
	c.apiURL = "https://" + forwardInto(t, c.cp, fmt.Sprintf("%s:%d", cpIP, apiPort))
	c.config = c.pki.restConfig(t, c.apiURL, "e2e-admin", "system:masters")
	c.waitAPI()
	watchCfg := rest.CopyConfig(c.config)
	c.config.Timeout = 30 * time.Second
	c.client = kubernetes.NewForConfigOrDie(c.config)
	c.watcher = kubernetes.NewForConfigOrDie(watchCfg)
	c.kubeconfig = c.pki.kubeconfig(t, "admin", c.apiURL, "e2e-admin", "system:masters")
	for i := 1; i <= opts.controllers; i++ {
		c.startController(i)
	}
	for i := 1; i <= opts.schedulers; i++ {
		c.startScheduler(i)
	}
	for i := 1; i <= opts.nodes; i++ {
		name := fmt.Sprintf("node-%d", i)
		n := &realNode{name: name, ip: fmt.Sprintf("10.250.0.%d", i+1),
			rootDir: filepath.Join(dir, name), cgroup: c.cgroup + "/" + name}
		n.host = nw.AddHost(n.ip + "/24")
		c.nodes = append(c.nodes, n)
		c.importImages(n)
		c.startNode(n)
	}
	c.waitNodesReady()
	t.Logf("cluster of %d nodes up in %s (logs in %s)", opts.nodes, time.Since(start).Round(100*time.Millisecond), dir)
	return c
}

// sub returns the cluster for use in subtest t: its helpers fail t.
func (c *realCluster) sub(t *testing.T) *realCluster {
	cc := *c
	cc.t = t
	return &cc
}

// start runs a component on host, failing the test when it cannot.
func (c *realCluster) start(name string, host *testhost.Host, path string, args ...string) {
	c.t.Helper()
	if _, err := c.procs.start(name, host, path, args...); err != nil {
		c.t.Fatal(err)
	}
}

// kill stops a component with sig and waits until it exited.
func (c *realCluster) kill(name string, sig os.Signal) {
	c.t.Helper()
	if _, err := c.procs.kill(name, sig); err != nil {
		c.t.Fatal(err)
	}
}

func (c *realCluster) startAPIServer() {
	args := []string{"--listen-address", fmt.Sprintf("%s:%d", cpIP, apiPort), "--advertise-address", cpIP,
		"--data-dir", filepath.Join(c.dir, "etcd"),
		"--etcd-listen-client-url", "http://127.0.0.1:0", "--etcd-listen-peer-url", "http://127.0.0.1:0",
		"--service-cluster-ip-range", serviceCIDR, "--shutdown-timeout", "1s"}
	args = append(args, c.pki.apiserverArgs()...)
	c.start("apiserver", c.cp, filepath.Join(bin, "apiserver"), append(args, c.opts.apiserverArgs...)...)
}

// leaseFlags make a dead leader's lease expire in 6 s, so standbys take
// over well within the 15 s the suite promises, with room for a loaded
// machine's slow renewals.
var leaseFlags = []string{"--leader-elect-lease-duration", "6s", "--leader-elect-renew-deadline", "4s", "--leader-elect-retry-period", "1s"}

// controllerName and schedulerName name the i-th replica (1-based); the
// first serves its metrics on the standard port, as manifests/prometheus.yml
// expects.
func controllerName(i int) string { return fmt.Sprintf("controller-%d", i) }
func schedulerName(i int) string  { return fmt.Sprintf("scheduler-%d", i) }

func (c *realCluster) startController(i int) {
	kc := c.pki.kubeconfig(c.t, controllerName(i), inClusterAPI, pki.ControllerUser)
	args := append([]string{"--kubeconfig", kc, "--bind-address", fmt.Sprintf("%s:%d", cpIP, 10257+100*(i-1)),
		"--leader-elect-identity", controllerName(i), "--cluster-cidr", clusterCIDR, "--node-monitor-period", "1s"}, leaseFlags...)
	c.start(controllerName(i), c.cp, filepath.Join(bin, "controller"), append(args, c.opts.controllerArgs...)...)
}

func (c *realCluster) startScheduler(i int) {
	kc := c.pki.kubeconfig(c.t, schedulerName(i), inClusterAPI, pki.SchedulerUser)
	args := append([]string{"--kubeconfig", kc, "--bind-address", fmt.Sprintf("%s:%d", cpIP, 10259+100*(i-1)),
		"--leader-elect-identity", schedulerName(i)}, leaseFlags...)
	c.start(schedulerName(i), c.cp, filepath.Join(bin, "scheduler"), args...)
}

// importImages imports the echo images into the node's containerd
// namespace with the node-side command, as `make up` does.
func (c *realCluster) importImages(n *realNode) {
	c.t.Helper()
	args := []string{"images", "import", "--containerd-address", c.ctd.Address, "--containerd-namespace", "kubeish-" + n.name}
	for _, tag := range []string{"v1", "v2"} {
		args = append(args, echoImages[tag])
	}
	if out, err := exec.Command(filepath.Join(bin, "kubeletish"), args...).CombinedOutput(); err != nil {
		c.t.Fatalf("importing images into %s: %v\n%s", n.name, err, out)
	}
}

func (c *realCluster) startNode(n *realNode) {
	args := append(c.pki.nodeArgs(c.t, n.name, n.ip, inClusterAPI),
		"--node-name", n.name, "--node-ip", n.ip, "--port", fmt.Sprint(kubeletPort),
		"--containerd-address", c.ctd.Address, "--containerd-namespace", "kubeish-"+n.name,
		"--root-dir", n.rootDir, "--cni-bin-dir", "/usr/lib/cni", "--cgroup-parent", n.cgroup,
		"--cluster-cidr", clusterCIDR, "--service-cluster-ip-range", serviceCIDR,
		"--lease-interval", "2s", "--log-level", "debug")
	c.start(n.name, n.host, filepath.Join(bin, "kubeletish"), args...)
}

// killNode kills a node's agent and every container of the node (the
// machine died); its namespace stays, unanswered.
func (c *realCluster) killNode(n *realNode) {
	c.t.Helper()
	c.kill(n.name, syscall.SIGKILL)
	(&testhost.Containerd{CgroupParents: []string{n.cgroup}}).KillContainers()
}

func (c *realCluster) waitAPI() {
	c.t.Helper()
	waitAPIReady(c.t, httpClient(c.t, c.config, 5*time.Second), c.apiURL)
}

// restartAPIServer kills the apiserver with sig and starts it again over
// the same etcd data.
func (c *realCluster) restartAPIServer(sig os.Signal) {
	c.t.Helper()
	if _, err := c.procs.restart("apiserver", sig); err != nil {
		c.t.Fatal(err)
	}
	c.waitAPI()
}

func (c *realCluster) waitNodesReady() {
	c.t.Helper()
	ctx := ctxFor(c.t)
	poll.Until(c.t, 90*time.Second, fmt.Sprintf("%d Ready nodes with pod CIDRs", len(c.nodes)), func() (bool, error) {
		if exited := c.procs.exited(); len(exited) > 0 {
			c.t.Fatalf("components exited: %s", strings.Join(exited, "; "))
		}
		var notReady []string
		for _, n := range c.nodes {
			nd, err := c.client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
			if err != nil {
				notReady = append(notReady, fmt.Sprintf("%s: %v", n.name, err))
				continue
			}
			if !nodeReady(nd) || nd.Spec.PodCIDR == "" {
				notReady = append(notReady, fmt.Sprintf("%s: podCIDR %q conditions %v", n.name, nd.Spec.PodCIDR, nd.Status.Conditions))
			}
		}
		if len(notReady) > 0 {
			return false, errors.New(strings.Join(notReady, "; "))
		}
		return true, nil
	})
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// node returns the node named name.
func (c *realCluster) node(name string) *realNode {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	c.t.Fatalf("no node %q", name)
	return nil
}

// kctl runs bin/kctl against the cluster and returns its stdout and
// stderr.
func (c *realCluster) kctl(stdin string, args ...string) (string, string, error) {
	cmd := exec.Command(filepath.Join(bin, "kctl"), append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+c.dir, "KUBECONFIG="+c.kubeconfig)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// mustKctl runs kctl and fails the test when it fails.
func (c *realCluster) mustKctl(stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.kctl(stdin, args...)
	if err != nil {
		c.t.Fatalf("kctl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// forwardInto listens on the test's loopback and forwards every connection
// to target, dialled from inside host (the way `make up` exposes the
// apiserver on 127.0.0.1:6443). It returns the loopback address.
func forwardInto(t *testing.T, host *testhost.Host, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	track := func(cs ...net.Conn) {
		mu.Lock()
		for _, c := range cs {
			conns[c] = true
		}
		mu.Unlock()
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				out, err := host.DialContext(ctx, "tcp", target)
				cancel()
				if err != nil {
					in.Close()
					return
				}
				track(in, out)
				var pipes sync.WaitGroup
				pipes.Add(2)
				go func() { defer pipes.Done(); _, _ = io.Copy(out, in); closeWrite(out) }()
				go func() { defer pipes.Done(); _, _ = io.Copy(in, out); closeWrite(in) }()
				pipes.Wait()
				in.Close()
				out.Close()
				mu.Lock()
				delete(conns, in)
				delete(conns, out)
				mu.Unlock()
			}()
		}
	}()
	return ln.Addr().String()
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	c.Close()
}

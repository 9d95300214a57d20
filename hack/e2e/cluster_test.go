//go:build e2e

// Package e2e runs the real binaries as separate processes and checks the
// promises the cluster makes as a whole: what is applied converges, it
// serves, and it heals when parts fail. `make e2e` (or `make test-e2e`)
// runs it, as root; E2E_ARTIFACTS=DIR keeps the logs of failed tests.
//
// Two kinds of cluster:
//   - cluster (this file): apiserver, controller and scheduler on loopback
//     with nodes simulated through the API by fakeNode: fast tests of the
//     control plane's healing (TestDeploymentConverges, TestNodeLossHeals,
//     TestControlPlaneRestarts).
//   - realCluster (realcluster_test.go): the local topology of DESIGN.md in
//     network namespaces the test makes, a containerd the test starts, one
//     kubeletish per node host: what `make up NODES=3` runs.
//     TestRealCluster shares one among the tests that leave it working
//     (Deployment and Service, Services, RollingUpdate, Prometheus,
//     BadInput, Autoscale); TestRealNodeLoss and TestRealControlPlane (apiserver
//     SIGKILL mid-rollout, leader failover) break their own.
//
// The tests drive the cluster through the public API and bin/kctl only,
// and reach pods, ClusterIPs and node ports from inside the hosts (or from
// inside a pod, through echo's /fetch): all traffic stays on loopback and
// in the test's namespaces.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubeish/kubeish/pkg/image"
	"github.com/kubeish/kubeish/pkg/pki"
	"github.com/kubeish/kubeish/pkg/poll"
)

var (
	// bin holds the binaries built once for the whole run.
	bin string
	// echoImages maps a tag of the echo image to its archive.
	echoImages = map[string]string{}
)

// echoRef is the echo image's name in the e2e clusters; the tags are
// v1 and v2 (the greeting says which).
const echoRef = "kubeish.local/echo"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kubeish-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	code := 1
	if err := buildAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildAll builds the binaries and the echo image archives (v1 and v2: the
// same program, whose greeting names the version from $ECHO_VERSION).
func buildAll(dir string) error {
	start := time.Now()
	build := exec.Command("go", "build", "-o", dir+"/", "./apiserver", "./controller", "./scheduler", "./kubeletish", "./kctl")
	build.Dir = "../.."
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building binaries: %w", err)
	}
	echoBin := filepath.Join(dir, "echo")
	if err := image.BuildGoBinary("../images/echo", ".", echoBin); err != nil {
		return err
	}
	for _, tag := range []string{"v1", "v2"} {
		archive := filepath.Join(dir, "echo-"+tag+".tar")
		spec := image.Spec{Ref: echoRef + ":" + tag, Files: map[string]string{"/echo": echoBin},
			Entrypoint: []string{"/echo"}, Env: []string{"ECHO_VERSION=" + tag}, ExposedPorts: []string{"8080/tcp"}}
		if err := image.BuildFile(spec, "amd64", archive); err != nil {
			return fmt.Errorf("building %s: %w", spec.Ref, err)
		}
		echoImages[tag] = archive
	}
	fmt.Fprintf(os.Stderr, "e2e: binaries and images built in %s\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// cluster is a control plane of real processes on loopback.
type cluster struct {
	t      *testing.T
	dir    string
	apiURL string
	apiArg string // host:port
	client kubernetes.Interface
	config *rest.Config // the admin's (system:masters)
	procs  *procGroup
	pki    *clusterPKI
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newCluster starts apiserver, controller and scheduler; controllerArgs
// are added to the controller's flags.
func newCluster(t *testing.T, controllerArgs ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir()}
	c.procs = newProcGroup(t, c.dir)
	c.pki = newClusterPKI(t, filepath.Join(c.dir, "pki"))
	port := freePort(t)
	c.apiArg = fmt.Sprintf("127.0.0.1:%d", port)
	c.apiURL = "https://" + c.apiArg
	c.config = c.pki.restConfig(t, c.apiURL, "e2e-admin", "system:masters")
	c.start("apiserver", filepath.Join(bin, "apiserver"), append([]string{
		"--listen-address", c.apiArg, "--data-dir", filepath.Join(c.dir, "etcd"),
		"--etcd-listen-client-url", "http://127.0.0.1:0", "--etcd-listen-peer-url", "http://127.0.0.1:0",
		"--shutdown-timeout", "1s"}, c.pki.apiserverArgs()...)...)
	c.waitReady()
	c.client = kubernetes.NewForConfigOrDie(c.config)
	lease := []string{"--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s", "--leader-elect-retry-period", "500ms"}
	c.start("controller", filepath.Join(bin, "controller"), append(append([]string{
		"--kubeconfig", c.pki.kubeconfig(t, "controller", c.apiURL, pki.ControllerUser),
		"--bind-address", "127.0.0.1:0", "--node-monitor-period", "1s"}, lease...), controllerArgs...)...)
	c.start("scheduler", filepath.Join(bin, "scheduler"), append([]string{
		"--kubeconfig", c.pki.kubeconfig(t, "scheduler", c.apiURL, pki.SchedulerUser),
		"--bind-address", "127.0.0.1:0"}, lease...)...)
	return c
}

func (c *cluster) start(name, path string, args ...string) {
	c.t.Helper()
	if _, err := c.procs.start(name, nil, path, args...); err != nil {
		c.t.Fatal(err)
	}
}

// restart kills a component with sig and starts it again with the same flags.
func (c *cluster) restart(name string, sig os.Signal) {
	c.t.Helper()
	if _, err := c.procs.restart(name, sig); err != nil {
		c.t.Fatal(err)
	}
	if name == "apiserver" {
		c.waitReady()
	}
}

func (c *cluster) waitReady() {
	c.t.Helper()
	waitAPIReady(c.t, httpClient(c.t, c.config, 5*time.Second), c.apiURL)
}

// waitAPIReady waits until the apiserver at url answers /readyz.
func waitAPIReady(t *testing.T, hc *http.Client, url string) {
	t.Helper()
	poll.Until(t, 60*time.Second, "apiserver /readyz", func() (bool, error) {
		resp, err := hc.Get(url + "/readyz")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return true, nil
	})
}

func tail(data []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

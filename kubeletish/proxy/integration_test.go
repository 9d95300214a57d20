package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
	"github.com/kubeish/kubeish/pkg/testhost"
)

// The test topology, all inside namespaces the test makes: a node running
// the proxier, three "pods" serving HTTP and UDP, and a client that routes
// the service range through the node. Pods sit on the same network as the
// node (not behind a pod bridge), so the pod network (ClusterCIDR) is a
// range nobody here is in: every client is "outside" and gets masqueraded,
// which is what makes replies return through the node.
const (
	testNodeIP      = "10.250.0.2"
	testClientIP    = "10.250.0.20"
	testClusterCIDR = "10.244.0.0/16"
	testServiceCIDR = "10.96.0.0/16"
)

var testPodIPs = []string{"10.250.0.11", "10.250.0.12", "10.250.0.13"}

// testNode is a proxier running in a node namespace.
type testNode struct {
	*testhost.Host
	reg  *prometheus.Registry
	stop func()
}

// startProxier runs New and Run inside host's namespace (on one goroutine
// locked to a thread there, as the package doc describes) and starts the
// informers; stop ends Run and waits for it.
func startProxier(t testing.TB, host *testhost.Host, client kubernetes.Interface, log *zap.Logger) *testNode {
	t.Helper()
	factory := informers.NewSharedInformerFactory(client, 0)
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	created := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		done <- host.Do(func() error {
			p, err := New(Config{
				NodeName: "node-1", NodeIP: testNodeIP, ClusterCIDR: testClusterCIDR, ServiceCIDR: testServiceCIDR,
				MinSyncPeriod: 50 * time.Millisecond, SyncPeriod: 5 * time.Second,
				Informers: factory, Log: log, Registry: reg,
			})
			created <- err
			if err != nil {
				return err
			}
			return p.Run(ctx)
		})
	}()
	if err := <-created; err != nil {
		cancel()
		t.Fatalf("New: %v", err)
	}
	factory.Start(ctx.Done())
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			factory.Shutdown()
		})
	}
	t.Cleanup(stop)
	return &testNode{Host: host, reg: reg, stop: stop}
}

// run runs a command in the host, failing the test on error.
func run(t testing.TB, h *testhost.Host, name string, args ...string) string {
	t.Helper()
	out, err := h.Command(context.Background(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), h.Name, err, out)
	}
	return string(out)
}

// serve starts an HTTP server (answering its name) on :8080 and a UDP echo
// of its name on :5353 inside a pod host.
func serve(t testing.TB, h *testhost.Host, name string) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	if err := h.Do(func() error {
		var err error
		if ln, err = net.Listen("tcp", ":8080"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", ":5353")
		return err
	}); err != nil {
		t.Fatalf("listening in %s: %v", h.Name, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })}
	go srv.Serve(ln)
	go func() {
		buf := make([]byte, 64)
		for {
			_, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(name), addr)
		}
	}()
	t.Cleanup(func() { srv.Close(); pc.Close() })
}

// httpFrom returns a client whose connections are dialled inside h, one
// connection per request so that each request is balanced anew.
func httpFrom(h *testhost.Host, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: h.DialContext, DisableKeepAlives: true},
	}
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func readySlice(ns, svcName, name string, portName string, proto v1.Protocol, port int32, ready map[string]bool) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discovery.LabelServiceName: svcName}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Name: ptr.To(portName), Protocol: ptr.To(proto), Port: ptr.To(port)}},
	}
	for _, ip := range testPodIPs {
		r, ok := ready[ip]
		if !ok {
			continue
		}
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{Addresses: []string{ip}, Conditions: discovery.EndpointConditions{Ready: ptr.To(r)}})
	}
	return s
}

// testCluster is the topology above, built by startTestCluster: an
// apiserver, the node running the proxier, the pods (pod-i at testPodIPs[i],
// serving HTTP on :8080 and UDP on :5353) and the client.
type testCluster struct {
	cs     kubernetes.Interface
	node   *testNode
	pods   []*testhost.Host
	client *testhost.Host
}

// startTestCluster builds the topology (everything goes at the test's end:
// namespaces, their rules and conntrack tables, servers, proxier, apiserver)
// and starts the proxier on the node, logging to log.
func startTestCluster(t testing.TB, log *zap.Logger) *testCluster {
	t.Helper()
	testhost.Require(t, "ip", "nsenter", "iptables", "iptables-restore", "iptables-save")
	env := testenv.Start(t)

	nw := testhost.NewNetwork(t)
	node := nw.AddHost(testNodeIP + "/24")
	var pods []*testhost.Host
	for i, ip := range testPodIPs {
		h := nw.AddHost(ip + "/24")
		serve(t, h, fmt.Sprintf("pod-%d", i))
		pods = append(pods, h)
	}
	client := nw.AddHost(testClientIP + "/24")
	// The client reaches the service range through the node, as a host
	// outside the cluster would with a route to it.
	run(t, client, "ip", "route", "add", testServiceCIDR, "via", testNodeIP)
	// The node routes the service range out of eth0 so that its own
	// connections to a ClusterIP find a route before the DNAT (in
	// production the agent's network setup adds this route).
	run(t, node, "ip", "route", "add", testServiceCIDR, "dev", "eth0")
	// Here a forwarded packet leaves by the interface it came in on, so
	// the node would send the client ICMP redirects ("reach this pod
	// directly"); the client would then bypass the node. Real pods sit
	// behind a bridge and never trigger this.
	for _, k := range []string{"all", "default", "eth0"} {
		run(t, node, "sysctl", "-q", "-w", "net.ipv4.conf."+k+".send_redirects=0")
	}
	return &testCluster{cs: env.Client, node: startProxier(t, node, env.Client, log), pods: pods, client: client}
}

func TestProxyIntegration(t *testing.T) {
	ctx := context.Background()
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	tc := startTestCluster(t, log)
	cs, n, node, client := tc.cs, tc.node, tc.node.Host, tc.client

	// A NodePort service over the three pods.
	web, err := cs.CoreV1().Services("default").Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeNodePort, Ports: []v1.ServicePort{
			{Name: "http", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]bool{testPodIPs[0]: true, testPodIPs[1]: true, testPodIPs[2]: true}
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, readySlice("default", "web", "web-1", "http", v1.ProtocolTCP, 8080, all), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clusterURL := fmt.Sprintf("http://%s:80/", web.Spec.ClusterIP)
	fromNode, fromClient := httpFrom(node, 2*time.Second), httpFrom(client, 2*time.Second)
	// Before the first sync a SYN to the ClusterIP goes unanswered:
	// poll with a short timeout rather than the requests' own.
	probe := httpFrom(node, 300*time.Millisecond)

	t.Run("clusterIP from the node", func(t *testing.T) {
		poll.Until(t, 10*time.Second, "ClusterIP answering on the node", func() (bool, error) {
			_, err := get(probe, clusterURL)
			return err == nil, err
		})
	})

	t.Run("spread over every ready endpoint", func(t *testing.T) {
		counts := map[string]int{}
		for i := 0; i < 300; i++ {
			body, err := get(fromNode, clusterURL)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			counts[body]++
		}
		t.Logf("300 requests: %v", counts)
		for i := range testPodIPs {
			name := fmt.Sprintf("pod-%d", i)
			if counts[name] == 0 {
				t.Errorf("%s got no request: %v", name, counts)
			}
			if counts[name] > 150 {
				t.Errorf("%s got more than half: %v", name, counts)
			}
		}
	})

	t.Run("clusterIP from another host via the node", func(t *testing.T) {
		poll.Until(t, 5*time.Second, "ClusterIP answering on the client", func() (bool, error) {
			_, err := get(fromClient, clusterURL)
			return err == nil, err
		})
	})

	t.Run("nodePort on the node's address", func(t *testing.T) {
		url := fmt.Sprintf("http://%s:%d/", testNodeIP, web.Spec.Ports[0].NodePort)
		seen := map[string]bool{}
		poll.Until(t, 5*time.Second, "node port answering from every pod", func() (bool, error) {
			body, err := get(fromClient, url)
			if err != nil {
				return false, err
			}
			seen[body] = true
			return len(seen) == len(testPodIPs), fmt.Errorf("answered by %v", seen)
		})
	})

	t.Run("not-ready endpoint drops out", func(t *testing.T) {
		s := readySlice("default", "web", "web-1", "http", v1.ProtocolTCP, 8080, map[string]bool{testPodIPs[0]: true, testPodIPs[1]: true, testPodIPs[2]: false})
		cur, err := cs.DiscoveryV1().EndpointSlices("default").Get(ctx, "web-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.ResourceVersion = cur.ResourceVersion
		start := time.Now()
		if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 2*time.Second, "pod-2 to stop receiving traffic", func() (bool, error) {
			for i := 0; i < 20; i++ {
				body, err := get(fromNode, clusterURL)
				if err != nil {
					return false, err
				}
				if body == "pod-2" {
					return false, errors.New("pod-2 still answers")
				}
			}
			return true, nil
		})
		t.Logf("pod-2 out of rotation within %s", time.Since(start).Round(time.Millisecond))
		for i := 0; i < 50; i++ {
			if body, err := get(fromNode, clusterURL); err != nil || body == "pod-2" {
				t.Fatalf("after the change: %q, %v", body, err)
			}
		}
	})

	t.Run("no ready endpoints refuses at once", func(t *testing.T) {
		empty, err := cs.CoreV1().Services("default").Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "empty"},
			Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, readySlice("default", "empty", "empty-1", "http", v1.ProtocolTCP, 8080, map[string]bool{testPodIPs[0]: false}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort(empty.Spec.ClusterIP, "80")
		for _, h := range []*testhost.Host{node, client} {
			poll.Until(t, 5*time.Second, "connection refused from "+h.Name, func() (bool, error) {
				dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
				start := time.Now()
				c, err := h.DialContext(dctx, "tcp", addr)
				if err == nil {
					c.Close()
					return false, errors.New("connected")
				}
				if !errors.Is(err, syscall.ECONNREFUSED) {
					return false, err
				}
				if d := time.Since(start); d > 500*time.Millisecond {
					return false, fmt.Errorf("refused only after %s", d)
				}
				return true, nil
			})
		}
	})

	t.Run("stale UDP flows removed", func(t *testing.T) {
		testhost.Require(t, "conntrack")
		dns, err := cs.CoreV1().Services("default").Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "dns"},
			Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "dns", Protocol: v1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(5353)}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		two := map[string]bool{testPodIPs[0]: true, testPodIPs[1]: true}
		if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, readySlice("default", "dns", "dns-1", "dns", v1.ProtocolUDP, 5353, two), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// One socket, one source port: one conntrack flow, which
		// would keep its DNAT target for as long as it is used.
		var conn net.Conn
		if err := node.Do(func() error {
			var err error
			conn, err = net.Dial("udp", net.JoinHostPort(dns.Spec.ClusterIP, "53"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ask := func() (string, error) {
			if _, err := conn.Write([]byte("?")); err != nil {
				return "", err
			}
			_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			buf := make([]byte, 64)
			n, err := conn.Read(buf)
			return string(buf[:n]), err
		}
		var first string
		poll.Until(t, 5*time.Second, "a UDP answer", func() (bool, error) {
			var err error
			first, err = ask()
			return err == nil, err
		})
		keep := map[string]bool{testPodIPs[0]: first != "pod-0", testPodIPs[1]: first != "pod-1"}
		cur, err := cs.DiscoveryV1().EndpointSlices("default").Get(ctx, "dns-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := readySlice("default", "dns", "dns-1", "dns", v1.ProtocolUDP, 5353, keep)
		s.ResourceVersion = cur.ResourceVersion
		if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 3*time.Second, "the same UDP socket to reach the other pod", func() (bool, error) {
			got, err := ask()
			if err != nil {
				return false, err
			}
			return got != first, fmt.Errorf("still answered by %s", got)
		})
	})

	t.Run("deleting the service removes its chains", func(t *testing.T) {
		sp := &servicePort{name: "default/web:http", protocol: v1.ProtocolTCP}
		chain := sp.svcChain()
		if out := run(t, node, "iptables-save", "-t", "nat"); !strings.Contains(out, chain) {
			t.Fatalf("%s not in the node's nat table:\n%s", chain, out)
		}
		if err := cs.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 5*time.Second, chain+" removed", func() (bool, error) {
			out := run(t, node, "iptables-save", "-t", "nat")
			return !strings.Contains(out, chain) && !strings.Contains(out, "default/web:http"), errors.New("still there")
		})
		if _, err := get(probe, clusterURL); err == nil {
			t.Errorf("the deleted service's ClusterIP still answers")
		}
	})

	t.Run("metrics", func(t *testing.T) {
		if v := metricValue(t, n.reg, "kubeish_kubeletish_proxy_syncs_total", "result", "applied"); v < 1 {
			t.Errorf("syncs_total{result=applied} = %v", v)
		}
		if v := metricValue(t, n.reg, "kubeproxy_sync_proxy_rules_iptables_total", "table", "nat"); v < 1 {
			t.Errorf("nat rules gauge = %v", v)
		}
		if c, err := testutil.GatherAndCount(n.reg, "kubeproxy_sync_proxy_rules_duration_seconds", "kubeproxy_sync_proxy_rules_last_timestamp_seconds"); err != nil || c != 2 {
			t.Errorf("duration and timestamp metrics: %d, %v", c, err)
		}
	})

	t.Run("cleanup removes everything", func(t *testing.T) {
		n.stop()
		if err := node.Do(func() error { return Cleanup(log) }); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"nat", "filter"} {
			if out := run(t, node, "iptables-save", "-t", table); strings.Contains(out, "KUBE-") {
				t.Errorf("%s table after Cleanup:\n%s", table, out)
			}
		}
		// A second run finds nothing and is no error.
		if err := node.Do(func() error { return Cleanup(log) }); err != nil {
			t.Fatal(err)
		}
	})
}

// metricValue reads one labelled series of a counter or gauge vector.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return 0
}

// TestGoldenRulesApply writes every golden file with the real
// iptables-restore, each into a namespace of its own (after the previous
// rendering, for the changes-only cases): the golden files are not only
// stable, the kernel takes them.
func TestGoldenRulesApply(t *testing.T) {
	testhost.Require(t, "ip", "nsenter", "iptables-restore")
	nw := testhost.NewNetwork(t)
	restore := func(h *testhost.Host, in []byte) error {
		cmd := h.Command(context.Background(), "iptables-restore", "-w", "5", "--noflush")
		cmd.Stdin = bytes.NewReader(in)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		return nil
	}
	for i, tc := range goldenCases() {
		h := nw.AddHost(fmt.Sprintf("10.250.0.%d/24", i+2))
		if tc.prev != nil {
			if err := restore(h, Render(tc.topo, tc.prev.services, tc.prev.slices).Restore(nil)); err != nil {
				t.Fatalf("%s: previous rendering: %v", tc.name, err)
			}
		}
		in, err := os.ReadFile(filepath.Join("testdata", tc.name+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		if err := restore(h, in); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

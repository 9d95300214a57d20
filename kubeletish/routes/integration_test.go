package routes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vishvananda/netlink"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
	"github.com/kubeish/kubeish/pkg/testhost"
)

// routesIn lists the main table of the namespace at path as strings
// ("dst via gw proto N", "dst dev NAME src IP proto N").
func routesIn(path string) ([]string, error) {
	h, err := handle(path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	rs, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rs {
		if r.Dst == nil || r.Protocol == unix.RTPROT_KERNEL {
			continue
		}
		s := r.Dst.String()
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		} else if l, err := h.LinkByIndex(r.LinkIndex); err == nil {
			s += " dev " + l.Attrs().Name
		}
		if r.Src != nil {
			s += " src " + r.Src.String()
		}
		out = append(out, fmt.Sprintf("%s proto %d", s, r.Protocol))
	}
	slices.Sort(out)
	return out, nil
}

func createNode(t *testing.T, c kubernetes.Interface, name, podCIDR, ip string) {
	t.Helper()
	ctx := context.Background()
	n, err := c.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.NodeSpec{PodCIDR: podCIDR, PodCIDRs: []string{podCIDR}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setIP(t, c, n, ip)
}

func setIP(t *testing.T, c kubernetes.Interface, n *v1.Node, ip string) {
	t.Helper()
	n = n.DeepCopy()
	n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip}, {Type: v1.NodeHostName, Address: n.Name}}
	if _, err := c.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// listenOn makes ip a local address of host (on lo, as a node's bridge
// address would be) and serves name on ip:8080.
func listenOn(t *testing.T, h *testhost.Host, ip, name string) {
	t.Helper()
	if out, err := h.Command(context.Background(), "ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("ip addr add in %s: %v %s", h.Name, err, out)
	}
	var ln net.Listener
	if err := h.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", ip+":8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, name)
			c.Close()
		}
	}()
}

// dial reads what ip:8080 answers, from inside h.
func dial(h *testhost.Host, ip string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := h.DialContext(ctx, "tcp", ip+":8080")
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// TestRoutesFollowNodes runs the manager for node-1 in a namespace the
// test makes, against a real apiserver, and shows that routes appear for
// other nodes and carry traffic, follow a changed InternalIP, go with a
// deleted Node, that stale routes of its own go at start while other
// routes are left alone, and that Cleanup removes exactly its own.
func TestRoutesFollowNodes(t *testing.T) {
	testhost.Require(t, "ip", "nsenter")
	env := testenv.Start(t)
	nw := testhost.NewNetwork(t)
	self := nw.AddHost("10.250.0.2/24")
	peerA := nw.AddHost("10.250.0.3/24")
	peerB := nw.AddHost("10.250.0.4/24")
	// node-2's "bridge address" 10.244.2.1 exists on both peers: which one
	// answers shows where the route leads.
	listenOn(t, peerA, "10.244.2.1", "peer-a")
	listenOn(t, peerB, "10.244.2.1", "peer-b")
	listenOn(t, peerA, "10.244.3.1", "peer-a node-3")

	ip := func(args ...string) {
		t.Helper()
		if out, err := self.Command(context.Background(), "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	// Left from a previous run: a route of ours to a node that is gone,
	// and routes of someone else's, one in the way of node-4's CIDR.
	ip("route", "add", "10.244.99.0/24", "via", "10.250.0.9", "proto", fmt.Sprint(int(Protocol)))
	ip("route", "add", "10.244.98.0/24", "via", "10.250.0.9", "proto", "static")
	ip("route", "add", "10.244.4.0/24", "via", "10.250.0.9", "proto", "static")

	c := env.Client
	createNode(t, c, "node-1", "10.244.1.0/24", "10.250.0.2")
	createNode(t, c, "node-2", "10.244.2.0/24", "10.250.0.3")
	createNode(t, c, "node-4", "10.244.4.0/24", "10.250.0.4")

	factory := informers.NewSharedInformerFactory(c, 0)
	reg := prometheus.NewRegistry()
	// A long resync: what follows is driven by Node events alone.
	m, err := New(Config{NodeName: "node-1", NodeIP: "10.250.0.2", ServiceCIDR: "10.96.0.0/16", Informers: factory,
		Log: zaptest.NewLogger(t), Registry: reg, SyncPeriod: time.Hour, NetNS: self.Path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
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

	const ours = " proto 176"
	foreign := []string{"10.244.4.0/24 via 10.250.0.9 proto 4", "10.244.98.0/24 via 10.250.0.9 proto 4"}
	svcRoute := "10.96.0.0/16 dev eth0 src 10.250.0.2" + ours
	expect := func(what string, want ...string) {
		t.Helper()
		want = append(want, foreign...)
		slices.Sort(want)
		poll.Until(t, 10*time.Second, what, func() (bool, error) {
			got, err := routesIn(self.Path)
			if err != nil {
				return false, err
			}
			if !slices.Equal(got, want) {
				return false, fmt.Errorf("routes %q, want %q", got, want)
			}
			return true, nil
		})
	}
	expect("routes to node-2 and the service range; the stale one gone",
		"10.244.2.0/24 via 10.250.0.3"+ours, svcRoute)
	if got, err := dial(self, "10.244.2.1"); err != nil || got != "peer-a" {
		t.Errorf("node-1 to node-2's pod CIDR: %q, %v; want peer-a", got, err)
	}
	// The sync that wrote the routes marks itself done a moment later.
	poll.Until(t, 10*time.Second, "routes healthy", func() (bool, error) {
		err := m.Healthz()
		return err == nil, err
	})
	// The node's own connections to a ClusterIP have a route out of its
	// interface, from its address.
	if err := func() error {
		h, err := handle(self.Path)
		if err != nil {
			return err
		}
		defer h.Close()
		rs, err := h.RouteGet(net.ParseIP("10.96.0.10"))
		if err != nil {
			return err
		}
		if len(rs) != 1 || !rs[0].Src.Equal(net.ParseIP("10.250.0.2")) || rs[0].Gw != nil {
			return fmt.Errorf("route get 10.96.0.10: %v", rs)
		}
		return nil
	}(); err != nil {
		t.Error(err)
	}

	// node-2 moves: the route follows, and traffic reaches the new host.
	n2, err := c.CoreV1().Nodes().Get(context.Background(), "node-2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setIP(t, c, n2, "10.250.0.4")
	expect("route to node-2 via its new address", "10.244.2.0/24 via 10.250.0.4"+ours, svcRoute)
	if got, err := dial(self, "10.244.2.1"); err != nil || got != "peer-b" {
		t.Errorf("after the move: %q, %v; want peer-b", got, err)
	}

	createNode(t, c, "node-3", "10.244.3.0/24", "10.250.0.3")
	expect("route to the new node-3", "10.244.2.0/24 via 10.250.0.4"+ours, "10.244.3.0/24 via 10.250.0.3"+ours, svcRoute)
	if got, err := dial(self, "10.244.3.1"); err != nil || got != "peer-a node-3" {
		t.Errorf("node-1 to node-3: %q, %v", got, err)
	}

	if err := c.CoreV1().Nodes().Delete(context.Background(), "node-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("route to node-2 gone with it", "10.244.3.0/24 via 10.250.0.3"+ours, svcRoute)
	// Without the route nothing leads there (the namespace has no default
	// route): the connection fails at once instead of reaching a peer.
	if got, err := dial(self, "10.244.2.1"); !errors.Is(err, unix.ENETUNREACH) {
		t.Errorf("node-1 to the deleted node-2: %q, %v; want network unreachable", got, err)
	}

	if got := testutil.ToFloat64(m.metrics.skipped); got != 1 {
		t.Errorf("skipped = %v, want 1 (node-4, whose CIDR has a route of someone else's)", got)
	}
	if got := testutil.ToFloat64(m.metrics.programmed); got != 2 {
		t.Errorf("programmed = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.metrics.syncs.WithLabelValues("success")); got < 4 {
		t.Errorf("successful syncs = %v, want at least 4", got)
	}

	// Stopping leaves the routes (a restarted agent adopts them); Cleanup
	// takes exactly its own.
	stop()
	expect("routes kept after Run ends", "10.244.3.0/24 via 10.250.0.3"+ours, svcRoute)
	if err := func() error {
		h, err := handle(self.Path)
		if err != nil {
			return err
		}
		defer h.Close()
		return cleanup(h, zaptest.NewLogger(t))
	}(); err != nil {
		t.Fatal(err)
	}
	expect("only others' routes after Cleanup")
}

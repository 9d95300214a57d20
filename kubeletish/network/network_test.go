package network

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"

	"github.com/kubeish/kubeish/pkg/testhost"
)

func TestGateway(t *testing.T) {
	for _, tc := range []struct{ cidr, want string }{
		{"10.244.1.0/24", "10.244.1.1/24"},
		{"10.244.1.7/24", "10.244.1.1/24"},
		{"10.244.0.0/16", "10.244.0.1/16"},
		{"10.244.8.0/21", "10.244.8.1/21"},
		{"fd00:10:244:1::/64", "fd00:10:244:1::1/64"},
		{"10.244.1.4/32", ""},
		{"bogus", ""},
	} {
		gw, err := Gateway(tc.cidr)
		got := ""
		if err == nil {
			got = gw.String()
		}
		if got != tc.want {
			t.Errorf("Gateway(%q) = %q (%v), want %q", tc.cidr, got, err, tc.want)
		}
	}
}

func TestConfListNamesTheGateway(t *testing.T) {
	b, err := ConfList("kubeish0", "10.244.3.0/24", "/tmp/x")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Plugins []struct {
			IPAM struct {
				Ranges [][]map[string]string `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if r := c.Plugins[0].IPAM.Ranges[0][0]; r["gateway"] != "10.244.3.1" || r["subnet"] != "10.244.3.0/24" {
		t.Errorf("range %v", r)
	}
}

// inNetNS runs f on a thread in the network namespace at path.
func inNetNS(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread dies with the goroutine.
		runtime.LockOSThread()
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

func bridgeAddrs(name string) ([]string, bool, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, false, err
	}
	as, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return nil, false, err
	}
	var out []string
	for _, a := range as {
		out = append(out, a.IPNet.String())
	}
	return out, l.Attrs().Flags&net.FlagUp != 0, nil
}

// TestBridgeBeforePods shows that SetPodCIDR gives the bridge the
// gateway address before any pod exists (a listener can bind it), that the
// CNI bridge plugin adopts that bridge for pods, that a pod reaches the
// listener on the gateway, and that a changed pod CIDR moves the address.
// Everything happens in a network namespace the test makes.
func TestBridgeBeforePods(t *testing.T) {
	testhost.Require(t, "ip", "nsenter")
	bin := "/usr/lib/cni"
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(bin + "/" + p); err != nil {
			t.Skipf("needs the CNI plugins in %s: %v", bin, err)
		}
	}
	host := testhost.NewNetwork(t).AddHost("10.250.0.2/24")
	root := t.TempDir()
	m, err := New(Config{RootDir: root, BinDirs: []string{bin}, HostNetNSPath: host.Path, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if m.GatewayIP() != nil {
		t.Fatalf("GatewayIP before SetPodCIDR: %v", m.GatewayIP())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var uids []string
	t.Cleanup(func() {
		for _, uid := range uids {
			if err := host.Do(func() error { return m.Teardown(context.Background(), uid) }); err != nil {
				t.Errorf("teardown %s: %v", uid, err)
			}
		}
	})

	var ln net.Listener
	err = host.Do(func() error {
		if err := m.SetPodCIDR("10.244.7.0/24"); err != nil {
			return err
		}
		addrs, up, err := bridgeAddrs("kubeish0")
		if err != nil {
			return err
		}
		if len(addrs) != 1 || addrs[0] != "10.244.7.1/24" || !up {
			return fmt.Errorf("bridge addresses %v up %v, want [10.244.7.1/24] up", addrs, up)
		}
		// What the node's DNS does: listen on the gateway before any pod.
		ln, err = net.Listen("tcp", net.JoinHostPort(m.GatewayIP().String(), "0"))
		if err != nil {
			return fmt.Errorf("listening on the gateway: %w", err)
		}
		// Twice the same: nothing changes.
		return m.SetPodCIDR("10.244.7.0/24")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello"))
			c.Close()
		}
	}()
	if got := m.GatewayIP().String(); got != "10.244.7.1" {
		t.Errorf("GatewayIP = %s", got)
	}

	for i := range 2 {
		uid := fmt.Sprintf("pod-%d", i)
		uids = append(uids, uid)
		var sb *Sandbox
		if err := host.Do(func() error {
			var err error
			sb, err = m.Setup(ctx, uid, "default", uid, false)
			return err
		}); err != nil {
			t.Fatalf("CNI setup over the prepared bridge: %v", err)
		}
		if _, n, _ := net.ParseCIDR("10.244.7.0/24"); !n.Contains(net.ParseIP(sb.IP)) || sb.IP == "10.244.7.1" {
			t.Errorf("pod IP %s", sb.IP)
		}
		// The pod reaches the node's listener on the gateway.
		err := inNetNS(sb.NetNSPath, func() error {
			c, err := (&net.Dialer{Timeout: 5 * time.Second}).Dial("tcp", ln.Addr().String())
			if err != nil {
				return err
			}
			defer c.Close()
			b := make([]byte, 5)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(b); err != nil || string(b) != "hello" {
				return fmt.Errorf("read %q: %v", b, err)
			}
			return nil
		})
		if err != nil {
			t.Errorf("pod %s to the gateway: %v", uid, err)
		}
	}
	err = host.Do(func() error {
		addrs, _, err := bridgeAddrs("kubeish0")
		if err != nil || len(addrs) != 1 || addrs[0] != "10.244.7.1/24" {
			return fmt.Errorf("after CNI: bridge addresses %v (%v)", addrs, err)
		}
		// A pod CIDR that changed replaces the address (the plugin would
		// refuse a bridge with two).
		if err := ensureBridge("kubeish0", &net.IPNet{IP: net.ParseIP("10.244.9.1"), Mask: net.CIDRMask(24, 32)}); err != nil {
			return err
		}
		if addrs, _, err := bridgeAddrs("kubeish0"); err != nil || len(addrs) != 1 || addrs[0] != "10.244.9.1/24" {
			return fmt.Errorf("after a new CIDR: bridge addresses %v (%v)", addrs, err)
		}
		// A link of that name that is no bridge (a veth here: the dummy
		// module may be missing) is an error, not adopted.
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "notabridge"}, PeerName: "notabridge1"}); err != nil {
			return err
		}
		if err := ensureBridge("notabridge", &net.IPNet{IP: net.ParseIP("10.244.9.1"), Mask: net.CIDRMask(24, 32)}); err == nil {
			return fmt.Errorf("a veth was taken for the bridge")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

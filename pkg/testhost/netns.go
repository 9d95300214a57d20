package testhost

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

var seq atomic.Int32

// Network is a bridge, in a network namespace of its own, that joins test
// hosts (the local topology's "switch"). The root namespace gets no
// address on it: traffic stays inside the namespaces the test made.
type Network struct {
	t      testing.TB
	prefix string
	sw     string
	n      int
}

// NewNetwork makes the switch namespace; cleanup deletes it and every host.
func NewNetwork(t testing.TB) *Network {
	t.Helper()
	Require(t, "ip", "nsenter")
	nw := &Network{t: t, prefix: fmt.Sprintf("kt%d%d", os.Getpid()%10000, seq.Add(1))}
	nw.sw = nw.prefix + "-sw"
	nw.addNetns(nw.sw)
	nw.ip("-n", nw.sw, "link", "add", "br0", "type", "bridge")
	nw.ip("-n", nw.sw, "link", "set", "br0", "up")
	nw.ip("-n", nw.sw, "link", "set", "lo", "up")
	return nw
}

func (nw *Network) addNetns(name string) {
	nw.ip("netns", "add", name)
	nw.t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			nw.t.Logf("ip netns del %s: %v %s", name, err, out)
		}
	})
}

func (nw *Network) ip(args ...string) {
	nw.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		nw.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Host is a network namespace with loopback up and eth0 on the network.
type Host struct {
	Name string
	// Path is the namespace's bind mount, for nsenter --net= and setns.
	Path string
	// IP is eth0's address.
	IP net.IP
}

// AddHost makes a host with address cidr (e.g. "10.250.0.2/24") on eth0.
func (nw *Network) AddHost(cidr string) *Host {
	nw.t.Helper()
	ip, _, err := net.ParseCIDR(cidr)
	if err != nil {
		nw.t.Fatal(err)
	}
	nw.n++
	name := fmt.Sprintf("%s-h%d", nw.prefix, nw.n)
	nw.addNetns(name)
	peer := fmt.Sprintf("%sv%d", nw.prefix, nw.n)
	nw.ip("link", "add", peer, "type", "veth", "peer", "name", peer+"x")
	nw.ip("link", "set", peer, "netns", nw.sw)
	nw.ip("-n", nw.sw, "link", "set", peer, "master", "br0", "up")
	nw.ip("link", "set", peer+"x", "netns", name)
	nw.ip("-n", name, "link", "set", peer+"x", "name", "eth0")
	nw.ip("-n", name, "addr", "add", cidr, "dev", "eth0")
	nw.ip("-n", name, "link", "set", "eth0", "up")
	nw.ip("-n", name, "link", "set", "lo", "up")
	return &Host{Name: name, Path: "/run/netns/" + name, IP: ip}
}

// Command returns cmd run inside the host's network namespace (nsenter
// --net, which keeps the mount namespace, so runc sees the pods' mounts).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + h.Path, "--", name}, args...)...)
}

// Do runs f on an OS thread that has joined the host's namespace. Sockets
// made in f stay in that namespace after f returns.
func (h *Host) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is never unlocked: it dies with the goroutine, so no
		// other goroutine ever runs in the host's namespace by accident.
		fd, err := unix.Open(h.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", h.Path, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// DialContext dials from inside the host.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Forward listens on the host's loopback and forwards each connection to
// target, dialled from the test's own namespace (e.g. a test apiserver on
// 127.0.0.1). It returns the host-side address.
func (h *Host) Forward(t testing.TB, target string) string {
	t.Helper()
	var ln net.Listener
	if err := h.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatalf("listening in %s: %v", h.Name, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
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
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return ln.Addr().String()
}

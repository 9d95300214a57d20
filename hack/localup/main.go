// Command localup holds the small helpers of hack/local-up.sh that a shell
// does badly:
//
//	localup forward --listen 127.0.0.1:6443 --netns /run/netns/kubeish-cp --target 10.250.0.1:6443
//	localup kubeconfig set --from admin.kubeconfig [--name kubeish] [--kubeconfig FILE]
//	localup kubeconfig remove [--name kubeish] [--kubeconfig FILE]
//	localup teardown [--cgroup-parent /kubeish] [--containerd-address SOCK] [--unmount DIR]...
//
// forward accepts on a loopback address of the root network namespace and
// dials the target from inside another namespace, so the user reaches a
// control plane that lives on a simulated host. kubeconfig merges a cluster,
// user and context into a kubeconfig file without touching its other
// entries (as kind does), or removes them again.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kubeish/kubeish/pkg/hostclean"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "localup:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: localup forward|kubeconfig ...")
	}
	switch args[0] {
	case "forward":
		fs := flag.NewFlagSet("forward", flag.ExitOnError)
		listen := fs.String("listen", "127.0.0.1:6443", "address to accept on, in this network namespace")
		netns := fs.String("netns", "/run/netns/kubeish-cp", "network namespace to dial from")
		target := fs.String("target", "10.250.0.1:6443", "address to dial inside --netns")
		_ = fs.Parse(args[1:])
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return forward(ctx, *listen, *netns, *target)
	case "kubeconfig":
		if len(args) < 2 {
			return errors.New("usage: localup kubeconfig set|remove [flags]")
		}
		fs := flag.NewFlagSet("kubeconfig", flag.ExitOnError)
		name := fs.String("name", "kubeish", "name of the cluster, user and context")
		from := fs.String("from", "", "kubeconfig whose current cluster and user are merged in (set only)")
		path := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG's first file, then ~/.kube/config)")
		_ = fs.Parse(args[2:])
		switch args[1] {
		case "set":
			return setContext(*path, *name, *from)
		case "remove":
			return removeContext(*path, *name)
		}
		return fmt.Errorf("unknown kubeconfig command %q", args[1])
	case "teardown":
		fs := flag.NewFlagSet("teardown", flag.ExitOnError)
		cgroup := fs.String("cgroup-parent", "/kubeish", "cgroup parent of every node's pods: its processes are killed and its cgroups removed")
		socket := fs.String("containerd-address", "/run/kubeish/containerd.sock", "socket of the cluster's containerd: shims naming it are killed")
		var dirs multiFlag
		fs.Var(&dirs, "unmount", "folder whose mount points are unmounted (repeatable)")
		_ = fs.Parse(args[1:])
		teardown(*cgroup, *socket, dirs)
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// teardown removes what the cluster's containers leave once containerd and
// the node agents are stopped: the containers' processes (by the cgroup
// tree they run in), the shims of this cluster's containerd (they name its
// socket), the cgroups, and the rootfs and netns mounts under the data
// folders. It acts only on what the local cluster made.
func teardown(cgroupParent, socket string, dirs []string) {
	hostclean.KillCgroupTree(cgroupParent)
	for _, pid := range hostclean.PidsWithArg(socket) {
		if pid != os.Getpid() { // our own command line names the socket too
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	hostclean.RemoveCgroupTree(cgroupParent)
	for _, d := range dirs {
		hostclean.UnmountUnder(d)
	}
}

type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint(*m) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// forward serves until ctx ends. Dialing happens on one OS thread that
// stays in the target namespace: a socket belongs to the namespace it was
// created in, whatever thread uses it afterwards.
func forward(ctx context.Context, listen, netns, target string) error {
	dial, err := dialerIn(netns)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); l.Close() }()
	fmt.Fprintf(os.Stderr, "forwarding %s to %s in %s\n", listen, target, netns)
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			up, err := dial(target)
			if err != nil {
				fmt.Fprintf(os.Stderr, "dial %s: %v\n", target, err)
				return
			}
			defer up.Close()
			pipe(c, up)
		}()
	}
}

// pipe copies both ways until either side is done.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
}

// dialerIn returns a dial function whose sockets are made in the network
// namespace at path.
func dialerIn(path string) (func(addr string) (net.Conn, error), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace: %w", err)
	}
	// Each request asks the namespace thread for one new socket.
	reqs := make(chan chan result)
	started := make(chan error, 1)
	go func() {
		// This thread never leaves the namespace, and is never reused by
		// other goroutines: it stays locked until the process exits.
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			started <- fmt.Errorf("entering %s: %w", path, err)
			return
		}
		f.Close()
		started <- nil
		for reply := range reqs {
			// The socket is created here, in the namespace; connecting
			// may finish on any thread.
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			reply <- result{fd: fd, err: err}
		}
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return func(addr string) (net.Conn, error) {
		tcp, err := net.ResolveTCPAddr("tcp4", addr)
		if err != nil {
			return nil, err
		}
		reply := make(chan result, 1)
		reqs <- reply
		res := <-reply
		if res.err != nil {
			return nil, res.err
		}
		sa := &unix.SockaddrInet4{Port: tcp.Port}
		copy(sa.Addr[:], tcp.IP.To4())
		if err := unix.Connect(res.fd, sa); err != nil {
			unix.Close(res.fd)
			return nil, err
		}
		file := os.NewFile(uintptr(res.fd), "upstream")
		defer file.Close()
		return net.FileConn(file)
	}, nil
}

type result struct {
	fd  int
	err error
}

func loadingRules(path string) *clientcmd.ClientConfigLoadingRules {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	return rules
}

// setContext adds (or replaces) the named cluster, user and context and
// makes the context current, leaving every other entry as it was.
func setContext(path, name, from string) error {
	src, err := clientcmd.LoadFromFile(from)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	ctx := src.Contexts[src.CurrentContext]
	if ctx == nil || src.Clusters[ctx.Cluster] == nil || src.AuthInfos[ctx.AuthInfo] == nil {
		return fmt.Errorf("--from %s: its current context names no cluster and user", from)
	}
	rules := loadingRules(path)
	cfg, err := rules.GetStartingConfig()
	if err != nil {
		return err
	}
	// Copies without their LocationOfOrigin (the --from file), or
	// ModifyConfig writes them back there instead of into path.
	cluster, user := *src.Clusters[ctx.Cluster], *src.AuthInfos[ctx.AuthInfo]
	cluster.LocationOfOrigin, user.LocationOfOrigin = "", ""
	cfg.Clusters[name] = &cluster
	cfg.AuthInfos[name] = &user
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "default"}
	cfg.CurrentContext = name
	return clientcmd.ModifyConfig(rules, *cfg, false)
}

// removeContext removes what setContext added; the current context is
// cleared only when it was ours.
func removeContext(path, name string) error {
	rules := loadingRules(path)
	cfg, err := rules.GetStartingConfig()
	if err != nil {
		return err
	}
	delete(cfg.Clusters, name)
	delete(cfg.AuthInfos, name)
	delete(cfg.Contexts, name)
	if cfg.CurrentContext == name {
		cfg.CurrentContext = ""
	}
	return clientcmd.ModifyConfig(rules, *cfg, false)
}

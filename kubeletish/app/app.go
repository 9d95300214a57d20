// Package app wires the node agent: flags → Options → Run.
package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"

	"github.com/kubeish/kubeish/kubeletish/dns"
	"github.com/kubeish/kubeish/kubeletish/network"
	"github.com/kubeish/kubeish/kubeletish/node"
	"github.com/kubeish/kubeish/kubeletish/pod"
	"github.com/kubeish/kubeish/kubeletish/proxy"
	"github.com/kubeish/kubeish/kubeletish/routes"
	"github.com/kubeish/kubeish/kubeletish/runtime"
	"github.com/kubeish/kubeish/kubeletish/server"
	"github.com/kubeish/kubeish/kubeletish/stats"
	"github.com/kubeish/kubeish/pkg/client"
	"github.com/kubeish/kubeish/pkg/logging"
	"github.com/kubeish/kubeish/pkg/metrics"
	"github.com/kubeish/kubeish/pkg/pki"
)

// Version is reported as the node's kubeletVersion.
const Version = "v1.31.0-kubeish"

// Options are kubeletish's flags.
type Options struct {
	Client  *client.Options
	Logging logging.Options

	NodeName string
	NodeIP   string
	// Profiling serves Go's /debug/pprof on the agent's port.
	Profiling bool
	Address   string
	Port      int
	// The agent's API (--port) is TLS with client certificates, or, with
	// InsecureServing, plain HTTP that anyone may call (development).
	TLSCertFile         string
	TLSPrivateKeyFile   string
	ClientCAFile        string
	AuthorizedUsers     []string
	MetricsAnonymous    bool
	InsecureServing     bool
	ContainerdAddress   string
	ContainerdNamespace string
	RootDir             string
	CNIBinDir           string
	PodCIDR             string
	ClusterCIDR         string
	ServiceCIDR         string
	CgroupParent        string
	InsecureRegistries  []string
	NodeLabels          map[string]string
	MaxPods             int64
	CPU, Memory         string
	ReservedCPU         string
	ReservedMemory      string
	// The pressure conditions' thresholds (the kubelet's hard eviction
	// signals; kubeish reports pressure, it does not evict).
	EvictionMemoryAvailable      string
	EvictionDiskAvailablePercent float64
	LeaseInterval                time.Duration
	RelistPeriod                 time.Duration

	// The node's network services (DESIGN.md "Node agent": service proxy,
	// host-gw routes, node-local DNS).
	Proxy              bool
	ProxyMinSyncPeriod time.Duration
	ProxySyncPeriod    time.Duration
	ProxyFullSync      time.Duration
	Routes             bool
	DNS                bool
	ClusterDomain      string
	DNSUpstream        string
	// Cleanup removes the proxy's iptables rules and the agent's routes,
	// then exits (kubeletish --cleanup).
	Cleanup bool
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{
		Client:                       client.NewOptions("kubeletish"),
		Address:                      "0.0.0.0",
		Port:                         10250,
		AuthorizedUsers:              []string{pki.APIServerKubeletClientUser},
		ContainerdAddress:            "/run/containerd/containerd.sock",
		ContainerdNamespace:          "kubeish",
		RootDir:                      "/var/lib/kubeletish",
		CNIBinDir:                    "/usr/lib/cni",
		ClusterCIDR:                  "10.244.0.0/16",
		ServiceCIDR:                  "10.96.0.0/16",
		MaxPods:                      110,
		ReservedCPU:                  "0",
		ReservedMemory:               "0",
		EvictionMemoryAvailable:      "100Mi",
		EvictionDiskAvailablePercent: 10,
		LeaseInterval:                5 * time.Second,
		RelistPeriod:                 time.Second,
		Proxy:                        true,
		ProxyMinSyncPeriod:           100 * time.Millisecond,
		ProxySyncPeriod:              30 * time.Second,
		ProxyFullSync:                time.Hour,
		Routes:                       true,
		DNS:                          true,
		ClusterDomain:                "cluster.local",
	}
}

// AddFlags registers the flags on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.Client.AddFlags(fs)
	o.Logging.AddFlags(fs)
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "name of this node (default: the hostname)")
	fs.BoolVar(&o.Profiling, "profiling", o.Profiling, "serve Go's /debug/pprof on the agent's port")
	fs.StringVar(&o.NodeIP, "node-ip", o.NodeIP, "address published as the node's InternalIP (required)")
	fs.StringVar(&o.Address, "address", o.Address, "address the logs/metrics/healthz server listens on")
	fs.IntVar(&o.Port, "port", o.Port, "port of the logs/metrics/healthz server (0: any free port)")
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", o.TLSCertFile, "serving certificate (PEM) of --port; re-read when it changes")
	fs.StringVar(&o.TLSPrivateKeyFile, "tls-private-key-file", o.TLSPrivateKeyFile, "private key (PEM) of --tls-cert-file")
	fs.StringVar(&o.ClientCAFile, "client-ca-file", o.ClientCAFile, "CA bundle (PEM) that signs callers' client certificates; re-read when it changes")
	fs.StringSliceVar(&o.AuthorizedUsers, "authorized-users", o.AuthorizedUsers, "client certificate common names allowed the logs, stats, metrics and pprof (members of system:masters are too)")
	fs.BoolVar(&o.MetricsAnonymous, "metrics-anonymous", o.MetricsAnonymous, "serve /metrics and /metrics/cadvisor to callers without a client certificate (e.g. Prometheus)")
	fs.BoolVar(&o.InsecureServing, "insecure-serving", o.InsecureServing, "development only: serve --port over plain HTTP to anyone, without TLS or authentication")
	fs.StringVar(&o.ContainerdAddress, "containerd-address", o.ContainerdAddress, "containerd's gRPC socket")
	fs.StringVar(&o.ContainerdNamespace, "containerd-namespace", o.ContainerdNamespace, "containerd namespace of this node's containers (one per node when nodes share a containerd)")
	fs.StringVar(&o.RootDir, "root-dir", o.RootDir, "state folder of this node: sandboxes, volumes, logs, CNI config")
	fs.StringVar(&o.CNIBinDir, "cni-bin-dir", o.CNIBinDir, "folder of the CNI plugins (Debian: /usr/lib/cni)")
	fs.StringVar(&o.PodCIDR, "pod-cidr", o.PodCIDR, "pod CIDR of this node when no controller allocates one (default: wait for spec.podCIDR)")
	fs.StringVar(&o.ClusterCIDR, "cluster-cidr", o.ClusterCIDR, "CIDR of all pods in the cluster")
	fs.StringVar(&o.ServiceCIDR, "service-cluster-ip-range", o.ServiceCIDR, "CIDR of the Services' cluster IPs")
	fs.StringVar(&o.CgroupParent, "cgroup-parent", o.CgroupParent, "cgroup (cgroupfs) of all pods (default /kubeish/<node-name>)")
	fs.StringSliceVar(&o.InsecureRegistries, "insecure-registries", o.InsecureRegistries, "registries (host:port) pulled from over plain HTTP")
	fs.StringToStringVar(&o.NodeLabels, "node-labels", o.NodeLabels, "labels of the Node, key=value,…")
	fs.Int64Var(&o.MaxPods, "max-pods", o.MaxPods, "pods this node runs at most")
	fs.StringVar(&o.CPU, "cpu", o.CPU, "cpu capacity to report (default: the machine's cores)")
	fs.StringVar(&o.Memory, "memory", o.Memory, "memory capacity to report (default: the machine's memory)")
	fs.StringVar(&o.ReservedCPU, "reserved-cpu", o.ReservedCPU, "cpu kept from pods (capacity - reserved = allocatable)")
	fs.StringVar(&o.ReservedMemory, "reserved-memory", o.ReservedMemory, "memory kept from pods")
	fs.StringVar(&o.EvictionMemoryAvailable, "pressure-memory-available", o.EvictionMemoryAvailable, "the node reports MemoryPressure when less memory than this is available (MemAvailable)")
	fs.Float64Var(&o.EvictionDiskAvailablePercent, "pressure-disk-available-percent", o.EvictionDiskAvailablePercent, "the node reports DiskPressure when less than this share (%) of --root-dir's filesystem is free")
	fs.DurationVar(&o.LeaseInterval, "lease-interval", o.LeaseInterval, "how often the node's Lease is renewed")
	fs.DurationVar(&o.RelistPeriod, "relist-period", o.RelistPeriod, "how often containerd is listed to notice container changes")
	fs.BoolVar(&o.Proxy, "proxy", o.Proxy, "run the service proxy: iptables rules for ClusterIPs and NodePorts")
	fs.DurationVar(&o.ProxyMinSyncPeriod, "proxy-min-sync-period", o.ProxyMinSyncPeriod, "least time between two proxy rule syncs; changes within it are folded into one")
	fs.DurationVar(&o.ProxySyncPeriod, "proxy-sync-period", o.ProxySyncPeriod, "period of proxy resyncs: re-render the rules, write the chains that changed, check the jumps from the built-in chains")
	fs.DurationVar(&o.ProxyFullSync, "proxy-full-sync-period", o.ProxyFullSync, "period of full rewrites of the proxy's rules (also at start and after a failed sync)")
	fs.BoolVar(&o.Routes, "routes", o.Routes, "keep routes to the other nodes' pod CIDRs via their InternalIPs (host-gw) and to the service range")
	fs.BoolVar(&o.DNS, "dns", o.DNS, "serve cluster DNS on the node's pod bridge address, port 53, and name it in pods' resolv.conf")
	fs.StringVar(&o.ClusterDomain, "cluster-domain", o.ClusterDomain, "the cluster's DNS domain")
	fs.StringVar(&o.DNSUpstream, "dns-upstream", o.DNSUpstream, "host:port that answers names outside the cluster domain (default: none, they get NXDOMAIN)")
	fs.BoolVar(&o.Cleanup, "cleanup", o.Cleanup, "remove the proxy's iptables rules and the agent's routes, then exit")
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	if o.NodeName == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			errs = append(errs, errors.New("--node-name is required: the hostname is unknown"))
		}
		o.NodeName = strings.ToLower(h)
	}
	if net.ParseIP(o.NodeIP) == nil {
		errs = append(errs, fmt.Errorf("--node-ip %q: an IP address is required (it is never guessed)", o.NodeIP))
	}
	errs = append(errs, o.validateServing())
	if o.PodCIDR != "" {
		if _, _, err := net.ParseCIDR(o.PodCIDR); err != nil {
			errs = append(errs, fmt.Errorf("--pod-cidr: %w", err))
		}
	}
	if o.EvictionDiskAvailablePercent < 0 || o.EvictionDiskAvailablePercent > 100 {
		errs = append(errs, fmt.Errorf("--pressure-disk-available-percent %v: want 0 to 100", o.EvictionDiskAvailablePercent))
	}
	for _, q := range []struct{ name, v string }{{"cpu", o.CPU}, {"memory", o.Memory}, {"reserved-cpu", o.ReservedCPU}, {"reserved-memory", o.ReservedMemory},
		{"pressure-memory-available", o.EvictionMemoryAvailable}} {
		if q.v != "" {
			if _, err := resource.ParseQuantity(q.v); err != nil {
				errs = append(errs, fmt.Errorf("--%s: %w", q.name, err))
			}
		}
	}
	if o.LeaseInterval <= 0 {
		errs = append(errs, errors.New("--lease-interval must be positive"))
	}
	if o.ProxyMinSyncPeriod < 0 || o.ProxySyncPeriod <= 0 || o.ProxyFullSync <= 0 {
		errs = append(errs, errors.New("--proxy-min-sync-period must not be negative, --proxy-sync-period and --proxy-full-sync-period must be positive"))
	}
	for _, c := range []struct{ name, v string }{{"cluster-cidr", o.ClusterCIDR}, {"service-cluster-ip-range", o.ServiceCIDR}} {
		if _, _, err := net.ParseCIDR(c.v); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", c.name, err))
		}
	}
	if o.DNSUpstream != "" {
		if _, _, err := net.SplitHostPort(o.DNSUpstream); err != nil {
			errs = append(errs, fmt.Errorf("--dns-upstream %q: want host:port: %w", o.DNSUpstream, err))
		}
	}
	return errors.Join(errs...)
}

// validateServing checks that the agent's API is either TLS with
// authentication or explicitly insecure.
func (o *Options) validateServing() error {
	tlsFlags := o.TLSCertFile != "" || o.TLSPrivateKeyFile != "" || o.ClientCAFile != ""
	switch {
	case o.InsecureServing && tlsFlags:
		return errors.New("--insecure-serving serves plain HTTP: drop it, or drop --tls-cert-file, --tls-private-key-file and --client-ca-file")
	case o.InsecureServing:
		return nil
	case o.TLSCertFile == "" || o.TLSPrivateKeyFile == "" || o.ClientCAFile == "":
		return errors.New("the agent's API (--port) needs --tls-cert-file, --tls-private-key-file and --client-ca-file " +
			"(or --insecure-serving, for development only: plain HTTP, no authentication)")
	case len(o.AuthorizedUsers) == 0:
		return errors.New("--authorized-users is empty: only system:masters could call the agent; name the apiserver's user (" + pki.APIServerKubeletClientUser + ")")
	}
	return nil
}

// serving returns how the agent's API serves: TLS whose callers WithAuth
// checks, or (--insecure-serving) plain HTTP. Reading the files here, before
// anything starts, makes a bad file fail the start.
func (o *Options) serving(log *zap.Logger) (metrics.ServeOptions, error) {
	if o.InsecureServing {
		if ip := net.ParseIP(o.Address); ip == nil || !ip.IsLoopback() {
			log.Warn("--insecure-serving: anyone who reaches the agent's port can read pod logs, stats and metrics", zap.String("address", o.Address))
		}
		return metrics.ServeOptions{}, nil
	}
	cfg, err := server.TLSConfig(o.TLSCertFile, o.TLSPrivateKeyFile)
	if err != nil {
		return metrics.ServeOptions{}, err
	}
	cas, err := server.ClientCAFile(o.ClientCAFile)
	if err != nil {
		return metrics.ServeOptions{}, err
	}
	auth := server.AuthConfig{NodeName: o.NodeName, ClientCAs: cas, AuthorizedUsers: o.AuthorizedUsers,
		MetricsAnonymous: o.MetricsAnonymous, Log: log.Named("auth")}
	return metrics.ServeOptions{TLS: cfg, Wrap: func(h http.Handler) http.Handler { return server.WithAuth(h, auth) }}, nil
}

func machineMemory() resource.Quantity {
	f, err := os.Open("/proc/meminfo")
	if err == nil {
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if v, ok := strings.CutPrefix(s.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				return *resource.NewQuantity(kb*1024, resource.BinarySI)
			}
		}
	}
	return resource.MustParse("1Gi")
}

// Run runs the agent until ctx ends.
func (o *Options) Run(ctx context.Context) error {
	log, err := o.Logging.Build()
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log = log.Named("kubeletish").With(zap.String("node", o.NodeName))
	if o.CgroupParent == "" {
		o.CgroupParent = "/kubeish/" + o.NodeName
	}
	serving, err := o.serving(log)
	if err != nil {
		return err
	}
	_, cs, err := o.Client.Clientset()
	if err != nil {
		return err
	}
	ctr, err := runtime.Dial(o.ContainerdAddress, o.ContainerdNamespace)
	if err != nil {
		return fmt.Errorf("containerd at %s: %w", o.ContainerdAddress, err)
	}
	defer ctr.Close()
	rootDir, err := filepath.Abs(o.RootDir)
	if err != nil {
		return err
	}
	netm, err := network.New(network.Config{RootDir: filepath.Join(rootDir, "network"), BinDirs: []string{o.CNIBinDir}, Log: log.Named("network")})
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	rt := runtime.NewContainerd(runtime.ContainerdConfig{Client: ctr, Namespace: o.ContainerdNamespace, Network: netm,
		LogDriver: self, InsecureRegistries: o.InsecureRegistries, Log: log.Named("runtime")})
	version, err := rt.Version(ctx)
	if err != nil {
		return fmt.Errorf("containerd at %s: %w", o.ContainerdAddress, err)
	}

	// The proxy, routes and DNS share one informer factory (Services,
	// EndpointSlices, Nodes: one watch each for the whole agent); each
	// registers what it needs in New, and it starts once all have.
	ms := metrics.NewServer()
	if o.Profiling {
		ms.EnableProfiling()
	}
	factory := informers.NewSharedInformerFactory(cs, 0)
	var services []func(context.Context) error
	if o.Proxy {
		p, err := proxy.New(proxy.Config{NodeName: o.NodeName, NodeIP: o.NodeIP, ClusterCIDR: o.ClusterCIDR, ServiceCIDR: o.ServiceCIDR,
			MinSyncPeriod: o.ProxyMinSyncPeriod, SyncPeriod: o.ProxySyncPeriod, FullSyncPeriod: o.ProxyFullSync, Informers: factory, Log: log.Named("proxy"), Registry: ms.Registry})
		if err != nil {
			return fmt.Errorf("service proxy (--proxy=false turns it off): %w", err)
		}
		services = append(services, p.Run)
	}
	if o.Routes {
		r, err := routes.New(routes.Config{NodeName: o.NodeName, NodeIP: o.NodeIP, ServiceCIDR: o.ServiceCIDR,
			Informers: factory, Log: log.Named("routes"), Registry: ms.Registry})
		if err != nil {
			return fmt.Errorf("routes (--routes=false turns them off): %w", err)
		}
		ms.AddHealthz("routes", r.Healthz)
		services = append(services, r.Run)
	}

	// Serve first: the Node publishes the port, and a node without a pod
	// CIDR yet still answers /healthz and /metrics.
	addr, err := ms.ServeWith(ctx, net.JoinHostPort(o.Address, strconv.Itoa(o.Port)), log, serving)
	if err != nil {
		return err
	}
	port := int32(addr.(*net.TCPAddr).Port)
	log.Info("serving", zap.Stringer("address", addr), zap.Bool("tls", serving.TLS != nil))

	cpu := resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI)
	if o.CPU != "" {
		q := resource.MustParse(o.CPU)
		cpu = &q
	}
	mem := machineMemory()
	if o.Memory != "" {
		mem = resource.MustParse(o.Memory)
	}
	agent := node.New(node.Config{Name: o.NodeName, IP: o.NodeIP, Port: port, Labels: o.NodeLabels, PodCIDR: o.PodCIDR,
		CPU: *cpu, Memory: mem, MaxPods: o.MaxPods, ReservedCPU: resource.MustParse(o.ReservedCPU), ReservedMemory: resource.MustParse(o.ReservedMemory),
		RuntimeVersion: version, KubeletVersion: Version, LeaseInterval: o.LeaseInterval, Client: cs, Log: log.Named("node"),
		Usage:      func() (node.Usage, error) { return node.ReadUsage(rootDir) },
		Thresholds: &node.Thresholds{MemoryAvailable: resource.MustParse(o.EvictionMemoryAvailable), DiskAvailablePercent: o.EvictionDiskAvailablePercent},
		Ready: func() error {
			if netm.PodCIDR() == "" {
				return errors.New("network not ready: no pod CIDR")
			}
			return nil
		}})
	// Everything below runs in one group: the first part to fail ends
	// the others and the agent exits with its error (a supervisor restarts
	// it), rather than living on with a node that looks Ready while, say,
	// pods are no longer synced. The informers stop with the group.
	g, gctx := errgroup.WithContext(ctx)
	defer factory.Shutdown()
	run := func(f func(context.Context) error) { g.Go(func() error { return f(gctx) }) }

	if err := wait.PollUntilContextCancel(gctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		if _, err := agent.Register(ctx); err != nil {
			log.Warn("registering node", zap.Error(err))
			return false, nil
		}
		return true, nil
	}); err != nil {
		return nil // ctx ended
	}
	run(func(ctx context.Context) error { agent.Run(ctx); return nil })
	// The proxy and routes need no pod CIDR: they start now.
	factory.Start(gctx.Done())
	for _, f := range services {
		run(f)
	}

	// Pods need the node's pod CIDR (their network, and the DNS address:
	// the bridge's gateway address). The controller allocates it, or
	// --pod-cidr gives it.
	if err := wait.PollUntilContextCancel(gctx, time.Second, true, func(ctx context.Context) (bool, error) {
		cidr := o.PodCIDR
		if cidr == "" {
			nd, err := cs.CoreV1().Nodes().Get(ctx, o.NodeName, metav1.GetOptions{})
			if err != nil {
				log.Warn("reading own node", zap.Error(err))
				return false, nil
			}
			cidr = nd.Spec.PodCIDR
		}
		if cidr == "" {
			log.Debug("waiting for a pod CIDR")
			return false, nil
		}
		if err := netm.SetPodCIDR(cidr); err != nil {
			log.Warn("setting up the pod network; retrying", zap.String("podCIDR", cidr), zap.Error(err))
			return false, nil
		}
		return true, nil
	}); err != nil {
		return quiet(g.Wait()) // ctx ended, or a service failed meanwhile
	}
	log.Info("pod network ready", zap.String("podCIDR", netm.PodCIDR()), zap.Stringer("gateway", netm.GatewayIP()))

	var clusterDNS string
	if o.DNS {
		d, err := dns.New(dns.Config{Addr: net.JoinHostPort(netm.GatewayIP().String(), "53"), Domain: o.ClusterDomain,
			Upstream: o.DNSUpstream, ClusterCIDR: o.ClusterCIDR, NodeIP: o.NodeIP,
			Informers: factory, Log: log.Named("dns"), Registry: ms.Registry})
		if err != nil {
			return fmt.Errorf("cluster DNS (--dns=false turns it off): %w", err)
		}
		ms.AddHealthz("dns", d.Healthz)
		clusterDNS = netm.GatewayIP().String()
		factory.Start(gctx.Done()) // the informers DNS asked for
		run(d.Run)
	}

	pm := pod.New(pod.Config{NodeName: o.NodeName, HostIP: o.NodeIP, Client: cs, Runtime: rt, Log: log.Named("pod"),
		RootDir: rootDir, CgroupParent: o.CgroupParent, RelistPeriod: o.RelistPeriod, Metrics: pod.NewMetrics(ms.Registry),
		ClusterDNS: clusterDNS, ClusterDomain: o.ClusterDomain})
	st := stats.New(stats.Config{NodeName: o.NodeName, CgroupParent: o.CgroupParent, Pods: pm, Log: log.Named("stats")})
	server.Install(ms, pm, st)
	ms.AddHealthz("pods", func() error {
		if !pm.Synced() {
			return errors.New("pod informer not synced")
		}
		return nil
	})
	run(pm.Run)
	return quiet(g.Wait())
}

// quiet is err, except that the end of the agent's context is a normal
// stop, not a failure.
func quiet(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// CleanupNode removes what the agent programs into the node's network
// namespace outside of pods: the proxy's iptables chains and the routes
// it owns (kubeletish --cleanup).
func (o *Options) CleanupNode() error {
	log, err := o.Logging.Build()
	if err != nil {
		return err
	}
	log = log.Named("kubeletish")
	return errors.Join(proxy.Cleanup(log.Named("proxy")), routes.Cleanup(log.Named("routes")))
}

// ImportImages imports image archives into the node's containerd.
func (o *Options) ImportImages(ctx context.Context, files []string) error {
	ctr, err := runtime.Dial(o.ContainerdAddress, o.ContainerdNamespace)
	if err != nil {
		return err
	}
	defer ctr.Close()
	for _, f := range files {
		names, err := runtime.ImportFile(ctx, ctr, o.ContainerdNamespace, f)
		if err != nil {
			return err
		}
		for _, n := range names {
			fmt.Println("imported", n)
		}
	}
	return nil
}

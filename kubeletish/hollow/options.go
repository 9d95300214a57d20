package hollow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kubeish/kubeish/pkg/client"
	"github.com/kubeish/kubeish/pkg/logging"
	"github.com/kubeish/kubeish/pkg/metrics"
)

// Options are the flags of `kubeletish hollow`.
type Options struct {
	Client  *client.Options
	Logging logging.Options

	Nodes           int
	NamePrefix      string
	NodeIP          string
	Address         string
	Profiling       bool
	Port            int
	PodCIDRRange    string
	PodCIDRMaskSize int
	CPU, Memory     string
	MaxPods         int64
	LeaseInterval   time.Duration
	RelistPeriod    time.Duration
	ResyncPeriod    time.Duration
	RootDir         string
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	o := &Options{
		Client:          client.NewOptions("kubeletish-hollow"),
		Nodes:           10,
		NamePrefix:      "hollow-",
		NodeIP:          "127.0.0.1",
		Address:         "127.0.0.1",
		PodCIDRMaskSize: 24,
		CPU:             "4",
		Memory:          "16Gi",
		MaxPods:         110,
		LeaseInterval:   10 * time.Second,
		RelistPeriod:    10 * time.Second,
		ResyncPeriod:    time.Minute,
	}
	// One client serves every node of the process; the real agents would
	// each have their own limit, so one shared limit would throttle the
	// fleet as if it were one node.
	o.Client.QPS = -1
	return o
}

// AddFlags registers the flags on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.Client.AddFlags(fs)
	o.Logging.AddFlags(fs)
	fs.IntVar(&o.Nodes, "nodes", o.Nodes, "how many hollow nodes this process runs")
	fs.StringVar(&o.NamePrefix, "name-prefix", o.NamePrefix, "node names are this prefix and 0, 1, …")
	fs.StringVar(&o.NodeIP, "node-ip", o.NodeIP, "InternalIP of every hollow node (keep it a loopback address: the apiserver sends log and stats requests there)")
	fs.StringVar(&o.Address, "address", o.Address, "address of the healthz/metrics server (plain HTTP, no authentication, unlike the real agent's: keep it on loopback)")
	fs.BoolVar(&o.Profiling, "profiling", o.Profiling, "serve Go's /debug/pprof on --address:--port")
	fs.IntVar(&o.Port, "port", o.Port, "port of the healthz/metrics server, published as every node's kubelet port (0: any free port)")
	fs.StringVar(&o.PodCIDRRange, "pod-cidr-range", o.PodCIDRRange, "give node i the i-th --pod-cidr-mask-size subnet of this range at registration (default: wait for the controller's allocation, spec.podCIDR)")
	fs.IntVar(&o.PodCIDRMaskSize, "pod-cidr-mask-size", o.PodCIDRMaskSize, "prefix length of each node's pod CIDR with --pod-cidr-range")
	fs.StringVar(&o.CPU, "cpu", o.CPU, "cpu capacity of each node")
	fs.StringVar(&o.Memory, "memory", o.Memory, "memory capacity of each node")
	fs.Int64Var(&o.MaxPods, "max-pods", o.MaxPods, "pods each node runs at most")
	fs.DurationVar(&o.LeaseInterval, "lease-interval", o.LeaseInterval, "how often each node renews its Lease (the real agent: 5s; keep the controller's --node-monitor-grace-period well above it)")
	fs.DurationVar(&o.RelistPeriod, "relist-period", o.RelistPeriod, "how often each node lists its hollow containers")
	fs.DurationVar(&o.ResyncPeriod, "resync-period", o.ResyncPeriod, "how often each node syncs all its pods anyway")
	fs.StringVar(&o.RootDir, "root-dir", o.RootDir, "folder of the nodes' pod files (default: a temporary folder, removed at exit)")
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	if o.Nodes < 1 {
		errs = append(errs, errors.New("--nodes must be at least 1"))
	}
	if net.ParseIP(o.NodeIP) == nil {
		errs = append(errs, fmt.Errorf("--node-ip %q: an IP address is required", o.NodeIP))
	}
	if o.PodCIDRRange != "" {
		if _, err := subnets(o.PodCIDRRange, o.PodCIDRMaskSize, o.Nodes); err != nil {
			errs = append(errs, fmt.Errorf("--pod-cidr-range: %w", err))
		}
	}
	for _, q := range []struct{ name, v string }{{"cpu", o.CPU}, {"memory", o.Memory}} {
		if _, err := resource.ParseQuantity(q.v); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", q.name, err))
		}
	}
	if o.LeaseInterval <= 0 || o.RelistPeriod <= 0 || o.ResyncPeriod <= 0 {
		errs = append(errs, errors.New("--lease-interval, --relist-period and --resync-period must be positive"))
	}
	return errors.Join(errs...)
}

// Run runs the hollow nodes until ctx ends.
func (o *Options) Run(ctx context.Context) error {
	log, err := o.Logging.Build()
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log = log.Named("hollow")
	_, cs, err := o.Client.Clientset()
	if err != nil {
		return err
	}
	root, cleanup, err := MakeRootDir(o.RootDir)
	if err != nil {
		return err
	}
	defer cleanup()
	ms := metrics.NewServer()
	if o.Profiling {
		ms.EnableProfiling()
	}
	addr, err := ms.Serve(ctx, net.JoinHostPort(o.Address, strconv.Itoa(o.Port)), log)
	if err != nil {
		return err
	}
	log.Info("serving", zap.Stringer("address", addr))
	r, err := New(Config{Nodes: o.Nodes, NamePrefix: o.NamePrefix, IP: o.NodeIP, Port: int32(addr.(*net.TCPAddr).Port),
		PodCIDRRange: o.PodCIDRRange, PodCIDRMaskSize: o.PodCIDRMaskSize,
		CPU: resource.MustParse(o.CPU), Memory: resource.MustParse(o.Memory), MaxPods: o.MaxPods,
		LeaseInterval: o.LeaseInterval, RelistPeriod: o.RelistPeriod, ResyncPeriod: o.ResyncPeriod,
		RootDir: root, Client: cs, Log: log})
	if err != nil {
		return err
	}
	ms.AddHealthz("registered", func() error {
		if n := r.Registered(); n < o.Nodes {
			return fmt.Errorf("%d of %d nodes registered", n, o.Nodes)
		}
		return nil
	})
	return r.Run(ctx)
}

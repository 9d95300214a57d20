// Package app wires the node agent: flags → Options → Run.
package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/kubeletish/network"
	"github.com/kubeish/kubeish/kubeletish/node"
	"github.com/kubeish/kubeish/kubeletish/pod"
	"github.com/kubeish/kubeish/kubeletish/runtime"
	"github.com/kubeish/kubeish/kubeletish/server"
	"github.com/kubeish/kubeish/pkg/client"
	"github.com/kubeish/kubeish/pkg/logging"
	"github.com/kubeish/kubeish/pkg/metrics"
)

// Version is reported as the node's kubeletVersion.
const Version = "v1.31.0-kubeish"

// Options are kubeletish's flags.
type Options struct {
	Client  *client.Options
	Logging logging.Options

	NodeName            string
	NodeIP              string
	Address             string
	Port                int
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
	LeaseInterval       time.Duration
	RelistPeriod        time.Duration
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	h, _ := os.Hostname()
	return &Options{
		Client:              client.NewOptions("kubeletish"),
		NodeName:            h,
		Address:             "0.0.0.0",
		Port:                10250,
		ContainerdAddress:   "/run/containerd/containerd.sock",
		ContainerdNamespace: "kubeish",
		RootDir:             "/var/lib/kubeletish",
		CNIBinDir:           "/usr/lib/cni",
		ClusterCIDR:         "10.244.0.0/16",
		ServiceCIDR:         "10.96.0.0/16",
		MaxPods:             110,
		ReservedCPU:         "0",
		ReservedMemory:      "0",
		LeaseInterval:       5 * time.Second,
		RelistPeriod:        time.Second,
	}
}

// AddFlags registers the flags on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.Client.AddFlags(fs)
	o.Logging.AddFlags(fs)
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "name of this node (default: the hostname)")
	fs.StringVar(&o.NodeIP, "node-ip", o.NodeIP, "address published as the node's InternalIP (required)")
	fs.StringVar(&o.Address, "address", o.Address, "address the logs/metrics/healthz server listens on")
	fs.IntVar(&o.Port, "port", o.Port, "port of the logs/metrics/healthz server (0: any free port)")
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
	fs.DurationVar(&o.LeaseInterval, "lease-interval", o.LeaseInterval, "how often the node's Lease is renewed")
	fs.DurationVar(&o.RelistPeriod, "relist-period", o.RelistPeriod, "how often containerd is listed to notice container changes")
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	if o.NodeName == "" {
		errs = append(errs, errors.New("--node-name is required"))
	}
	if net.ParseIP(o.NodeIP) == nil {
		errs = append(errs, fmt.Errorf("--node-ip %q: an IP address is required (it is never guessed)", o.NodeIP))
	}
	if o.PodCIDR != "" {
		if _, _, err := net.ParseCIDR(o.PodCIDR); err != nil {
			errs = append(errs, fmt.Errorf("--pod-cidr: %w", err))
		}
	}
	for _, q := range []struct{ name, v string }{{"cpu", o.CPU}, {"memory", o.Memory}, {"reserved-cpu", o.ReservedCPU}, {"reserved-memory", o.ReservedMemory}} {
		if q.v != "" {
			if _, err := resource.ParseQuantity(q.v); err != nil {
				errs = append(errs, fmt.Errorf("--%s: %w", q.name, err))
			}
		}
	}
	if o.LeaseInterval <= 0 {
		errs = append(errs, errors.New("--lease-interval must be positive"))
	}
	return errors.Join(errs...)
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

	ms := metrics.NewServer()
	pm := pod.New(pod.Config{NodeName: o.NodeName, HostIP: o.NodeIP, Client: cs, Runtime: rt, Log: log.Named("pod"),
		RootDir: rootDir, CgroupParent: o.CgroupParent, RelistPeriod: o.RelistPeriod, Metrics: pod.NewMetrics(ms.Registry)})
	server.Install(ms, pm)
	ms.AddHealthz("pods", func() error {
		if !pm.Synced() {
			return errors.New("pod informer not synced")
		}
		return nil
	})
	addr, err := ms.Serve(ctx, net.JoinHostPort(o.Address, strconv.Itoa(o.Port)), log)
	if err != nil {
		return err
	}
	port := int32(addr.(*net.TCPAddr).Port)
	log.Info("serving", zap.Stringer("address", addr))

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
		Ready: func() error {
			if netm.PodCIDR() == "" {
				return errors.New("network not ready: no pod CIDR")
			}
			return nil
		}})
	var n interface{ GetName() string }
	for {
		nd, err := agent.Register(ctx)
		if err == nil {
			n = nd
			if nd.Spec.PodCIDR != "" {
				if err := netm.SetPodCIDR(nd.Spec.PodCIDR); err != nil {
					return err
				}
			}
			break
		}
		log.Warn("registering node", zap.Error(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	_ = n
	go agent.Run(ctx)
	// Until the controller allocates a pod CIDR, look for it.
	go func() {
		for netm.PodCIDR() == "" {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			nd, err := cs.CoreV1().Nodes().Get(ctx, o.NodeName, metav1.GetOptions{})
			if err == nil && nd.Spec.PodCIDR != "" {
				if err := netm.SetPodCIDR(nd.Spec.PodCIDR); err != nil {
					log.Error("pod CIDR", zap.Error(err))
				}
			}
		}
	}()
	return pm.Run(ctx)
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

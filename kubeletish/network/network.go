// Package network gives each pod its sandbox: a network namespace that the
// agent creates and owns (there is no pause container), set up through CNI
// (bridge with the node's podCIDR and host-local IPAM, plus loopback). The
// sandbox's state is kept in a file under the agent's root dir, so that a
// restarted agent finds — adopts — the sandboxes it made.
package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Sandbox is one pod's network.
type Sandbox struct {
	PodUID       string    `json:"podUID"`
	PodNamespace string    `json:"podNamespace"`
	PodName      string    `json:"podName"`
	HostNetwork  bool      `json:"hostNetwork,omitempty"`
	NetNSPath    string    `json:"netnsPath"`
	IP           string    `json:"ip,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
	// ConfList is the CNI configuration the sandbox was set up with; the
	// teardown uses it, whatever the node's configuration is by then.
	ConfList json.RawMessage `json:"confList,omitempty"`
}

// Config configures a Manager.
type Config struct {
	// RootDir holds netns bind mounts, sandbox state, CNI cache and IPAM data.
	RootDir string
	// BinDirs are searched for CNI plugins (Debian: /usr/lib/cni).
	BinDirs []string
	// BridgeName is the node's pod bridge.
	BridgeName string
	// HostNetNSPath is the agent's own network namespace, which
	// hostNetwork pods join.
	HostNetNSPath string
	Log           *zap.Logger
}

// Manager creates and removes sandboxes.
type Manager struct {
	cfg Config
	cni *libcni.CNIConfig

	mu       sync.Mutex
	podCIDR  string
	gateway  net.IP
	confList []byte
}

// New returns a manager; SetPodCIDR must be called before pods with their
// own network can be set up.
func New(cfg Config) (*Manager, error) {
	if cfg.BridgeName == "" {
		cfg.BridgeName = "kubeish0"
	}
	if cfg.HostNetNSPath == "" {
		cfg.HostNetNSPath = fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	for _, d := range []string{"netns", "sandboxes", "cni/cache", "cni/networks"} {
		if err := os.MkdirAll(filepath.Join(cfg.RootDir, d), 0o750); err != nil {
			return nil, err
		}
	}
	return &Manager{cfg: cfg, cni: libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, filepath.Join(cfg.RootDir, "cni/cache"), nil)}, nil
}

// ConfList returns the CNI configuration for a pod CIDR: a bridge that is
// the pods' gateway (the CIDR's first address, see Gateway), host-local
// IPAM on the CIDR, masquerade for traffic leaving the pod CIDR.
func ConfList(bridge, podCIDR, ipamDir string) ([]byte, error) {
	gw, err := Gateway(podCIDR)
	if err != nil {
		return nil, err
	}
	c := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "kubeish",
		"plugins": []any{map[string]any{
			"type":      "bridge",
			"bridge":    bridge,
			"isGateway": true,
			// No NAT here: pods reach pods on other nodes with their own
			// addresses; the service proxy masquerades what leaves the
			// pod network (kubeletish/proxy).
			"ipMasq":      false,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type": "host-local",
				// The gateway is spelled out, the same host-local would pick,
				// so that it is certainly the address SetPodCIDR gave the
				// bridge: the plugin refuses a bridge with another address.
				"ranges":  [][]map[string]string{{{"subnet": podCIDR, "gateway": gw.IP.String()}}},
				"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				"dataDir": ipamDir,
			},
		}},
	}
	return json.MarshalIndent(c, "", "  ")
}

const loopbackConf = `{"cniVersion":"1.0.0","name":"lo","plugins":[{"type":"loopback"}]}`

// SetPodCIDR makes the node's bridge with the pods' gateway address of
// cidr (so that node services such as the DNS can listen on it before any
// pod exists) and writes the node's CNI configuration for cidr. Calling it
// again with the same cidr re-checks the bridge.
func (m *Manager) SetPodCIDR(cidr string) error {
	b, err := ConfList(m.cfg.BridgeName, cidr, filepath.Join(m.cfg.RootDir, "cni/networks"))
	if err != nil {
		return err
	}
	gw, err := Gateway(cidr)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ensureBridge(m.cfg.BridgeName, gw); err != nil {
		return err
	}
	if m.podCIDR == cidr {
		return nil
	}
	if err := os.WriteFile(filepath.Join(m.cfg.RootDir, "cni/10-kubeish.conflist"), b, 0o640); err != nil {
		return err
	}
	m.podCIDR, m.gateway, m.confList = cidr, gw.IP, b
	m.cfg.Log.Info("pod network configured", zap.String("podCIDR", cidr), zap.String("bridge", m.cfg.BridgeName), zap.Stringer("gateway", gw.IP))
	return nil
}

// GatewayIP returns the bridge's address, the pods' gateway (nil until
// SetPodCIDR succeeded). The caller must not modify it.
func (m *Manager) GatewayIP() net.IP { m.mu.Lock(); defer m.mu.Unlock(); return m.gateway }

// BridgeName returns the name of the node's pod bridge.
func (m *Manager) BridgeName() string { return m.cfg.BridgeName }

// PodCIDR returns the configured pod CIDR ("" before SetPodCIDR).
func (m *Manager) PodCIDR() string { m.mu.Lock(); defer m.mu.Unlock(); return m.podCIDR }

// ErrNoPodCIDR is returned while the node has no pod CIDR yet.
var ErrNoPodCIDR = errors.New("node has no pod CIDR yet")

func (m *Manager) statePath(uid string) string {
	return filepath.Join(m.cfg.RootDir, "sandboxes", uid+".json")
}

// Get returns the sandbox of a pod, or nil.
func (m *Manager) Get(uid string) (*Sandbox, error) {
	b, err := os.ReadFile(m.statePath(uid))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s Sandbox
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("sandbox state %s: %w", uid, err)
	}
	return &s, nil
}

// Setup makes the pod's sandbox, or returns the one it has.
func (m *Manager) Setup(ctx context.Context, uid, namespace, name string, hostNetwork bool) (*Sandbox, error) {
	if s, err := m.Get(uid); err != nil {
		return nil, err
	} else if s != nil && (s.HostNetwork || s.IP != "") {
		return s, nil
	} else if s != nil {
		// Half made (CNI ADD failed or the agent died during it): redo.
		if err := m.Teardown(ctx, uid); err != nil {
			return nil, err
		}
	}
	s := &Sandbox{PodUID: uid, PodNamespace: namespace, PodName: name, HostNetwork: hostNetwork, CreatedAt: time.Now().UTC()}
	if hostNetwork {
		s.NetNSPath = m.cfg.HostNetNSPath
		return s, m.save(s)
	}
	m.mu.Lock()
	conf := m.confList
	m.mu.Unlock()
	if conf == nil {
		return nil, ErrNoPodCIDR
	}
	s.ConfList = conf
	s.NetNSPath = filepath.Join(m.cfg.RootDir, "netns", uid)
	if err := NewNetNS(s.NetNSPath); err != nil {
		return nil, err
	}
	// Saved before CNI ADD, so that a crash in between still tears it down.
	if err := m.save(s); err != nil {
		_ = DeleteNetNS(s.NetNSPath)
		return nil, err
	}
	ip, err := m.add(ctx, s)
	if err != nil {
		if terr := m.Teardown(ctx, uid); terr != nil {
			m.cfg.Log.Warn("tearing down a failed sandbox", zap.String("pod", namespace+"/"+name), zap.Error(terr))
		}
		return nil, err
	}
	s.IP = ip
	return s, m.save(s)
}

func (m *Manager) save(s *Sandbox) error {
	b, _ := json.Marshal(s)
	tmp := m.statePath(s.PodUID) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, m.statePath(s.PodUID))
}

func (m *Manager) rt(s *Sandbox) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: s.PodUID,
		NetNS:       s.NetNSPath,
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", s.PodNamespace},
			{"K8S_POD_NAME", s.PodName},
			{"K8S_POD_UID", s.PodUID},
		},
	}
}

func (m *Manager) lists(s *Sandbox) (lo, pod *libcni.NetworkConfigList, err error) {
	lo, err = libcni.ConfListFromBytes([]byte(loopbackConf))
	if err != nil {
		return nil, nil, err
	}
	pod, err = libcni.ConfListFromBytes(s.ConfList)
	return lo, pod, err
}

func (m *Manager) add(ctx context.Context, s *Sandbox) (string, error) {
	lo, pod, err := m.lists(s)
	if err != nil {
		return "", err
	}
	rt := m.rt(s)
	if _, err := m.cni.AddNetworkList(ctx, lo, &libcni.RuntimeConf{ContainerID: s.PodUID, NetNS: s.NetNSPath, IfName: "lo"}); err != nil {
		return "", fmt.Errorf("CNI loopback: %w", err)
	}
	res, err := m.cni.AddNetworkList(ctx, pod, rt)
	if err != nil {
		return "", fmt.Errorf("CNI add: %w", err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return "", fmt.Errorf("CNI result: %w", err)
	}
	for _, ip := range r.IPs {
		if ip.Address.IP.To4() != nil {
			return ip.Address.IP.String(), nil
		}
	}
	if len(r.IPs) > 0 {
		return r.IPs[0].Address.IP.String(), nil
	}
	return "", fmt.Errorf("CNI gave the pod no address")
}

// Teardown releases the pod's address (CNI DEL) and removes its network
// namespace and state. It is idempotent.
func (m *Manager) Teardown(ctx context.Context, uid string) error {
	s, err := m.Get(uid)
	if err != nil || s == nil {
		if err == nil {
			return nil
		}
		// A corrupt state file: remove what can be found.
		_ = DeleteNetNS(filepath.Join(m.cfg.RootDir, "netns", uid))
		return os.Remove(m.statePath(uid))
	}
	if !s.HostNetwork && len(s.ConfList) > 0 {
		_, pod, err := m.lists(s)
		if err != nil {
			return err
		}
		rt := m.rt(s)
		if _, statErr := os.Stat(s.NetNSPath); statErr != nil {
			rt.NetNS = "" // plugins still release the IPAM address
		}
		if err := m.cni.DelNetworkList(ctx, pod, rt); err != nil {
			return fmt.Errorf("CNI del: %w", err)
		}
	}
	if !s.HostNetwork {
		if err := DeleteNetNS(s.NetNSPath); err != nil {
			return err
		}
	}
	if err := os.Remove(m.statePath(uid)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// List returns every sandbox the agent has state for, by pod UID.
func (m *Manager) List() ([]Sandbox, error) {
	ents, err := os.ReadDir(filepath.Join(m.cfg.RootDir, "sandboxes"))
	if err != nil {
		return nil, err
	}
	var out []Sandbox
	for _, e := range ents {
		uid, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		s, err := m.Get(uid)
		if err != nil {
			m.cfg.Log.Warn("unreadable sandbox state", zap.String("uid", uid), zap.Error(err))
			out = append(out, Sandbox{PodUID: uid})
			continue
		}
		if s != nil {
			out = append(out, *s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PodUID < out[j].PodUID })
	return out, nil
}

// NewNetNS creates a network namespace bind-mounted at path, as `ip netns
// add` does, without entering it: a locked OS thread unshares and is then
// thrown away.
func NewNetNS(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("netns mount point: %w", err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, now in the new namespace, ends with
		// the goroutine instead of running other goroutines.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind mount %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

// DeleteNetNS unmounts and removes a namespace made by NewNetNS; a
// missing one is no error.
func DeleteNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

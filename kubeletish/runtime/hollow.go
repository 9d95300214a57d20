package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/kubeish/kubeish/kubeletish/network"
)

// Hollow is the runtime of a hollow node (kubeletish hollow): the real pod
// sync drives it, but nothing runs. Sandboxes get addresses from the
// node's pod CIDR (no namespace, no CNI), containers start at once and run
// until stopped, and every exec (exec probes and hooks) succeeds. It costs
// a few hundred bytes per container, so that one process can host
// thousands of nodes.
//
// Unlike Fake it keeps no call log (it runs for hours, not for one test)
// and hands out real, unique addresses from the node's range.
type Hollow struct {
	mu         sync.Mutex
	now        func() time.Time
	cidr       *net.IPNet
	next       uint32 // offset in cidr where the address search resumes
	used       map[uint32]bool
	sandboxes  map[string]*Sandbox
	containers map[string]*Container
}

// NewHollow returns an empty hollow runtime without a pod CIDR: sandboxes
// of non-host-network pods fail with network.ErrNoPodCIDR until
// SetPodCIDR, as on a real node.
func NewHollow() *Hollow {
	return &Hollow{now: time.Now, used: map[uint32]bool{}, sandboxes: map[string]*Sandbox{}, containers: map[string]*Container{}}
}

// SetPodCIDR sets the range sandbox addresses come from. It is set once;
// later calls with another range fail (a node's pod CIDR never changes).
func (h *Hollow) SetPodCIDR(cidr string) error {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return err
	}
	if n.IP.To4() == nil {
		return fmt.Errorf("pod CIDR %s: only IPv4 ranges are supported", cidr)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cidr != nil {
		if h.cidr.String() != n.String() {
			return fmt.Errorf("pod CIDR is %s already, not %s", h.cidr, n)
		}
		return nil
	}
	h.cidr = n
	return nil
}

// PodCIDR returns the pod CIDR ("" before SetPodCIDR).
func (h *Hollow) PodCIDR() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cidr == nil {
		return ""
	}
	return h.cidr.String()
}

// size is the number of addresses in the range.
func (h *Hollow) size() uint32 {
	ones, bits := h.cidr.Mask.Size()
	return 1 << uint(bits-ones)
}

// allocate returns a free address of the range: neither the network
// address, nor the first (the bridge's gateway on a real node), nor the
// broadcast address. It resumes after the last one handed out, so that an
// address is not reused right after its pod went away.
func (h *Hollow) allocate() (string, error) {
	size := h.size()
	if size < 4 {
		return "", fmt.Errorf("pod CIDR %s is too small", h.cidr)
	}
	base := binary.BigEndian.Uint32(h.cidr.IP.To4())
	for i := uint32(0); i < size; i++ {
		off := (h.next + i) % size
		if off < 2 || off == size-1 || h.used[off] {
			continue
		}
		h.used[off], h.next = true, off+1
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, base+off)
		return ip.String(), nil
	}
	return "", fmt.Errorf("pod CIDR %s: no free address", h.cidr)
}

func (h *Hollow) release(ip string) {
	p := net.ParseIP(ip).To4()
	if p == nil || h.cidr == nil || !h.cidr.Contains(p) {
		return
	}
	delete(h.used, binary.BigEndian.Uint32(p)-binary.BigEndian.Uint32(h.cidr.IP.To4()))
}

// Version implements Runtime.
func (h *Hollow) Version(context.Context) (string, error) { return "hollow://1.0", nil }

// RunSandbox implements Runtime.
func (h *Hollow) RunSandbox(_ context.Context, pod PodRef, hostNetwork bool) (*Sandbox, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.sandboxes[pod.UID]; ok {
		c := *s
		return &c, nil
	}
	s := &Sandbox{Pod: pod, HostNetwork: hostNetwork, CreatedAt: h.now()}
	if !hostNetwork {
		if h.cidr == nil {
			return nil, network.ErrNoPodCIDR
		}
		ip, err := h.allocate()
		if err != nil {
			return nil, err
		}
		s.IP = ip
	}
	h.sandboxes[pod.UID] = s
	c := *s
	return &c, nil
}

// RemoveSandbox implements Runtime.
func (h *Hollow) RemoveSandbox(_ context.Context, uid string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.sandboxes[uid]; ok {
		h.release(s.IP)
		delete(h.sandboxes, uid)
	}
	return nil
}

// GetSandbox implements Runtime.
func (h *Hollow) GetSandbox(_ context.Context, uid string) (*Sandbox, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.sandboxes[uid]; ok {
		c := *s
		return &c, nil
	}
	return nil, nil
}

// ListSandboxes implements Runtime.
func (h *Hollow) ListSandboxes(context.Context) ([]Sandbox, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Sandbox, 0, len(h.sandboxes))
	for _, s := range h.sandboxes {
		out = append(out, *s)
	}
	return out, nil
}

// EnsureImage implements Runtime: every image is present.
func (h *Hollow) EnsureImage(_ context.Context, ref string, _ PullPolicy) (string, error) {
	return "sha256:hollow-" + ref, nil
}

// StartContainer implements Runtime: the container runs at once.
func (h *Hollow) StartContainer(_ context.Context, sb *Sandbox, cfg ContainerConfig) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.sandboxes[cfg.Pod.UID]; !ok {
		return "", fmt.Errorf("pod %s/%s has no sandbox: %w", cfg.Pod.Namespace, cfg.Pod.Name, ErrNotFound)
	}
	id := containerID(cfg)
	now := h.now()
	h.containers[id] = &Container{ID: id, Pod: cfg.Pod, Name: cfg.Name, Attempt: cfg.Attempt, Hash: cfg.Hash, Image: cfg.Image,
		ImageID: "sha256:hollow-" + cfg.Image, LogPath: cfg.LogPath, State: StateRunning, CreatedAt: now, StartedAt: now}
	return id, nil
}

// StopContainer implements Runtime: a hollow container handles SIGTERM at
// once and exits 0.
func (h *Hollow) StopContainer(_ context.Context, id string, _ time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.containers[id]
	if c == nil {
		return nil
	}
	if c.State == StateRunning {
		c.State, c.ExitCode, c.Reason, c.FinishedAt = StateExited, 0, "Completed", h.now()
	}
	return nil
}

// RemoveContainer implements Runtime.
func (h *Hollow) RemoveContainer(_ context.Context, id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.containers, id)
	return nil
}

// ListContainers implements Runtime.
func (h *Hollow) ListContainers(_ context.Context, uid string) ([]Container, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Container
	for _, c := range h.containers {
		if uid == "" || c.Pod.UID == uid {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Exec implements Runtime: every command succeeds at once, in a running
// container (exec probes pass, exec hooks return).
func (h *Hollow) Exec(_ context.Context, id string, _ []string, _ time.Duration) (int, []byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.containers[id]; c == nil || c.State != StateRunning {
		return 0, nil, errors.New("container is not running")
	}
	return 0, nil, nil
}

var _ Runtime = (*Hollow)(nil)

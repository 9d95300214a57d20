package runtime

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Fake is an in-memory Runtime for unit tests. Tests drive containers'
// lives with Exit and inspect Calls.
type Fake struct {
	mu         sync.Mutex
	Now        func() time.Time
	sandboxes  map[string]*Sandbox
	containers map[string]*Container
	images     map[string]bool
	// PullErr, when set, fails every pull.
	PullErr error
	// ExecResult is what Exec returns.
	ExecResult func(id string, cmd []string) (int, error)
	Calls      []string
	nextIP     int
}

// NewFake returns an empty fake runtime.
func NewFake() *Fake {
	return &Fake{Now: time.Now, sandboxes: map[string]*Sandbox{}, containers: map[string]*Container{}, images: map[string]bool{}}
}

func (f *Fake) call(format string, a ...any) { f.Calls = append(f.Calls, fmt.Sprintf(format, a...)) }

// AddImage makes an image present.
func (f *Fake) AddImage(ref string) { f.mu.Lock(); f.images[ref] = true; f.mu.Unlock() }

// Version implements Runtime.
func (f *Fake) Version(context.Context) (string, error) { return "fake://1.0", nil }

// RunSandbox implements Runtime.
func (f *Fake) RunSandbox(_ context.Context, pod PodRef, hostNetwork bool) (*Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.sandboxes[pod.UID]; ok {
		c := *s
		return &c, nil
	}
	f.call("RunSandbox %s", pod.Name)
	f.nextIP++
	s := &Sandbox{Pod: pod, NetNSPath: "/fake/netns/" + pod.UID, IP: fmt.Sprintf("10.244.0.%d", f.nextIP+1), HostNetwork: hostNetwork, CreatedAt: f.Now()}
	f.sandboxes[pod.UID] = s
	c := *s
	return &c, nil
}

// RemoveSandbox implements Runtime.
func (f *Fake) RemoveSandbox(_ context.Context, uid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sandboxes[uid]; ok {
		f.call("RemoveSandbox %s", f.sandboxes[uid].Pod.Name)
	}
	delete(f.sandboxes, uid)
	return nil
}

// GetSandbox implements Runtime.
func (f *Fake) GetSandbox(_ context.Context, uid string) (*Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.sandboxes[uid]; ok {
		c := *s
		return &c, nil
	}
	return nil, nil
}

// ListSandboxes implements Runtime.
func (f *Fake) ListSandboxes(context.Context) ([]Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Sandbox
	for _, s := range f.sandboxes {
		out = append(out, *s)
	}
	return out, nil
}

// EnsureImage implements Runtime.
func (f *Fake) EnsureImage(_ context.Context, ref string, policy PullPolicy) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.images[ref] && policy != PullAlways {
		return "sha256:" + ref, nil
	}
	if policy == PullNever {
		return "", ErrImageNeverPull
	}
	if f.PullErr != nil {
		return "", f.PullErr
	}
	f.call("Pull %s", ref)
	f.images[ref] = true
	return "sha256:" + ref, nil
}

// StartContainer implements Runtime.
func (f *Fake) StartContainer(_ context.Context, sb *Sandbox, cfg ContainerConfig) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := containerID(cfg)
	f.call("Start %s/%s#%d", cfg.Pod.Name, cfg.Name, cfg.Attempt)
	now := f.Now()
	f.containers[id] = &Container{ID: id, Pod: cfg.Pod, Name: cfg.Name, Attempt: cfg.Attempt, Hash: cfg.Hash, Image: cfg.Image,
		ImageID: "sha256:" + cfg.Image, LogPath: cfg.LogPath, State: StateRunning, CreatedAt: now, StartedAt: now}
	return id, nil
}

// Exit ends a running container with code.
func (f *Fake) Exit(id string, code int, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	if c == nil || c.State != StateRunning {
		return
	}
	if reason == "" {
		reason = "Error"
		if code == 0 {
			reason = "Completed"
		}
	}
	c.State, c.ExitCode, c.Reason, c.FinishedAt = StateExited, code, reason, f.Now()
}

// StopContainer implements Runtime.
func (f *Fake) StopContainer(_ context.Context, id string, grace time.Duration) error {
	f.mu.Lock()
	c := f.containers[id]
	if c != nil && c.State == StateRunning {
		f.call("Stop %s/%s#%d grace=%v", c.Pod.Name, c.Name, c.Attempt, grace)
	}
	f.mu.Unlock()
	f.Exit(id, 143, "Error")
	return nil
}

// RemoveContainer implements Runtime.
func (f *Fake) RemoveContainer(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.containers[id]; ok {
		f.call("Remove %s/%s#%d", c.Pod.Name, c.Name, c.Attempt)
	}
	delete(f.containers, id)
	return nil
}

// ListContainers implements Runtime.
func (f *Fake) ListContainers(_ context.Context, uid string) ([]Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Container
	for _, c := range f.containers {
		if uid == "" || c.Pod.UID == uid {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Exec implements Runtime.
func (f *Fake) Exec(_ context.Context, id string, cmd []string, _ time.Duration) (int, []byte, error) {
	if f.ExecResult == nil {
		return 0, nil, nil
	}
	code, err := f.ExecResult(id, cmd)
	return code, nil, err
}

var _ Runtime = (*Fake)(nil)
var _ Runtime = (*Containerd)(nil)

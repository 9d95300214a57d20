// Package probe runs containers' liveness, readiness and startup probes
// (httpGet, tcpSocket, exec) and keeps their results: a probe's result
// flips only after successThreshold successes or failureThreshold failures
// in a row (State, a pure state machine). Workers run one per running
// container and probe kind, and tell the pod sync when a result changes.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Kind of probe.
type Kind string

// The probe kinds.
const (
	Liveness  Kind = "liveness"
	Readiness Kind = "readiness"
	Startup   Kind = "startup"
)

// Result of a probe.
type Result int

// Results: Unknown before enough observations.
const (
	Unknown Result = iota
	Success
	Failure
)

func (r Result) String() string {
	return [...]string{"unknown", "success", "failure"}[r]
}

// State is the thresholded result of one probe.
type State struct {
	Result Result
	// FailedOut is set once failureThreshold failures came in a row (a
	// startup probe that fails out restarts the container, as liveness).
	FailedOut           bool
	successes, failures int32
}

// InitialState is a probe's result before it has run: readiness and
// startup start failed (not ready, not started), liveness succeeded.
func InitialState(k Kind) State {
	if k == Liveness {
		return State{Result: Success}
	}
	return State{Result: Failure}
}

// Observe records one probe outcome and reports whether Result changed.
func (s *State) Observe(ok bool, p *v1.Probe) bool {
	succ, fail := p.SuccessThreshold, p.FailureThreshold
	if succ < 1 {
		succ = 1
	}
	if fail < 1 {
		fail = 3
	}
	prev := s.Result
	if ok {
		s.successes++
		s.failures = 0
		if s.successes >= succ {
			s.Result = Success
		}
	} else {
		s.failures++
		s.successes = 0
		if s.failures >= fail {
			s.Result = Failure
			s.FailedOut = true
		}
	}
	return s.Result != prev
}

// Exec runs a command in a container (the runtime's Exec).
type Exec func(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (int, []byte, error)

// Run runs probe p once against a container of a pod at podIP.
func Run(ctx context.Context, p *v1.Probe, c *v1.Container, podIP, containerID string, exec Exec) (bool, error) {
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.HTTPGet != nil:
		req, err := newHTTPGetRequest(ctx, p.HTTPGet, c, podIP, "kube-probe/kubeish")
		if err != nil {
			return false, err
		}
		resp, err := probeClient.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 400 {
			return true, nil
		}
		return false, fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return false, err
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err
		}
		conn.Close()
		return true, nil
	case p.Exec != nil:
		code, out, err := exec(ctx, containerID, p.Exec.Command, timeout)
		if err != nil {
			return false, err
		}
		if code != 0 {
			return false, fmt.Errorf("command exited with %d: %s", code, out)
		}
		return true, nil
	}
	return false, errors.New("probe has no handler")
}

// newHTTPGetRequest is the request of an httpGet probe or hook: to the
// pod's IP unless a host is named, on a port by number or by the
// container's port name, with the handler's headers.
func newHTTPGetRequest(ctx context.Context, h *v1.HTTPGetAction, c *v1.Container, podIP, userAgent string) (*http.Request, error) {
	port, err := resolvePort(h.Port, c)
	if err != nil {
		return nil, err
	}
	host := h.Host
	if host == "" {
		host = podIP
	}
	if host == "" {
		return nil, errors.New("the pod has no IP yet")
	}
	scheme := "http"
	if h.Scheme == v1.URISchemeHTTPS {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), h.Path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for _, hd := range h.HTTPHeaders {
		req.Header.Add(hd.Name, hd.Value)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", userAgent)
	}
	return req, nil
}

var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	// Redirects are followed only to the same host, as the kubelet does.
	CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 || req.URL.Host != via[0].URL.Host {
			return http.ErrUseLastResponse
		}
		return nil
	},
}

func resolvePort(p intstr.IntOrString, c *v1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("no port named %q", p.StrVal)
}

type key struct {
	containerID string
	kind        Kind
}

type worker struct {
	cancel context.CancelFunc
	pod    types.UID
}

// Manager runs probe workers and keeps results.
type Manager struct {
	exec     Exec
	onChange func(types.UID)
	log      *zap.Logger

	mu      sync.Mutex
	workers map[key]*worker
	results map[key]State
}

// NewManager returns a manager; onChange is called with the pod's UID
// whenever a result changes (the pod sync enqueues the pod).
func NewManager(exec Exec, onChange func(types.UID), log *zap.Logger) *Manager {
	return &Manager{exec: exec, onChange: onChange, log: log, workers: map[key]*worker{}, results: map[key]State{}}
}

func probeOf(c *v1.Container, k Kind) *v1.Probe {
	switch k {
	case Liveness:
		return c.LivenessProbe
	case Readiness:
		return c.ReadinessProbe
	default:
		return c.StartupProbe
	}
}

// Sync makes the workers match the pod's running containers (name → ID).
func (m *Manager) Sync(ctx context.Context, pod *v1.Pod, running map[string]string, podIP string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := map[key]bool{}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		id, ok := running[c.Name]
		if !ok {
			continue
		}
		for _, k := range []Kind{Startup, Liveness, Readiness} {
			p := probeOf(c, k)
			if p == nil {
				continue
			}
			kk := key{id, k}
			want[kk] = true
			if _, ok := m.workers[kk]; ok {
				continue
			}
			wctx, cancel := context.WithCancel(ctx)
			m.workers[kk] = &worker{cancel: cancel, pod: pod.UID}
			m.results[kk] = InitialState(k)
			go m.run(wctx, pod.UID, c.DeepCopy(), p.DeepCopy(), kk, podIP)
		}
	}
	for kk, w := range m.workers {
		if w.pod == pod.UID && !want[kk] {
			w.cancel()
			delete(m.workers, kk)
			delete(m.results, kk)
		}
	}
}

// RemovePod stops a pod's workers and forgets its results.
func (m *Manager) RemovePod(uid types.UID) {
	m.Sync(context.Background(), &v1.Pod{ObjectMeta: metav1ObjectMeta(uid)}, nil, "")
}

func (m *Manager) run(ctx context.Context, uid types.UID, c *v1.Container, p *v1.Probe, kk key, podIP string) {
	period := time.Duration(p.PeriodSeconds) * time.Second
	if period <= 0 {
		period = 10 * time.Second
	}
	delay := time.Duration(p.InitialDelaySeconds) * time.Second
	select {
	case <-ctx.Done():
		return
	case <-time.After(delay):
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		if kk.kind != Startup && !m.started(kk.containerID) {
			// Liveness and readiness wait for the startup probe.
		} else {
			ok, err := Run(ctx, p, c, podIP, kk.containerID, m.exec)
			if ctx.Err() != nil {
				return
			}
			m.mu.Lock()
			st, live := m.results[kk]
			changed := false
			if live {
				changed = st.Observe(ok, p)
				m.results[kk] = st
			}
			m.mu.Unlock()
			if changed {
				m.log.Debug("probe result changed", zap.String("container", c.Name), zap.String("probe", string(kk.kind)),
					zap.Stringer("result", st.Result), zap.Error(err))
				m.onChange(uid)
			}
			if kk.kind == Startup && st.Result == Success {
				return // a startup probe runs until it first succeeds
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Manager) started(containerID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.results[key{containerID, Startup}]
	return !ok || st.Result == Success
}

// Ready reports a running container's readiness: its startup probe (if
// any) passed and its readiness probe (if any) succeeds.
func (m *Manager) Ready(containerID string, c *v1.Container) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.StartupProbe != nil {
		if st, ok := m.results[key{containerID, Startup}]; !ok || st.Result != Success {
			return false
		}
	}
	if c.ReadinessProbe != nil {
		st, ok := m.results[key{containerID, Readiness}]
		return ok && st.Result == Success
	}
	return true
}

// LivenessFailed returns the containers, by ID, whose liveness probe has
// failed (or whose startup probe failed for good): they are restarted.
func (m *Manager) LivenessFailed() map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for kk, st := range m.results {
		if (kk.kind == Liveness && st.Result == Failure) || (kk.kind == Startup && st.FailedOut && st.Result != Success) {
			out[kk.containerID] = true
		}
	}
	return out
}

func metav1ObjectMeta(uid types.UID) metav1.ObjectMeta { return metav1.ObjectMeta{UID: uid} }

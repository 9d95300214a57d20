package pod

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/reference"

	"github.com/kubeish/kubeish/kubeletish/probe"
	"github.com/kubeish/kubeish/kubeletish/runtime"
)

// Event reasons and the waiting reason of lifecycle hooks, as the kubelet
// names them.
const (
	EventFailedPostStartHook = "FailedPostStartHook"
	EventFailedPreStopHook   = "FailedPreStopHook"
	ReasonPostStartHookError = "PostStartHookError"
)

// minStopGrace is the SIGTERM window a container still gets after its
// preStop hook used up (nearly) all of the grace period, as the kubelet's
// minimumGracePeriodInSeconds: the hook's time counts against the grace
// period, but the process is never SIGKILLed without a SIGTERM first.
const minStopGrace = 2 * time.Second

// containerSpec returns the spec of the pod's container or init container
// by name (nil when the pod no longer has it).
func containerSpec(pod *v1.Pod, name string) *v1.Container {
	if pod == nil {
		return nil
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

// hookPodIP is where an httpGet hook goes by default: the pod's own
// address (the node's for a host-network pod).
func (m *Manager) hookPodIP(sb *runtime.Sandbox) string {
	switch {
	case sb == nil:
		return ""
	case sb.IP != "":
		return sb.IP
	case sb.HostNetwork:
		return m.cfg.HostIP
	}
	return ""
}

// killContainer stops a running container the way the kubelet does: its
// preStop hook first, when it has one, there is grace to spend and the
// hook has not run for this container yet (a retried stop does not run it
// twice); then SIGTERM with what the hook left of the grace period (at
// least minStopGrace after a hook), then SIGKILL. A hook that fails is an
// event and no reason not to stop; one still running when the grace
// period ends is cut short.
func (m *Manager) killContainer(ctx context.Context, pod *v1.Pod, sb *runtime.Sandbox, c runtime.Container, grace time.Duration, reason string) error {
	spec := containerSpec(pod, c.Name)
	log := m.log.With(zap.String("container", c.Name), zap.String("id", c.ID))
	if pod != nil {
		log = log.With(zap.String("pod", pod.Namespace+"/"+pod.Name))
	}
	if spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil && grace > 0 && m.firstPreStop(pod.UID, c.ID) {
		start := m.cfg.Clock.Now()
		err := m.runPreStop(ctx, pod, sb, spec, c.ID, grace)
		used := m.cfg.Clock.Since(start)
		switch {
		case errors.Is(err, probe.ErrHookInterrupted):
			log.Info("preStop hook did not finish within the grace period", zap.Duration("grace", grace))
		case err != nil:
			// The event carries no detail, as the kubelet's, so that a
			// hook's output (which may hold secrets) stays on the node.
			log.Info("preStop hook failed", zap.Error(err))
			m.containerEvent(pod, spec.Name, v1.EventTypeWarning, EventFailedPreStopHook, "PreStopHook failed")
		default:
			log.Debug("preStop hook done", zap.Duration("took", used))
		}
		grace = max(grace-used, minStopGrace)
	}
	log.Info("stopping container", zap.String("reason", reason), zap.Duration("grace", grace))
	return m.cfg.Runtime.StopContainer(ctx, c.ID, grace)
}

// runPreStop runs the container's preStop hook for at most grace (on the
// manager's clock, so tests can step it).
func (m *Manager) runPreStop(ctx context.Context, pod *v1.Pod, sb *runtime.Sandbox, spec *v1.Container, id string, grace time.Duration) error {
	hctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- probe.RunHook(hctx, spec.Lifecycle.PreStop, spec, m.hookPodIP(sb), id, m.cfg.Runtime.Exec, m.cfg.Clock)
	}()
	select {
	case err := <-done:
		return err
	case <-m.cfg.Clock.After(grace):
		cancel()
		return probe.ErrHookInterrupted
	}
}

// firstPreStop reports whether the container's preStop hook is yet to
// run, and records that it runs now.
func (m *Manager) firstPreStop(uid types.UID, id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	ran := m.preStopped[uid]
	if ran == nil {
		ran = map[string]bool{}
		m.preStopped[uid] = ran
	}
	if ran[id] {
		return false
	}
	ran[id] = true
	return true
}

// killContainers kills containers in parallel (one slow preStop hook
// does not hold up the others' SIGTERM), each with its own grace period.
func (m *Manager) killContainers(ctx context.Context, pod *v1.Pod, sb *runtime.Sandbox, kills []KillAction, cs []runtime.Container, grace func(KillAction) time.Duration) error {
	byID := map[string]runtime.Container{}
	for _, c := range cs {
		byID[c.ID] = c
	}
	var wg sync.WaitGroup
	errs := make([]error, len(kills))
	for i, k := range kills {
		c, ok := byID[k.ID]
		if !ok {
			c = runtime.Container{ID: k.ID, Name: k.Name}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.killContainer(ctx, pod, sb, c, grace(k), k.Reason)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runPostStart runs a just started container's postStart hook. The sync
// waits for it, so the container is not reported running, probed, or
// followed by the pod's next container before it finishes (as in
// Kubernetes). It is cut short when the pod is being deleted. On failure
// the container is killed (its back-off and restart policy then apply)
// and the returned waiting state says why.
func (m *Manager) runPostStart(ctx context.Context, pod *v1.Pod, sb *runtime.Sandbox, spec *v1.Container, id string) (v1.ContainerStateWaiting, error) {
	h := spec.Lifecycle.PostStart
	hctx, cancel := context.WithCancel(ctx)
	m.mu.Lock()
	m.postStarts[pod.UID] = cancel
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.postStarts, pod.UID)
		m.mu.Unlock()
		cancel()
	}()
	// A deletion seen before the cancel was registered.
	if m.indexer != nil {
		if p := m.podByUID(pod.UID); p == nil || p.DeletionTimestamp != nil {
			cancel()
		}
	}
	err := probe.RunHook(hctx, h, spec, m.hookPodIP(sb), id, m.cfg.Runtime.Exec, m.cfg.Clock)
	if err == nil {
		return v1.ContainerStateWaiting{}, nil
	}
	msg := fmt.Sprintf("%s lifecycle hook (%s) for Container %q in Pod %q failed - error: %v", probe.HookKind(h), hookTarget(h), spec.Name,
		fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID), err)
	if hctx.Err() != nil && ctx.Err() == nil {
		// The pod is being deleted: its termination stops the container
		// (with its preStop hook); no failure to report.
		m.log.Info("postStart hook interrupted by the pod's deletion", zap.String("pod", pod.Namespace+"/"+pod.Name), zap.String("container", spec.Name))
		return v1.ContainerStateWaiting{Reason: ReasonPostStartHookError, Message: msg}, err
	}
	m.containerEvent(pod, spec.Name, v1.EventTypeWarning, EventFailedPostStartHook, msg)
	if kerr := m.killContainer(ctx, pod, sb, runtime.Container{ID: id, Name: spec.Name}, gracePeriod(pod), EventFailedPostStartHook); kerr != nil {
		err = errors.Join(err, kerr)
	}
	return v1.ContainerStateWaiting{Reason: ReasonPostStartHookError, Message: msg}, err
}

// interruptPostStart cuts short a pod's running postStart hook (the pod
// is being deleted).
func (m *Manager) interruptPostStart(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cancel := m.postStarts[uid]; cancel != nil {
		cancel()
	}
}

// hookTarget is what a hook's failure message names: the command, the
// path, or the seconds.
func hookTarget(h *v1.LifecycleHandler) string {
	switch {
	case h.Exec != nil:
		return "[" + strings.Join(h.Exec.Command, " ") + "]"
	case h.HTTPGet != nil:
		return h.HTTPGet.Path
	case h.Sleep != nil:
		return fmt.Sprint(h.Sleep.Seconds)
	}
	return ""
}

// containerEvent records an event about one container of a pod, with the
// field path the kubelet uses (spec.containers{name}).
func (m *Manager) containerEvent(pod *v1.Pod, container, eventType, reason, msg string) {
	ref, err := reference.GetReference(scheme.Scheme, pod)
	if err != nil {
		m.log.Debug("no reference for an event", zap.Error(err))
		return
	}
	ref.FieldPath = fmt.Sprintf("spec.containers{%s}", container)
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == container {
			ref.FieldPath = fmt.Sprintf("spec.initContainers{%s}", container)
		}
	}
	m.recorder.Event(ref, eventType, reason, msg)
}

// Package pod is the node agent's pod sync: level-triggered, it compares
// the pods bound to the node (from an informer) with what the runtime
// really has (listed on events and on a periodic relist), decides with the
// pure functions Plan and ComputeStatus, then acts, one worker per pod.
package pod

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kubeish/kubeish/kubeletish/runtime"
)

// Reasons of waiting containers, as Kubernetes names them.
const (
	ReasonContainerCreating = "ContainerCreating"
	ReasonPodInitializing   = "PodInitializing"
	ReasonCrashLoopBackOff  = "CrashLoopBackOff"
	ReasonErrImagePull      = "ErrImagePull"
	ReasonImagePullBackOff  = "ImagePullBackOff"
	ReasonErrImageNeverPull = "ErrImageNeverPull"
	ReasonConfigError       = "CreateContainerConfigError"
	ReasonCreateError       = "CreateContainerError"
)

// StartAction starts a container.
type StartAction struct {
	Container *v1.Container
	Init      bool
	Attempt   int
	// Restart is true when an earlier attempt exited (back-off applies).
	Restart bool
}

// KillAction stops a running container.
type KillAction struct {
	ID, Name, Reason string
}

// Actions is what one sync of a pod must do.
type Actions struct {
	CreateSandbox bool
	Start         []StartAction
	Kill          []KillAction
	// Remove are old exited attempts no longer needed.
	Remove []string
	// Waiting are containers held back, by name (CrashLoopBackOff).
	Waiting map[string]v1.ContainerStateWaiting
	// RequeueAfter asks for another sync then (0: none needed).
	RequeueAfter time.Duration
}

// PlanInput is what Plan needs besides the pod and the runtime's view.
type PlanInput struct {
	Now     time.Time
	Backoff *Backoff
	// LivenessFailed holds the IDs of containers whose liveness (or
	// startup) probe failed: they are restarted.
	LivenessFailed map[string]bool
}

// ContainerHash is the hash of a container's spec; a different hash on a
// running container means the spec changed and it is replaced.
func ContainerHash(c *v1.Container) string {
	b, _ := json.Marshal(c)
	h := fnv.New32a()
	h.Write(b)
	return fmt.Sprintf("%08x", h.Sum32())
}

// byName returns the latest and the previous attempt of each container.
func byName(cs []runtime.Container) (latest, previous map[string]*runtime.Container, old []string) {
	sorted := append([]runtime.Container(nil), cs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Attempt > sorted[j].Attempt })
	latest, previous = map[string]*runtime.Container{}, map[string]*runtime.Container{}
	for i := range sorted {
		c := &sorted[i]
		switch {
		case latest[c.Name] == nil:
			latest[c.Name] = c
		case previous[c.Name] == nil:
			previous[c.Name] = c
		default:
			old = append(old, c.ID)
		}
	}
	return latest, previous, old
}

func shouldRestart(policy v1.RestartPolicy, c *runtime.Container) bool {
	switch policy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		return c.ExitCode != 0
	default:
		return true
	}
}

func terminal(pod *v1.Pod) bool {
	return pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed
}

// BackoffKey is the back-off key of a pod's container.
func BackoffKey(pod *v1.Pod, name string) string { return string(pod.UID) + "/" + name }

// Plan decides what to do for a live (not deleted) pod given the sandbox
// and containers the runtime has. It changes nothing.
func Plan(pod *v1.Pod, sb *runtime.Sandbox, cs []runtime.Container, in PlanInput) Actions {
	a := Actions{Waiting: map[string]v1.ContainerStateWaiting{}}
	latest, _, old := byName(cs)
	a.Remove = old
	if terminal(pod) {
		// A finished pod is never started again.
		return a
	}
	if sb == nil {
		a.CreateSandbox = true
		// Containers outside a sandbox (it was lost) are stopped and start
		// again in the new one.
		for _, c := range latest {
			if c.State == runtime.StateRunning {
				a.Kill = append(a.Kill, KillAction{ID: c.ID, Name: c.Name, Reason: "SandboxChanged"})
			}
		}
	}
	requeue := func(d time.Duration) {
		if d > 0 && (a.RequeueAfter == 0 || d < a.RequeueAfter) {
			a.RequeueAfter = d
		}
	}
	// restartOrWait starts attempt+1 of an exited container, or holds it
	// back while in back-off.
	restartOrWait := func(spec *v1.Container, c *runtime.Container, init bool) {
		key := BackoffKey(pod, spec.Name)
		if w := in.Backoff.Wait(key, c.StartedAt, c.FinishedAt); w > 0 {
			a.Waiting[spec.Name] = v1.ContainerStateWaiting{Reason: ReasonCrashLoopBackOff,
				Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", in.Backoff.Delay(key), spec.Name, pod.Name, pod.Namespace, pod.UID)}
			requeue(w)
			return
		}
		a.Start = append(a.Start, StartAction{Container: spec, Init: init, Attempt: c.Attempt + 1, Restart: true})
	}

	// Init containers, one at a time, in order.
	for i := range pod.Spec.InitContainers {
		spec := &pod.Spec.InitContainers[i]
		c := latest[spec.Name]
		switch {
		case c == nil:
			a.Start = append(a.Start, StartAction{Container: spec, Init: true})
			return a
		case c.State == runtime.StateRunning:
			return a
		case c.ExitCode == 0:
			continue
		case pod.Spec.RestartPolicy == v1.RestartPolicyNever:
			return a // the pod has failed
		default:
			restartOrWait(spec, c, true)
			return a
		}
	}

	for i := range pod.Spec.Containers {
		spec := &pod.Spec.Containers[i]
		c := latest[spec.Name]
		switch {
		case c == nil:
			a.Start = append(a.Start, StartAction{Container: spec})
		case c.State == runtime.StateRunning:
			if c.Hash != "" && c.Hash != ContainerHash(spec) {
				a.Kill = append(a.Kill, KillAction{ID: c.ID, Name: c.Name, Reason: "SpecChanged"})
			} else if in.LivenessFailed[c.ID] {
				a.Kill = append(a.Kill, KillAction{ID: c.ID, Name: c.Name, Reason: "LivenessProbeFailed"})
			}
		case shouldRestart(pod.Spec.RestartPolicy, c):
			restartOrWait(spec, c, false)
		}
	}
	return a
}

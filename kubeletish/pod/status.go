package pod

import (
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/kubeletish/runtime"
)

// StatusInput is what ComputeStatus needs besides the pod and the
// runtime's view.
type StatusInput struct {
	Now    time.Time
	HostIP string
	// Waiting are reasons for containers that do not run, by name
	// (CrashLoopBackOff, ErrImagePull, …), from the last sync.
	Waiting map[string]v1.ContainerStateWaiting
	// Ready is the readiness of containers by ID; a running container
	// without a readiness probe is ready once its startup probe passed.
	Ready func(containerID string, c *v1.Container) bool
}

// ComputeStatus returns the pod's status as the runtime shows it. It keeps
// the old status' start time and condition transition times where nothing
// changed, so that an unchanged pod gives an equal status and no write.
func ComputeStatus(pod *v1.Pod, sb *runtime.Sandbox, cs []runtime.Container, in StatusInput) v1.PodStatus {
	old := pod.Status
	now := metav1.NewTime(in.Now.UTC().Truncate(time.Second))
	st := v1.PodStatus{
		HostIP:   in.HostIP,
		QOSClass: old.QOSClass,
	}
	if in.HostIP != "" {
		st.HostIPs = []v1.HostIP{{IP: in.HostIP}}
	}
	st.StartTime = old.StartTime
	if st.StartTime == nil {
		st.StartTime = &now
	}
	if sb != nil && sb.IP != "" {
		st.PodIP = sb.IP
		st.PodIPs = []v1.PodIP{{IP: sb.IP}}
	} else if sb != nil && sb.HostNetwork {
		st.PodIP = in.HostIP
		if in.HostIP != "" {
			st.PodIPs = []v1.PodIP{{IP: in.HostIP}}
		}
	} else if old.Phase == v1.PodSucceeded || old.Phase == v1.PodFailed {
		st.PodIP, st.PodIPs = old.PodIP, old.PodIPs
	}
	latest, previous, _ := byName(cs)

	initDone := true
	initFailed := false
	for i := range pod.Spec.InitContainers {
		spec := &pod.Spec.InitContainers[i]
		s := containerStatus(spec, latest[spec.Name], previous[spec.Name], in, false)
		if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
			initDone = false
			if s.State.Terminated != nil && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
				initFailed = true
			}
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, s)
	}
	allReady := true
	for i := range pod.Spec.Containers {
		spec := &pod.Spec.Containers[i]
		s := containerStatus(spec, latest[spec.Name], previous[spec.Name], in, true)
		if !initDone && s.State.Waiting != nil && s.State.Waiting.Reason == ReasonContainerCreating {
			s.State.Waiting.Reason = ReasonPodInitializing
		}
		if !s.Ready {
			allReady = false
		}
		st.ContainerStatuses = append(st.ContainerStatuses, s)
	}
	st.Phase = phase(pod, st.ContainerStatuses, initDone, initFailed)
	if st.Phase == v1.PodSucceeded || st.Phase == v1.PodFailed {
		allReady = false
	}

	cond := func(t v1.PodConditionType, ok bool, reason string) {
		c := v1.PodCondition{Type: t, Status: v1.ConditionFalse, Reason: reason}
		if ok {
			c.Status, c.Reason = v1.ConditionTrue, ""
		}
		c.LastTransitionTime = now
		for _, o := range old.Conditions {
			if o.Type == t && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		st.Conditions = append(st.Conditions, c)
	}
	terminalReason := ""
	if st.Phase == v1.PodSucceeded {
		terminalReason = "PodCompleted"
	}
	initReason := "ContainersNotInitialized"
	if terminalReason != "" {
		initReason = terminalReason
	}
	readyReason := "ContainersNotReady"
	if terminalReason != "" {
		readyReason = terminalReason
	}
	cond(v1.PodInitialized, initDone, initReason)
	cond(v1.PodReady, allReady, readyReason)
	cond(v1.ContainersReady, allReady, readyReason)
	cond(v1.PodScheduled, true, "")
	return st
}

func containerStatus(spec *v1.Container, c, prev *runtime.Container, in StatusInput, app bool) v1.ContainerStatus {
	s := v1.ContainerStatus{Name: spec.Name, Image: spec.Image}
	f := false
	s.Started = &f
	if w, ok := in.Waiting[spec.Name]; ok && (c == nil || c.State != runtime.StateRunning) {
		s.State.Waiting = &w
	}
	if c == nil {
		if s.State.Waiting == nil {
			s.State.Waiting = &v1.ContainerStateWaiting{Reason: ReasonContainerCreating}
		}
		return s
	}
	s.ContainerID = "containerd://" + c.ID
	s.ImageID = c.ImageID
	s.RestartCount = int32(c.Attempt)
	term := func(c *runtime.Container) *v1.ContainerStateTerminated {
		return &v1.ContainerStateTerminated{ExitCode: int32(c.ExitCode), Reason: c.Reason, ContainerID: "containerd://" + c.ID,
			StartedAt: metav1.NewTime(c.StartedAt.UTC().Truncate(time.Second)), FinishedAt: metav1.NewTime(c.FinishedAt.UTC().Truncate(time.Second))}
	}
	switch c.State {
	case runtime.StateRunning:
		s.State.Waiting = nil
		s.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(c.StartedAt.UTC().Truncate(time.Second))}
		t := true
		s.Started = &t
		if app && in.Ready != nil {
			s.Ready = in.Ready(c.ID, spec)
		} else if app {
			s.Ready = true
		}
		if prev != nil && prev.State == runtime.StateExited {
			s.LastTerminationState.Terminated = term(prev)
		}
	case runtime.StateExited:
		if s.State.Waiting != nil {
			// Waiting to restart: the exit is the last state.
			s.LastTerminationState.Terminated = term(c)
		} else {
			s.State.Terminated = term(c)
			if prev != nil && prev.State == runtime.StateExited {
				s.LastTerminationState.Terminated = term(prev)
			}
		}
	default:
		if s.State.Waiting == nil {
			s.State.Waiting = &v1.ContainerStateWaiting{Reason: ReasonContainerCreating}
		}
	}
	return s
}

// phase follows the kubelet's rules: Pending until every container has
// run, Running while any runs or will restart, then Succeeded or Failed.
func phase(pod *v1.Pod, cs []v1.ContainerStatus, initDone, initFailed bool) v1.PodPhase {
	if initFailed {
		return v1.PodFailed
	}
	if !initDone {
		return v1.PodPending
	}
	var running, waiting, stopped, succeeded int
	for _, s := range cs {
		switch {
		case s.State.Running != nil:
			running++
		case s.State.Terminated != nil:
			stopped++
			if s.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case s.State.Waiting != nil:
			if s.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		}
	}
	switch {
	case waiting > 0:
		return v1.PodPending
	case running > 0:
		return v1.PodRunning
	case stopped > 0:
		if pod.Spec.RestartPolicy == v1.RestartPolicyAlways {
			return v1.PodRunning
		}
		if stopped == succeeded {
			return v1.PodSucceeded
		}
		if pod.Spec.RestartPolicy == v1.RestartPolicyNever {
			return v1.PodFailed
		}
		return v1.PodRunning
	}
	return v1.PodPending
}

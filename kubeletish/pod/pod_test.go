package pod

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubeish/kubeish/kubeletish/runtime"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBackoffTiming(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	b := NewBackoff(clk)
	key := "uid/c"
	// Each crash happens right after the restart; the wait doubles from
	// 10 s up to 5 min.
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second}
	for i, w := range want {
		started := clk.Now()
		clk.Step(time.Second)
		finished := clk.Now()
		if got := b.Wait(key, started, finished); got != w {
			t.Fatalf("crash %d: wait %v, want %v", i, got, w)
		}
		clk.Step(w - time.Second/2)
		if w > 0 {
			if got := b.Wait(key, started, finished); got <= 0 {
				t.Fatalf("crash %d: back-off over too early", i)
			}
		}
		clk.Step(time.Second)
		if got := b.Wait(key, started, finished); got != 0 {
			t.Fatalf("crash %d: still waiting %v after the delay", i, got)
		}
		b.Next(key)
	}
	// A container that ran 10 minutes starts over at once.
	started := clk.Now()
	clk.Step(10 * time.Minute)
	if got := b.Wait(key, started, clk.Now()); got != 0 {
		t.Fatalf("after a long run: wait %v, want 0", got)
	}
	b.Next(key)
	if got := b.Delay(key); got != 10*time.Second {
		t.Fatalf("after reset: delay %v, want 10s", got)
	}
}

func testPod(policy v1.RestartPolicy, names ...string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid1"}, Spec: v1.PodSpec{RestartPolicy: policy}}
	for _, n := range names {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: n, Image: "img:v1"})
	}
	return p
}

func ctr(pod *v1.Pod, name string, attempt int, state runtime.State, code int) runtime.Container {
	var spec *v1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			spec = &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			spec = &pod.Spec.InitContainers[i]
		}
	}
	c := runtime.Container{ID: name + "-" + string(rune('0'+attempt)), Pod: runtime.PodRef{UID: string(pod.UID)}, Name: name, Attempt: attempt,
		Hash: ContainerHash(spec), State: state, ExitCode: code, StartedAt: t0, ImageID: "sha256:x"}
	if state == runtime.StateExited {
		c.FinishedAt = t0.Add(time.Second)
		c.Reason = "Error"
		if code == 0 {
			c.Reason = "Completed"
		}
	}
	return c
}

func TestPlan(t *testing.T) {
	sb := &runtime.Sandbox{IP: "10.244.0.2"}
	always := testPod(v1.RestartPolicyAlways, "a", "b")
	never := testPod(v1.RestartPolicyNever, "a")
	onFailure := testPod(v1.RestartPolicyOnFailure, "a")
	withInit := testPod(v1.RestartPolicyAlways, "a")
	withInit.Spec.InitContainers = []v1.Container{{Name: "i1", Image: "img:v1"}, {Name: "i2", Image: "img:v1"}}
	changed := testPod(v1.RestartPolicyAlways, "a")
	changedOld := ctr(changed, "a", 0, runtime.StateRunning, 0)
	changed.Spec.Containers[0].Image = "img:v2"

	type want struct {
		sandbox bool
		start   []string // name#attempt
		kill    []string
		remove  []string
		waiting []string
	}
	cases := []struct {
		name     string
		pod      *v1.Pod
		sb       *runtime.Sandbox
		cs       []runtime.Container
		backoff  map[string]bool // keys already restarted once
		liveness map[string]bool
		want     want
	}{
		{name: "new pod: sandbox and every container", pod: always, want: want{sandbox: true, start: []string{"a#0", "b#0"}}},
		{name: "all running: nothing", pod: always, sb: sb, cs: []runtime.Container{ctr(always, "a", 0, runtime.StateRunning, 0), ctr(always, "b", 0, runtime.StateRunning, 0)}},
		{name: "one missing", pod: always, sb: sb, cs: []runtime.Container{ctr(always, "a", 0, runtime.StateRunning, 0)}, want: want{start: []string{"b#0"}}},
		{name: "first crash restarts at once", pod: always, sb: sb, cs: []runtime.Container{ctr(always, "a", 0, runtime.StateExited, 1), ctr(always, "b", 0, runtime.StateRunning, 0)},
			want: want{start: []string{"a#1"}}},
		{name: "second crash waits: CrashLoopBackOff", pod: always, sb: sb, backoff: map[string]bool{"uid1/a": true},
			cs:   []runtime.Container{ctr(always, "a", 1, runtime.StateExited, 1), ctr(always, "a", 0, runtime.StateExited, 1), ctr(always, "b", 0, runtime.StateRunning, 0)},
			want: want{waiting: []string{"a"}}},
		{name: "old attempts are removed, two kept", pod: always, sb: sb, backoff: map[string]bool{"uid1/a": true},
			cs: []runtime.Container{ctr(always, "a", 2, runtime.StateRunning, 0), ctr(always, "a", 1, runtime.StateExited, 1), ctr(always, "a", 0, runtime.StateExited, 1),
				ctr(always, "b", 0, runtime.StateRunning, 0)},
			want: want{remove: []string{"a-0"}}},
		{name: "never: exited stays", pod: never, sb: sb, cs: []runtime.Container{ctr(never, "a", 0, runtime.StateExited, 1)}},
		{name: "onFailure: success stays", pod: onFailure, sb: sb, cs: []runtime.Container{ctr(onFailure, "a", 0, runtime.StateExited, 0)}},
		{name: "onFailure: failure restarts", pod: onFailure, sb: sb, cs: []runtime.Container{ctr(onFailure, "a", 0, runtime.StateExited, 2)}, want: want{start: []string{"a#1"}}},
		{name: "init containers one at a time", pod: withInit, sb: sb, want: want{start: []string{"i1#0"}}},
		{name: "init running: wait", pod: withInit, sb: sb, cs: []runtime.Container{ctr(withInit, "i1", 0, runtime.StateRunning, 0)}},
		{name: "second init after the first", pod: withInit, sb: sb, cs: []runtime.Container{ctr(withInit, "i1", 0, runtime.StateExited, 0)}, want: want{start: []string{"i2#0"}}},
		{name: "apps after inits", pod: withInit, sb: sb, cs: []runtime.Container{ctr(withInit, "i1", 0, runtime.StateExited, 0), ctr(withInit, "i2", 0, runtime.StateExited, 0)},
			want: want{start: []string{"a#0"}}},
		{name: "spec changed: replaced", pod: changed, sb: sb, cs: []runtime.Container{changedOld}, want: want{kill: []string{"a-0"}}},
		{name: "liveness failed: killed", pod: never, sb: sb, cs: []runtime.Container{ctr(never, "a", 0, runtime.StateRunning, 0)}, liveness: map[string]bool{"a-0": true},
			want: want{kill: []string{"a-0"}}},
		{name: "sandbox lost: containers killed, sandbox made", pod: never, cs: []runtime.Container{ctr(never, "a", 0, runtime.StateRunning, 0)},
			want: want{sandbox: true, kill: []string{"a-0"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0.Add(2 * time.Second))
			b := NewBackoff(clk)
			for k := range tc.backoff {
				b.Next(k)
			}
			a := Plan(tc.pod, tc.sb, tc.cs, PlanInput{Now: clk.Now(), Backoff: b, LivenessFailed: tc.liveness})
			var got want
			got.sandbox = a.CreateSandbox
			for _, s := range a.Start {
				got.start = append(got.start, s.Container.Name+"#"+string(rune('0'+s.Attempt)))
			}
			for _, k := range a.Kill {
				got.kill = append(got.kill, k.ID)
			}
			got.remove = a.Remove
			for n, w := range a.Waiting {
				got.waiting = append(got.waiting, n)
				if w.Reason != ReasonCrashLoopBackOff {
					t.Errorf("waiting reason %q", w.Reason)
				}
				if a.RequeueAfter <= 0 || a.RequeueAfter > 10*time.Second {
					t.Errorf("requeue after %v, want the rest of the back-off", a.RequeueAfter)
				}
			}
			if !equalStrings(got.start, tc.want.start) || !equalStrings(got.kill, tc.want.kill) || !equalStrings(got.remove, tc.want.remove) ||
				!equalStrings(got.waiting, tc.want.waiting) || got.sandbox != tc.want.sandbox {
				t.Errorf("plan = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func condition(st v1.PodStatus, t v1.PodConditionType) v1.ConditionStatus {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func TestComputeStatus(t *testing.T) {
	sb := &runtime.Sandbox{IP: "10.244.0.2"}
	always := testPod(v1.RestartPolicyAlways, "a")
	never := testPod(v1.RestartPolicyNever, "a", "b")
	withInit := testPod(v1.RestartPolicyAlways, "a")
	withInit.Spec.InitContainers = []v1.Container{{Name: "i", Image: "img:v1"}}
	crash := map[string]v1.ContainerStateWaiting{"a": {Reason: ReasonCrashLoopBackOff}}
	notReady := func(string, *v1.Container) bool { return false }

	cases := []struct {
		name      string
		pod       *v1.Pod
		sb        *runtime.Sandbox
		cs        []runtime.Container
		waiting   map[string]v1.ContainerStateWaiting
		ready     func(string, *v1.Container) bool
		phase     v1.PodPhase
		podReady  v1.ConditionStatus
		init      v1.ConditionStatus
		reason    string // first container's waiting reason
		restarts  int32
		lastState bool
	}{
		{name: "nothing yet", pod: always, phase: v1.PodPending, podReady: v1.ConditionFalse, init: v1.ConditionTrue, reason: ReasonContainerCreating},
		{name: "running", pod: always, sb: sb, cs: []runtime.Container{ctr(always, "a", 0, runtime.StateRunning, 0)}, phase: v1.PodRunning, podReady: v1.ConditionTrue, init: v1.ConditionTrue},
		{name: "running, readiness failing", pod: always, sb: sb, cs: []runtime.Container{ctr(always, "a", 0, runtime.StateRunning, 0)}, ready: notReady,
			phase: v1.PodRunning, podReady: v1.ConditionFalse, init: v1.ConditionTrue},
		{name: "crash loop is Running with the last exit", pod: always, sb: sb, cs: []runtime.Container{ctr(always, "a", 2, runtime.StateExited, 1)}, waiting: crash,
			phase: v1.PodRunning, podReady: v1.ConditionFalse, init: v1.ConditionTrue, reason: ReasonCrashLoopBackOff, restarts: 2, lastState: true},
		{name: "never: one failed, one succeeded", pod: never, sb: sb, cs: []runtime.Container{ctr(never, "a", 0, runtime.StateExited, 1), ctr(never, "b", 0, runtime.StateExited, 0)},
			phase: v1.PodFailed, podReady: v1.ConditionFalse, init: v1.ConditionTrue},
		{name: "never: all succeeded", pod: never, sb: sb, cs: []runtime.Container{ctr(never, "a", 0, runtime.StateExited, 0), ctr(never, "b", 0, runtime.StateExited, 0)},
			phase: v1.PodSucceeded, podReady: v1.ConditionFalse, init: v1.ConditionTrue},
		{name: "initializing", pod: withInit, sb: sb, cs: []runtime.Container{ctr(withInit, "i", 0, runtime.StateRunning, 0)},
			phase: v1.PodPending, podReady: v1.ConditionFalse, init: v1.ConditionFalse, reason: ReasonPodInitializing},
		{name: "pull error", pod: always, sb: sb, waiting: map[string]v1.ContainerStateWaiting{"a": {Reason: ReasonErrImagePull}},
			phase: v1.PodPending, podReady: v1.ConditionFalse, init: v1.ConditionTrue, reason: ReasonErrImagePull},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := ComputeStatus(tc.pod, tc.sb, tc.cs, StatusInput{Now: t0, HostIP: "10.250.0.2", Waiting: tc.waiting, Ready: tc.ready})
			if st.Phase != tc.phase {
				t.Errorf("phase %s, want %s", st.Phase, tc.phase)
			}
			if got := condition(st, v1.PodReady); got != tc.podReady {
				t.Errorf("Ready %s, want %s", got, tc.podReady)
			}
			if got := condition(st, v1.ContainersReady); got != tc.podReady {
				t.Errorf("ContainersReady %s, want %s", got, tc.podReady)
			}
			if got := condition(st, v1.PodInitialized); got != tc.init {
				t.Errorf("Initialized %s, want %s", got, tc.init)
			}
			if condition(st, v1.PodScheduled) != v1.ConditionTrue {
				t.Error("PodScheduled not True")
			}
			s := st.ContainerStatuses[0]
			if tc.reason != "" && (s.State.Waiting == nil || s.State.Waiting.Reason != tc.reason) {
				t.Errorf("waiting %+v, want %s", s.State.Waiting, tc.reason)
			}
			if s.RestartCount != tc.restarts {
				t.Errorf("restarts %d, want %d", s.RestartCount, tc.restarts)
			}
			if tc.lastState != (s.LastTerminationState.Terminated != nil) {
				t.Errorf("lastState %+v", s.LastTerminationState)
			}
			if tc.sb != nil && (st.PodIP != "10.244.0.2" || st.HostIP != "10.250.0.2") {
				t.Errorf("podIP %q hostIP %q", st.PodIP, st.HostIP)
			}
			// Unchanged input gives an equal status: no write.
			p := tc.pod.DeepCopy()
			p.Status = st
			again := ComputeStatus(p, tc.sb, tc.cs, StatusInput{Now: t0.Add(time.Minute), HostIP: "10.250.0.2", Waiting: tc.waiting, Ready: tc.ready})
			if again.StartTime == nil || !again.StartTime.Equal(st.StartTime) || len(again.Conditions) != len(st.Conditions) ||
				!again.Conditions[0].LastTransitionTime.Equal(&st.Conditions[0].LastTransitionTime) {
				t.Errorf("status not stable across syncs")
			}
		})
	}
}

func TestExpand(t *testing.T) {
	vals := map[string]string{"A": "1", "B": "two"}
	for in, want := range map[string]string{"x": "x", "$(A)-$(B)": "1-two", "$$(A)": "$(A)", "$(C)": "$(C)", "a$": "a$"} {
		if got := expand(in, vals); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

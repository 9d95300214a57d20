package pod

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubeish/kubeish/kubeletish/runtime"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// TestKillContainer drives one container's termination on a fake clock:
// the preStop hook runs before SIGTERM, its time counts against the grace
// period, a hook past the grace period is cut short and the container
// still gets the minimal SIGTERM window, a failed hook is an event and no
// reason not to stop, and a hook runs once per container.
func TestKillContainer(t *testing.T) {
	var httpHits sync.Map // path → true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { httpHits.Store(r.URL.RequestURI(), true) }))
	defer srv.Close()
	_, portS, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portS)

	exec := func(cmd ...string) *v1.LifecycleHandler {
		return &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: cmd}}
	}
	sleep := func(s int64) *v1.LifecycleHandler { return &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: s}} }
	cases := []struct {
		name    string
		preStop *v1.LifecycleHandler
		grace   time.Duration
		// steps are clock steps taken once the kill waits on the clock;
		// the kill must not have stopped the container before the last.
		steps     []time.Duration
		execCode  int
		execBlock bool // the exec hook hangs until the test ends
		killTwice bool
		wantStop  time.Duration // the grace StopContainer gets
		wantExecs int
		wantEvent string
	}{
		{name: "no hook: the whole grace period", grace: 30 * time.Second, wantStop: 30 * time.Second},
		{name: "sleep is honoured and counts against the grace period", preStop: sleep(5), grace: 30 * time.Second,
			steps: []time.Duration{4 * time.Second, time.Second}, wantStop: 25 * time.Second},
		{name: "sleep past the grace period: cut short, minimal SIGTERM window", preStop: sleep(30), grace: 3 * time.Second,
			steps: []time.Duration{3 * time.Second}, wantStop: minStopGrace},
		{name: "exec before SIGTERM", preStop: exec("/drain"), grace: 30 * time.Second, wantStop: 30 * time.Second, wantExecs: 1},
		{name: "exec hanging past the grace period", preStop: exec("/hang"), grace: 10 * time.Second, execBlock: true,
			steps: []time.Duration{5 * time.Second, 5 * time.Second}, wantStop: minStopGrace, wantExecs: 1},
		{name: "failed exec: event, then stopped anyway", preStop: exec("/drain"), execCode: 1, grace: 30 * time.Second, wantStop: 30 * time.Second,
			wantExecs: 1, wantEvent: "Warning FailedPreStopHook PreStopHook failed"},
		{name: "httpGet to the pod's IP", preStop: &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/log?msg=bye", Port: intstr.FromInt32(int32(port))}},
			grace: 30 * time.Second, wantStop: 30 * time.Second},
		{name: "no grace: no hook", preStop: exec("/drain"), grace: 0, wantStop: 0},
		{name: "a retried stop runs the hook once", preStop: exec("/drain"), grace: 30 * time.Second, killTwice: true, wantStop: 30 * time.Second, wantExecs: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(t0)
			fake := runtime.NewFake()
			fake.Now = clk.Now
			rec := record.NewFakeRecorder(10)
			m := New(Config{NodeName: "n1", Runtime: fake, Clock: clk, Log: bufferedLogger(t), Recorder: rec})
			pod := testPod(v1.RestartPolicyAlways, "c")
			pod.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: tc.preStop}
			ctx := context.Background()
			sb, _ := fake.RunSandbox(ctx, runtime.PodRef{UID: string(pod.UID), Namespace: pod.Namespace, Name: pod.Name}, false)
			sb.IP = "127.0.0.1" // where the httpGet hook's server listens
			id, _ := fake.StartContainer(ctx, sb, runtime.ContainerConfig{Pod: sb.Pod, Name: "c"})

			release := make(chan struct{})
			defer close(release)
			var mu sync.Mutex
			var execs []string
			fake.ExecResult = func(_ string, cmd []string) (int, error) {
				// The hook runs while the container still runs: before SIGTERM.
				cs, _ := fake.ListContainers(ctx, string(pod.UID))
				mu.Lock()
				execs = append(execs, fmt.Sprintf("%s running=%v", strings.Join(cmd, " "), cs[0].State == runtime.StateRunning))
				mu.Unlock()
				if tc.execBlock {
					<-release
				}
				return tc.execCode, nil
			}
			kill := func() chan error {
				done := make(chan error, 1)
				go func() {
					c, _ := fake.ListContainers(ctx, string(pod.UID))
					done <- m.killContainer(ctx, pod, sb, c[0], tc.grace, "test")
				}()
				return done
			}
			done := kill()
			for i, step := range tc.steps {
				poll.Until(t, 5*time.Second, "the kill to wait on the clock", func() (bool, error) { return clk.HasWaiters(), nil })
				poll.Never(t, 100*time.Millisecond, "no stop before the hook's time is up", func() error {
					select {
					case err := <-done:
						return fmt.Errorf("stopped after %d of %d clock steps: %v", i, len(tc.steps), err)
					default:
						return nil
					}
				})
				clk.Step(step)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if tc.killTwice {
				if err := <-kill(); err != nil {
					t.Fatal(err)
				}
			}
			wantCall := fmt.Sprintf("Stop p/c#0 grace=%v", tc.wantStop)
			if calls := fake.Calls; calls[len(calls)-1] != wantCall {
				t.Errorf("calls %q, want the last to be %q", calls, wantCall)
			}
			mu.Lock()
			if len(execs) != tc.wantExecs {
				t.Errorf("exec hooks %q, want %d", execs, tc.wantExecs)
			}
			for _, e := range execs {
				if !strings.HasSuffix(e, "running=true") {
					t.Errorf("exec hook %q ran after SIGTERM", e)
				}
			}
			mu.Unlock()
			if h := tc.preStop; h != nil && h.HTTPGet != nil {
				if _, ok := httpHits.Load(h.HTTPGet.Path); !ok {
					t.Errorf("httpGet hook %s never reached the pod", h.HTTPGet.Path)
				}
			}
			select {
			case ev := <-rec.Events:
				if ev != tc.wantEvent {
					t.Errorf("event %q, want %q", ev, tc.wantEvent)
				}
			default:
				if tc.wantEvent != "" {
					t.Errorf("no event, want %q", tc.wantEvent)
				}
			}
			if cs, _ := fake.ListContainers(ctx, string(pod.UID)); cs[0].State != runtime.StateExited {
				t.Errorf("container %s still %s", id, cs[0].State)
			}
		})
	}
}

// bufferedLogger logs into a buffer shown when the test fails: the pod
// workers outlive a test (they end with their pods), and must not log
// through a finished test.
func bufferedLogger(t *testing.T) *zap.Logger {
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("manager log:\n%s", buf.String())
		}
	})
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(buf), zap.DebugLevel))
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// timedRuntime is the fake runtime, with a log of starts and stops (and
// when they came) that tests read while the pod workers run.
type timedRuntime struct {
	*runtime.Fake
	mu    sync.Mutex
	calls []timedCall
}

type timedCall struct {
	what string // "Start p/c#0", "Stop p/c#0 grace=…"
	at   time.Time
}

func (r *timedRuntime) StartContainer(ctx context.Context, sb *runtime.Sandbox, cfg runtime.ContainerConfig) (string, error) {
	r.log(fmt.Sprintf("Start %s/%s#%d", cfg.Pod.Name, cfg.Name, cfg.Attempt))
	return r.Fake.StartContainer(ctx, sb, cfg)
}

func (r *timedRuntime) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	if cs, _ := r.ListContainers(ctx, ""); true {
		for _, c := range cs {
			if c.ID == id && c.State == runtime.StateRunning {
				r.log(fmt.Sprintf("Stop %s/%s#%d grace=%v", c.Pod.Name, c.Name, c.Attempt, grace))
			}
		}
	}
	return r.Fake.StopContainer(ctx, id, grace)
}

func (r *timedRuntime) log(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, timedCall{what, time.Now()})
}

// find returns the first call starting with prefix.
func (r *timedRuntime) find(prefix string) (timedCall, int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, c := range r.calls {
		if strings.HasPrefix(c.what, prefix) {
			return c, i, true
		}
	}
	return timedCall{}, -1, false
}

// TestLifecycleHooksWithFakeRuntime runs hooks through the pod sync
// against the real apiserver: a postStart hook runs before the container
// counts as running; a failing one kills and restarts the container, with
// an event; a preStop sleep keeps a deleted pod's container running for
// its seconds, counted against the grace period, while another pod's sync
// goes on.
func TestLifecycleHooksWithFakeRuntime(t *testing.T) {
	env := testenv.Start(t)
	fake := &timedRuntime{Fake: runtime.NewFake()}
	fake.AddImage("img:v1")
	m := New(Config{NodeName: "n1", HostIP: "10.250.0.2", Client: env.Client, Runtime: fake, RootDir: t.TempDir(), Log: bufferedLogger(t),
		CgroupParent: "/kubeish-unit/n1", RelistPeriod: 50 * time.Millisecond, ResyncPeriod: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Run(ctx) }()
	pods := env.Client.CoreV1().Pods("default")

	// postStart hooks: /warm succeeds, /fail fails. While /warm runs, the
	// API must not show the container running.
	var mu sync.Mutex
	var warmSawRunning []bool
	fake.ExecResult = func(_ string, cmd []string) (int, error) {
		switch cmd[0] {
		case "/warm":
			p, err := pods.Get(ctx, "warm", metav1.GetOptions{})
			running := err == nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
			mu.Lock()
			warmSawRunning = append(warmSawRunning, running)
			mu.Unlock()
			return 0, nil
		case "/fail":
			return 1, nil
		}
		return 0, nil
	}
	newPod := func(name string, grace int64, lc *v1.Lifecycle) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: v1.PodSpec{NodeName: "n1", TerminationGracePeriodSeconds: &grace,
			Containers: []v1.Container{{Name: "c", Image: "img:v1", ImagePullPolicy: v1.PullIfNotPresent, Lifecycle: lc}}}}
	}
	for _, p := range []*v1.Pod{
		newPod("warm", 30, &v1.Lifecycle{PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"/warm"}}}}),
		newPod("badstart", 30, &v1.Lifecycle{PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"/fail"}}}}),
		newPod("drain", 6, &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 3}}}),
		newPod("slowstart", 30, &v1.Lifecycle{PostStart: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 30}}}),
	} {
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	status := func(name string) *v1.ContainerStatus {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) != 1 {
			return nil
		}
		return &p.Status.ContainerStatuses[0]
	}
	running := func(name string) func() (bool, error) {
		return func() (bool, error) { s := status(name); return s != nil && s.State.Running != nil, nil }
	}
	poll.Until(t, 15*time.Second, "warm Running", running("warm"))
	poll.Until(t, 15*time.Second, "drain Running", running("drain"))
	mu.Lock()
	if len(warmSawRunning) != 1 || warmSawRunning[0] {
		t.Errorf("postStart hook runs: %v, want one, with the container not yet reported running", warmSawRunning)
	}
	mu.Unlock()

	// The failing postStart: killed, restarted, an event says why.
	poll.Until(t, 15*time.Second, "badstart restarted after its postStart failed", func() (bool, error) {
		s := status("badstart")
		return s != nil && s.RestartCount >= 1 && s.LastTerminationState.Terminated != nil, nil
	})
	poll.Until(t, 15*time.Second, "a FailedPostStartHook event", func() (bool, error) {
		evs, err := env.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=badstart"})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Reason == EventFailedPostStartHook && e.Type == v1.EventTypeWarning && e.InvolvedObject.FieldPath == "spec.containers{c}" &&
				strings.Contains(e.Message, "Exec lifecycle hook ([/fail])") && e.Source.Component == "kubelet" {
				return true, nil
			}
		}
		return false, fmt.Errorf("events: %+v", evs.Items)
	})
	if _, i, _ := fake.find("Stop badstart/c#0"); true {
		if _, j, _ := fake.find("Start badstart/c#1"); i < 0 || j < i {
			t.Errorf("want badstart's first attempt stopped (%d), then restarted (%d)", i, j)
		}
	}

	// A pod deleted while its postStart hook runs does not wait for the
	// hook: it goes at once, and never counted as running.
	poll.Until(t, 15*time.Second, "slowstart's container started, its postStart sleeping", func() (bool, error) {
		_, _, ok := fake.find("Start slowstart/c#0")
		return ok, nil
	})
	if s := status("slowstart"); s != nil && s.State.Running != nil {
		t.Errorf("slowstart running during its postStart hook: %+v", s.State)
	}
	if err := pods.Delete(ctx, "slowstart", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "slowstart deleted during its postStart sleep", func() (bool, error) {
		_, err := pods.Get(ctx, "slowstart", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})

	// A graceful delete with a preStop sleep: the container keeps running
	// for the sleep, while another pod starts meanwhile.
	drain, err := pods.Get(ctx, "drain", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Taken before the request: the node may act on it before it returns.
	deleted := time.Now()
	if err := pods.Delete(ctx, "drain", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	drainRunning := func() error {
		cs, _ := fake.ListContainers(ctx, string(drain.UID))
		if len(cs) != 1 || cs[0].State != runtime.StateRunning {
			return fmt.Errorf("drain's container stopped %v after the delete, during its preStop sleep: %+v", time.Since(deleted), cs)
		}
		return nil
	}
	poll.Never(t, time.Second, "drain's container runs during its preStop sleep", drainRunning)
	if _, err := pods.Create(ctx, newPod("other", 30, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 1500*time.Millisecond, "another pod Running during drain's preStop", running("other"))
	if err := drainRunning(); err != nil {
		t.Error(err)
	}
	poll.Until(t, 15*time.Second, "drain deleted", func() (bool, error) {
		_, err := pods.Get(ctx, "drain", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	stop, _, ok := fake.find("Stop drain/c#0 grace=")
	if !ok {
		t.Fatal("no stop of drain")
	}
	if after := stop.at.Sub(deleted); after < 3*time.Second {
		t.Errorf("drain's SIGTERM came %v after its delete, before its 3 s preStop sleep ended", after)
	}
	// The stop got the 6 s grace period less the sleep's 3 s (and a bit).
	if g, _ := time.ParseDuration(strings.TrimPrefix(stop.what, "Stop drain/c#0 grace=")); g <= 2*time.Second || g > 3*time.Second {
		t.Errorf("drain stopped with grace %v, want what the 3 s sleep left of 6 s", g)
	}
}

package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubeish/kubeish/pkg/poll"
)

func TestRunHook(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		if r.URL.Path == "/fail" {
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	host, portS, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portS)
	// A port nothing listens on: a listener closed at once.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	c := &v1.Container{Ports: []v1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}

	type execCall struct {
		id      string
		cmd     []string
		timeout time.Duration
	}
	cases := []struct {
		name     string
		handler  v1.LifecycleHandler
		podIP    string
		deadline time.Duration // 0: none
		code     int
		execErr  error
		wantErr  bool
		check    func(t *testing.T, calls []execCall)
	}{
		{name: "exec exit 0", handler: v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"/drain", "now"}}},
			check: func(t *testing.T, calls []execCall) {
				if len(calls) != 1 || calls[0].id != "c1" || len(calls[0].cmd) != 2 || calls[0].timeout != noDeadlineExec {
					t.Errorf("exec calls %+v, want /drain now in c1 without a deadline", calls)
				}
			}},
		{name: "exec within the deadline", handler: v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"x"}}}, deadline: 7 * time.Second,
			check: func(t *testing.T, calls []execCall) {
				if len(calls) != 1 || calls[0].timeout <= 6*time.Second || calls[0].timeout > 7*time.Second {
					t.Errorf("exec calls %+v, want a timeout of the deadline's 7s", calls)
				}
			}},
		{name: "exec exit 1 fails", handler: v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"x"}}}, code: 1, wantErr: true},
		{name: "exec error fails", handler: v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"x"}}}, execErr: errors.New("no such file"), wantErr: true},
		{name: "httpGet by port name with headers", handler: v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/log?msg=bye", Port: intstr.FromString("http"),
			HTTPHeaders: []v1.HTTPHeader{{Name: "X-Hook", Value: "preStop"}}}}, podIP: host},
		{name: "httpGet 500 still succeeds (as the kubelet)", handler: v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/fail", Port: intstr.FromInt32(int32(port))}}, podIP: host},
		{name: "httpGet to a named host", handler: v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Host: host, Path: "/", Port: intstr.FromInt32(int32(port))}}},
		{name: "httpGet refused fails", handler: v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(int32(closedPort))}}, podIP: "127.0.0.1", wantErr: true},
		{name: "httpGet without a pod IP fails", handler: v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(80)}}, wantErr: true},
		{name: "sleep 0", handler: v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 0}}},
		{name: "tcpSocket fails", handler: v1.LifecycleHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(80)}}, wantErr: true},
		{name: "no handler fails", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls []execCall
			exec := func(_ context.Context, id string, cmd []string, timeout time.Duration) (int, []byte, error) {
				calls = append(calls, execCall{id, cmd, timeout})
				return tc.code, []byte("out"), tc.execErr
			}
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			mu.Lock()
			got = nil
			mu.Unlock()
			err := RunHook(ctx, &tc.handler, c, tc.podIP, "c1", exec, clock.RealClock{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, calls)
			}
			if h := tc.handler.HTTPGet; h != nil && !tc.wantErr {
				mu.Lock()
				defer mu.Unlock()
				if len(got) != 1 || got[0].URL.RequestURI() != h.Path || got[0].Header.Get("User-Agent") != "kube-lifecycle/kubeish" {
					t.Fatalf("requests %+v, want one GET %s", got, h.Path)
				}
				for _, hd := range h.HTTPHeaders {
					if got[0].Header.Get(hd.Name) != hd.Value {
						t.Errorf("header %s = %q, want %q", hd.Name, got[0].Header.Get(hd.Name), hd.Value)
					}
				}
			}
		})
	}
}

// TestSleepHook: a sleep hook waits its seconds on the clock, and ends
// early (failed) when its context does.
func TestSleepHook(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	h := &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 30}}
	done := make(chan error, 1)
	go func() { done <- RunHook(context.Background(), h, &v1.Container{}, "", "", nil, clk) }()
	poll.Until(t, 5*time.Second, "the sleep hook's timer", func() (bool, error) { return clk.HasWaiters(), nil })
	clk.Step(29 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("sleep hook ended after 29 of 30 s: %v", err)
	default:
	}
	clk.Step(time.Second)
	if err := <-done; err != nil {
		t.Fatalf("sleep hook: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- RunHook(ctx, h, &v1.Container{}, "", "", nil, clk) }()
	cancel()
	if err := <-done; !errors.Is(err, ErrHookInterrupted) {
		t.Fatalf("cancelled sleep hook: %v, want ErrHookInterrupted", err)
	}
}

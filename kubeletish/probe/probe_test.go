package probe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestStateMachine(t *testing.T) {
	p := &v1.Probe{SuccessThreshold: 2, FailureThreshold: 3}
	cases := []struct {
		kind    Kind
		obs     []bool
		results []Result
	}{
		{Readiness, []bool{true, true, false, false, false, true, true}, []Result{Failure, Success, Success, Success, Failure, Failure, Success}},
		{Liveness, []bool{false, false, true, false, false, false}, []Result{Success, Success, Success, Success, Success, Failure}},
		{Startup, []bool{false, true, true}, []Result{Failure, Failure, Success}},
		{Startup, []bool{false, false, false}, []Result{Failure, Failure, Failure}},
	}
	for _, tc := range cases {
		t.Run(string(tc.kind), func(t *testing.T) {
			s := InitialState(tc.kind)
			for i, ok := range tc.obs {
				prev := s.Result
				changed := s.Observe(ok, p)
				if s.Result != tc.results[i] {
					t.Fatalf("after %d observations %v: %v, want %v", i+1, tc.obs[:i+1], s.Result, tc.results[i])
				}
				if want := tc.kind == Startup && i == 2 && !tc.obs[1]; want != s.FailedOut && i == 2 {
					t.Fatalf("FailedOut = %v after %v", s.FailedOut, tc.obs[:i+1])
				}
				if changed != (prev != s.Result) {
					t.Fatalf("changed = %v at %d", changed, i)
				}
			}
		})
	}
}

func TestRun(t *testing.T) {
	healthy := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy {
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	host, portS, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portS)
	c := &v1.Container{Ports: []v1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	ctx := context.Background()
	httpProbe := &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}}, TimeoutSeconds: 1}
	if ok, err := Run(ctx, httpProbe, c, host, "", nil); !ok {
		t.Errorf("http probe of a healthy server: %v", err)
	}
	healthy = false
	if ok, _ := Run(ctx, httpProbe, c, host, "", nil); ok {
		t.Error("http probe of a 500 succeeded")
	}
	tcp := &v1.Probe{ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(int32(port))}}}
	if ok, err := Run(ctx, tcp, c, host, "", nil); !ok {
		t.Errorf("tcp probe: %v", err)
	}
	exec := &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"check"}}}}
	code := 0
	fake := func(_ context.Context, id string, cmd []string, _ time.Duration) (int, []byte, error) {
		return code, nil, nil
	}
	if ok, _ := Run(ctx, exec, c, host, "c1", fake); !ok {
		t.Error("exec exit 0 failed")
	}
	code = 1
	if ok, _ := Run(ctx, exec, c, host, "c1", fake); ok {
		t.Error("exec exit 1 succeeded")
	}
}

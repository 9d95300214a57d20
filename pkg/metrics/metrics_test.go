package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
	"k8s.io/client-go/util/workqueue"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := NewServer()
	RegisterWorkqueueMetrics(s.Registry)
	hits := prometheus.NewCounter(prometheus.CounterOpts{Name: "kubeish_test_hits_total", Help: "hits"})
	s.Registry.MustRegister(hits)
	hits.Add(3)
	q := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "testloop"})
	defer q.ShutDown()
	q.Add("a")

	var ready error = errors.New("caches not synced")
	s.AddReadyz("informers", func() error { return ready })
	s.AddHealthz("ping", func() error { return nil })
	addr, err := s.Serve(ctx, "127.0.0.1:0", zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr.String()

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "[-]informers failed: caches not synced") {
		t.Errorf("/readyz = %d %q, want 503 naming the failed check", code, body)
	}
	s.AddReadyz("informers", func() error { return nil })
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz after sync = %d, want 200", code)
	}
	_, m := get(t, base+"/metrics")
	for _, want := range []string{"kubeish_test_hits_total 3", `workqueue_depth{name="testloop"} 1`, `workqueue_adds_total{name="testloop"} 1`, "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestChecksSorted(t *testing.T) {
	s := NewServer()
	for _, n := range []string{"c", "a", "b"} {
		s.AddHealthz(n, func() error { return errors.New("down") })
	}
	rec := httptest.NewRecorder()
	s.checks(&s.healthz)(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 503 || rec.Body.String() != "[-]a failed: down\n[-]b failed: down\n[-]c failed: down\n" {
		t.Errorf("got %d %q, want 503 and the checks in name order", rec.Code, rec.Body.String())
	}
}

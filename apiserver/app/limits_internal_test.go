package app

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/apiserver/auth/user"
)

// blocking is a handler that holds every request until released.
type blocking struct {
	entered chan string
	release chan struct{}
}

func newBlocking() *blocking {
	return &blocking{entered: make(chan string, 100), release: make(chan struct{})}
}

func (b *blocking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.entered <- r.Method + " " + r.URL.String()
	<-b.release
	w.WriteHeader(http.StatusOK)
}

func serve(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func want429(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	var s metav1.Status
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("answer %d Retry-After %q, want 429 with Retry-After 1: %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil || s.Kind != "Status" || s.Reason != metav1.StatusReasonTooManyRequests || s.Code != 429 {
		t.Fatalf("not a TooManyRequests Status: %s", rec.Body)
	}
}

// TestMaxInFlight: over the read-only and the mutating limits (counted
// apart) requests answer 429 at once; health checks, watches and followed
// logs pass whatever the load; a slot frees when its request ends.
func TestMaxInFlight(t *testing.T) {
	a := &APIServer{opts: Options{Limits: LimitOptions{MaxRequestsInFlight: 2, MaxMutatingRequestsInFlight: 1}}}
	m := newLimitMetrics(prometheus.NewRegistry())
	b := newBlocking()
	h := a.withMaxInFlight(b, m)

	var wg sync.WaitGroup
	for _, req := range [][2]string{{"GET", "/api/v1/pods"}, {"GET", "/api/v1/namespaces/a/configmaps/x"}, {"POST", "/api/v1/namespaces/a/configmaps"}} {
		wg.Go(func() {
			if rec := serve(h, req[0], req[1]); rec.Code != http.StatusOK {
				t.Errorf("%v: %d", req, rec.Code)
			}
		})
		<-b.entered
	}
	want429(t, serve(h, "GET", "/api/v1/pods"))
	want429(t, serve(h, "DELETE", "/api/v1/namespaces/a/configmaps/x"))
	if got := testutil.ToFloat64(m.dropped.WithLabelValues("readOnly")); got != 1 {
		t.Fatalf("dropped readOnly: %v", got)
	}
	if got := testutil.ToFloat64(m.inflight.WithLabelValues("readOnly")); got != 2 {
		t.Fatalf("in flight readOnly: %v", got)
	}
	// Exempt: these reach the (blocking) handler although every slot is
	// taken.
	for _, target := range []string{"/healthz", "/livez", "/readyz", "/readyz/etcd",
		"/api/v1/namespaces/a/configmaps?watch=true", "/api/v1/namespaces/a/pods/p/log?follow=true"} {
		wg.Go(func() { serve(h, "GET", target) })
		select {
		case <-b.entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was held back by the in-flight limit", target)
		}
	}
	close(b.release)
	wg.Wait()
	if rec := serve(h, "GET", "/api/v1/pods"); rec.Code != http.StatusOK {
		t.Fatalf("after the load: %d", rec.Code)
	}
}

// TestWatchLimitPerUser: a user's watches beyond the limit answer 429,
// counted per user name (a member of system:masters too); non-watch
// requests are not counted; a watch that ends frees its place.
func TestWatchLimitPerUser(t *testing.T) {
	a := &APIServer{opts: Options{Limits: LimitOptions{MaxWatchesPerUser: 2}}}
	b := newBlocking()
	h := a.withWatchLimit(b, newLimitMetrics(nil))
	as := func(name string, groups ...string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(user.With(r.Context(), &user.Info{Name: name, Groups: groups})))
		})
	}
	const watch = "/api/v1/pods?watch=true"
	const follow = "/api/v1/namespaces/default/pods/p/log?follow=true"
	var wg sync.WaitGroup
	for _, target := range []string{watch, follow} { // a followed log stream counts as one too
		wg.Go(func() { serve(as("admin", user.MastersGroup), "GET", target) })
		<-b.entered
	}
	want429(t, serve(as("admin", user.MastersGroup), "GET", watch))
	want429(t, serve(as("admin", user.MastersGroup), "GET", follow))
	// Another user, and the same user's lists, are not held back.
	for _, hh := range []struct {
		h      http.Handler
		target string
	}{{as("bob"), watch}, {as("admin"), "/api/v1/pods"}} {
		wg.Go(func() { serve(hh.h, "GET", hh.target) })
		select {
		case <-b.entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was held back", hh.target)
		}
	}
	close(b.release)
	wg.Wait()
	b.release = make(chan struct{})
	wg.Go(func() { serve(as("admin"), "GET", watch) })
	<-b.entered
	close(b.release)
	wg.Wait()
}

// TestTimeoutDeadlines: ordinary requests get --request-timeout (or a
// shorter ?timeout=), watches a random time in [1x, 2x) of
// --min-request-timeout, log streams and health checks none; a bad
// ?timeout= is a BadRequest.
func TestTimeoutDeadlines(t *testing.T) {
	a := &APIServer{opts: Options{Limits: LimitOptions{RequestTimeout: time.Minute, MinRequestTimeout: time.Hour}}}
	var left time.Duration
	var has bool
	h := a.withTimeout(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var dl time.Time
		dl, has = r.Context().Deadline()
		left = time.Until(dl)
	}))
	for _, tc := range []struct {
		target   string
		min, max time.Duration
	}{
		{"/api/v1/pods", 59 * time.Second, time.Minute},
		{"/api/v1/pods?timeout=5s", 4 * time.Second, 5 * time.Second},
		{"/api/v1/pods?timeout=5m", 59 * time.Second, time.Minute},
		{"/api/v1/pods?watch=true", 59 * time.Minute, 2 * time.Hour},
		{"/api/v1/namespaces/a/pods/p/log", 59 * time.Second, time.Minute},
		{"/api/v1/namespaces/a/pods/p/log?follow=true", 0, 0},
		{"/healthz", 0, 0},
	} {
		has, left = false, 0
		serve(h, "GET", tc.target)
		if tc.max == 0 && has || tc.max > 0 && (!has || left < tc.min || left > tc.max) {
			t.Errorf("%s: deadline %v in %v, want in [%v, %v]", tc.target, has, left, tc.min, tc.max)
		}
	}
	if rec := serve(h, "GET", "/api/v1/pods?timeout=soon"); rec.Code != http.StatusBadRequest {
		t.Fatalf("bad timeout: %d %s", rec.Code, rec.Body)
	}
}

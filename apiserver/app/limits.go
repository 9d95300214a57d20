package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/apiserver/auth/user"
)

// LimitOptions bound what clients may cost the apiserver. The flags are
// Kubernetes' own; a zero field means no limit (as with Kubernetes' flags),
// so a program that builds Options by hand should start from
// NewLimitOptions.
type LimitOptions struct {
	// MaxRequestsInFlight bounds the read-only requests (GET, HEAD,
	// OPTIONS) being served at once; over it the apiserver answers 429
	// with Retry-After. Watches and log streams do not count.
	MaxRequestsInFlight int
	// MaxMutatingRequestsInFlight does the same for POST, PUT, PATCH and
	// DELETE.
	MaxMutatingRequestsInFlight int
	// MaxWatchesPerUser bounds the watches one user (by name) holds open.
	MaxWatchesPerUser int
	// RequestTimeout bounds every request that is not a watch or a log
	// stream: its context ends then, and the answer is 504 Timeout.
	RequestTimeout time.Duration
	// MinRequestTimeout is the shortest a watch may stay open before the
	// server ends it; each watch lasts a random time in [1x, 2x) of it (so
	// that re-watches spread out), or less when it asks for less with
	// timeoutSeconds.
	MinRequestTimeout time.Duration
}

// NewLimitOptions returns Kubernetes' defaults.
func NewLimitOptions() LimitOptions {
	return LimitOptions{
		MaxRequestsInFlight:         400,
		MaxMutatingRequestsInFlight: 200,
		MaxWatchesPerUser:           1000,
		RequestTimeout:              60 * time.Second,
		MinRequestTimeout:           1800 * time.Second,
	}
}

// AddFlags registers the limit flags, with NewLimitOptions' defaults when o
// is the zero value.
func (o *LimitOptions) AddFlags(fs *pflag.FlagSet) {
	if *o == (LimitOptions{}) {
		*o = NewLimitOptions()
	}
	fs.IntVar(&o.MaxRequestsInFlight, "max-requests-inflight", o.MaxRequestsInFlight, "the most read-only requests served at once; more answer 429 with Retry-After (watches and log streams do not count; 0 is no limit)")
	fs.IntVar(&o.MaxMutatingRequestsInFlight, "max-mutating-requests-inflight", o.MaxMutatingRequestsInFlight, "the most create/update/patch/delete requests served at once; more answer 429 with Retry-After (0 is no limit)")
	fs.IntVar(&o.MaxWatchesPerUser, "max-watches-per-user", o.MaxWatchesPerUser, "the most watches and followed log streams one user (by name) may hold open; more answer 429 (0 is no limit)")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", o.RequestTimeout, "how long a request other than a watch or log stream may take before it answers 504 Timeout (0 is no limit)")
	fs.DurationVar(&o.MinRequestTimeout, "min-request-timeout", o.MinRequestTimeout, "a watch is ended after a random time between this and twice this, or its timeoutSeconds when shorter; clients re-watch (0 leaves watches to their timeoutSeconds)")
}

// Validate refuses negative limits.
func (o *LimitOptions) Validate() error {
	if o.MaxRequestsInFlight < 0 || o.MaxMutatingRequestsInFlight < 0 || o.MaxWatchesPerUser < 0 || o.RequestTimeout < 0 || o.MinRequestTimeout < 0 {
		return errors.New("--max-requests-inflight, --max-mutating-requests-inflight, --max-watches-per-user, --request-timeout and --min-request-timeout may not be negative (0 is no limit)")
	}
	return nil
}

// limitMetrics are the in-flight filter's, under Kubernetes' names.
type limitMetrics struct {
	inflight *prometheus.GaugeVec
	dropped  *prometheus.CounterVec
}

func newLimitMetrics(reg prometheus.Registerer) *limitMetrics {
	m := &limitMetrics{
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_current_inflight_requests",
			Help: "Requests being served, by kind (readOnly, mutating); health checks, watches and log streams excluded.",
		}, []string{"request_kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_dropped_requests_total",
			Help: "Requests refused with 429 by the in-flight limits (request_kind readOnly, mutating) and the per-user watch limit (watch).",
		}, []string{"request_kind"}),
	}
	if reg != nil {
		// One chain per registry: a second one (never made) would only
		// leave its counts unexported.
		_ = reg.Register(m.inflight)
		_ = reg.Register(m.dropped)
	}
	return m
}

// withMaxInFlight answers 429 with Retry-After over the in-flight limits,
// at once rather than queueing (as Kubernetes' max-in-flight filter does).
// Health checks, watches and log streams are not counted, so a load of
// requests never makes /healthz fail, and an open watch never holds a slot.
// Members of system:masters are counted like everyone else (Kubernetes
// exempts them): with the development listener every request is theirs.
func (a *APIServer) withMaxInFlight(h http.Handler, m *limitMetrics) http.Handler {
	o := a.opts.Limits
	var readOnly, mutating chan struct{}
	if o.MaxRequestsInFlight > 0 {
		readOnly = make(chan struct{}, o.MaxRequestsInFlight)
	}
	if o.MaxMutatingRequestsInFlight > 0 {
		mutating = make(chan struct{}, o.MaxMutatingRequestsInFlight)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isHealthCheck(r) || isLongRunning(r) {
			h.ServeHTTP(w, r)
			return
		}
		sem, kind := readOnly, "readOnly"
		if isMutating(r) {
			sem, kind = mutating, "mutating"
		}
		if sem == nil {
			h.ServeHTTP(w, r)
			return
		}
		select {
		case sem <- struct{}{}:
		default:
			m.dropped.WithLabelValues(kind).Inc()
			tooManyRequests(w, "Too many requests, please try again later.")
			return
		}
		m.inflight.WithLabelValues(kind).Inc()
		defer func() {
			<-sem
			m.inflight.WithLabelValues(kind).Dec()
		}()
		h.ServeHTTP(w, r)
	})
}

// withWatchLimit bounds the watches one user holds open, counted by user
// name (system:masters members too): a client that opens watches in a loop
// and never closes them gets 429 instead of exhausting memory.
func (a *APIServer) withWatchLimit(h http.Handler, m *limitMetrics) http.Handler {
	max := a.opts.Limits.MaxWatchesPerUser
	if max <= 0 {
		return h
	}
	var mu sync.Mutex
	open := map[string]int{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Followed log streams count too: like watches they hold a
		// connection (and one to a node) for as long as the client likes.
		if !isLongRunning(r) {
			h.ServeHTTP(w, r)
			return
		}
		name := user.Anonymous
		if u := user.From(r.Context()); u != nil {
			name = u.Name
		}
		mu.Lock()
		if open[name] >= max {
			mu.Unlock()
			m.dropped.WithLabelValues("watch").Inc()
			tooManyRequests(w, fmt.Sprintf("user %q has %d watches and followed log streams open, the most allowed (--max-watches-per-user)", name, max))
			return
		}
		open[name]++
		mu.Unlock()
		defer func() {
			mu.Lock()
			if open[name]--; open[name] == 0 {
				delete(open, name)
			}
			mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	})
}

// withTimeout bounds every request that is not a watch or a log stream:
// its context ends after --request-timeout (or the request's shorter
// ?timeout=), the store's calls return context.DeadlineExceeded, and the
// server answers that as 504 Timeout; reading its body is bounded by the
// same deadline. The filter never writes itself, so
// nothing is written after (or concurrently with) the handler; a handler
// that ignores its context answers late rather than twice.
//
// A watch's context ends after a random time in [1x, 2x) of
// --min-request-timeout, as Kubernetes does, so that the re-watches of many
// clients spread out; a shorter timeoutSeconds is honoured by the watch
// itself. Log streams are left open as long as the client reads.
func (a *APIServer) withTimeout(h http.Handler) http.Handler {
	o := a.opts.Limits
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d time.Duration
		switch {
		case isHealthCheck(r):
		case isWatch(r):
			if o.MinRequestTimeout > 0 {
				d = time.Duration(float64(o.MinRequestTimeout) * (1 + rand.Float64()))
			}
		case isLongRunning(r):
		default:
			d = o.RequestTimeout
			if v := r.URL.Query().Get("timeout"); v != "" {
				t, err := time.ParseDuration(v)
				if err != nil || t < 0 {
					writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("timeout %q is not a duration like 30s", v)))
					return
				}
				if t > 0 && (d == 0 || t < d) {
					d = t
				}
			}
		}
		if d <= 0 {
			h.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		// A body sent slower than that (a slowloris) would hold the
		// handler in a read the context cannot interrupt: the connection's
		// read deadline ends it too. net/http resets the deadline before
		// the connection's next request.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// isHealthCheck: health endpoints answer whatever the load.
func isHealthCheck(r *http.Request) bool {
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		if r.URL.Path == p || strings.HasPrefix(r.URL.Path, p+"/") {
			return true
		}
	}
	return false
}

func isWatch(r *http.Request) bool {
	v := r.URL.Query().Get("watch")
	return r.Method == http.MethodGet && (v == "true" || v == "1")
}

// isLongRunning: watches and followed log streams
// (/api/v1/namespaces/{ns}/pods/{name}/log?follow=true).
func isLongRunning(r *http.Request) bool {
	if isWatch(r) {
		return true
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 7 || parts[0] != "api" || parts[2] != "namespaces" || parts[4] != "pods" || parts[6] != "log" {
		return false
	}
	follow, _ := strconv.ParseBool(r.URL.Query().Get("follow"))
	return follow
}

func isMutating(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// tooManyRequests answers 429 TooManyRequests, retry after a second.
func tooManyRequests(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "1")
	writeStatus(w, apierrors.NewTooManyRequests(msg, 1))
}

// writeStatus answers err's Status as JSON (client-go reads a JSON Status
// whatever it asked for).
func writeStatus(w http.ResponseWriter, err apierrors.APIStatus) {
	s := err.Status()
	s.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(s.Code))
	_ = json.NewEncoder(w).Encode(&s)
}

// Package metrics serves a component's /metrics (its own Prometheus
// registry), /healthz and /readyz on one listener, and exports client-go
// workqueue metrics under Kubernetes' names (workqueue_depth, …).
package metrics

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"k8s.io/client-go/util/workqueue"
)

// Check reports an error when the component is not healthy or ready.
type Check func() error

// Server is the metrics and health endpoint of one component.
type Server struct {
	Registry *prometheus.Registry

	mu      sync.Mutex
	healthz map[string]Check
	readyz  map[string]Check
	mux     *http.ServeMux
}

// NewServer returns a server whose registry already holds the Go and
// process collectors.
func NewServer() *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{Registry: reg, healthz: map[string]Check{}, readyz: map[string]Check{}, mux: http.NewServeMux()}
	s.mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s.mux.HandleFunc("/healthz", s.checks(&s.healthz))
	s.mux.HandleFunc("/livez", s.checks(&s.healthz))
	s.mux.HandleFunc("/readyz", s.checks(&s.readyz))
	return s
}

// Handle adds a handler on the server's mux (e.g. a debug page).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// EnableProfiling serves Go's /debug/pprof pages on the server (behind each
// binary's --profiling flag).
func (s *Server) EnableProfiling() {
	s.mux.HandleFunc("/debug/pprof/", pprof.Index)
	s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// AddHealthz adds a liveness check; AddReadyz a readiness check.
func (s *Server) AddHealthz(name string, c Check) { s.mu.Lock(); s.healthz[name] = c; s.mu.Unlock() }
func (s *Server) AddReadyz(name string, c Check)  { s.mu.Lock(); s.readyz[name] = c; s.mu.Unlock() }

func (s *Server) checks(set *map[string]Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		var failed []string
		for name, c := range *set {
			if err := c(); err != nil {
				failed = append(failed, fmt.Sprintf("[-]%s failed: %v", name, err))
			}
		}
		s.mu.Unlock()
		sort.Strings(failed)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, f := range failed {
				fmt.Fprintln(w, f)
			}
			return
		}
		fmt.Fprint(w, "ok")
	}
}

// Serve listens on addr and serves until ctx ends. It returns the bound
// address (useful with port 0) once listening; errors after that are
// logged.
func (s *Server) Serve(ctx context.Context, addr string, log *zap.Logger) (net.Addr, error) {
	return s.ServeWith(ctx, addr, log, ServeOptions{})
}

// ServeOptions change how ServeWith serves; the zero value is Serve's
// plain HTTP.
type ServeOptions struct {
	// TLS, when set, serves HTTPS with it (its certificates, or
	// GetCertificate, are the serving certificate).
	TLS *tls.Config
	// Wrap, when set, wraps the server's handler: every request passes
	// through what it returns first (e.g. authentication).
	Wrap func(http.Handler) http.Handler
}

// ServeWith is Serve with options: TLS and a wrapping handler.
func (s *Server) ServeWith(ctx context.Context, addr string, log *zap.Logger, opts ServeOptions) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	var h http.Handler = s.mux
	if opts.Wrap != nil {
		h = opts.Wrap(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	serve := srv.Serve
	if opts.TLS != nil {
		srv.TLSConfig = opts.TLS
		serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
		// Failed handshakes (scanners, callers that do not trust our CA)
		// are not the component's errors: debug, not stderr.
		if l, err := zap.NewStdLogAt(log.Named("http"), zap.DebugLevel); err == nil {
			srv.ErrorLog = l
		}
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", zap.Error(err))
		}
	}()
	return ln.Addr(), nil
}

var setProvider sync.Once

// RegisterWorkqueueMetrics makes every client-go workqueue with a Name
// export workqueue_depth, workqueue_adds_total, workqueue_queue_duration_seconds,
// workqueue_work_duration_seconds, workqueue_retries_total,
// workqueue_unfinished_work_seconds and workqueue_longest_running_processor_seconds
// (labelled by name) into reg. client-go allows one provider per process; the
// first registry wins.
func RegisterWorkqueueMetrics(reg prometheus.Registerer) {
	setProvider.Do(func() {
		p := newWorkqueueProvider()
		reg.MustRegister(p.depth, p.adds, p.latency, p.work, p.unfinished, p.longest, p.retries)
		workqueue.SetProvider(p)
	})
}

type workqueueProvider struct {
	depth, unfinished, longest *prometheus.GaugeVec
	adds, retries              *prometheus.CounterVec
	latency, work              *prometheus.HistogramVec
}

func newWorkqueueProvider() *workqueueProvider {
	buckets := prometheus.ExponentialBuckets(10e-9, 10, 12)
	return &workqueueProvider{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "workqueue_depth", Help: "Current depth of the workqueue."}, []string{"name"}),
		adds:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workqueue_adds_total", Help: "Total number of adds handled by the workqueue."}, []string{"name"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "workqueue_queue_duration_seconds",
			Help: "How long in seconds an item stays in the workqueue before being requested.", Buckets: buckets}, []string{"name"}),
		work: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "workqueue_work_duration_seconds",
			Help: "How long in seconds processing an item from the workqueue takes.", Buckets: buckets}, []string{"name"}),
		unfinished: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "workqueue_unfinished_work_seconds",
			Help: "How many seconds of work has been done that is in progress."}, []string{"name"}),
		longest: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "workqueue_longest_running_processor_seconds",
			Help: "How many seconds the longest running processor has been running."}, []string{"name"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workqueue_retries_total", Help: "Total number of retries handled by the workqueue."}, []string{"name"}),
	}
}

func (p *workqueueProvider) NewDepthMetric(name string) workqueue.GaugeMetric {
	return p.depth.WithLabelValues(name)
}
func (p *workqueueProvider) NewAddsMetric(name string) workqueue.CounterMetric {
	return p.adds.WithLabelValues(name)
}
func (p *workqueueProvider) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return p.latency.WithLabelValues(name)
}
func (p *workqueueProvider) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return p.work.WithLabelValues(name)
}
func (p *workqueueProvider) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return p.unfinished.WithLabelValues(name)
}
func (p *workqueueProvider) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return p.longest.WithLabelValues(name)
}
func (p *workqueueProvider) NewRetriesMetric(name string) workqueue.CounterMetric {
	return p.retries.WithLabelValues(name)
}

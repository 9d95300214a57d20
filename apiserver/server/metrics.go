package server

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// metrics are the apiserver's request metrics, named as Kubernetes names them.
type metrics struct {
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	longRunning *prometheus.GaugeVec
	objects     *prometheus.GaugeVec
	// watchDropped counts watches ended because the client read too
	// slowly (watch.go).
	watchDropped *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_total",
			Help: "Counter of apiserver requests broken out by verb, resource, subresource and HTTP response code.",
		}, []string{"verb", "resource", "subresource", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiserver_request_duration_seconds",
			Help:    "Response latency distribution in seconds by verb, resource and subresource (watches excluded).",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"verb", "resource", "subresource"}),
		longRunning: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_longrunning_requests",
			Help: "Number of open long-running requests (watches, log streams) by verb and resource.",
		}, []string{"verb", "resource"}),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_storage_objects",
			Help: "Number of stored objects at the time of last check, by resource.",
		}, []string{"resource"}),
		watchDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubeish_apiserver_watch_dropped_total",
			Help: "Watches ended because the client read too slowly (its buffer stayed full, or a write to it timed out), by resource; the client re-watches.",
		}, []string{"resource"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.longRunning, m.objects, m.watchDropped} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// metricVerbs and metricSubresources are the label values a request can
// bring in; anything else (a made-up HTTP method, a made-up subresource) is
// counted as "other", so that no client, not even an anonymous one, can
// grow the metrics without bound.
var (
	metricVerbs = map[string]bool{"GET": true, "LIST": true, "WATCH": true, "POST": true, "PUT": true, "PATCH": true,
		"DELETE": true, "DELETECOLLECTION": true, "CONNECT": true, "HEAD": true, "OPTIONS": true}
	metricSubresources = map[string]bool{"": true, "status": true, "scale": true, "binding": true, "log": true, "finalize": true}
)

func (m *metrics) observe(verb, resource, sub string, code int, d time.Duration) {
	if !metricVerbs[verb] {
		verb = "other"
	}
	if !metricSubresources[sub] {
		sub = "other"
	}
	m.requests.WithLabelValues(verb, resource, sub, strconv.Itoa(code)).Inc()
	if verb != "WATCH" && !(verb == "GET" && sub == "log") {
		m.latency.WithLabelValues(verb, resource, sub).Observe(d.Seconds())
	}
}

// Registerer is the registry the server's metrics are in, for the filters
// in front of it.
func (s *Server) Registerer() prometheus.Registerer { return s.cfg.Registerer }

// CountObjects refreshes apiserver_storage_objects every interval until ctx
// ends.
func (s *Server) CountObjects(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, res := range s.res.All() {
			n, err := s.store.Count(ctx, res.Prefix(""))
			if err != nil {
				if ctx.Err() == nil {
					s.log.Debug("counting objects", zap.String("resource", res.Resource), zap.Error(err))
				}
				continue
			}
			s.metrics.objects.WithLabelValues(res.GroupResource().String()).Set(float64(n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

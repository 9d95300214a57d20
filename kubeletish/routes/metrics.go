package routes

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	syncs      *prometheus.CounterVec
	duration   prometheus.Histogram
	programmed prometheus.Gauge
	skipped    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "kubeish", "kubeletish_routes"
	m := &metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "syncs_total",
			Help: "Route syncs, by result (success, error)."}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "sync_duration_seconds",
			Help: "Time to compare and write the node's routes.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		programmed: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "programmed",
			Help: "Routes of the agent's (other nodes' pod CIDRs, service range) in the kernel after the last sync."}),
		skipped: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "skipped",
			Help: "Pod CIDRs of other nodes left without a route at the last sync (overlap, no InternalIP, a route of someone else's in the way)."}),
	}
	m.syncs.WithLabelValues("success")
	m.syncs.WithLabelValues("error")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.syncs, m.duration, m.programmed, m.skipped} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) observe(err error, d time.Duration) {
	r := "success"
	if err != nil {
		r = "error"
	}
	m.syncs.WithLabelValues(r).Inc()
	m.duration.Observe(d.Seconds())
}

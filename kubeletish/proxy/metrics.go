package proxy

import "github.com/prometheus/client_golang/prometheus"

// Sync results, the values of the syncs_total counter's result label.
const (
	resultApplied   = "applied"
	resultUnchanged = "unchanged"
	resultError     = "error"
)

// metrics are kube-proxy's sync metrics (same names, so its dashboards
// work) plus a kubeish sync counter by result.
type metrics struct {
	syncDuration    prometheus.Histogram
	lastSync        prometheus.Gauge
	rules           *prometheus.GaugeVec
	restoreFailures prometheus.Counter
	syncs           *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kubeproxy_sync_proxy_rules_duration_seconds",
			Help:    "Time a sync of the service proxy rules took (render, iptables-restore, conntrack).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
			Help: "Unix time of the last successful sync of the service proxy rules.",
		}),
		rules: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kubeproxy_sync_proxy_rules_iptables_total",
			Help: "Number of iptables rules the service proxy programs, by table.",
		}, []string{"table"}),
		restoreFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
			Help: "Number of failed iptables-restore runs of the service proxy.",
		}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kubeish", Subsystem: "kubeletish_proxy", Name: "syncs_total",
			Help: "Service proxy syncs by result: applied (rules written), unchanged (restore skipped), error.",
		}, []string{"result"}),
	}
	for _, r := range []string{resultApplied, resultUnchanged, resultError} {
		m.syncs.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.syncDuration, m.lastSync, m.rules, m.restoreFailures, m.syncs} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

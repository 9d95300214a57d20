package pod

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the pod sync, with the kubelet's names where it has one.
type Metrics struct {
	RunningPods       prometheus.Gauge
	RunningContainers prometheus.Gauge
	StartLatency      prometheus.Histogram
	SyncDuration      prometheus.Histogram
	Restarts          prometheus.Counter
}

// NewMetrics registers the metrics in reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		RunningPods:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "kubelet_running_pods", Help: "Number of pods that have a running container."}),
		RunningContainers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kubelet_running_containers", Help: "Number of running containers."}),
		StartLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kubelet_pod_start_duration_seconds",
			Help: "Seconds from a pod's creation to its first container's start.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}),
		SyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kubelet_pod_worker_duration_seconds",
			Help: "Seconds one pod sync takes.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}),
		Restarts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kubeish", Subsystem: "kubeletish", Name: "container_restarts_total",
			Help: "Containers restarted after they exited or failed liveness."}),
	}
	if reg != nil {
		reg.MustRegister(m.RunningPods, m.RunningContainers, m.StartLatency, m.SyncDuration, m.Restarts)
	}
	return m
}

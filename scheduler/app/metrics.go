package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubeish/kubeish/scheduler/queue"
)

// Result labels of scheduler_schedule_attempts_total, as Kubernetes'.
const (
	resultScheduled     = "scheduled"
	resultUnschedulable = "unschedulable"
	resultError         = "error"
)

// schedulerMetrics are the scheduler's metrics, under Kubernetes' names
// where it has one.
type schedulerMetrics struct {
	attempts        *prometheus.CounterVec
	attemptDuration *prometheus.HistogramVec
	algorithm       prometheus.Histogram
	e2e             prometheus.Histogram
	binding         prometheus.Histogram
	inflightBinds   prometheus.Gauge
	leader          prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, q *queue.PriorityQueue) *schedulerMetrics {
	latency := prometheus.ExponentialBuckets(0.0001, 2, 18) // 100µs … 13s
	m := &schedulerMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scheduler_schedule_attempts_total",
			Help: "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem (e.g. a failed binding); 'scheduled' counts pods bound.",
		}, []string{"result"}),
		attemptDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scheduler_scheduling_attempt_duration_seconds",
			Help:    "Scheduling attempt latency in seconds (scheduling algorithm + binding), by result.",
			Buckets: latency,
		}, []string{"result"}),
		algorithm: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scheduler_scheduling_algorithm_duration_seconds",
			Help:    "Scheduling algorithm (filter and score) latency in seconds.",
			Buckets: latency,
		}),
		e2e: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scheduler_pod_scheduling_sli_duration_seconds",
			Help:    "End-to-end latency of a pod, from entering the scheduling queue until it is bound, over all its attempts.",
			Buckets: latency,
		}),
		binding: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scheduler_binding_duration_seconds",
			Help:    "Latency in seconds of the pods/binding call.",
			Buckets: latency,
		}),
		inflightBinds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kubeish_scheduler_inflight_binds",
			Help: "Bindings in flight (bounded by --max-inflight-binds).",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kubeish_scheduler_leader",
			Help: "1 while this scheduler holds the leader Lease (or runs without leader election).",
		}),
	}
	reg.MustRegister(m.attempts, m.attemptDuration, m.algorithm, m.e2e, m.binding, m.inflightBinds, m.leader)
	for i, name := range []string{"active", "backoff", "unschedulable"} {
		i := i
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "scheduler_pending_pods",
			Help:        "Number of pending pods, by the queue type: 'active' waiting to be tried, 'backoff' waiting out a backoff, 'unschedulable' waiting for a cluster change.",
			ConstLabels: prometheus.Labels{"queue": name},
		}, func() float64 {
			a, b, u := q.Lens()
			return float64([]int{a, b, u}[i])
		}))
	}
	for _, r := range []string{resultScheduled, resultUnschedulable, resultError} {
		m.attempts.WithLabelValues(r)
	}
	return m
}

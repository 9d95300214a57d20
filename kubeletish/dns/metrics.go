package dns

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Result label values of the requests counter.
const (
	resultSuccess   = "success"   // records in the answer
	resultNXDomain  = "nxdomain"  // no such name
	resultNoData    = "nodata"    // the name exists, not with that type
	resultForwarded = "forwarded" // answered by the upstream server
	resultServFail  = "servfail"  // upstream unreachable, cache error
	resultRefused   = "refused"   // not a query, malformed, another class
)

type metrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kubeish", Subsystem: "kubeletish_dns", Name: "requests_total",
			Help: "DNS requests answered by the cluster DNS, by result (success, nxdomain, nodata, forwarded, servfail, refused).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kubeish", Subsystem: "kubeletish_dns", Name: "request_duration_seconds",
			Help:    "Time to answer a DNS request, forwarding included.",
			Buckets: []float64{.00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
	}
	// Every result is present from the start, so that rates exist at 0.
	for _, r := range []string{resultSuccess, resultNXDomain, resultNoData, resultForwarded, resultServFail, resultRefused} {
		m.requests.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) observe(result string, d time.Duration) {
	m.requests.WithLabelValues(result).Inc()
	m.duration.Observe(d.Seconds())
}

package server

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kubeish/kubeish/kubeletish/stats"
	"github.com/kubeish/kubeish/pkg/metrics"
)

// Stats is what the usage endpoints read: *stats.Provider implements it.
type Stats interface {
	// Summary reads the node's, pods' and containers' usage now.
	Summary(ctx context.Context) (*stats.Summary, error)
	// Gatherer holds the per-container cAdvisor series.
	Gatherer() prometheus.Gatherer
}

// InstallStats adds /stats/summary (the kubelet's Summary API, what
// metrics-server reads) and /metrics/cadvisor (cAdvisor's container_*
// series, in a registry apart from the agent's /metrics).
func InstallStats(s *metrics.Server, st Stats) {
	s.Handle("/stats/summary", summaryHandler{st})
	s.Handle("/metrics/cadvisor", promhttp.HandlerFor(st.Gatherer(), promhttp.HandlerOpts{}))
}

type summaryHandler struct{ st Stats }

// ServeHTTP answers GET with the summary. metrics-server asks with
// only_cpu_and_memory=true, which is all there is here anyway.
func (h summaryHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	sum, err := h.st.Summary(r.Context())
	if err != nil {
		http.Error(w, "reading usage: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(sum)
}

// Package server is the node agent's HTTP endpoint (--port, 10250):
// /containerLogs/{ns}/{pod}/{container} (which the apiserver's pods/log
// proxies to), /stats/summary and /metrics/cadvisor (InstallStats),
// /metrics and /healthz.
//
// Over TLS (TLSConfig), WithAuth lets only authorized callers in: the
// apiserver's client certificate (kube-apiserver-kubelet-client) or a
// member of system:masters; the health checks stay anonymous.
package server

import (
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kubeish/kubeish/kubeletish/logs"
	"github.com/kubeish/kubeish/pkg/metrics"
)

// Pods looks up the node's pods and their log files.
type Pods interface {
	GetPod(ns, name string) *v1.Pod
	LogPath(pod *v1.Pod, container string, attempt int) string
}

// Install adds the node endpoints to a metrics server's mux: the logs of
// pods, and the usage endpoints of st (see InstallStats; nil: none).
func Install(s *metrics.Server, pods Pods, st Stats) {
	s.Handle("/containerLogs/", &logsHandler{pods: pods})
	if st != nil {
		InstallStats(s, st)
	}
}

type logsHandler struct{ pods Pods }

func (h *logsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/containerLogs/"), "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		http.Error(w, "path is /containerLogs/{namespace}/{pod}/{container}", http.StatusBadRequest)
		return
	}
	pod := h.pods.GetPod(parts[0], parts[1])
	if pod == nil {
		http.Error(w, "pod "+parts[0]+"/"+parts[1]+" not found on this node", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	opts := logs.Options{TailLines: -1, Follow: boolParam(q.Get("follow")), Timestamps: boolParam(q.Get("timestamps"))}
	if v := q.Get("tailLines"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "tailLines must be a non-negative integer", http.StatusBadRequest)
			return
		}
		opts.TailLines = n
	}
	if v := q.Get("limitBytes"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			http.Error(w, "limitBytes must be a positive integer", http.StatusBadRequest)
			return
		}
		opts.LimitBytes = n
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			http.Error(w, "sinceTime must be RFC 3339", http.StatusBadRequest)
			return
		}
		opts.SinceTime = t
	}
	if v := q.Get("sinceSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			http.Error(w, "sinceSeconds must be a positive integer", http.StatusBadRequest)
			return
		}
		opts.SinceTime = time.Now().Add(-time.Duration(n) * time.Second)
	}
	attempts := h.attempts(pod, parts[2])
	if len(attempts) == 0 {
		http.Error(w, "container "+parts[2]+" of pod "+parts[1]+" has no logs (yet)", http.StatusNotFound)
		return
	}
	pick := attempts[len(attempts)-1]
	if boolParam(q.Get("previous")) {
		if len(attempts) < 2 {
			http.Error(w, "previous terminated container "+parts[2]+" not found", http.StatusNotFound)
			return
		}
		pick = attempts[len(attempts)-2]
		opts.Follow = false
	}
	file := h.pods.LogPath(pod, parts[2], pick)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fw := &flushWriter{w: w}
	if f, ok := w.(http.Flusher); ok {
		fw.f = f
	}
	// Following ends when a newer attempt starts logging (the container
	// restarted) or the pod goes.
	stop := func() bool {
		p := h.pods.GetPod(parts[0], parts[1])
		if p == nil || p.UID != pod.UID {
			return true
		}
		a := h.attempts(p, parts[2])
		return len(a) > 0 && a[len(a)-1] != pick
	}
	_ = logs.Read(r.Context(), file, opts, fw, stop)
}

func (h *logsHandler) attempts(pod *v1.Pod, container string) []int {
	dir := filepath.Dir(h.pods.LogPath(pod, container, 0))
	ents, _ := os.ReadDir(dir)
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".log")); err == nil && strings.HasSuffix(e.Name(), ".log") {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

func boolParam(v string) bool { b, _ := strconv.ParseBool(v); return b }

type flushWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func (f *flushWriter) Write(p []byte) (int, error) { return f.w.Write(p) }
func (f *flushWriter) Flush() {
	if f.f != nil {
		f.f.Flush()
	}
}

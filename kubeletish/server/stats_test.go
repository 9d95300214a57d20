package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"

	"github.com/kubeish/kubeish/kubeletish/stats"
	"github.com/kubeish/kubeish/pkg/metrics"
)

type fakePods []stats.Pod

func (f fakePods) StatsPods(context.Context) ([]stats.Pod, error) { return f, nil }

type noPods struct{}

func (noPods) GetPod(ns, name string) *v1.Pod                            { return nil }
func (noPods) LogPath(pod *v1.Pod, container string, attempt int) string { return "" }

type failing struct{}

func (failing) Summary(context.Context) (*stats.Summary, error) { return nil, errors.New("no cgroups") }
func (failing) Gatherer() prometheus.Gatherer                   { return prometheus.NewRegistry() }

func serve(t *testing.T, st Stats) string {
	t.Helper()
	ms := metrics.NewServer()
	Install(ms, noPods{}, st)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addr, err := ms.Serve(ctx, "127.0.0.1:0", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + addr.String()
}

func TestStatsEndpoints(t *testing.T) {
	fsys := fstest.MapFS{"cpuacct/cpuacct.usage": {Data: []byte("1")}}
	for path, cpu := range map[string]string{"kubeish/n1": "900", "kubeish/n1/podu1": "700", "kubeish/n1/podu1/c1": "500"} {
		fsys["cpuacct/"+path+"/cpuacct.usage"] = &fstest.MapFile{Data: []byte(cpu)}
		fsys["memory/"+path+"/memory.usage_in_bytes"] = &fstest.MapFile{Data: []byte("4096")}
		fsys["memory/"+path+"/memory.stat"] = &fstest.MapFile{Data: []byte("total_inactive_file 1024\n")}
	}
	pods := fakePods{{Namespace: "default", Name: "web", UID: "u1", CgroupPath: "/kubeish/n1/podu1",
		Containers: []stats.Container{{Name: "app", CgroupPath: "/kubeish/n1/podu1/c1"}}}}
	good := serve(t, stats.New(stats.Config{NodeName: "n1", CgroupParent: "/kubeish/n1", Pods: pods, FS: fsys}))
	bad := serve(t, failing{})

	for _, tc := range []struct {
		name, method, url string
		code              int
		contains          []string
	}{
		{"summary", "GET", good + "/stats/summary?only_cpu_and_memory=true", 200,
			[]string{`"nodeName":"n1"`, `"podRef":{"name":"web","namespace":"default","uid":"u1"}`, `"name":"app"`, `"workingSetBytes":3072`, `"usageCoreNanoSeconds":500`}},
		{"cadvisor", "GET", good + "/metrics/cadvisor", 200,
			[]string{`container_memory_working_set_bytes{container="app",namespace="default",pod="web"} 3072`,
				`container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} 5e-07`}},
		{"summary POST", "POST", good + "/stats/summary", 405, nil},
		{"summary error", "GET", bad + "/stats/summary", 500, []string{"no cgroups"}},
		{"agent metrics stay apart", "GET", good + "/metrics", 200, []string{"go_goroutines"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.code, b)
			}
			for _, c := range tc.contains {
				if !strings.Contains(string(b), c) {
					t.Errorf("answer lacks %s:\n%s", c, b)
				}
			}
			if tc.name == "summary" {
				var s stats.Summary
				if err := json.Unmarshal(b, &s); err != nil || len(s.Pods) != 1 {
					t.Errorf("decoding: %v, %+v", err, s)
				}
			}
			if tc.name == "agent metrics stay apart" && strings.Contains(string(b), "container_cpu_usage_seconds_total") {
				t.Error("/metrics has the per-container series")
			}
		})
	}
}

package main

import (
	"strings"
	"testing"
)

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkAPI/create/clients=64-2         	    2000	      2955 ops/s	        18.89 p50-ms	        38.61 p99-ms
    logger.go:146: 2026-12-06T21:52:25.317Z	WARN	etcd	simple token
BenchmarkScheduling/nodes=5000/pods=10000-2   1   19526384501 ns/op   10.20 bind-all-s   980.2 pods/s
BenchmarkScheduling/nodes=5000/pods=10000-2   1   19526384501 ns/op   10.20 bind-all-s   1500 pods/s
BenchmarkScheduling/nodes=5000/pods=10000-2   1   19526384501 ns/op   10.20 bind-all-s   1111 pods/s
--- SKIP: BenchmarkPodStartup
    integration_test.go:178: needs root: containerd, network namespaces, cgroups
PASS
`
	res, skips := parseBench(strings.NewReader(out))
	if v, ok := res.median("BenchmarkAPI/create/clients=64", "p99-ms"); !ok || v != 38.61 {
		t.Errorf("create p99 = %v, %v; want 38.61", v, ok)
	}
	if v, _ := res.median("BenchmarkScheduling/nodes=5000/pods=10000", "pods/s"); v != 1111 {
		t.Errorf("median pods/s = %v, want 1111", v)
	}
	if _, ok := res.median("BenchmarkScheduling/nodes=5000/pods=10000", "nope"); ok {
		t.Error("a unit no run reported has a median")
	}
	if len(skips) != 1 || skips[0] != "needs root: containerd, network namespaces, cgroups" {
		t.Errorf("skips = %q", skips)
	}
}

func TestTargetsAtOtherSizes(t *testing.T) {
	r := &Report{
		API:       []APIFigure{{Op: "etcd-put", Clients: 64, OpsPerSec: 8000}, {Op: "create", Clients: 64, P99Ms: 40}, {Op: "update", Clients: 64, P99Ms: 60}},
		Scheduler: []SchedulerFigure{{Nodes: 1000, PodsPerSec: 1500, WritesPerPod: 1}, {Nodes: 5000, PodsPerSec: 1200, WritesPerPod: 1}},
		EndToEnd:  &EndToEndFigure{Nodes: 50, Replicas: 300, ReadySec: 2},
	}
	r.computeTargets()
	if s := r.Scheduler[1]; s.EtcdLimit != 8000 || s.Share != 0.15 {
		t.Errorf("scheduler share: %+v", s)
	}
	want := map[string]struct {
		met bool
		at  string
	}{
		"scheduler at 5,000 nodes":                        {true, ""},
		"mutating API p99 at 64 clients (create, update)": {false, ""},
		"3,000 replicas Running and Ready":                {true, "300 replicas on 50 nodes"},
	}
	if len(r.Targets) != len(want) {
		t.Fatalf("targets: %+v", r.Targets)
	}
	for _, tg := range r.Targets {
		if w := want[tg.Name]; tg.Met != w.met || tg.At != w.at {
			t.Errorf("%s: met %v at %q, want %v at %q", tg.Name, tg.Met, tg.At, w.met, w.at)
		}
	}
}

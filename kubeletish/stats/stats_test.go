package stats

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clocktesting "k8s.io/utils/clock/testing"
)

// v1Stat is a trimmed memory.stat of a cgroup v1 container: the
// non-total_ fields are this cgroup's own, total_ ones include children.
const v1Stat = `cache 12918784
rss 4943872
inactive_file 262144
total_cache 20000000
total_rss 6000000
total_inactive_file 4000000
total_pgfault 1234
total_pgmajfault 5
`

const v2Stat = `anon 7000000
file 3000000
inactive_file 2500000
active_file 500000
pgfault 4321
pgmajfault 7
`

func v1FS(path string, cpu, usage, stat string) fstest.MapFS {
	return fstest.MapFS{
		"cpuacct/cpuacct.usage":                        {Data: []byte("1\n")},
		"memory/memory.usage_in_bytes":                 {Data: []byte("1\n")},
		"cpuacct" + path + "/cpuacct.usage":            {Data: []byte(cpu)},
		"memory" + path + "/memory.usage_in_bytes":     {Data: []byte(usage)},
		"memory" + path + "/memory.stat":               {Data: []byte(stat)},
		"unified/cgroup.controllers":                   {Data: []byte("")},
		"cpu" + path + "/cpu.shares":                   {Data: []byte("1024\n")},
		"memory" + path + "/memory.limit_in_bytes":     {Data: []byte("9223372036854771712\n")},
		"memory" + path + "/memory.max_usage_in_bytes": {Data: []byte("99999999\n")},
	}
}

func v2FS(path string, cpuStat, current, stat string) fstest.MapFS {
	p := strings.TrimPrefix(path, "/")
	return fstest.MapFS{
		"cgroup.controllers":  {Data: []byte("cpuset cpu io memory pids\n")},
		p + "/cpu.stat":       {Data: []byte(cpuStat)},
		p + "/memory.current": {Data: []byte(current)},
		p + "/memory.stat":    {Data: []byte(stat)},
		p + "/cgroup.procs":   {Data: []byte("42\n")},
		p + "/memory.max":     {Data: []byte("max\n")},
	}
}

func TestDetectMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   fstest.MapFS
		want Mode
	}{
		{"v1 hybrid", v1FS("/a", "1", "1", ""), ModeV1},
		{"v2", v2FS("/a", "", "1", ""), ModeV2},
		{"memory only v1", fstest.MapFS{"memory/memory.usage_in_bytes": {Data: []byte("1")}}, ModeV1},
		{"empty", fstest.MapFS{}, ModeUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DetectMode(tc.fs); got != tc.want {
				t.Errorf("DetectMode = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReadUsage(t *testing.T) {
	const path = "/kubeish/node-1/podabc/default_web_web_abc_0"
	for _, tc := range []struct {
		name    string
		fs      fstest.MapFS
		mode    Mode
		path    string
		want    Usage
		wantErr error
	}{
		{
			name: "v1: working set is usage less total_inactive_file",
			fs:   v1FS(path, "123456789\n", "10000000\n", v1Stat), mode: ModeV1, path: path,
			want: Usage{CPUNanos: 123456789, MemoryUsage: 10000000, WorkingSet: 6000000, RSS: 6000000, PageFaults: 1234, MajorPageFaults: 5},
		},
		{
			name: "v1: inactive file above usage gives zero, not a wrap-around",
			fs:   v1FS(path, "5", "3000000", v1Stat), mode: ModeV1, path: path,
			want: Usage{CPUNanos: 5, MemoryUsage: 3000000, WorkingSet: 0, RSS: 6000000, PageFaults: 1234, MajorPageFaults: 5},
		},
		{
			name: "v1: path without a leading slash",
			fs:   v1FS(path, "7", "4000001", v1Stat), mode: ModeV1, path: strings.TrimPrefix(path, "/"),
			want: Usage{CPUNanos: 7, MemoryUsage: 4000001, WorkingSet: 1, RSS: 6000000, PageFaults: 1234, MajorPageFaults: 5},
		},
		{
			name: "v2: cpu from usage_usec, working set less inactive_file",
			fs:   v2FS(path, "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n", "10000000\n", v2Stat), mode: ModeV2, path: path,
			want: Usage{CPUNanos: 2500000, MemoryUsage: 10000000, WorkingSet: 7500000, RSS: 7000000, PageFaults: 4321, MajorPageFaults: 7},
		},
		{
			name: "v2: unparsable lines are skipped",
			fs:   v2FS(path, "usage_usec 10\ngarbage\nnr_periods x\n", "100", "inactive_file 40\nweird\n"), mode: ModeV2, path: path,
			want: Usage{CPUNanos: 10000, MemoryUsage: 100, WorkingSet: 60},
		},
		{
			name: "v1: a gone cgroup", fs: v1FS(path, "1", "1", ""), mode: ModeV1, path: "/kubeish/node-1/gone",
			wantErr: ErrNoCgroup,
		},
		{
			name: "v2: a gone cgroup", fs: v2FS(path, "usage_usec 1", "1", ""), mode: ModeV2, path: "/other",
			wantErr: ErrNoCgroup,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadUsage(tc.fs, tc.mode, tc.path)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	t.Run("bad number", func(t *testing.T) {
		if _, err := ReadUsage(v1FS(path, "abc", "1", ""), ModeV1, path); err == nil || errors.Is(err, ErrNoCgroup) {
			t.Errorf("err = %v, want a parse error", err)
		}
	})
	t.Run("unknown layout", func(t *testing.T) {
		if _, err := ReadUsage(fstest.MapFS{}, ModeUnknown, path); err == nil {
			t.Error("no error")
		}
	})
}

func TestRates(t *testing.T) {
	t0 := time.Unix(1000, 0)
	u := func(v uint64) *uint64 { return &v }
	type step struct {
		after time.Duration
		cpu   uint64
		want  *uint64
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"first reading has no rate", []step{{0, 100, nil}}},
		{"half a core over 2 s", []step{{0, 0, nil}, {2 * time.Second, 1e9, u(5e8)}}},
		{"a close second reading repeats the last rate", []step{
			{0, 0, nil}, {time.Second, 2e9, u(2e9)}, {time.Second + 100*time.Millisecond, 9e9, u(2e9)},
			// The kept sample is the one at 1 s, so the next rate spans from it.
			{3 * time.Second, 4e9, u(1e9)},
		}},
		{"a close second reading before any rate has none", []step{{0, 0, nil}, {10 * time.Millisecond, 5, nil}}},
		{"a counter going back starts over", []step{{0, 5e9, nil}, {2 * time.Second, 1e9, nil}, {4 * time.Second, 3e9, u(1e9)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRates(time.Second, time.Minute)
			for i, s := range tc.steps {
				got := r.observe("k", t0.Add(s.after), s.cpu)
				if (got == nil) != (s.want == nil) || (got != nil && *got != *s.want) {
					t.Errorf("step %d: rate %v, want %v", i, deref(got), deref(s.want))
				}
			}
		})
	}
	t.Run("prune forgets old cgroups", func(t *testing.T) {
		r := newRates(time.Second, time.Minute)
		r.observe("old", t0, 1)
		r.observe("new", t0.Add(2*time.Minute), 1)
		r.prune(t0.Add(2 * time.Minute))
		if _, ok := r.last["old"]; ok {
			t.Error("old kept")
		}
		if _, ok := r.last["new"]; !ok {
			t.Error("new forgotten")
		}
	})
}

func deref(p *uint64) any {
	if p == nil {
		return nil
	}
	return *p
}

type fakePods []Pod

func (f fakePods) StatsPods(context.Context) ([]Pod, error) { return f, nil }

func TestSummaryAndMetrics(t *testing.T) {
	const parent = "/kubeish/node-1"
	podPath := parent + "/poduid1"
	ctrPath := podPath + "/default_web_web_uid1_0"
	fsys := fstest.MapFS{}
	set := func(path string, cpu, usage string) {
		for k, v := range v1FS(path, cpu, usage, "total_inactive_file 1000\ntotal_rss 500\n") {
			fsys[k] = v
		}
	}
	set(parent, "3000000000", "10000")
	set(podPath, "2000000000", "8000")
	set(ctrPath, "1500000000", "6000")
	clk := clocktesting.NewFakePassiveClock(time.Unix(2000, 0))
	started := time.Unix(1500, 0)
	pods := fakePods{{Namespace: "default", Name: "web", UID: "uid1", StartTime: started, CgroupPath: podPath, Containers: []Container{
		{Name: "web", StartTime: started, CgroupPath: ctrPath},
		{Name: "gone", StartTime: started, CgroupPath: podPath + "/exited_meanwhile"},
	}}}
	p := New(Config{NodeName: "node-1", CgroupParent: parent, Pods: pods, Clock: clk, FS: fsys})

	s, err := p.Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Node.NodeName != "node-1" || *s.Node.CPU.UsageCoreNanoSeconds != 3e9 || *s.Node.Memory.WorkingSetBytes != 9000 || s.Node.CPU.UsageNanoCores != nil {
		t.Errorf("node: %s", mustJSON(s.Node))
	}
	if len(s.Pods) != 1 || len(s.Pods[0].Containers) != 2 {
		t.Fatalf("pods: %s", mustJSON(s.Pods))
	}
	ps := s.Pods[0]
	if ps.PodRef != (PodReference{Name: "web", Namespace: "default", UID: "uid1"}) || *ps.Memory.WorkingSetBytes != 7000 || *ps.CPU.UsageCoreNanoSeconds != 2e9 {
		t.Errorf("pod: %s", mustJSON(ps))
	}
	if c := ps.Containers[0]; c.Name != "web" || *c.Memory.WorkingSetBytes != 5000 || *c.Memory.UsageBytes != 6000 || *c.CPU.UsageCoreNanoSeconds != 1.5e9 {
		t.Errorf("container: %s", mustJSON(c))
	}
	if c := ps.Containers[1]; c.Name != "gone" || c.CPU != nil || c.Memory != nil {
		t.Errorf("a container without a cgroup has figures: %s", mustJSON(c))
	}

	// Two seconds and one CPU second later: half a core.
	clk.SetTime(clk.Now().Add(2 * time.Second))
	fsys["cpuacct"+ctrPath+"/cpuacct.usage"] = &fstest.MapFile{Data: []byte("2500000000")}
	s, err = p.Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Pods[0].Containers[0].CPU.UsageNanoCores; got == nil || *got != 5e8 {
		t.Errorf("usageNanoCores = %v, want 5e8", deref(got))
	}
	if got := s.Node.CPU.UsageNanoCores; got == nil || *got != 0 {
		t.Errorf("node usageNanoCores = %v, want 0", deref(got))
	}
	// The JSON uses the Summary API's field names.
	b := mustJSON(s)
	for _, f := range []string{`"nodeName":"node-1"`, `"podRef":{"name":"web","namespace":"default","uid":"uid1"}`,
		`"usageNanoCores":500000000`, `"usageCoreNanoSeconds":2500000000`, `"workingSetBytes":5000`, `"usageBytes":6000`, `"containers":[`} {
		if !strings.Contains(b, f) {
			t.Errorf("summary JSON lacks %s:\n%s", f, b)
		}
	}

	want := `
# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="",namespace="default",pod="web"} 2
container_cpu_usage_seconds_total{container="web",namespace="default",pod="web"} 2.5
# HELP container_memory_working_set_bytes Current working set in bytes.
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="",namespace="default",pod="web"} 7000
container_memory_working_set_bytes{container="web",namespace="default",pod="web"} 5000
`
	if err := testutil.GatherAndCompare(p.Gatherer(), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestSummaryUnknownLayout(t *testing.T) {
	p := New(Config{NodeName: "n", CgroupParent: "/kubeish/n", Pods: fakePods{}, FS: fstest.MapFS{}})
	if _, err := p.Summary(context.Background()); err == nil {
		t.Error("no error on an unknown cgroup layout")
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/pkg/testhost"
)

// benchPods is how many pods one round starts, as the issue asks.
const benchPods = 30

// BenchmarkPodStartup measures pod startup latency on one node with the
// image present: from the create call to the Running phase seen through a
// watch, p50 and p99 over 30 pods created back to back; and the agent's
// cost: CPU seconds spent starting them, CPU use over a 10 s window while
// they run, and its resident memory. Root only (real containerd, CNI and
// cgroups); it skips otherwise. Run it once:
//
//	go test ./kubeletish/ -run '^$' -bench BenchmarkPodStartup -benchtime=1x -count=1 -timeout 10m
func BenchmarkPodStartup(b *testing.B) {
	c := startNode(b, nil)
	proc, err := procfs.NewProc(c.n.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	var startCPU, steadyCPU, rss, peak float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := benchRound(b, c, proc, i)
		lat = append(lat, r.latencies...)
		startCPU += r.startCPU
		steadyCPU += r.steadyCPU
		rss, peak = max(rss, r.rss), max(peak, r.peakRSS)
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(ms(percentile(lat, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
	b.ReportMetric(startCPU/float64(b.N), "agent-cpu-s")
	b.ReportMetric(100*steadyCPU/float64(b.N)/steadyWindow.Seconds(), "agent-steady-cpu-%")
	b.ReportMetric(rss/(1<<20), "agent-rss-MiB")
	b.ReportMetric(peak/(1<<20), "agent-peak-rss-MiB")
}

// steadyWindow is how long the agent's CPU is measured with every pod
// running: a measurement period, not a wait for a condition.
const steadyWindow = 10 * time.Second

type roundResult struct {
	latencies           []time.Duration
	startCPU, steadyCPU float64 // seconds
	rss, peakRSS        float64 // bytes
}

func benchRound(b *testing.B, c *cluster, proc procfs.Proc, round int) roundResult {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs := c.cs
	label := fmt.Sprintf("round-%d", round)
	l, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "bench=" + label, ResourceVersion: l.ResourceVersion})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()

	var mu sync.Mutex
	created := map[string]time.Time{}
	var latencies []time.Duration
	allRunning := make(chan struct{})
	go func() {
		seen := map[string]bool{}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*v1.Pod)
			if !ok || p.Status.Phase != v1.PodRunning || seen[p.Name] {
				continue
			}
			at := time.Now()
			seen[p.Name] = true
			mu.Lock()
			latencies = append(latencies, at.Sub(created[p.Name]))
			mu.Unlock()
			if len(seen) == benchPods {
				close(allRunning)
				return
			}
		}
	}()

	cpu0 := cpuSeconds(b, proc)
	for i := range benchPods {
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%d-%d", round, i), Labels: map[string]string{"bench": label}},
			Spec: v1.PodSpec{NodeName: c.name, Containers: []v1.Container{{
				Name: "echo", Image: echoRef, ImagePullPolicy: v1.PullNever}}},
		}
		// Recorded before the call: the watch may report the pod before
		// Create returns.
		mu.Lock()
		created[pod.Name] = time.Now()
		mu.Unlock()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-allRunning:
	case <-time.After(3 * time.Minute):
		mu.Lock()
		n := len(latencies)
		mu.Unlock()
		b.Fatalf("only %d of %d pods Running after 3 min", n, benchPods)
	}
	cpu1 := cpuSeconds(b, proc)
	<-time.After(steadyWindow)
	cpu2 := cpuSeconds(b, proc)
	r := roundResult{startCPU: cpu1 - cpu0, steadyCPU: cpu2 - cpu1}
	st, err := proc.Stat()
	if err != nil {
		b.Fatal(err)
	}
	r.rss = float64(st.ResidentMemory())
	if s, err := proc.NewStatus(); err == nil {
		r.peakRSS = float64(s.VmHWM)
	}
	mu.Lock()
	r.latencies = latencies
	mu.Unlock()

	// Clean up outside the measurement: the next round starts empty.
	b.StopTimer()
	if err := cs.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "bench=" + label}); err != nil {
		b.Fatal(err)
	}
	err = testhost.WaitFor(ctx, 2*time.Minute, 250*time.Millisecond, func() (bool, error) {
		l, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "bench=" + label})
		return err == nil && len(l.Items) == 0, err
	})
	if err != nil {
		b.Fatalf("deleting the round's pods: %v", err)
	}
	b.StartTimer()
	return r
}

func cpuSeconds(b *testing.B, p procfs.Proc) float64 {
	st, err := p.Stat()
	if err != nil {
		b.Fatalf("agent's /proc stat: %v", err)
	}
	return st.CPUTime()
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

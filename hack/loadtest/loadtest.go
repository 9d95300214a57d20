// Package loadtest puts an apiserver under the load the security issue
// names and records how it holds up: many concurrent clients creating,
// reading, listing, updating and deleting ConfigMaps and listing pods; watch
// clients that read one event a second (so the apiserver must drop them
// rather than buffer for them); idle watches; and a prober on /healthz
// every 50 ms with a 100 ms timeout. It records every response's status
// code, every probe's latency, and the apiserver process's memory. TestLoad
// (in the test file) runs it against the apiserver binary and judges the
// result.
package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// Config is one load run.
type Config struct {
	// Duration of the load.
	Duration time.Duration
	// Workers are the clients doing requests, one goroutine (and, with
	// HTTP/1.1, one connection) each.
	Workers []kubernetes.Interface
	// SlowWatchers watch every ConfigMap and read one event a second.
	SlowWatchers []kubernetes.Interface
	// IdleWatchers watch Secrets in IdleNamespace, where nothing changes.
	IdleWatchers  []kubernetes.Interface
	IdleNamespace string
	// Namespaces the workers spread over.
	Namespaces []string
	// Probe answers one health check (it has its own timeout).
	Probe func(ctx context.Context) error
	// ProbeEvery is the prober's period.
	ProbeEvery time.Duration
	// ProbeBudget is the latency a probe must stay within.
	ProbeBudget time.Duration
	// Codes counts responses; the workers' and watchers' transports feed it.
	Codes *Codes
	// Memory reads the apiserver's memory; it is sampled twice a second.
	Memory func() Memory
}

// Codes counts HTTP responses by status code, and requests that got no
// response by error.
type Codes struct {
	mu     sync.Mutex
	byCode map[int]int64
	errs   map[string]int64
}

// NewCodes returns an empty count.
func NewCodes() *Codes { return &Codes{byCode: map[int]int64{}, errs: map[string]int64{}} }

// Wrap counts what rt answers.
func (c *Codes) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(r)
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case err == nil:
			c.byCode[resp.StatusCode]++
		case r.Context().Err() != nil:
			// Cancelled by the end of the run: not the server's doing.
		default:
			c.errs[err.Error()]++
		}
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Snapshot returns the counts so far.
func (c *Codes) Snapshot() (map[int]int64, map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	codes, errs := map[int]int64{}, map[string]int64{}
	for k, v := range c.byCode {
		codes[k] = v
	}
	for k, v := range c.errs {
		errs[k] = v
	}
	return codes, errs
}

// Probe is one health check.
type Probe struct {
	At      time.Duration // since the start of the run
	Latency time.Duration
	Err     error
}

// Memory is a process's memory at one moment: its resident set, and the Go
// heap in use (0 when unknown).
type Memory struct {
	RSS, Heap uint64
}

// Result is what a run measured.
type Result struct {
	Duration time.Duration
	Requests map[int]int64
	Errors   map[string]int64
	// Ops counts the workers' operations by kind.
	Ops    map[string]int64
	Probes []Probe
	// SlowWatchEvents are the events the slow watchers read; SlowRewatches
	// how often their watch ended (dropped by the server, or its timeout)
	// and they watched again from their last resourceVersion; Relists how
	// often that answered 410 Gone and they started over.
	SlowWatchEvents, SlowRewatches, SlowRelists int64
	// IdleRewatches counts idle watches that ended during the run.
	IdleRewatches int64
	// The apiserver's memory at the start, its peak during the run, and at
	// the end (once the load stopped).
	Start, Peak, End Memory
}

// Run runs the load until cfg.Duration has passed.
func Run(ctx context.Context, cfg Config) *Result {
	res := &Result{Ops: map[string]int64{}}
	res.Start = cfg.Memory()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()

	var wg sync.WaitGroup
	var opsMu sync.Mutex
	for i, c := range cfg.Workers {
		ns := cfg.Namespaces[i%len(cfg.Namespaces)]
		wg.Go(func() {
			ops := worker(ctx, c, ns, i)
			opsMu.Lock()
			for k, v := range ops {
				res.Ops[k] += v
			}
			opsMu.Unlock()
		})
	}
	var events, rewatches, relists, idle atomic.Int64
	for _, c := range cfg.SlowWatchers {
		wg.Go(func() { slowWatcher(ctx, c, &events, &rewatches, &relists) })
	}
	for _, c := range cfg.IdleWatchers {
		wg.Go(func() { idleWatcher(ctx, c, cfg.IdleNamespace, &idle) })
	}
	var probes []Probe
	wg.Go(func() {
		t := time.NewTicker(cfg.ProbeEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			p := Probe{At: time.Since(start)}
			t0 := time.Now()
			p.Err = cfg.Probe(context.Background())
			p.Latency = time.Since(t0)
			probes = append(probes, p)
		}
	})
	var peakMu sync.Mutex
	peak := res.Start
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			m := cfg.Memory()
			peakMu.Lock()
			peak.RSS, peak.Heap = max(peak.RSS, m.RSS), max(peak.Heap, m.Heap)
			peakMu.Unlock()
		}
	})
	wg.Wait()
	res.Duration = time.Since(start)
	res.Peak = peak
	res.End = cfg.Memory()
	res.Probes = probes
	res.Requests, res.Errors = cfg.Codes.Snapshot()
	res.SlowWatchEvents, res.SlowRewatches, res.SlowRelists = events.Load(), rewatches.Load(), relists.Load()
	res.IdleRewatches = idle.Load()
	return res
}

// worker owns ten ConfigMaps in ns and does a random mix of requests on
// them until ctx ends; the object count stays bounded, so memory may not
// grow with the run's length.
func worker(ctx context.Context, c kubernetes.Interface, ns string, id int) map[string]int64 {
	rnd := rand.New(rand.NewPCG(uint64(id), 7))
	ops := map[string]int64{}
	cms := c.CoreV1().ConfigMaps(ns)
	have := map[string]*corev1.ConfigMap{}
	payload := func() map[string]string {
		return map[string]string{"payload": strings.Repeat(strconv.Itoa(rnd.IntN(10)), 1024)}
	}
	count := func(op string, err error) {
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			op += " error " + string(apierrors.ReasonForError(err))
		}
		ops[op]++
	}
	for ctx.Err() == nil {
		name := fmt.Sprintf("w%03d-%d", id, rnd.IntN(10))
		cm := have[name]
		switch r := rnd.IntN(100); {
		case cm == nil:
			got, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: payload()}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				got, err = cms.Get(ctx, name, metav1.GetOptions{})
			}
			if err == nil {
				have[name] = got
			}
			count("create", err)
		case r < 30:
			got, err := cms.Get(ctx, name, metav1.GetOptions{})
			if err == nil {
				have[name] = got
			}
			count("get", err)
		case r < 50:
			cm = cm.DeepCopy()
			cm.Data = payload()
			got, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
			if err == nil {
				have[name] = got
			} else if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				delete(have, name)
			}
			count("update", err)
		case r < 65:
			_, err := cms.List(ctx, metav1.ListOptions{})
			count("list-configmaps", err)
		case r < 85:
			_, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
			count("list-pods", err)
		default:
			err := cms.Delete(ctx, name, metav1.DeleteOptions{})
			if err == nil || apierrors.IsNotFound(err) {
				delete(have, name)
			}
			count("delete", err)
		}
	}
	return ops
}

// slowWatcher watches every ConfigMap and reads one event a second, as a
// client on a congested link would. When the server drops it, it watches
// again from the last resourceVersion it read, as client-go does (from the
// current state after a 410 Gone).
func slowWatcher(ctx context.Context, c kubernetes.Interface, events, rewatches, relists *atomic.Int64) {
	rv := "0"
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		w, err := c.CoreV1().ConfigMaps("").Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				rv = "0"
				relists.Add(1)
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
			continue
		}
		rv = readSlowly(ctx, w, tick.C, rv, events, relists)
		w.Stop()
		if ctx.Err() == nil {
			rewatches.Add(1)
		}
	}
}

func readSlowly(ctx context.Context, w watch.Interface, tick <-chan time.Time, rv string, events, relists *atomic.Int64) string {
	for {
		select {
		case <-ctx.Done():
			return rv
		case <-tick:
		}
		select {
		case <-ctx.Done():
			return rv
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rv
			}
			if ev.Type == watch.Error {
				if s, ok := ev.Object.(*metav1.Status); ok && s.Code == http.StatusGone {
					relists.Add(1)
					return "0"
				}
				return rv
			}
			events.Add(1)
			if m, err := meta.Accessor(ev.Object); err == nil {
				rv = m.GetResourceVersion()
			}
		}
	}
}

// idleWatcher holds a watch on a namespace where nothing changes.
func idleWatcher(ctx context.Context, c kubernetes.Interface, ns string, ended *atomic.Int64) {
	for ctx.Err() == nil {
		w, err := c.CoreV1().Secrets(ns).Watch(ctx, metav1.ListOptions{AllowWatchBookmarks: true})
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for range w.ResultChan() {
		}
		w.Stop()
		if ctx.Err() == nil {
			ended.Add(1)
		}
	}
}

// ReadRSS reads a process's resident set from /proc/PID/status.
func ReadRSS(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// ProbeStats summarise the probes that answered.
type ProbeStats struct {
	Count, Answered    int
	P50, P99, Max      time.Duration
	OverBudget, Failed []Probe
}

// Stats sorts the probes out against budget: a probe that timed out or took
// longer is over budget; one that got an error other than its timeout, or
// a status other than 200, failed.
func Stats(probes []Probe, budget time.Duration) ProbeStats {
	s := ProbeStats{Count: len(probes)}
	var lat []time.Duration
	for _, p := range probes {
		switch {
		case p.Err != nil && !isTimeout(p.Err):
			s.Failed = append(s.Failed, p)
		case p.Err != nil || p.Latency > budget:
			s.OverBudget = append(s.OverBudget, p)
		}
		if p.Err == nil {
			lat = append(lat, p.Latency)
		}
	}
	s.Answered = len(lat)
	slices.Sort(lat)
	if len(lat) > 0 {
		s.P50 = lat[len(lat)/2]
		s.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
		s.Max = lat[len(lat)-1]
	}
	return s
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &te) && te.Timeout()
}

// Format prints a count map sorted by key.
func Format[K int | string](m map[K]int64) string {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %v: %d\n", k, m[k])
	}
	return b.String()
}

package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kubeish/kubeish/apiserver/app"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// clientCounts are the concurrencies every figure is measured at.
var clientCounts = []int{1, 16, 64}

// client is a plain HTTP client of the test apiserver.
type client struct {
	c    *http.Client
	base string
}

func newClient(base string, conns int) *client {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	return &client{c: &http.Client{Transport: tr}, base: base}
}

// do sends one request and returns the body of a response with the wanted
// status (anything else is an error naming it).
func (c *client) do(ctx context.Context, method, path, contentType string, body []byte, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, data)
	}
	return data, nil
}

// podJSON is a pod as a Deployment would make it: one container with
// requests, a few labels.
func podJSON(ns, name string) []byte {
	return fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q,"namespace":%q,"labels":{"app":"bench","tier":"web"}},`+
		`"spec":{"containers":[{"name":"app","image":"example.test/app:1","resources":{"requests":{"cpu":"100m","memory":"128Mi"}}}]}}`, name, ns)
}

func createNamespace(ctx context.Context, c *client, ns string) error {
	_, err := c.do(ctx, "POST", "/api/v1/namespaces", "application/json", fmt.Appendf(nil, `{"metadata":{"name":%q}}`, ns), http.StatusCreated)
	return err
}

// BenchmarkAPI measures pods through the API and raw etcd puts of a pod's
// size, each at 1, 16 and 64 clients; every sub-benchmark reports ops/s and
// p50/p99 latency per request:
//
//   - etcd-put: a put of a stored pod's bytes straight to etcd (the
//     physical limit of any write through the API);
//   - create: POST of a new pod;
//   - get: GET of one of 100 pods;
//   - list: GET of a namespace's 100 pods with a label selector (no
//     resourceVersion: a consistent list);
//   - update: PUT of a pod with a changed annotation, conditional on the
//     resourceVersion of the client's last write (a compare-and-swap).
func BenchmarkAPI(b *testing.B) {
	e := testenv.Start(b)
	ctx := context.Background()
	c := newClient(e.URL, 128)
	const ns, listNS, fixed = "bench", "listed", 100
	for _, n := range []string{ns, listNS} {
		if err := createNamespace(ctx, c, n); err != nil {
			b.Fatal(err)
		}
	}
	podsPath := "/api/v1/namespaces/" + ns + "/pods"
	for i := range fixed {
		if _, err := c.do(ctx, "POST", podsPath, "application/json", podJSON(ns, fmt.Sprintf("fixed-%d", i)), http.StatusCreated); err != nil {
			b.Fatal(err)
		}
		if _, err := c.do(ctx, "POST", "/api/v1/namespaces/"+listNS+"/pods", "application/json", podJSON(listNS, fmt.Sprintf("l-%d", i)), http.StatusCreated); err != nil {
			b.Fatal(err)
		}
	}
	stored, err := c.do(ctx, "GET", podsPath+"/fixed-0", "", nil, http.StatusOK)
	if err != nil {
		b.Fatal(err)
	}

	// One pod per update client, so that updates measure the write path,
	// not conflicts between clients.
	var upd [64]struct {
		rv  string
		pod v1.Pod
	}
	for w := range upd {
		data, err := c.do(ctx, "POST", podsPath, "application/json", podJSON(ns, fmt.Sprintf("u-%d", w)), http.StatusCreated)
		if err != nil {
			b.Fatal(err)
		}
		if err := json.Unmarshal(data, &upd[w].pod); err != nil {
			b.Fatal(err)
		}
	}

	var seq atomic.Int64
	ops := map[string]func(w, i int) error{
		"etcd-put": func(_, i int) error {
			_, err := e.EtcdClient.Put(ctx, fmt.Sprintf("/bench/%d", seq.Add(1)), string(stored))
			return err
		},
		"create": func(int, int) error {
			_, err := c.do(ctx, "POST", podsPath, "application/json", podJSON(ns, fmt.Sprintf("c-%d", seq.Add(1))), http.StatusCreated)
			return err
		},
		"get": func(_, i int) error {
			_, err := c.do(ctx, "GET", fmt.Sprintf("%s/fixed-%d", podsPath, i%fixed), "", nil, http.StatusOK)
			return err
		},
		"list": func(int, int) error {
			_, err := c.do(ctx, "GET", "/api/v1/namespaces/"+listNS+"/pods?labelSelector=app%3Dbench", "", nil, http.StatusOK)
			return err
		},
		"update": func(w, i int) error {
			p := &upd[w].pod
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			p.Annotations["bench"] = strconv.Itoa(i)
			body, err := json.Marshal(p)
			if err != nil {
				return err
			}
			data, err := c.do(ctx, "PUT", podsPath+"/"+p.Name, "application/json", body, http.StatusOK)
			if err != nil {
				return err
			}
			var out v1.Pod
			if err := json.Unmarshal(data, &out); err != nil {
				return err
			}
			*p = out
			return nil
		},
	}
	for _, name := range []string{"etcd-put", "create", "get", "list", "update"} {
		for _, clients := range clientCounts {
			b.Run(fmt.Sprintf("%s/clients=%d", name, clients), func(b *testing.B) {
				runClients(b, clients, ops[name])
			})
		}
	}
}

// runClients runs b.N calls of op spread over n goroutines (op gets the
// goroutine's number and the call's) and reports throughput and latency
// percentiles.
func runClients(b *testing.B, n int, op func(w, i int) error) {
	var next atomic.Int64
	lat := make([][]time.Duration, n)
	var wg sync.WaitGroup
	errc := make(chan error, n)
	b.ResetTimer()
	for w := range n {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := op(w, i); err != nil {
					errc <- err
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(ms(quantile(all, 0.50)), "p50-ms")
	b.ReportMetric(ms(quantile(all, 0.99)), "p99-ms")
	b.ReportMetric(0, "ns/op") // ns/op over n clients is not a latency; p50/p99 are
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// quantile of sorted durations (nearest rank).
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(q*float64(len(d))+0.5) - 1
	return d[max(0, min(i, len(d)-1))]
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkWatchFanout opens BENCH_API_WATCHERS watches on one namespace's
// pods (each its own connection), then creates BENCH_API_WATCH_WRITES pods
// one after another, each once every watcher saw the one before, and
// reports the latency from the start of each create to the first and to
// the last watcher receiving it (p50, p99 over the writes). Run it with
// -benchtime 1x: it ignores b.N. The watchers decode their events in this
// process, which shares the machine's cores with the apiserver.
func BenchmarkWatchFanout(b *testing.B) {
	watchers, writes := envInt("BENCH_API_WATCHERS", 1000), envInt("BENCH_API_WATCH_WRITES", 30)
	// Every watcher here is the same user, where in a cluster each node
	// agent and controller is its own: no per-user watch limit.
	e := testenv.Start(b, func(o *app.Options) { o.Limits.MaxWatchesPerUser = 0 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newClient(e.URL, watchers+16)
	const ns = "fanout"
	if err := createNamespace(ctx, c, ns); err != nil {
		b.Fatal(err)
	}
	podsPath := "/api/v1/namespaces/" + ns + "/pods"
	data, err := c.do(ctx, "GET", podsPath, "", nil, http.StatusOK)
	if err != nil {
		b.Fatal(err)
	}
	var list v1.PodList
	if err := json.Unmarshal(data, &list); err != nil {
		b.Fatal(err)
	}

	// seen[k] counts the watchers that received write k; the one that
	// completes it records the time and signals done[k].
	seen := make([]atomic.Int64, writes+1)
	first, last := make([]atomic.Int64, writes+1), make([]time.Time, writes+1)
	done := make([]chan struct{}, writes+1)
	for k := range done {
		done[k] = make(chan struct{})
	}
	var connected, ended sync.WaitGroup
	errc := make(chan error, watchers)
	for range watchers {
		connected.Add(1)
		ended.Add(1)
		go func() {
			defer ended.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+podsPath+"?watch=true&resourceVersion="+list.ResourceVersion, nil)
			resp, err := c.c.Do(req)
			connected.Done()
			if err != nil {
				errc <- err
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errc <- fmt.Errorf("watch: %s", resp.Status)
				return
			}
			dec := json.NewDecoder(resp.Body)
			for {
				var ev struct {
					Type   string `json:"type"`
					Object struct {
						Metadata struct {
							Name string `json:"name"`
						} `json:"metadata"`
					} `json:"object"`
				}
				if err := dec.Decode(&ev); err != nil {
					if ctx.Err() == nil {
						errc <- fmt.Errorf("watch: %w", err)
					}
					return
				}
				at := time.Now()
				name, ok := strings.CutPrefix(ev.Object.Metadata.Name, "fan-")
				k, err := strconv.Atoi(name)
				if ev.Type != "ADDED" || !ok || err != nil || k < 0 || k > writes {
					continue
				}
				first[k].CompareAndSwap(0, at.UnixNano())
				if seen[k].Add(1) == int64(watchers) {
					last[k] = at
					close(done[k])
				}
			}
		}()
	}
	connected.Wait()
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}

	var toFirst, toLast, createLat []time.Duration
	b.ResetTimer()
	// Write 0 is a warm-up: it is not counted.
	for k := 0; k <= writes; k++ {
		t0 := time.Now()
		if _, err := c.do(ctx, "POST", podsPath, "application/json", podJSON(ns, fmt.Sprintf("fan-%d", k)), http.StatusCreated); err != nil {
			b.Fatal(err)
		}
		created := time.Since(t0)
		select {
		case <-done[k]:
		case err := <-errc:
			b.Fatal(err)
		case <-time.After(time.Minute):
			b.Fatalf("write %d: %d of %d watchers received it after a minute", k, seen[k].Load(), watchers)
		}
		if k == 0 {
			continue
		}
		createLat = append(createLat, created)
		toFirst = append(toFirst, time.Unix(0, first[k].Load()).Sub(t0))
		toLast = append(toLast, last[k].Sub(t0))
	}
	b.StopTimer()
	cancel()
	ended.Wait()
	for _, d := range [][]time.Duration{toFirst, toLast, createLat} {
		slices.Sort(d)
	}
	b.ReportMetric(float64(watchers), "watchers")
	b.ReportMetric(float64(writes), "writes")
	b.ReportMetric(ms(quantile(toFirst, 0.5)), "first-p50-ms")
	b.ReportMetric(ms(quantile(toLast, 0.5)), "last-p50-ms")
	b.ReportMetric(ms(quantile(toLast, 0.99)), "last-p99-ms")
	b.ReportMetric(ms(quantile(createLat, 0.5)), "create-p50-ms")
	b.ReportMetric(0, "ns/op")
}

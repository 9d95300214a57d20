package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The API's figures (pods created, read, listed and updated at 1, 16 and 64
// clients against raw etcd puts) are hack/bench/api's BenchmarkAPI; the
// helpers below serve the watch cache's benchmarks.

// runClients runs b.N calls of op spread over n goroutines and reports
// throughput and latency percentiles.
func runClients(b *testing.B, n int, op func(i int) error) {
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
				if err := op(i); err != nil {
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
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(0, "ns/op") // ns/op over n clients is not a latency; p50/p99 are
}

// benchWatch opens watchers watch streams on configmaps, writes b.N
// objects with 16 writers and measures until every watcher has seen every
// event: delivered events per second across all watchers.
func benchWatch(b *testing.B, c *http.Client, url string, watchers int, create func() error) {
	req, _ := http.NewRequest("GET", url+"/api/v1/namespaces/default/configmaps?limit=1", nil)
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	var list struct {
		Metadata struct{ ResourceVersion string } `json:"metadata"`
	}
	if err := decodeJSON(resp, &list); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ready, done sync.WaitGroup
	for range watchers {
		req, _ := http.NewRequestWithContext(ctx, "GET",
			url+"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion="+list.Metadata.ResourceVersion, nil)
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			resp, err := c.Do(req)
			ready.Done()
			if err != nil {
				b.Error(err)
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			seen := 0
			for seen < b.N && sc.Scan() {
				if bytes.Contains(sc.Bytes(), []byte(`"type":"ADDED"`)) {
					seen++
				}
			}
			if seen < b.N {
				b.Errorf("watcher saw %d of %d events: %v", seen, b.N, sc.Err())
			}
		}()
	}
	ready.Wait()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := create(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	done.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N*watchers)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}

func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

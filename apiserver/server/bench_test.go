package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeish/kubeish/pkg/testenv"
)

// BenchmarkAPI measures the apiserver over HTTP against a real embedded etcd,
// with raw etcd puts of the same size measured in the same run as the
// baseline (the physical limit for any write through the API):
//
//	go test ./apiserver/server -run '^$' -bench API -benchtime 2000x -count 5
//
// Each sub-benchmark reports ops/s and p50/p99 latency per request.
func BenchmarkAPI(b *testing.B) {
	e := testenv.Start(b)
	tr := &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	base := e.URL + "/api/v1/namespaces/default/configmaps"

	var seq atomic.Int64
	cm := func() []byte {
		n := seq.Add(1)
		return fmt.Appendf(nil, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bench-%d","labels":{"app":"bench"}},"data":{"key":"%0200d"}}`, n, n)
	}
	send := func(method, url string, body []byte, want int) error {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequest(method, url, rd)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			return fmt.Errorf("%s %s: %d: %s", method, url, resp.StatusCode, data)
		}
		return nil
	}

	// A fixed set of objects to get and update, and 100 more labelled
	// objects in their own namespace for the list.
	const fixed = 100
	for i := range fixed {
		body := fmt.Appendf(nil, `{"metadata":{"name":"fixed-%d"},"data":{"key":"v"}}`, i)
		if err := send("POST", base, body, http.StatusCreated); err != nil {
			b.Fatal(err)
		}
	}
	if err := send("POST", e.URL+"/api/v1/namespaces", []byte(`{"metadata":{"name":"listed"}}`), http.StatusCreated); err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		body := fmt.Appendf(nil, `{"metadata":{"name":"l-%d","labels":{"app":"listed"}},"data":{"key":"%0200d"}}`, i, i)
		if err := send("POST", e.URL+"/api/v1/namespaces/listed/configmaps", body, http.StatusCreated); err != nil {
			b.Fatal(err)
		}
	}

	ops := map[string]func(i int) error{
		"create": func(int) error { return send("POST", base, cm(), http.StatusCreated) },
		"get": func(i int) error {
			return send("GET", fmt.Sprintf("%s/fixed-%d", base, i%fixed), nil, http.StatusOK)
		},
		"list100": func(int) error {
			return send("GET", e.URL+"/api/v1/namespaces/listed/configmaps?labelSelector=app%3Dlisted", nil, http.StatusOK)
		},
		"patch": func(i int) error {
			body := fmt.Appendf(nil, `{"data":{"n":"%d"}}`, i)
			req, _ := http.NewRequest("PATCH", fmt.Sprintf("%s/fixed-%d", base, i%fixed), bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/merge-patch+json")
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("patch: %d", resp.StatusCode)
			}
			return nil
		},
		"etcd-put": func(i int) error {
			_, err := e.EtcdClient.Put(context.Background(), fmt.Sprintf("/bench/%d", i), string(cm()))
			return err
		},
	}
	for _, name := range []string{"etcd-put", "create", "get", "patch", "list100"} {
		for _, clients := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", name, clients), func(b *testing.B) {
				runClients(b, clients, ops[name])
			})
		}
	}

	for _, watchers := range []int{1, 16} {
		b.Run(fmt.Sprintf("watch/watchers=%d", watchers), func(b *testing.B) {
			benchWatch(b, c, e.URL, watchers, func() error { return send("POST", base, cm(), http.StatusCreated) })
		})
	}
}

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

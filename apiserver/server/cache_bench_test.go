package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeish/kubeish/apiserver/cacher"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// BenchmarkWatchCache compares two apiservers over one embedded etcd, one
// serving lists and watches from etcd and one from the watch cache: a LIST
// of 1,000 pods (resourceVersion "" is a consistent read, "0" takes the
// cache as it is), and the fan-out of new ConfigMaps to 100 watchers.
//
//	go test ./apiserver/server -run '^$' -bench WatchCache/list -benchtime 3s
//	go test ./apiserver/server -run '^$' -bench WatchCache/watch -benchtime 300x
func BenchmarkWatchCache(b *testing.B) {
	e := testenv.Start(b)
	servers := []struct {
		name string
		api  *api
	}{
		{"etcd", startUncached(b, e)},
		{"cache", startCached(b, e, cacher.Config{}).api},
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	send := func(method, url string, body []byte, want int) error {
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
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
			return fmt.Errorf("%s %s: %d: %.200s", method, url, resp.StatusCode, data)
		}
		return nil
	}

	// 1,000 pods of a realistic size, written with 16 clients.
	const pods = 1000
	if err := send("POST", e.URL+"/api/v1/namespaces", []byte(`{"metadata":{"name":"bench"}}`), http.StatusCreated); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1); i <= pods; i = next.Add(1) {
				body := fmt.Appendf(nil, `{"metadata":{"name":"pod-%04d","labels":{"app":"bench","shard":"%d"}},`+
					`"spec":{"nodeName":"node-%d","containers":[{"name":"c","image":"echo:v1","ports":[{"containerPort":8080}],`+
					`"env":[{"name":"A","value":"%0100d"}],"resources":{"requests":{"cpu":"10m","memory":"16Mi"}}}]}}`, i, i%10, i%50, i)
				if err := send("POST", e.URL+"/api/v1/namespaces/bench/pods", body, http.StatusCreated); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}

	for _, srv := range servers {
		for _, rv := range []string{"", "0"} {
			if srv.name == "etcd" && rv == "0" {
				continue // the same etcd read as ""
			}
			for _, clients := range []int{1, 8} {
				url := srv.api.base + "/api/v1/namespaces/bench/pods"
				if rv != "" {
					url += "?resourceVersion=" + rv
				}
				b.Run(fmt.Sprintf("list1000/%s/rv=%q/clients=%d", srv.name, rv, clients), func(b *testing.B) {
					runClients(b, clients, func(int) error { return send("GET", url, nil, http.StatusOK) })
				})
			}
		}
		b.Run(fmt.Sprintf("list1000-selector/%s/clients=1", srv.name), func(b *testing.B) {
			url := srv.api.base + "/api/v1/pods?labelSelector=shard%3D3&fieldSelector=spec.nodeName%3Dnode-3"
			runClients(b, 1, func(int) error { return send("GET", url, nil, http.StatusOK) })
		})
	}

	var seq atomic.Int64
	for _, srv := range servers {
		b.Run(fmt.Sprintf("watch/%s/watchers=100", srv.name), func(b *testing.B) {
			base := srv.api.base + "/api/v1/namespaces/default/configmaps"
			benchWatch(b, c, srv.api.base, 100, func() error {
				body := fmt.Appendf(nil, `{"metadata":{"name":"fan-%d"},"data":{"key":"%0200d"}}`, seq.Add(1), 0)
				return send("POST", base, body, http.StatusCreated)
			})
		})
	}
}

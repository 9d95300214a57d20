package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/kubeish/kubeish/apiserver/cacher"
	"github.com/kubeish/kubeish/apiserver/registry"
	"github.com/kubeish/kubeish/apiserver/server"
	"github.com/kubeish/kubeish/apiserver/storage"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// cachedServer is another apiserver over a test environment's etcd, with
// the watch cache on or off, so that a test can ask the same question of the
// cache and of etcd and compare (e's own server may have its cache on).
type cachedServer struct {
	*api
	cache *cacher.Cacher
	reg   *prometheus.Registry
}

// startUncached starts a server over e's etcd with no watch cache.
func startUncached(t testing.TB, e *testenv.Env) *api {
	return startServer(t, e, nil).api
}

// startCached starts a server over e's etcd with a watch cache of every
// resource, loaded before it returns.
func startCached(t testing.TB, e *testenv.Env, cfg cacher.Config) *cachedServer {
	return startServer(t, e, &cfg)
}

func startServer(t testing.TB, e *testenv.Env, cfg *cacher.Config) *cachedServer {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	scheme := registry.NewScheme()
	reg := prometheus.NewRegistry()
	store, err := storage.New(storage.Config{Client: e.EtcdClient, Codec: registry.NewStorageCodec(scheme)})
	if err != nil {
		t.Fatal(err)
	}
	set := registry.NewSet()
	var cache *cacher.Cacher
	if cfg != nil {
		cfg.Store, cfg.Resources, cfg.Logger, cfg.Registerer = store, set.All(), log, reg
		if cache, err = cacher.New(*cfg); err != nil {
			t.Fatal(err)
		}
	}
	alloc, err := registry.NewServiceAllocator(e.Options.ServiceClusterRange, e.Options.ServiceNodePorts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: store, Resources: set, Scheme: scheme, Allocator: alloc,
		Logger: log, Registerer: reg, Gatherer: reg, BookmarkInterval: time.Second, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if cache != nil {
		wg.Go(func() { cache.Run(ctx) })
	}
	hs := httptest.NewUnstartedServer(asTestUser(srv))
	hs.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	hs.Start()
	t.Cleanup(func() {
		cancel()
		hs.Close()
		wg.Wait()
	})
	for _, res := range set.All() {
		if cache == nil {
			break
		}
		poll.Until(t, 10*time.Second, "the watch cache of "+res.Resource+" to load", func() (bool, error) {
			_, ready := cache.For(res).Revision()
			return ready, nil
		})
	}
	return &cachedServer{api: &api{t: t, base: hs.URL, c: &http.Client{Timeout: 30 * time.Second}}, cache: cache, reg: reg}
}

// counter reads a counter of the cached server's registry.
func (c *cachedServer) counter(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := c.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return metricValue(m)
		}
	}
	return 0
}

func metricValue(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// churn runs writers that create, relabel and delete ConfigMaps in two
// namespaces through the etcd-backed server, ops changes each, and records
// the highest resourceVersion a write returned.
type churn struct {
	wg      sync.WaitGroup
	done    chan struct{}
	lastRev atomic.Int64
	errs    chan error
}

func startChurn(t *testing.T, a *api, writers, ops int) *churn {
	t.Helper()
	for _, ns := range []string{"ns-a", "ns-b"} {
		a.must(http.StatusCreated, "POST", "/api/v1/namespaces", jsonType, fmt.Sprintf(`{"metadata":{"name":%q}}`, ns))
	}
	c := &churn{done: make(chan struct{}), errs: make(chan error, writers)}
	hc := &http.Client{Timeout: 30 * time.Second}
	send := func(method, path, ct, body string) (int, string, error) {
		req, _ := http.NewRequest(method, a.base+path, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		var m struct {
			Metadata struct{ ResourceVersion string } `json:"metadata"`
		}
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		return resp.StatusCode, m.Metadata.ResourceVersion, err
	}
	for w := range writers {
		c.wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range ops {
				ns := []string{"ns-a", "ns-b"}[r.IntN(2)]
				name := fmt.Sprintf("w%d-%d", w, r.IntN(ops/3+1))
				app := []string{"x", "y"}[r.IntN(2)]
				base := "/api/v1/namespaces/" + ns + "/configmaps"
				var code int
				var rv string
				var err error
				switch op := r.IntN(4); {
				case op < 2:
					code, rv, err = send("POST", base, jsonType, fmt.Sprintf(`{"metadata":{"name":%q,"labels":{"app":%q}},"data":{"i":"%d"}}`, name, app, i))
				case op == 2:
					code, rv, err = send("PATCH", base+"/"+name, mergeType, fmt.Sprintf(`{"metadata":{"labels":{"app":%q}},"data":{"i":"%d"}}`, app, i))
				default:
					code, rv, err = send("DELETE", base+"/"+name, "", "")
				}
				if err != nil || code >= 500 {
					c.errs <- fmt.Errorf("write %d: %d %v", i, code, err)
					return
				}
				if n, _ := strconv.ParseInt(rv, 10, 64); code < 300 {
					for cur := c.lastRev.Load(); n > cur && !c.lastRev.CompareAndSwap(cur, n); cur = c.lastRev.Load() {
					}
				}
			}
		})
	}
	go func() { c.wg.Wait(); close(c.done) }()
	t.Cleanup(c.wg.Wait)
	return c
}

func (c *churn) wait(t *testing.T) {
	t.Helper()
	<-c.done
	select {
	case err := <-c.errs:
		t.Fatal(err)
	default:
	}
}

type listedItem struct {
	Metadata struct {
		Name, Namespace, ResourceVersion string
	} `json:"metadata"`
}

type listed struct {
	Metadata struct {
		ResourceVersion    string
		Continue           string `json:"continue"`
		RemainingItemCount *int64
	} `json:"metadata"`
	Items []listedItem `json:"items"`
}

func (l listed) names() []string {
	var out []string
	for _, it := range l.Items {
		out = append(out, it.Metadata.Namespace+"/"+it.Metadata.Name+"@"+it.Metadata.ResourceVersion)
	}
	return out
}

// listAll lists path (with query q), following continue tokens, and returns
// every item and the first page's resourceVersion.
func listAll(t *testing.T, a *api, path string, q url.Values) ([]string, int64) {
	t.Helper()
	var all []string
	var rev int64
	for {
		var l listed
		a.must(http.StatusOK, "GET", path+"?"+q.Encode(), "", nil).into(t, &l)
		if rev == 0 {
			rev, _ = strconv.ParseInt(l.Metadata.ResourceVersion, 10, 64)
		}
		all = append(all, l.names()...)
		if l.Metadata.Continue == "" {
			return all, rev
		}
		q = url.Values{"continue": {l.Metadata.Continue}, "limit": q["limit"],
			"labelSelector": q["labelSelector"], "fieldSelector": q["fieldSelector"]}
	}
}

var cacheQueries = []struct {
	name, path string
	q          url.Values
}{
	{"all", "/api/v1/configmaps", url.Values{}},
	{"namespace", "/api/v1/namespaces/ns-a/configmaps", url.Values{}},
	{"label", "/api/v1/configmaps", url.Values{"labelSelector": {"app=x"}}},
	{"label in namespace", "/api/v1/namespaces/ns-b/configmaps", url.Values{"labelSelector": {"app in (x)"}}},
	{"field", "/api/v1/configmaps", url.Values{"fieldSelector": {"metadata.namespace!=ns-b"}}},
	{"paged", "/api/v1/configmaps", url.Values{"limit": {"7"}}},
	{"paged label", "/api/v1/configmaps", url.Values{"limit": {"5"}, "labelSelector": {"app=y"}}},
}

// TestCacheListsMatchEtcd: under concurrent writes, every list the cache
// answers equals etcd's list at the same revision (read back with
// resourceVersionMatch=Exact), and a list with resourceVersion="" (a
// consistent read) reflects every write that finished before it.
func TestCacheListsMatchEtcd(t *testing.T) {
	e := testenv.Start(t)
	etcdAPI := startUncached(t, e)
	cached := startCached(t, e, cacher.Config{})
	ch := startChurn(t, etcdAPI, 3, 150)
	rounds := 0
	for running := true; running || rounds < 2; rounds++ {
		select {
		case <-ch.done:
			running = false
		default:
		}
		for _, tc := range cacheQueries {
			for _, rv := range []string{"", "0"} {
				t.Run(fmt.Sprintf("%s/rv=%q", tc.name, rv), func(t *testing.T) {
					written := ch.lastRev.Load()
					q := url.Values{}
					for k, v := range tc.q {
						q[k] = v
					}
					if rv != "" {
						q.Set("resourceVersion", rv)
					}
					got, rev := listAll(t, cached.api, tc.path, q)
					if rv == "" && rev < written {
						t.Fatalf("consistent list at %d, before the write at %d", rev, written)
					}
					eq := url.Values{"resourceVersion": {strconv.FormatInt(rev, 10)}, "resourceVersionMatch": {"Exact"},
						"labelSelector": tc.q["labelSelector"], "fieldSelector": tc.q["fieldSelector"]}
					want, _ := listAll(t, etcdAPI, tc.path, eq)
					if !slices.Equal(got, want) {
						t.Fatalf("cache at %d:\n got %v\nwant %v", rev, got, want)
					}
				})
			}
		}
	}
	ch.wait(t)
	if n := cached.counter(t, "kubeish_apiserver_watch_cache_lists_total", map[string]string{"resource": "configmaps", "source": "cache"}); n == 0 {
		t.Fatal("no list was served from the cache")
	}
}

type seen struct{ typ, key, rv string }

// collect reads events from w until one for the sentinel arrives; the
// events (bookmarks left out) and the last resourceVersion.
func collect(t *testing.T, w *stream, sentinel string, max int) ([]seen, bool) {
	t.Helper()
	var out []seen
	for len(out) < max {
		ev := w.next(t, true)
		if ev.Type == "ERROR" {
			t.Fatalf("watch error: %s", ev.Object)
		}
		m := ev.meta(t)
		out = append(out, seen{ev.Type, m.Namespace + "/" + m.Name, m.ResourceVersion})
		if m.Name == sentinel {
			return out, true
		}
	}
	return out, false
}

var watchQueries = []struct{ name, path string }{
	{"all", "/api/v1/configmaps?"},
	{"namespace", "/api/v1/namespaces/ns-a/configmaps?"},
	{"label", "/api/v1/configmaps?labelSelector=app%3Dx&"},
	{"field and label", "/api/v1/namespaces/ns-a/configmaps?fieldSelector=metadata.name%21%3Dnope&labelSelector=app%3Dx&"},
}

// TestCacheWatchMatchesEtcd: under concurrent writes, a watch from a
// resourceVersion on the cache sees exactly the events a watch on etcd sees
// (no gap, no repeat), with selectors, and so does a watch that is resumed
// again and again from the last resourceVersion it saw.
func TestCacheWatchMatchesEtcd(t *testing.T) {
	e := testenv.Start(t)
	etcdAPI := startUncached(t, e)
	cached := startCached(t, e, cacher.Config{})
	var l listed
	cached.must(http.StatusOK, "GET", "/api/v1/configmaps", "", nil).into(t, &l)
	start := l.Metadata.ResourceVersion

	type pair struct{ fromCache, fromEtcd *stream }
	streams := map[string]pair{}
	for _, q := range watchQueries {
		streams[q.name] = pair{
			cached.watch(q.path + "watch=true&allowWatchBookmarks=true&resourceVersion=" + start),
			etcdAPI.watch(q.path + "watch=true&resourceVersion=" + start),
		}
	}
	ch := startChurn(t, etcdAPI, 3, 100)
	ch.wait(t)
	createCMIn(etcdAPI, "ns-a", "zz-sentinel", `"app":"x"`)

	for _, q := range watchQueries {
		t.Run(q.name, func(t *testing.T) {
			want, ok := collect(t, streams[q.name].fromEtcd, "zz-sentinel", 100000)
			if !ok || len(want) < 2 {
				t.Fatalf("etcd watch: %v", want)
			}
			got, _ := collect(t, streams[q.name].fromCache, "zz-sentinel", 100000)
			if !slices.Equal(got, want) {
				t.Fatalf("cache watch from %s:\n got %v\nwant %v", start, got, want)
			}
			// Resume every few events from the last resourceVersion seen.
			var resumed []seen
			rv := start
			for done := false; !done; {
				w := cached.watch(q.path + "watch=true&resourceVersion=" + rv)
				var part []seen
				part, done = collect(t, w, "zz-sentinel", 1+len(resumed)%7)
				w.cancel()
				resumed = append(resumed, part...)
				rv = part[len(part)-1].rv
			}
			if !slices.Equal(resumed, want) {
				t.Fatalf("resumed watch:\n got %v\nwant %v", resumed, want)
			}
		})
	}
	if n := cached.counter(t, "kubeish_apiserver_watch_cache_watches_total", map[string]string{"resource": "configmaps", "source": "etcd"}); n != 0 {
		t.Fatalf("%v watches went to etcd", n)
	}
}

func createCMIn(a *api, ns, name, labels string) string {
	a.t.Helper()
	var m listedItem
	a.must(http.StatusCreated, "POST", "/api/v1/namespaces/"+ns+"/configmaps", jsonType,
		fmt.Sprintf(`{"metadata":{"name":%q,"labels":{%s}}}`, name, labels)).into(a.t, &m)
	return m.Metadata.ResourceVersion
}

// TestCacheWatchWindow: a watch from a revision the cache still holds is
// served from the cache, one from before the cache's window by etcd while
// etcd has the history; once etcd compacted it, either answers 410 Gone, as
// DESIGN.md's contract says, although the cache could still serve it.
func TestCacheWatchWindow(t *testing.T) {
	e := testenv.Start(t)
	etcdAPI := startUncached(t, e)
	cached := startCached(t, e, cacher.Config{Capacity: 8})
	var revs []string
	for i := range 20 {
		revs = append(revs, createCMIn(etcdAPI, "default", fmt.Sprintf("cm-%02d", i), ""))
	}
	last, _ := strconv.ParseInt(revs[19], 10, 64)
	poll.Until(t, 10*time.Second, "the cache to reach the last write", func() (bool, error) {
		rev, _ := cached.cache.For(mustResource(t, "configmaps")).Revision()
		return rev >= last, nil
	})
	fromEtcd := func() float64 {
		return cached.counter(t, "kubeish_apiserver_watch_cache_watches_total", map[string]string{"resource": "configmaps", "source": "etcd"})
	}
	cms := "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion="
	tests := []struct {
		name    string
		from    int
		compact bool
		etcd    bool
		code    int
	}{
		{name: "in the window", from: 15},
		{name: "before the window", from: 2, etcd: true},
		{name: "in the window, compacted in etcd", from: 15, compact: true, code: http.StatusGone},
		{name: "before the window, compacted in etcd", from: 2, compact: true, code: http.StatusGone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.compact {
				if _, err := e.EtcdClient.Compact(context.Background(), last); err != nil && !strings.Contains(err.Error(), "compacted") {
					t.Fatal(err)
				}
			}
			before := fromEtcd()
			if tc.code != 0 {
				r := cached.must(tc.code, "GET", cms+revs[tc.from], "", nil)
				if s := r.status(t); s.Reason != "Expired" {
					t.Fatalf("reason %s", s.Reason)
				}
				return
			}
			w := cached.watch(cms + revs[tc.from])
			defer w.cancel()
			for i := tc.from + 1; i < 20; i++ {
				ev := w.next(t, true)
				if m := ev.meta(t); ev.Type != "ADDED" || m.Name != fmt.Sprintf("cm-%02d", i) || m.ResourceVersion != revs[i] {
					t.Fatalf("event %d: %s %s@%s", i, ev.Type, m.Name, m.ResourceVersion)
				}
			}
			if viaEtcd := fromEtcd() > before; viaEtcd != tc.etcd {
				t.Fatalf("served by etcd: %v, want %v", viaEtcd, tc.etcd)
			}
		})
	}
}

func mustResource(t testing.TB, name string) *registry.Resource {
	res, ok := registry.NewSet().Get("", name)
	if !ok {
		t.Fatalf("no resource %s", name)
	}
	return res
}

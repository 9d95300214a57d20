package cacher_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/kubeish/kubeish/apiserver/cacher"
	"github.com/kubeish/kubeish/apiserver/registry"
	"github.com/kubeish/kubeish/apiserver/storage"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// env is a cache of ConfigMaps over a real embedded etcd, written through a
// real apiserver.
type env struct {
	e     *testenv.Env
	cache *cacher.Cache
	reg   *prometheus.Registry
}

func start(t *testing.T, capacity int, opts ...func(*cacher.Config)) *env {
	t.Helper()
	e := testenv.Start(t)
	scheme := registry.NewScheme()
	store, err := storage.New(storage.Config{Client: e.EtcdClient, Codec: registry.NewStorageCodec(scheme)})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := registry.NewSet().Get("", "configmaps")
	reg := prometheus.NewRegistry()
	cfg := cacher.Config{Store: store, Resources: []*registry.Resource{res}, Logger: zaptest.NewLogger(t),
		Registerer: reg, Capacity: capacity}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := cacher.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	cache := c.For(res)
	poll.Until(t, 10*time.Second, "the cache to load", func() (bool, error) {
		_, ready := cache.Revision()
		return ready, nil
	})
	return &env{e: e, cache: cache, reg: reg}
}

// write creates n ConfigMaps and returns the revision of the last.
func (v *env) write(t *testing.T, prefix string, n int) int64 {
	t.Helper()
	var last string
	for i := range n {
		cm, err := v.e.Client.CoreV1().ConfigMaps("default").Create(context.Background(),
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%03d", prefix, i)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last = cm.ResourceVersion
	}
	var rev int64
	fmt.Sscan(last, &rev)
	return rev
}

// TestSlowWatcherEnds: a watcher that does not read is ended once the ring
// has overwritten what it had yet to read; a watcher that reads gets every
// change meanwhile, and the cache never waited for the slow one.
func TestSlowWatcherEnds(t *testing.T) {
	v := start(t, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rev, _ := v.cache.Revision()
	slow, err := v.cache.Watch(ctx, cacher.WatchOptions{Revision: rev})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := v.cache.Watch(ctx, cacher.WatchOptions{Revision: rev})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	got := make(chan int, 1)
	go func() {
		count := 0
		for ev := range fast.Events {
			if ev.Type == watch.Added {
				count++
			}
			if count == n {
				break
			}
		}
		got <- count
	}()
	last := v.write(t, "cm", n)
	poll.Until(t, 10*time.Second, "the cache to reach the last write", func() (bool, error) {
		r, _ := v.cache.Revision()
		return r >= last, nil
	})
	select {
	case c := <-got:
		if c != n {
			t.Fatalf("fast watcher saw %d of %d", c, n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fast watcher did not see every change")
	}
	// The slow watcher's channel holds what it had read ahead, then closes.
	read := 0
	poll.Until(t, 10*time.Second, "the slow watcher to end", func() (bool, error) {
		for {
			select {
			case _, ok := <-slow.Events:
				if !ok {
					return true, nil
				}
				read++
			default:
				return false, nil
			}
		}
	})
	if read >= n {
		t.Fatalf("slow watcher got all %d changes through a ring of 16", read)
	}
	if ended := sum(t, v.reg, "apiserver_terminated_watchers_total"); ended != 1 {
		t.Fatalf("terminated watchers: %v", ended)
	}
}

// TestStalledWatcherDropped: a watcher whose client stops reading is ended
// once its buffer has stayed full for the slow-watcher timeout, even while
// the ring still holds everything it has to read; what it had queued never
// exceeds the buffer; a reading watcher gets every change.
func TestStalledWatcherDropped(t *testing.T) {
	v := start(t, 4096, func(c *cacher.Config) { c.SlowWatcherTimeout = 200 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rev, _ := v.cache.Revision()
	stalled, err := v.cache.Watch(ctx, cacher.WatchOptions{Revision: rev})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := v.cache.Watch(ctx, cacher.WatchOptions{Revision: rev})
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	got := make(chan int, 1)
	go func() {
		count := 0
		for range fast.Events {
			if count++; count == n {
				break
			}
		}
		got <- count
	}()
	v.write(t, "cm", n)
	select {
	case c := <-got:
		if c != n {
			t.Fatalf("reading watcher saw %d of %d", c, n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("reading watcher did not see every change")
	}
	if fast.Dropped() {
		t.Fatal("the reading watcher was dropped")
	}
	poll.Until(t, 10*time.Second, "the stalled watcher to be dropped", func() (bool, error) {
		if n := len(stalled.Events); n > cacher.WatchBuffer {
			t.Fatalf("%d events queued for one watcher, buffer %d", n, cacher.WatchBuffer)
		}
		return stalled.Dropped(), nil
	})
	queued := 0
	for range stalled.Events {
		queued++
	}
	if queued > cacher.WatchBuffer {
		t.Fatalf("%d events queued for the stalled watcher, buffer %d", queued, cacher.WatchBuffer)
	}
	if ended := sum(t, v.reg, "apiserver_terminated_watchers_total"); ended != 1 {
		t.Fatalf("terminated watchers: %v", ended)
	}
}

// TestWatchFromFutureRevision: a watch from a revision the cache has not
// reached yet (the client just wrote it and the cache lags) skips the
// changes up to it rather than repeating them.
func TestWatchFromFutureRevision(t *testing.T) {
	v := start(t, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cur, _ := v.cache.Revision()
	w, err := v.cache.Watch(ctx, cacher.WatchOptions{Revision: cur + 3})
	if err != nil {
		t.Fatal(err)
	}
	v.write(t, "f", 6)
	var names []string
	for len(names) < 3 {
		select {
		case ev := <-w.Events:
			names = append(names, name(ev.Object))
			if ev.Revision <= cur+3 {
				t.Fatalf("event at %d, watch from %d", ev.Revision, cur+3)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("events: %v", names)
		}
	}
	if fmt.Sprint(names) != "[f-003 f-004 f-005]" {
		t.Fatalf("events: %v", names)
	}
}

// TestConsistentList: WaitFresh reaches etcd's current revision even when
// nothing of the cached type changes (through a progress notification).
func TestConsistentList(t *testing.T) {
	v := start(t, 100)
	// A write to another type moves etcd's revision but not the cache's
	// contents.
	if _, err := v.e.Client.CoreV1().Secrets("default").Create(context.Background(),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, err := v.e.EtcdClient.Get(context.Background(), "/registry/health")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.cache.WaitFresh(context.Background(), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	list, err := v.cache.List(context.Background(), "/registry/configmaps/", cacher.ListOptions{MinRevision: resp.Header.Revision})
	if err != nil || list.Revision < resp.Header.Revision {
		t.Fatalf("list at %v: %v", list, err)
	}
}

func name(obj runtime.Object) string {
	return obj.(*corev1.ConfigMap).Name
}

// sum adds up every series of a counter in reg.
func sum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

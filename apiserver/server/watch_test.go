package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/pkg/testenv"
)

type event struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

func (e event) meta(t testing.TB) metav1.ObjectMeta {
	var o struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(e.Object, &o); err != nil {
		t.Fatalf("event object: %v", err)
	}
	return o.Metadata
}

// stream is an open watch.
type stream struct {
	events chan event
	cancel context.CancelFunc
	header http.Header
}

func (a *api) watch(path string) *stream {
	a.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", a.base+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		a.t.Fatalf("watch %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		a.t.Fatalf("watch %s: %d", path, resp.StatusCode)
	}
	s := &stream{events: make(chan event, 1000), cancel: cancel, header: resp.Header}
	go func() {
		defer close(s.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			var ev event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				s.events <- ev
			}
		}
	}()
	a.t.Cleanup(cancel)
	return s
}

// next returns the next event that is not a progress bookmark.
func (s *stream) next(t testing.TB, skipBookmarks bool) event {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatal("watch ended")
			}
			if skipBookmarks && ev.Type == "BOOKMARK" {
				continue
			}
			return ev
		case <-timeout.C:
			t.Fatal("no watch event in 10s")
		}
	}
}

func createCM(a *api, name string, labels string) metav1.ObjectMeta {
	a.t.Helper()
	r := a.must(http.StatusCreated, "POST", "/api/v1/namespaces/default/configmaps", jsonType,
		fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":%q,"labels":{%s}}}`, name, labels))
	return objMeta(a.t, r)
}

func TestWatch(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	cms := "/api/v1/namespaces/default/configmaps"
	first := createCM(a, "a", `"app":"x"`)

	w := a.watch(cms + "?watch=true&resourceVersion=" + first.ResourceVersion + "&labelSelector=app%3Dx")
	createCM(a, "b", `"app":"x"`)
	createCM(a, "c", `"app":"other"`)
	a.must(http.StatusOK, "PATCH", cms+"/b", mergeType, `{"data":{"k":"v"}}`)
	// b leaves the selection: a watcher sees it as DELETED.
	a.must(http.StatusOK, "PATCH", cms+"/b", mergeType, `{"metadata":{"labels":{"app":"gone"}}}`)
	// c enters it: ADDED.
	a.must(http.StatusOK, "PATCH", cms+"/c", mergeType, `{"metadata":{"labels":{"app":"x"}}}`)
	a.must(http.StatusOK, "DELETE", cms+"/a", "", nil)

	want := []struct{ typ, name string }{{"ADDED", "b"}, {"MODIFIED", "b"}, {"DELETED", "b"}, {"ADDED", "c"}, {"DELETED", "a"}}
	last := 0
	for _, wnt := range want {
		ev := w.next(t, true)
		m := ev.meta(t)
		rv, _ := strconv.Atoi(m.ResourceVersion)
		if ev.Type != wnt.typ || m.Name != wnt.name || rv <= last {
			t.Fatalf("got %s %s@%s, want %s %s after %d", ev.Type, m.Name, m.ResourceVersion, wnt.typ, wnt.name, last)
		}
		last = rv
	}
}

func TestWatchSendInitialEvents(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	for i := range 3 {
		createCM(a, fmt.Sprintf("cm-%d", i), "")
	}
	w := a.watch("/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")
	seen := map[string]bool{}
	for range 3 {
		ev := w.next(t, false)
		if ev.Type != "ADDED" {
			t.Fatalf("initial event %s", ev.Type)
		}
		seen[ev.meta(t).Name] = true
	}
	ev := w.next(t, false)
	if ev.Type != "BOOKMARK" || ev.meta(t).Annotations[metav1.InitialEventsAnnotationKey] != "true" {
		t.Fatalf("after the initial events: %s %+v", ev.Type, ev.meta(t))
	}
	createCM(a, "later", "")
	if ev := w.next(t, true); ev.Type != "ADDED" || ev.meta(t).Name != "later" {
		t.Fatalf("after the bookmark: %s %s", ev.Type, ev.meta(t).Name)
	}
	if len(seen) != 3 {
		t.Fatalf("initial events for %v", seen)
	}
	// sendInitialEvents without bookmarks is refused, as in Kubernetes.
	a.must(http.StatusUnprocessableEntity, "GET", "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan", "", nil)
}

func TestWatchCompacted(t *testing.T) {
	e := testenv.Start(t)
	a := newAPI(t, e)
	m := createCM(a, "a", "")
	for i := range 3 {
		createCM(a, fmt.Sprintf("more-%d", i), "")
	}
	last := createCM(a, "last", "")
	rev, _ := strconv.ParseInt(last.ResourceVersion, 10, 64)
	if _, err := e.EtcdClient.Compact(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	r := a.must(http.StatusGone, "GET", "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion="+m.ResourceVersion, "", nil)
	if s := r.status(t); s.Reason != metav1.StatusReasonExpired {
		t.Fatalf("reason %s", s.Reason)
	}
	// An exact list at a compacted revision is Gone too.
	a.must(http.StatusGone, "GET", "/api/v1/namespaces/default/configmaps?resourceVersion="+m.ResourceVersion+"&resourceVersionMatch=Exact", "", nil)
}

// TestWatchAcrossRestart: a client that re-watches from its last
// resourceVersion after an apiserver restart misses nothing and sees
// nothing twice.
func TestWatchAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	e := testenv.Start(t, testenv.WithDataDir(dir))
	a := newAPI(t, e)
	start := createCM(a, "start", "")
	w := a.watch("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=" + start.ResourceVersion)
	var names []string
	lastRV := start.ResourceVersion
	for i := range 5 {
		createCM(a, fmt.Sprintf("before-%d", i), "")
	}
	for range 5 {
		ev := w.next(t, true)
		names = append(names, ev.meta(t).Name)
		lastRV = ev.meta(t).ResourceVersion
	}
	// More writes the client has not seen yet, then a restart.
	for i := range 5 {
		createCM(a, fmt.Sprintf("unseen-%d", i), "")
	}
	w.cancel()
	e.Stop()

	e2 := testenv.Start(t, testenv.WithDataDir(dir))
	a2 := newAPI(t, e2)
	w2 := a2.watch("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=" + lastRV)
	for i := range 5 {
		createCM(a2, fmt.Sprintf("after-%d", i), "")
	}
	for range 10 {
		names = append(names, w2.next(t, true).meta(t).Name)
	}
	var want []string
	for _, p := range []string{"before", "unseen", "after"} {
		for i := range 5 {
			want = append(want, fmt.Sprintf("%s-%d", p, i))
		}
	}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("events\n got %v\nwant %v", names, want)
	}
}

func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	e := testenv.Start(t, testenv.WithDataDir(dir))
	a := newAPI(t, e)
	a.must(http.StatusCreated, "POST", "/api/v1/namespaces", jsonType, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"keep"}}`)
	var svc corev1.Service
	a.must(http.StatusCreated, "POST", "/api/v1/namespaces/keep/services", jsonType,
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},"spec":{"type":"NodePort","ports":[{"port":80}]}}`).into(t, &svc)
	e.Stop()

	e2 := testenv.Start(t, testenv.WithDataDir(dir))
	a2 := newAPI(t, e2)
	var got corev1.Service
	a2.must(http.StatusOK, "GET", "/api/v1/namespaces/keep/services/s", "", nil).into(t, &got)
	if got.UID != svc.UID || got.Spec.ClusterIP != svc.Spec.ClusterIP || got.Spec.Ports[0].NodePort != svc.Spec.Ports[0].NodePort {
		t.Fatalf("after restart: %+v, before: %+v", got.Spec, svc.Spec)
	}
	// The allocations survived too: asking for the same IP is refused.
	r := a2.do("POST", "/api/v1/namespaces/keep/services", jsonType,
		fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"t"},"spec":{"clusterIP":%q,"ports":[{"port":80}]}}`, svc.Spec.ClusterIP))
	if r.code != http.StatusUnprocessableEntity {
		t.Fatalf("reusing %s after restart: %d %s", svc.Spec.ClusterIP, r.code, r.body)
	}
}

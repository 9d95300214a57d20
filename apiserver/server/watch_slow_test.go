package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeish/kubeish/apiserver/app"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// stalledWatch opens a watch on a raw connection with a small receive
// buffer, reads the response header, and then never reads again.
func stalledWatch(t *testing.T, base, path string) net.Conn {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	status, err := bufio.NewReaderSize(conn, 16).ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("stalled watch: %q %v", status, err)
	}
	return conn
}

// metric reads one counter's value from the apiserver's /metrics.
func metric(t *testing.T, base, series string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// TestSlowWatchClientDropped: a watch client that stops reading while many
// changes are written is cut off (counted in
// kubeish_apiserver_watch_dropped_total) rather than buffered for, with
// the watch cache and straight from etcd; a client that reads gets every
// change meanwhile, and writes never wait for the stalled one.
func TestSlowWatchClientDropped(t *testing.T) {
	for _, cache := range []bool{true, false} {
		t.Run(fmt.Sprintf("cache=%v", cache), func(t *testing.T) {
			t.Parallel()
			e := testenv.Start(t, func(o *app.Options) { o.WatchCache = cache })
			a := newAPI(t, e)
			rv := createCM(a, "start", "").ResourceVersion
			path := "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=" + rv
			stalledWatch(t, e.URL, path)
			reader := a.watch(path)

			const n = 300
			data := strings.Repeat("x", 16<<10)
			for i := range n {
				a.must(http.StatusCreated, "POST", "/api/v1/namespaces/default/configmaps", jsonType,
					fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm-%03d"},"data":{"d":%q}}`, i, data))
			}
			for i := range n {
				ev := reader.next(t, true)
				if name := ev.meta(t).Name; ev.Type != "ADDED" || name != fmt.Sprintf("cm-%03d", i) {
					t.Fatalf("reading watcher: event %d is %s %s", i, ev.Type, name)
				}
			}
			poll.Until(t, 30*time.Second, "the stalled watch to be dropped", func() (bool, error) {
				return metric(t, e.URL, `kubeish_apiserver_watch_dropped_total{resource="configmaps"}`) == 1, nil
			})
		})
	}
}

// TestIdleWatchOverHTTP2: the write deadline of a watch covers its writes
// only, so a watch over HTTP/2 (client-go's protocol over TLS) that has
// nothing to send for longer than the deadline stays open and gets the
// next change.
func TestIdleWatchOverHTTP2(t *testing.T) {
	t.Parallel()
	e := testenv.Start(t)
	cfg := e.AdminConfig(t)
	c := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	cms := c.CoreV1().ConfigMaps("default")
	first, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "first"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	next := func(want string) {
		t.Helper()
		select {
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Error {
				t.Fatalf("watch ended waiting for %s: %v", want, ev.Object)
			}
			if name := ev.Object.(*corev1.ConfigMap).Name; name != want {
				t.Fatalf("event for %s, want %s", name, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no event for %s", want)
		}
	}
	next(first.Name)
	// Idle for longer than the write deadline (10 s): nothing may arrive,
	// the end of the stream included.
	select {
	case ev, ok := <-w.ResultChan():
		t.Fatalf("the idle watch got %q (open %v): %v", ev.Type, ok, ev.Object)
	case <-time.After(12 * time.Second):
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "second"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	next("second")
}

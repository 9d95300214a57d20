package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testhost"
)

const (
	// throughputRounds is how many interleaved rounds an op's requests
	// to each target are sent in.
	throughputRounds = 10
	// throughputWorkers send requests at once (the machine has few cores).
	throughputWorkers = 4
	// throughputBatchTimeout bounds one round of one target.
	throughputBatchTimeout = 60 * time.Second
)

// BenchmarkClusterIPThroughput compares requests per second from the
// client host, with one HTTP client, to
//
//   - podip: pod-0's IP, straight over the shared network;
//   - clusterip: a Service's ClusterIP whose only endpoint is pod-0: routed
//     to the node, DNATed to pod-0 and masqueraded there, replies un-NATed
//     on their way back through the node;
//   - routed (a control): pod-1's IP, with the client and pod-1 routing
//     each other through the node: the same hops as clusterip, and the
//     node's conntrack, but no service rules and no NAT.
//
// clusterip/podip is what the proxy path costs against the direct one;
// clusterip/routed isolates the iptables service rules and NAT from the
// extra hop. "close" opens a connection per request (keep-alive off:
// every request is a new flow through the DNAT, the proxy's real cost);
// "keepalive" reuses throughputWorkers connections, so only the per-packet
// forwarding and conntrack lookup remain.
//
// One op is 2,000 requests to each target for close, 10,000 for keepalive
// (which is five times as fast), sent by throughputWorkers workers in
// throughputRounds rounds whose target order rotates, so that drift in a
// shared machine's load falls on every target alike. Run it with
// -benchtime 1x; -count repeats the ops over the same topology, which is
// built once.
//
// With keep-alive off some ClusterIP requests wait a second, more of them
// the more connections the run has made: the client's kernel reuses a
// source port towards the ClusterIP within a few thousand connections (it
// walks the ephemeral range in small random steps); the node's conntrack
// then replaces the old flow, still in TIME_WAIT, by a new one masqueraded
// to a fresh random port, which frees the old port while pod-0 still holds
// it in TIME_WAIT. A later connection masqueraded to that port meets the
// TIME_WAIT socket, whose PAWS check refuses the SYN (another client flow,
// other timestamps); the client resets and sends its SYN again a second
// later. kube-proxy's masquerade behaves the same; pods inside the cluster
// are not masqueraded and do not meet it. synretrans/op counts these
// SYNs; clusterip-req/s includes their wait, while the median ratios
// mostly pass over the rounds they fall in.
func BenchmarkClusterIPThroughput(b *testing.B) {
	ctx := context.Background()
	tc := startTestCluster(b, zaptest.NewLogger(b, zaptest.Level(zap.WarnLevel)))
	node, client, pod1 := tc.node.Host, tc.client, tc.pods[1]

	// The control's routes: client and pod-1 reach each other through
	// the node (which sends no redirects, see startTestCluster).
	run(b, client, "ip", "route", "add", testPodIPs[1]+"/32", "via", testNodeIP)
	run(b, pod1, "ip", "route", "add", testClientIP+"/32", "via", testNodeIP)

	svc, err := tc.cs.CoreV1().Services("default").Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: v1.ServiceSpec{Ports: []v1.ServicePort{
			{Name: "http", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	// One endpoint, pod-0: the two paths end at the same server.
	if _, err := tc.cs.DiscoveryV1().EndpointSlices("default").Create(ctx, readySlice("default", "bench", "bench-1", "http", v1.ProtocolTCP, 8080, map[string]bool{testPodIPs[0]: true}), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}

	targets := []throughputTarget{
		{name: "podip", url: "http://" + net.JoinHostPort(testPodIPs[0], "8080") + "/", want: "pod-0"},
		{name: "clusterip", url: "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "80") + "/", want: "pod-0"},
		{name: "routed", url: "http://" + net.JoinHostPort(testPodIPs[1], "8080") + "/", want: "pod-1"},
	}
	probe := httpFrom(client, 300*time.Millisecond)
	poll.Until(b, 10*time.Second, "the ClusterIP answering from pod-0", func() (bool, error) {
		body, err := get(probe, targets[1].url)
		return body == "pod-0", fmt.Errorf("%q, %v", body, err)
	})
	// The control really goes through the node: every request adds
	// forwarded packets there (about ten; none if it went direct).
	forwarded := func() int { return netstat(b, node, "/proc/net/snmp", "Ip", "ForwDatagrams") }
	before := forwarded()
	for i := 0; i < 10; i++ {
		if body, err := get(probe, targets[2].url); body != "pod-1" || err != nil {
			b.Fatalf("routed control: %q, %v", body, err)
		}
	}
	if d := forwarded() - before; d < 10*4 {
		b.Fatalf("10 routed requests forwarded only %d packets through the node", d)
	}

	for _, v := range []struct {
		name      string
		keepAlive bool
		requests  int
	}{{"close", false, 2000}, {"keepalive", true, 10000}} {
		b.Run(v.name, func(b *testing.B) {
			tr := &http.Transport{
				DialContext:         client.DialContext,
				DisableKeepAlives:   !v.keepAlive,
				MaxIdleConnsPerHost: throughputWorkers,
			}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Timeout: 5 * time.Second, Transport: tr}
			// Warm up every path (neighbour entries, code, and for
			// keepalive the idle connections).
			for _, t := range targets {
				if _, err := t.send(hc, 10*throughputWorkers); err != nil {
					b.Fatalf("warming up %s: %v", t.name, err)
				}
			}
			const podIP, clusterIP, routed = 0, 1, 2
			synRetrans := func() int { return netstat(b, client, "/proc/net/netstat", "TcpExt", "TCPSynRetrans") }
			retransBefore := synRetrans()
			elapsed := make([]time.Duration, len(targets))
			var vsPodIP, vsRouted []float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for r := 0; r < throughputRounds; r++ {
					round := make([]time.Duration, len(targets))
					for k := range targets {
						j := (k + r) % len(targets)
						d, err := targets[j].send(hc, v.requests/throughputRounds)
						if err != nil {
							b.Fatalf("%s: %v", targets[j].name, err)
						}
						round[j] = d
						elapsed[j] += d
					}
					// Same number of requests: the ratio of
					// rates is the inverse ratio of times.
					vsPodIP = append(vsPodIP, round[podIP].Seconds()/round[clusterIP].Seconds())
					vsRouted = append(vsRouted, round[routed].Seconds()/round[clusterIP].Seconds())
				}
			}
			b.StopTimer()
			// SYNs the client had to send again (each a second's
			// wait): see the doc comment.
			b.ReportMetric(float64(synRetrans()-retransBefore)/float64(b.N), "synretrans/op")
			for j, t := range targets {
				b.ReportMetric(float64(b.N*v.requests)/elapsed[j].Seconds(), t.name+"-req/s")
			}
			// The ratios are the medians of the rounds' own: each
			// compares batches sent back to back, and the median
			// passes over the rounds a neighbour's burst of load
			// fell on (which the ratio of the totals would not).
			b.ReportMetric(median(vsPodIP), "clusterip/podip")
			b.ReportMetric(median(vsRouted), "clusterip/routed")
		})
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// throughputTarget is one URL and the body its server answers.
type throughputTarget struct {
	name, url, want string
}

// send makes n GETs with throughputWorkers workers and returns the time
// they took; the first failure (an error or another body) stops it.
func (t throughputTarget) send(hc *http.Client, n int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), throughputBatchTimeout)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	fail := func(err error) { once.Do(func() { first = err; cancel() }) }
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < throughputWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
				if err != nil {
					fail(err)
					return
				}
				resp, err := hc.Do(req)
				if err != nil {
					fail(err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(body) != t.want {
					fail(fmt.Errorf("answered %q (%v), want %q", body, err, t.want))
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if first != nil {
		return d, first
	}
	return d, ctx.Err()
}

// netstat reads one of h's network counters, e.g. ("/proc/net/snmp",
// "Ip", "ForwDatagrams"): file is /proc/net/snmp or /proc/net/netstat,
// which hold pairs of lines "Section: names..." and "Section: values...".
func netstat(t testing.TB, h *testhost.Host, file, section, name string) int {
	t.Helper()
	// /proc/net is the reading process's network namespace.
	lines := strings.Split(run(t, h, "cat", file), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != section+":" || len(values) != len(names) {
			continue
		}
		for k, f := range names {
			if f == name {
				v, err := strconv.Atoi(values[k])
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no %s: %s in %s", section, name, file)
	return 0
}

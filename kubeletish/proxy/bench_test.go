package proxy

import (
	"context"
	"fmt"
	"testing"

	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/pkg/testhost"
)

// benchCluster is nSvc ClusterIP services of nEp ready endpoints each.
func benchCluster(nSvc, nEp int) ([]*v1.Service, []*discovery.EndpointSlice) {
	var svcs []*v1.Service
	var slices []*discovery.EndpointSlice
	for i := 0; i < nSvc; i++ {
		name := fmt.Sprintf("svc-%d", i)
		svcs = append(svcs, svc("bench", name, fmt.Sprintf("10.96.%d.%d", i/250, i%250+1), []v1.ServicePort{port("http", tcp, 80)}))
		s := &discovery.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "bench", Name: name + "-1", Labels: map[string]string{discovery.LabelServiceName: name}},
			AddressType: discovery.AddressTypeIPv4,
			Ports:       []discovery.EndpointPort{sport("http", tcp, 8080)},
		}
		for j := 0; j < nEp; j++ {
			n := i*nEp + j
			s.Endpoints = append(s.Endpoints, discovery.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.244.%d.%d", n/250, n%250+1)},
				Conditions: discovery.EndpointConditions{Ready: ptr.To(true)},
			})
		}
		slices = append(slices, s)
	}
	return svcs, slices
}

// BenchmarkRender is the pure part of a sync for 1,000 services × 10
// endpoints: render plus the restore text.
func BenchmarkRender(b *testing.B) {
	svcs, slices := benchCluster(1000, 10)
	topo := Topology{ClusterCIDR: "10.244.0.0/16"}
	r := Render(topo, svcs, slices)
	b.ReportMetric(float64(r.NATRules()+r.FilterRules()), "rules")
	b.ReportMetric(float64(len(r.Restore(nil)))/1e6, "MB")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = Render(topo, svcs, slices).Restore(nil)
	}
}

// benchProxier is a Proxier over static listers, to time the real sync
// without an apiserver.
func benchProxier(b *testing.B, svcs []*v1.Service, slices []*discovery.EndpointSlice) (*Proxier, cache.Indexer) {
	b.Helper()
	si := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	ei := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, s := range svcs {
		_ = si.Add(s)
	}
	for _, s := range slices {
		_ = ei.Add(s)
	}
	m, err := newMetrics(nil)
	if err != nil {
		b.Fatal(err)
	}
	return &Proxier{
		cfg:      Config{MinSyncPeriod: 0},
		log:      zap.NewNop(),
		topo:     Topology{ClusterCIDR: "10.244.0.0/16"},
		ipt:      &iptables{iptables: "iptables", restore: "iptables-restore", save: "iptables-save"},
		metrics:  m,
		services: corelisters.NewServiceLister(si),
		slices:   discoverylisters.NewEndpointSliceLister(ei),
		lastUDP:  map[string]UDPPort{},
	}, ei
}

// BenchmarkSync times real syncs of 1,000 services × 10 endpoints in
// throwaway namespaces: "first" into empty tables (an agent's start),
// "full" the hourly rewrite over the same rules (iptables-save to find stale
// chains, every chain restored, jumps ensured), "endpoint-change" what an
// event costs (one endpoint flips: its service's chains are written, the
// others left alone), "unchanged" a sync with nothing to write.
func BenchmarkSync(b *testing.B) {
	testhost.Require(b, "ip", "nsenter", "iptables", "iptables-restore", "iptables-save")
	svcs, slices := benchCluster(1000, 10)
	nw := testhost.NewNetwork(b)
	h := nw.AddHost("10.250.0.2/24")
	ctx := context.Background()

	b.Run("first", func(b *testing.B) {
		// Into empty tables: what an agent's first start costs.
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			fresh := nw.AddHost(fmt.Sprintf("10.250.1.%d/24", i%250+1))
			p, _ := benchProxier(b, svcs, slices)
			b.StartTimer()
			if err := fresh.Do(func() error { return p.sync(ctx, syncFull) }); err != nil {
				b.Fatal(err)
			}
		}
	})
	p, ei := benchProxier(b, svcs, slices)
	if err := h.Do(func() error { return p.sync(ctx, syncFull) }); err != nil {
		b.Fatal(err)
	}
	b.Run("full", func(b *testing.B) {
		if err := h.Do(func() error {
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := p.sync(ctx, syncFull); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("endpoint-change", func(b *testing.B) {
		if err := h.Do(func() error {
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				s := slices[0].DeepCopy()
				s.Endpoints[0].Conditions.Ready = ptr.To(i%2 == 1)
				_ = ei.Update(s)
				b.StartTimer()
				if err := p.sync(ctx, syncChanges); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		// A resync event with nothing new: rendered and compared, no restore.
		if err := h.Do(func() error {
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := p.sync(ctx, syncChanges); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	})
}

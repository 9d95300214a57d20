package dns

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestResolvConf(t *testing.T) {
	pod := func(policy v1.DNSPolicy, hostNet bool, cfg *v1.PodDNSConfig) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "p"},
			Spec: v1.PodSpec{DNSPolicy: policy, HostNetwork: hostNet, DNSConfig: cfg}}
	}
	extra := &v1.PodDNSConfig{
		Nameservers: []string{"192.0.2.53", "10.244.1.1"},
		Searches:    []string{"corp.example", "svc.cluster.local"},
		Options:     []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "edns0"}, {Name: "timeout", Value: ptr.To("1")}},
	}
	const cluster = "nameserver 10.244.1.1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
	for _, tc := range []struct {
		name       string
		pod        *v1.Pod
		clusterDNS string
		domain     string
		want       string
	}{
		{name: "default policy is ClusterFirst", pod: pod("", false, nil), clusterDNS: "10.244.1.1", want: cluster},
		{name: "ClusterFirst", pod: pod(v1.DNSClusterFirst, false, nil), clusterDNS: "10.244.1.1", want: cluster},
		{name: "no cluster DNS keeps search and ndots", pod: pod("", false, nil),
			want: "search shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"},
		{name: "other domain", pod: pod("", false, nil), clusterDNS: "10.244.1.1", domain: "kubeish.test.",
			want: "nameserver 10.244.1.1\nsearch shop.svc.kubeish.test svc.kubeish.test kubeish.test\noptions ndots:5\n"},
		{name: "ClusterFirst plus dnsConfig", pod: pod("", false, extra), clusterDNS: "10.244.1.1",
			want: "nameserver 10.244.1.1\nnameserver 192.0.2.53\nsearch shop.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:2 edns0 timeout:1\n"},
		{name: "ClusterFirstWithHostNet on host network", pod: pod(v1.DNSClusterFirstWithHostNet, true, nil), clusterDNS: "10.244.1.1", want: cluster},
		{name: "ClusterFirst on host network falls back to Default", pod: pod(v1.DNSClusterFirst, true, nil), clusterDNS: "10.244.1.1", want: ""},
		{name: "Default never reads the machine's", pod: pod(v1.DNSDefault, false, nil), clusterDNS: "10.244.1.1", want: ""},
		{name: "Default with dnsConfig", pod: pod(v1.DNSDefault, false, &v1.PodDNSConfig{Nameservers: []string{"192.0.2.53"}}), clusterDNS: "10.244.1.1",
			want: "nameserver 192.0.2.53\n"},
		{name: "None", pod: pod(v1.DNSNone, false, extra), clusterDNS: "10.244.1.1",
			want: "nameserver 192.0.2.53\nnameserver 10.244.1.1\nsearch corp.example svc.cluster.local\noptions ndots:2 edns0 timeout:1\n"},
		{name: "at most three nameservers", pod: pod("", false, &v1.PodDNSConfig{Nameservers: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}}), clusterDNS: "10.244.1.1",
			want: "nameserver 10.244.1.1\nnameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ResolvConf(tc.pod, tc.clusterDNS, tc.domain); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

package dns

import (
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Limits the kubelet applies to a pod's resolv.conf (glibc reads at most
// three nameservers; Kubernetes validates at most 32 search domains).
const (
	maxNameservers = 3
	maxSearches    = 32
)

// ResolvConf is the /etc/resolv.conf of pod, following its dnsPolicy the
// way the kubelet does, except that the machine's own resolv.conf is never
// read (policy Default gets only the pod's dnsConfig):
//
//   - ClusterFirst (the default), and ClusterFirstWithHostNet: nameserver
//     clusterDNS, search <ns>.svc.<domain> svc.<domain> <domain>, options
//     ndots:5, with spec.dnsConfig's nameservers and searches appended and
//     its options overriding by name. A host-network pod with plain
//     ClusterFirst falls back to Default, as in Kubernetes. With clusterDNS
//     empty there is no cluster nameserver line (searches and options stay).
//   - Default and None: spec.dnsConfig only.
func ResolvConf(pod *v1.Pod, clusterDNS, domain string) string {
	if domain == "" {
		domain = DefaultDomain
	}
	domain = strings.TrimSuffix(domain, ".")
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = v1.DNSClusterFirst
	}
	if policy == v1.DNSClusterFirst && pod.Spec.HostNetwork {
		policy = v1.DNSDefault
	}
	var servers, searches, options []string
	if policy == v1.DNSClusterFirst || policy == v1.DNSClusterFirstWithHostNet {
		if clusterDNS != "" {
			servers = []string{clusterDNS}
		}
		searches = []string{pod.Namespace + ".svc." + domain, "svc." + domain, domain}
		options = []string{"ndots:5"}
	}
	if c := pod.Spec.DNSConfig; c != nil {
		servers = appendNew(servers, c.Nameservers...)
		searches = appendNew(searches, c.Searches...)
		options = mergeOptions(options, c.Options)
	}
	var b strings.Builder
	for _, s := range servers[:min(len(servers), maxNameservers)] {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(searches) > 0 {
		b.WriteString("search " + strings.Join(searches[:min(len(searches), maxSearches)], " ") + "\n")
	}
	if len(options) > 0 {
		b.WriteString("options " + strings.Join(options, " ") + "\n")
	}
	return b.String()
}

// appendNew appends the values not in list yet, in order.
func appendNew(list []string, values ...string) []string {
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" && !slices.Contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

// mergeOptions sets each dnsConfig option over base, replacing an option of
// the same name in place (so that ndots:2 replaces ndots:5), appending new
// ones in their order.
func mergeOptions(base []string, opts []v1.PodDNSConfigOption) []string {
	out := slices.Clone(base)
	for _, o := range opts {
		if o.Name == "" {
			continue
		}
		s := o.Name
		if o.Value != nil && *o.Value != "" {
			s += ":" + *o.Value
		}
		i := slices.IndexFunc(out, func(e string) bool { name, _, _ := strings.Cut(e, ":"); return name == o.Name })
		if i >= 0 {
			out[i] = s
		} else {
			out = append(out, s)
		}
	}
	return out
}

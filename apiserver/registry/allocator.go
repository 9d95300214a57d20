package registry

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubeish/kubeish/apiserver/storage"
)

// Keys under which allocated ClusterIPs and NodePorts are kept: one key per
// value, claimed in the same transaction as the Service, so that two
// apiservers over one etcd can never hand out the same one.
const (
	ClusterIPPrefix = "/registry/ranges/serviceips/"
	NodePortPrefix  = "/registry/ranges/servicenodeports/"
)

// ServiceAllocator plans ClusterIP and NodePort allocations.
type ServiceAllocator struct {
	cidr     *net.IPNet
	base     *big.Int
	size     int64 // usable addresses, excluding network and broadcast
	portBase int
	portSize int
}

// NewServiceAllocator returns an allocator over an IPv4 service range and a
// node port range "30000-32767".
func NewServiceAllocator(cidr string, ports string) (*ServiceAllocator, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil || n.IP.To4() == nil {
		return nil, fmt.Errorf("service range %q is not an IPv4 CIDR", cidr)
	}
	ones, bits := n.Mask.Size()
	if bits-ones < 2 || bits-ones > 24 {
		return nil, fmt.Errorf("service range %q must be between /8 and /30", cidr)
	}
	var lo, hi int
	if _, err := fmt.Sscanf(ports, "%d-%d", &lo, &hi); err != nil || lo < 1 || hi > 65535 || lo > hi {
		return nil, fmt.Errorf("node port range %q is not FROM-TO within 1-65535", ports)
	}
	return &ServiceAllocator{
		cidr:     n,
		base:     new(big.Int).SetBytes(n.IP.To4()),
		size:     int64(1)<<(bits-ones) - 2,
		portBase: lo,
		portSize: hi - lo + 1,
	}, nil
}

// CIDR returns the service range.
func (a *ServiceAllocator) CIDR() *net.IPNet { return a.cidr }

// FirstIP is the range's first usable address, kept for default/kubernetes.
func (a *ServiceAllocator) FirstIP() string { return a.ip(1) }

func (a *ServiceAllocator) ip(offset int64) string {
	v := new(big.Int).Add(a.base, big.NewInt(offset)).Bytes()
	b := make(net.IP, 4)
	copy(b[4-len(v):], v)
	return b.String()
}

// Plan is the outcome of allocating for one Service write.
type Plan struct {
	Extra storage.Extra
	// Requested are the keys the user asked for by value; if the write fails
	// on a precondition and one of them is taken, that is the user's error.
	Requested map[string]*field.Path
}

func needsNodePorts(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer
}

func hasClusterIP(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

// Allocate fills svc's unset ClusterIP and NodePorts with random free-looking
// values and returns the transaction parts that claim what svc holds and old
// (nil on create) did not, and release what old held and svc does not. On
// update an empty ClusterIP keeps old's. Values outside the ranges are field
// errors.
//
// taken, when not nil, holds the allocation keys known to be in use (see
// Taken): a retry after a lost race then picks among the free values only,
// so allocation succeeds even in a nearly full range.
func (a *ServiceAllocator) Allocate(svc, old *corev1.Service, taken map[string]bool) (*Plan, field.ErrorList) {
	p := &Plan{Requested: map[string]*field.Path{}}
	owner := svc.Namespace + "/" + svc.Name
	claim := func(key string, requested *field.Path) {
		p.Extra.Cmps = append(p.Extra.Cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		p.Extra.Ops = append(p.Extra.Ops, clientv3.OpPut(key, owner))
		if requested != nil {
			p.Requested[key] = requested
		}
	}
	release := func(key string) { p.Extra.Ops = append(p.Extra.Ops, clientv3.OpDelete(key)) }
	var errs field.ErrorList

	oldIP := ""
	if old != nil && hasClusterIP(old) {
		oldIP = old.Spec.ClusterIP
	}
	if hasClusterIP(svc) {
		ipPath := field.NewPath("spec", "clusterIP")
		switch {
		case svc.Spec.ClusterIP == "" && oldIP != "":
			svc.Spec.ClusterIP = oldIP
		case svc.Spec.ClusterIP == "":
			ip, ok := a.pickIP(taken)
			if !ok {
				errs = append(errs, field.Forbidden(ipPath, fmt.Sprintf("no free address left in the service range %s", a.cidr)))
				break
			}
			svc.Spec.ClusterIP = ip
			claim(ClusterIPPrefix+svc.Spec.ClusterIP, nil)
		case svc.Spec.ClusterIP != oldIP:
			ip := net.ParseIP(svc.Spec.ClusterIP)
			if ip == nil || !a.cidr.Contains(ip) || ip.Equal(a.cidr.IP) || svc.Spec.ClusterIP == a.ip(a.size+1) {
				errs = append(errs, field.Invalid(ipPath, svc.Spec.ClusterIP,
					fmt.Sprintf("provided IP is not in the valid range. The range of valid IPs is %s", a.cidr)))
			} else {
				claim(ClusterIPPrefix+svc.Spec.ClusterIP, ipPath)
			}
		}
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	} else if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		svc.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
	}
	if oldIP != "" && (!hasClusterIP(svc) || svc.Spec.ClusterIP != oldIP) {
		release(ClusterIPPrefix + oldIP)
	}

	oldPorts := map[int32]bool{}
	if old != nil && needsNodePorts(old) {
		for _, port := range old.Spec.Ports {
			if port.NodePort != 0 {
				oldPorts[port.NodePort] = true
			}
		}
	}
	keep := map[int32]bool{}
	for i := range svc.Spec.Ports {
		port := &svc.Spec.Ports[i]
		if !needsNodePorts(svc) {
			port.NodePort = 0
			continue
		}
		path := field.NewPath("spec", "ports").Index(i).Child("nodePort")
		switch {
		case port.NodePort == 0 && old != nil && samePortNodePort(old, port) != 0 && !keep[samePortNodePort(old, port)]:
			port.NodePort = samePortNodePort(old, port)
			keep[port.NodePort] = true
		case port.NodePort == 0:
			n, ok := a.pickPort(func(n int32) bool {
				return keep[n] || oldPorts[n] || taken[NodePortPrefix+strconv.Itoa(int(n))]
			})
			if !ok {
				errs = append(errs, field.Forbidden(path, fmt.Sprintf("no free node port left in the range %d-%d", a.portBase, a.portBase+a.portSize-1)))
				continue
			}
			port.NodePort = n
			keep[port.NodePort] = true
			claim(NodePortPrefix+strconv.Itoa(int(port.NodePort)), nil)
		case int(port.NodePort) < a.portBase || int(port.NodePort) >= a.portBase+a.portSize:
			errs = append(errs, field.Invalid(path, port.NodePort,
				fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", a.portBase, a.portBase+a.portSize-1)))
		case keep[port.NodePort]:
			// The same node port on two entries (TCP and UDP of one port) is one claim.
		case oldPorts[port.NodePort]:
			keep[port.NodePort] = true
		default:
			keep[port.NodePort] = true
			claim(NodePortPrefix+strconv.Itoa(int(port.NodePort)), path)
		}
	}
	for n := range oldPorts {
		if !keep[n] {
			release(NodePortPrefix + strconv.Itoa(int(n)))
		}
	}
	return p, errs
}

// pickIP picks a random address of the range (the first is kept for
// default/kubernetes) that is not in taken, scanning from a random start.
func (a *ServiceAllocator) pickIP(taken map[string]bool) (string, bool) {
	n := a.size - 1 // offsets 2 .. size
	start := rand.Int64N(n)
	for i := int64(0); i < n; i++ {
		ip := a.ip(2 + (start+i)%n)
		if !taken[ClusterIPPrefix+ip] {
			return ip, true
		}
	}
	return "", false
}

// pickPort picks a random node port for which used is false.
func (a *ServiceAllocator) pickPort(used func(int32) bool) (int32, bool) {
	start := rand.IntN(a.portSize)
	for i := 0; i < a.portSize; i++ {
		n := int32(a.portBase + (start+i)%a.portSize)
		if !used(n) {
			return n, true
		}
	}
	return 0, false
}

// Taken reads the allocation keys in use from etcd.
func Taken(ctx context.Context, c *clientv3.Client) (map[string]bool, error) {
	taken := map[string]bool{}
	for _, prefix := range []string{ClusterIPPrefix, NodePortPrefix} {
		resp, err := c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return nil, err
		}
		for _, kv := range resp.Kvs {
			taken[string(kv.Key)] = true
		}
	}
	return taken, nil
}

// samePortNodePort returns the node port old had for the same port number
// and protocol, so an update that omits nodePort keeps it, as Kubernetes does.
func samePortNodePort(old *corev1.Service, port *corev1.ServicePort) int32 {
	if !needsNodePorts(old) {
		return 0
	}
	for _, p := range old.Spec.Ports {
		if p.Port == port.Port && p.Protocol == port.Protocol {
			return p.NodePort
		}
	}
	return 0
}

// Release returns the transaction parts that free everything svc holds.
func (a *ServiceAllocator) Release(svc *corev1.Service) storage.Extra {
	var e storage.Extra
	if hasClusterIP(svc) && svc.Spec.ClusterIP != "" {
		e.Ops = append(e.Ops, clientv3.OpDelete(ClusterIPPrefix+svc.Spec.ClusterIP))
	}
	if needsNodePorts(svc) {
		seen := map[int32]bool{}
		for _, p := range svc.Spec.Ports {
			if p.NodePort != 0 && !seen[p.NodePort] {
				seen[p.NodePort] = true
				e.Ops = append(e.Ops, clientv3.OpDelete(NodePortPrefix+strconv.Itoa(int(p.NodePort))))
			}
		}
	}
	return e
}

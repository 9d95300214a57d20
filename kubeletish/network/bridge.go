package network

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Gateway returns the pods' gateway of a pod CIDR with the CIDR's mask:
// its first address, which is what host-local IPAM hands the CNI bridge
// plugin as gateway when the range names none (10.244.1.0/24 →
// 10.244.1.1/24).
func Gateway(podCIDR string) (*net.IPNet, error) {
	_, n, err := net.ParseCIDR(podCIDR)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR %q: %w", podCIDR, err)
	}
	ip := n.IP.To4()
	if ip == nil {
		ip = n.IP.To16()
	}
	gw := make(net.IP, len(ip))
	copy(gw, ip)
	gw[len(gw)-1]++
	if !n.Contains(gw) {
		return nil, fmt.Errorf("pod CIDR %q has no room for a gateway", podCIDR)
	}
	return &net.IPNet{IP: gw, Mask: n.Mask}, nil
}

// ensureBridge makes the node's pod bridge, in the namespace the calling
// thread is in, with exactly gw as its IPv4 address, and sets it up. The
// CNI bridge plugin (isGateway) adopts an existing bridge as long as it is
// a bridge and holds no IPv4 address other than the gateway it computes
// itself, so any other IPv4 address (a previous pod CIDR's) is removed.
// Having the address before the first pod lets the node's DNS listen on it.
func ensureBridge(name string, gw *net.IPNet) error {
	link, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		// TxQLen -1 leaves the kernel's default, as the bridge plugin does.
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, TxQLen: -1}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating bridge %s: %w", name, err)
		}
		link, err = netlink.LinkByName(name)
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if _, ok := link.(*netlink.Bridge); !ok {
		return fmt.Errorf("%s exists and is a %s, not a bridge", name, link.Type())
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("addresses of %s: %w", name, err)
	}
	have := false
	for _, a := range addrs {
		if a.IPNet.String() == gw.String() {
			have = true
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("removing %s from %s: %w", a.IPNet, name, err)
		}
	}
	if !have {
		if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: gw}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("adding %s to %s: %w", gw, name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("setting %s up: %w", name, err)
	}
	return nil
}

package nodelifecycle

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"sync"
)

// ErrCIDRsExhausted is returned when every subnet is taken.
var ErrCIDRsExhausted = errors.New("no pod CIDR left in the cluster CIDR")

// CIDRSet hands out the subnets of one cluster CIDR, each at most once
// until released. It is safe for concurrent use.
type CIDRSet struct {
	mu       sync.Mutex
	cluster  netip.Prefix
	maskSize int
	count    int
	used     []bool
	next     int
	inUse    int
}

// NewCIDRSet splits cluster into /maskSize subnets. At most 2^16 subnets
// (Kubernetes' limit too) keep the bitmap small.
func NewCIDRSet(cluster string, maskSize int) (*CIDRSet, error) {
	p, err := netip.ParsePrefix(cluster)
	if err != nil {
		return nil, fmt.Errorf("cluster CIDR %q: %w", cluster, err)
	}
	p = p.Masked()
	if maskSize < p.Bits() || maskSize > p.Addr().BitLen() {
		return nil, fmt.Errorf("node CIDR mask size %d must be between the cluster CIDR's %d and %d", maskSize, p.Bits(), p.Addr().BitLen())
	}
	if maskSize-p.Bits() > 16 {
		return nil, fmt.Errorf("node CIDR mask size %d is more than 16 bits longer than the cluster CIDR's %d", maskSize, p.Bits())
	}
	n := 1 << (maskSize - p.Bits())
	return &CIDRSet{cluster: p, maskSize: maskSize, count: n, used: make([]bool, n)}, nil
}

// Size is how many subnets the set holds; Used how many are taken.
func (s *CIDRSet) Size() int { return s.count }

// Used is how many subnets are allocated.
func (s *CIDRSet) Used() int { s.mu.Lock(); defer s.mu.Unlock(); return s.inUse }

func (s *CIDRSet) subnet(i int) netip.Prefix {
	a := s.cluster.Addr()
	b := a.AsSlice()
	v := new(big.Int).SetBytes(b)
	v.Add(v, new(big.Int).Lsh(big.NewInt(int64(i)), uint(a.BitLen()-s.maskSize)))
	out := v.FillBytes(make([]byte, len(b)))
	addr, _ := netip.AddrFromSlice(out)
	return netip.PrefixFrom(addr, s.maskSize)
}

func (s *CIDRSet) index(cidr string) (int, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return 0, err
	}
	if p.Bits() != s.maskSize || !s.cluster.Contains(p.Addr()) || p.Masked() != p {
		return 0, fmt.Errorf("%s is not a /%d subnet of %s", cidr, s.maskSize, s.cluster)
	}
	off := new(big.Int).Sub(new(big.Int).SetBytes(p.Addr().AsSlice()), new(big.Int).SetBytes(s.cluster.Addr().AsSlice()))
	return int(off.Rsh(off, uint(p.Addr().BitLen()-s.maskSize)).Int64()), nil
}

// Allocate returns the next free subnet.
func (s *CIDRSet) Allocate() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.count {
		i := (s.next + k) % s.count
		if !s.used[i] {
			s.used[i] = true
			s.inUse++
			s.next = (i + 1) % s.count
			return s.subnet(i).String(), nil
		}
	}
	return "", ErrCIDRsExhausted
}

// Occupy marks cidr taken (a node that already has it). A CIDR outside
// the set is an error.
func (s *CIDRSet) Occupy(cidr string) error {
	i, err := s.index(cidr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.used[i] {
		s.used[i] = true
		s.inUse++
	}
	return nil
}

// Release frees cidr.
func (s *CIDRSet) Release(cidr string) error {
	i, err := s.index(cidr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used[i] {
		s.used[i] = false
		s.inUse--
	}
	return nil
}

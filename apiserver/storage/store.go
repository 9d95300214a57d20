// Package storage keeps API objects in etcd, the way Kubernetes' etcd3 store
// does: one key per object, metadata.resourceVersion is the key's etcd
// ModRevision, every write is a compare-and-swap transaction, and a watch is
// an etcd watch on the resource's key prefix.
package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	rpctypes "go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
)

// Errors the store returns; the server maps them to Status objects once.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrConflict      = errors.New("conflict")
	ErrCompacted     = errors.New("resource version compacted")
	ErrTooLarge      = errors.New("request too large")
	// ErrPrecondition is returned when one of a write's extra comparisons
	// (an allocation key, say) failed while the object itself was unchanged.
	ErrPrecondition = errors.New("extra precondition failed")
	// ErrCorrupt is a stored value that is not the object its key names.
	ErrCorrupt = errors.New("corrupted storage")
)

// Codec turns objects into stored bytes and back.
type Codec interface {
	Encode(obj runtime.Object) ([]byte, error)
	Decode(data []byte, into runtime.Object) error
}

// Config is what a Store needs.
type Config struct {
	Client *clientv3.Client
	Codec  Codec
	// Registerer receives the etcd latency histogram; nil skips metrics.
	Registerer prometheus.Registerer
}

// Store is an etcd-backed object store. It is safe for concurrent use.
type Store struct {
	client  *clientv3.Client
	codec   Codec
	latency *prometheus.HistogramVec
	leases  leaseCache
}

// New returns a Store over cfg.Client.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil || cfg.Codec == nil {
		return nil, errors.New("storage: client and codec are required")
	}
	s := &Store{
		client: cfg.Client,
		codec:  cfg.Codec,
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "etcd_request_duration_seconds",
			Help:    "Latency of etcd requests made by the apiserver, by operation and resource type.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}, []string{"operation", "type"}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.latency); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Client returns the etcd client, for the compactor and allocators.
func (s *Store) Client() *clientv3.Client { return s.client }

func (s *Store) observe(op, typ string, start time.Time) {
	s.latency.WithLabelValues(op, typ).Observe(time.Since(start).Seconds())
}

// Extra is a set of comparisons and operations that a write carries in its
// transaction besides the object itself: allocation keys, for one.
type Extra struct {
	Cmps []clientv3.Cmp
	Ops  []clientv3.Op
}

// CreateOptions tune Create.
type CreateOptions struct {
	Extra Extra
	// TTL, when set, puts the key on a shared etcd lease of at least this long.
	TTL time.Duration
}

// Create stores obj at key if the key does not exist yet, and sets obj's
// resourceVersion to the revision it was written at.
func (s *Store) Create(ctx context.Context, typ, key string, obj runtime.Object, opts CreateOptions) error {
	defer s.observe("create", typ, time.Now())
	if err := setRV(obj, 0); err != nil {
		return err
	}
	data, err := s.codec.Encode(obj)
	if err != nil {
		return err
	}
	var putOpts []clientv3.OpOption
	if opts.TTL > 0 {
		id, err := s.leases.get(ctx, s.client, opts.TTL)
		if err != nil {
			return err
		}
		putOpts = append(putOpts, clientv3.WithLease(id))
	}
	cmps := append([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}, opts.Extra.Cmps...)
	ops := append([]clientv3.Op{clientv3.OpPut(key, string(data), putOpts...)}, opts.Extra.Ops...)
	resp, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return mapErr(err)
	}
	if !resp.Succeeded {
		if len(resp.Responses[0].GetResponseRange().Kvs) > 0 {
			return ErrAlreadyExists
		}
		return ErrPrecondition
	}
	return setRV(obj, resp.Header.Revision)
}

// Get reads the object at key into into.
func (s *Store) Get(ctx context.Context, typ, key string, into runtime.Object) error {
	defer s.observe("get", typ, time.Now())
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return mapErr(err)
	}
	if len(resp.Kvs) == 0 {
		return ErrNotFound
	}
	return s.decode(resp.Kvs[0].Key, resp.Kvs[0].Value, resp.Kvs[0].ModRevision, into)
}

// UpdateFunc computes the new state of an object from its current one. It
// must not change cur. Returning a nil object with a nil error means "no
// change": nothing is written. Delete set in the result removes the key
// instead of writing it.
type UpdateFunc func(cur runtime.Object) (UpdateResult, error)

// UpdateResult is what an UpdateFunc decided.
type UpdateResult struct {
	Object runtime.Object
	Delete bool
	Extra  Extra
}

// GuaranteedUpdate reads the object at key, applies tryUpdate and writes the
// result with a compare-and-swap on the revision it read, retrying on a
// concurrent change. tryUpdate decides whether a stale resourceVersion in the
// caller's request is a conflict. It returns the stored object (the last one
// before deletion, when deleted).
func (s *Store) GuaranteedUpdate(ctx context.Context, typ, key string, newFunc func() runtime.Object, tryUpdate UpdateFunc) (runtime.Object, bool, error) {
	defer s.observe("update", typ, time.Now())
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, false, mapErr(err)
	}
	var kv *mvccpb.KeyValue
	if len(resp.Kvs) > 0 {
		kv = resp.Kvs[0]
	}
	for attempt := 0; ; attempt++ {
		if kv == nil {
			return nil, false, ErrNotFound
		}
		cur := newFunc()
		if err := s.decode(kv.Key, kv.Value, kv.ModRevision, cur); err != nil {
			return nil, false, err
		}
		res, err := tryUpdate(cur)
		if err != nil {
			return nil, false, err
		}
		if res.Object == nil && !res.Delete {
			return cur, false, nil
		}
		cmps := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)}, res.Extra.Cmps...)
		var ops []clientv3.Op
		var data []byte
		if res.Delete {
			ops = append(ops, clientv3.OpDelete(key))
		} else {
			if err := setRV(res.Object, 0); err != nil {
				return nil, false, err
			}
			if data, err = s.codec.Encode(res.Object); err != nil {
				return nil, false, err
			}
			if bytes.Equal(data, kv.Value) && len(res.Extra.Ops) == 0 {
				return cur, false, nil
			}
			ops = append(ops, clientv3.OpPut(key, string(data), clientv3.WithIgnoreLease()))
		}
		ops = append(ops, res.Extra.Ops...)
		txn, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return nil, false, mapErr(err)
		}
		if txn.Succeeded {
			if res.Delete {
				_ = setRV(cur, txn.Header.Revision)
				return cur, true, nil
			}
			return res.Object, false, setRV(res.Object, txn.Header.Revision)
		}
		kvs := txn.Responses[0].GetResponseRange().Kvs
		if len(kvs) > 0 && kvs[0].ModRevision == kv.ModRevision {
			return nil, false, ErrPrecondition
		}
		kv = nil
		if len(kvs) > 0 {
			kv = kvs[0]
		}
		if attempt > 100 {
			return nil, false, fmt.Errorf("%w: too many concurrent updates of %s", ErrConflict, key)
		}
	}
}

// ListOptions select a page of a list.
type ListOptions struct {
	// Revision to read at; 0 reads the latest.
	Revision int64
	// Limit on the number of returned items; 0 is no limit.
	Limit int64
	// StartKey continues a paged list (inclusive).
	StartKey string
	// Predicate filters objects; nil keeps all.
	Predicate func(runtime.Object) bool
}

// ListResult is a page of objects.
type ListResult struct {
	Items    []runtime.Object
	Revision int64
	// NextKey is set when more items remain after this page.
	NextKey string
	// Remaining counts the keys left after this page (before filtering).
	Remaining int64
}

// List reads the objects under prefix.
func (s *Store) List(ctx context.Context, typ, prefix string, newFunc func() runtime.Object, opts ListOptions) (*ListResult, error) {
	defer s.observe("list", typ, time.Now())
	end := clientv3.GetPrefixRangeEnd(prefix)
	start := prefix
	if opts.StartKey != "" {
		start = opts.StartKey
	}
	out := &ListResult{Revision: opts.Revision}
	pageSize := int64(0)
	if opts.Limit > 0 {
		pageSize = opts.Limit
		if opts.Predicate != nil && pageSize < 100 {
			pageSize = 100
		}
	}
	for {
		getOpts := []clientv3.OpOption{clientv3.WithRange(end)}
		if out.Revision > 0 {
			getOpts = append(getOpts, clientv3.WithRev(out.Revision))
		}
		if pageSize > 0 {
			getOpts = append(getOpts, clientv3.WithLimit(pageSize))
		}
		resp, err := s.client.Get(ctx, start, getOpts...)
		if err != nil {
			return nil, mapErr(err)
		}
		if out.Revision == 0 {
			out.Revision = resp.Header.Revision
		}
		for i, kv := range resp.Kvs {
			obj := newFunc()
			if err := s.decode(kv.Key, kv.Value, kv.ModRevision, obj); err != nil {
				return nil, err
			}
			if opts.Predicate != nil && !opts.Predicate(obj) {
				continue
			}
			out.Items = append(out.Items, obj)
			if opts.Limit > 0 && int64(len(out.Items)) == opts.Limit {
				left := int64(len(resp.Kvs)-i-1) + (resp.Count - int64(len(resp.Kvs)))
				if left > 0 || resp.More {
					out.NextKey = string(kv.Key) + "\x00"
					out.Remaining = left
				}
				return out, nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Count returns the number of keys under prefix.
func (s *Store) Count(ctx context.Context, prefix string) (int64, error) {
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, mapErr(err)
	}
	return resp.Count, nil
}

// Revision returns etcd's current revision, read with a quorum (linearizable)
// read: a consistent read served from the watch cache must wait until the
// cache has reached it.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	defer s.observe("revision", "", time.Now())
	// A count of one key that need not exist: the cheapest request whose
	// answer carries the current revision in its header.
	resp, err := s.client.Get(ctx, "/registry/", clientv3.WithCountOnly())
	if err != nil {
		return 0, mapErr(err)
	}
	return resp.Header.Revision, nil
}

// CheckRevision reports ErrCompacted when rev is older than etcd's
// compacted revision, so a watch or paged list from it would miss changes.
func (s *Store) CheckRevision(ctx context.Context, key string, rev int64) error {
	if rev <= 0 {
		return nil
	}
	// One key, not the prefix: etcd checks the revision against its
	// compaction before it looks at any key, so this costs the same for a
	// resource of ten objects and of thirty thousand.
	_, err := s.client.Get(ctx, key, clientv3.WithRev(rev), clientv3.WithCountOnly())
	if err != nil && errors.Is(mapErr(err), ErrCompacted) {
		return ErrCompacted
	}
	if err != nil && errors.Is(err, rpctypes.ErrFutureRev) {
		return nil
	}
	return mapErr(err)
}

// decode decodes the value stored at key into into and checks that the
// object is the one the key names (.../{namespace}/{name}): a value moved
// or copied to another key in etcd, such as an encrypted Secret swapped
// with another, is refused as corrupted storage instead of served under
// the wrong name. Encrypted values carry their names inside the
// authenticated ciphertext, so this binds them to their keys.
func (s *Store) decode(key, data []byte, rev int64, into runtime.Object) error {
	if err := s.codec.Decode(data, into); err != nil {
		return fmt.Errorf("decoding stored object: %w", err)
	}
	m, err := meta.Accessor(into)
	if err != nil {
		return err
	}
	want := "/" + m.GetName()
	if m.GetNamespace() != "" {
		want = "/" + m.GetNamespace() + want
	}
	if m.GetName() == "" || !bytes.HasSuffix(key, []byte(want)) {
		return fmt.Errorf("%w: the object stored at %s is named %s/%s", ErrCorrupt, key, m.GetNamespace(), m.GetName())
	}
	return setRV(into, rev)
}

func setRV(obj runtime.Object, rev int64) error {
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	if rev == 0 {
		m.SetResourceVersion("")
	} else {
		m.SetResourceVersion(strconv.FormatInt(rev, 10))
	}
	return nil
}

func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpctypes.ErrCompacted):
		return ErrCompacted
	case errors.Is(err, rpctypes.ErrRequestTooLarge), errors.Is(err, rpctypes.ErrGRPCRequestTooLarge):
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	if s := err.Error(); bytes.Contains([]byte(s), []byte("ResourceExhausted")) || bytes.Contains([]byte(s), []byte("larger than max")) {
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	}
	return err
}

// leaseCache hands out etcd leases shared by keys written close together, so
// that a burst of Events costs one lease, not one each (as Kubernetes does).
type leaseCache struct {
	mu      sync.Mutex
	id      clientv3.LeaseID
	expires time.Time
}

func (l *leaseCache) get(ctx context.Context, c *clientv3.Client, ttl time.Duration) (clientv3.LeaseID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	// Reuse the current lease while it still outlives ttl by at most 5%.
	if l.id != 0 && l.expires.After(now.Add(ttl)) {
		return l.id, nil
	}
	grant := ttl + ttl/20
	resp, err := c.Grant(ctx, int64(grant.Seconds())+1)
	if err != nil {
		return 0, mapErr(err)
	}
	l.id = clientv3.LeaseID(resp.ID)
	l.expires = now.Add(grant)
	return l.id, nil
}

// Exists reports whether key is present.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	resp, err := s.client.Get(ctx, key, clientv3.WithCountOnly())
	if err != nil {
		return false, mapErr(err)
	}
	return resp.Count > 0, nil
}

package replicaset

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
)

// expectationTTL bounds how long a set waits for creations or deletions it
// never observes (a lost watch event); after it, the set syncs again.
const expectationTTL = 5 * time.Minute

// expectations remember, per ReplicaSet key, the pod creations and
// deletions it issued and has not yet seen in the informer cache. A set
// whose expectations are not met does not scale: its cache is behind its
// own writes, and acting on it would create or delete twice.
type expectations struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]*expectation
}

type expectation struct {
	adds      int
	deletions sets.Set[types.UID]
	at        time.Time
}

func newExpectations(now func() time.Time) *expectations {
	return &expectations{now: now, m: map[string]*expectation{}}
}

// Satisfied reports whether key has nothing outstanding (or waited too long).
func (e *expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	if !ok {
		return true
	}
	return (x.adds <= 0 && x.deletions.Len() == 0) || e.now().Sub(x.at) > expectationTTL
}

// ExpectCreations records that key is about to create n pods.
func (e *expectations) ExpectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{adds: n, deletions: sets.New[types.UID](), at: e.now()}
}

// ExpectDeletions records that key is about to delete the pods uids.
func (e *expectations) ExpectDeletions(key string, uids []types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{deletions: sets.New(uids...), at: e.now()}
}

// CreationObserved lowers key's outstanding creations by one (an observed
// pod, or a create that failed and so will never be observed).
func (e *expectations) CreationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		x.adds--
	}
}

// DeletionObserved removes uid from key's outstanding deletions.
func (e *expectations) DeletionObserved(key string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		x.deletions.Delete(uid)
	}
}

// Forget drops key's expectations (its ReplicaSet is gone).
func (e *expectations) Forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}

package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/kubeish/kubeish/pkg/poll"
)

// syncRecord is one call of the loop's sync function.
type syncRecord struct {
	at   time.Time
	kind syncKind
}

// loopProxier is a Proxier whose sync only records its calls (failing the
// calls for which fail says so), to test Run's timing without iptables.
func loopProxier(t *testing.T, minSync, period, full time.Duration, fail func(n int) bool) (*Proxier, func() []syncRecord) {
	var mu sync.Mutex
	var calls []syncRecord
	p := &Proxier{
		cfg:            Config{MinSyncPeriod: minSync, SyncPeriod: period, FullSyncPeriod: full},
		log:            zaptest.NewLogger(t),
		trigger:        make(chan struct{}, 1),
		servicesSynced: func() bool { return true },
		slicesSynced:   func() bool { return true },
	}
	p.syncFn = func(_ context.Context, k syncKind) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, syncRecord{time.Now(), k})
		if fail != nil && fail(len(calls)) {
			return errors.New("injected failure")
		}
		return nil
	}
	get := func() []syncRecord {
		mu.Lock()
		defer mu.Unlock()
		return append([]syncRecord(nil), calls...)
	}
	return p, get
}

func runLoop(t *testing.T, p *Proxier) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestRunCoalescesBursts: a burst of events costs one sync, at least
// MinSyncPeriod after the previous one; the first sync is full, the
// following ones write changes only.
func TestRunCoalescesBursts(t *testing.T) {
	const minSync = 200 * time.Millisecond
	p, calls := loopProxier(t, minSync, time.Hour, time.Hour, nil)
	runLoop(t, p)
	poll.Until(t, 2*time.Second, "the first sync", func() (bool, error) { return len(calls()) == 1, nil })

	for i := 0; i < 100; i++ {
		p.signal()
	}
	poll.Until(t, 2*time.Second, "the burst's sync", func() (bool, error) { return len(calls()) == 2, nil })
	poll.Never(t, 2*minSync, "a second sync for the same burst", func() error {
		if n := len(calls()); n != 2 {
			return fmt.Errorf("%d syncs", n)
		}
		return nil
	})
	c := calls()
	if c[0].kind != syncFull || c[1].kind != syncChanges {
		t.Errorf("kinds %v, %v; want full, then changes", c[0].kind, c[1].kind)
	}
	if gap := c[1].at.Sub(c[0].at); gap < minSync {
		t.Errorf("syncs %s apart, less than MinSyncPeriod %s", gap, minSync)
	}
}

// TestRunPeriodicAndRetry: the periodic resync runs without events, and a
// failed sync is retried in full.
func TestRunPeriodicAndRetry(t *testing.T) {
	p, calls := loopProxier(t, 10*time.Millisecond, 100*time.Millisecond, time.Hour, func(n int) bool { return n == 2 })
	runLoop(t, p)
	poll.Until(t, 5*time.Second, "four syncs", func() (bool, error) { return len(calls()) >= 4, nil })
	c := calls()
	if c[0].kind != syncFull {
		t.Errorf("first sync %v, want full", c[0].kind)
	}
	if c[1].kind != syncPeriodic {
		t.Errorf("second sync %v, want periodic", c[1].kind)
	}
	// The second failed: the third is its retry, in full.
	if c[2].kind != syncFull {
		t.Errorf("sync after a failure %v, want full", c[2].kind)
	}
	if c[3].kind != syncPeriodic {
		t.Errorf("fourth sync %v, want periodic", c[3].kind)
	}
}

// TestRunFullPeriod: FullSyncPeriod makes full syncs.
func TestRunFullPeriod(t *testing.T) {
	p, calls := loopProxier(t, 10*time.Millisecond, time.Hour, 100*time.Millisecond, nil)
	runLoop(t, p)
	poll.Until(t, 5*time.Second, "a second full sync", func() (bool, error) {
		c := calls()
		return len(c) >= 2 && c[1].kind == syncFull, fmt.Errorf("%d syncs", len(c))
	})
}

package pod

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Backoff is the restart back-off of crashing containers, keyed by pod UID
// and container name: the first restart is at once, then 10 s, doubling up
// to 5 min; a container that ran for ResetAfter (10 min) starts over.
type Backoff struct {
	Initial, Max, ResetAfter time.Duration

	clock   clock.PassiveClock
	mu      sync.Mutex
	entries map[string]time.Duration
}

// NewBackoff returns Kubernetes' container restart back-off.
func NewBackoff(c clock.PassiveClock) *Backoff {
	return &Backoff{Initial: 10 * time.Second, Max: 5 * time.Minute, ResetAfter: 10 * time.Minute, clock: c, entries: map[string]time.Duration{}}
}

// Wait returns how long to wait before restarting the container that
// started at startedAt and exited at finishedAt (0: restart now).
func (b *Backoff) Wait(key string, startedAt, finishedAt time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !startedAt.IsZero() && finishedAt.Sub(startedAt) >= b.ResetAfter {
		delete(b.entries, key)
	}
	d, ok := b.entries[key]
	if !ok {
		return 0
	}
	if w := finishedAt.Add(d).Sub(b.clock.Now()); w > 0 {
		return w
	}
	return 0
}

// Delay returns the current delay of key (0 before the first restart).
func (b *Backoff) Delay(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.entries[key]
}

// Next records a restart of key: the next one waits twice as long.
func (b *Backoff) Next(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.entries[key]
	switch {
	case !ok:
		d = b.Initial
	case d*2 > b.Max:
		d = b.Max
	default:
		d *= 2
	}
	b.entries[key] = d
}

// Forget drops every entry of a pod's keys (prefix).
func (b *Backoff) Forget(prefix string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.entries {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			delete(b.entries, k)
		}
	}
}

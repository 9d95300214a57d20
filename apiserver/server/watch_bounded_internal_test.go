package server

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/watch"

	"github.com/kubeish/kubeish/apiserver/storage"
	"github.com/kubeish/kubeish/pkg/poll"
)

// TestBoundedEvents: the buffer between an etcd watch and its client keeps
// draining the store's channel (so nothing piles up in the etcd client)
// until it is full; full for longer than the grace, the watch is dropped
// with at most the buffer's size queued. A reader gets every event.
func TestBoundedEvents(t *testing.T) {
	const size, total = 8, 10000
	produce := func(ctx context.Context, sent *atomic.Int64) <-chan storage.Event {
		in := make(chan storage.Event)
		go func() {
			defer close(in)
			for i := range total {
				select {
				case in <- storage.Event{Type: watch.Added, Revision: int64(i + 1)}:
					sent.Store(int64(i + 1))
				case <-ctx.Done():
					return
				}
			}
		}()
		return in
	}

	t.Run("stalled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var sent atomic.Int64
		b := newBoundedEvents(ctx, produce(ctx, &sent), size, 100*time.Millisecond)
		poll.Until(t, 10*time.Second, "the stalled watch to be dropped", func() (bool, error) {
			return b.dropped.Load(), nil
		})
		if n := len(b.out); n != size {
			t.Fatalf("%d events queued, buffer %d", n, size)
		}
		cancel()
		queued := 0
		for range b.out {
			queued++
		}
		// The buffer, plus the one event the pump held while it waited.
		if queued > size || sent.Load() > size+2 {
			t.Fatalf("queued %d, taken from the store %d, buffer %d", queued, sent.Load(), size)
		}
	})

	t.Run("reading", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var sent atomic.Int64
		b := newBoundedEvents(ctx, produce(ctx, &sent), size, time.Second)
		var last int64
		for ev := range b.out {
			if ev.Revision != last+1 {
				t.Fatalf("event %d after %d", ev.Revision, last)
			}
			last = ev.Revision
		}
		if last != total || b.dropped.Load() {
			t.Fatalf("got %d of %d events, dropped %v", last, total, b.dropped.Load())
		}
	})
}

package storage

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// Event is one change under a watched prefix. For Modified, Prev holds the
// object before the change, so that a filtered watch can tell an object
// entering or leaving its selection. A Bookmark carries only Revision. Err is
// set on the last event of a failed watch (ErrCompacted among others).
type Event struct {
	Type     watch.EventType
	Object   runtime.Object
	Prev     runtime.Object
	Revision int64
	Err      error
}

// Watch streams every change under prefix after revision rev. Every
// progressEvery it asks etcd for a progress notification, delivered as a
// Bookmark event with the revision etcd has reached (0 disables). The channel
// closes when ctx ends or the watch fails (after an Err event).
func (s *Store) Watch(ctx context.Context, prefix string, rev int64, newFunc func() runtime.Object, progressEvery time.Duration) <-chan Event {
	return s.WatchWith(ctx, prefix, rev, newFunc, WatchOptions{ProgressEvery: progressEvery})
}

// WatchOptions tune WatchWith.
type WatchOptions struct {
	// ProgressEvery is how often etcd is asked for a progress notification
	// (a Bookmark event); 0 never asks on a timer.
	ProgressEvery time.Duration
	// Progress asks for a progress notification now, each time it
	// receives: the watch cache uses it when a consistent read waits for
	// the cache to reach etcd's current revision.
	Progress <-chan struct{}
}

// WatchWith is Watch with options.
func (s *Store) WatchWith(ctx context.Context, prefix string, rev int64, newFunc func() runtime.Object, opts WatchOptions) <-chan Event {
	progressEvery := opts.ProgressEvery
	out := make(chan Event, 100)
	// A watcher of its own per API watch, so that progress requests reach
	// only this watch's stream.
	w := clientv3.NewWatcher(s.client)
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := w.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
	go func() {
		defer close(out)
		defer w.Close()
		defer cancel()
		var tick <-chan time.Time
		if progressEvery > 0 {
			t := time.NewTicker(progressEvery)
			defer t.Stop()
			tick = t.C
		}
		send := func(ev Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick:
				_ = w.RequestProgress(ctx)
			case <-opts.Progress:
				_ = w.RequestProgress(ctx)
			case resp, ok := <-wch:
				if !ok {
					return
				}
				if resp.CompactRevision != 0 {
					send(Event{Type: watch.Error, Err: ErrCompacted, Revision: resp.CompactRevision})
					return
				}
				if err := resp.Err(); err != nil {
					send(Event{Type: watch.Error, Err: mapErr(err)})
					return
				}
				if resp.IsProgressNotify() {
					if !send(Event{Type: watch.Bookmark, Revision: resp.Header.Revision}) {
						return
					}
					continue
				}
				for _, e := range resp.Events {
					ev, err := s.convert(e, newFunc)
					if err != nil {
						send(Event{Type: watch.Error, Err: err})
						return
					}
					if ev.Object == nil {
						continue
					}
					if !send(ev) {
						return
					}
				}
			}
		}
	}()
	return out
}

func (s *Store) convert(e *clientv3.Event, newFunc func() runtime.Object) (Event, error) {
	rev := e.Kv.ModRevision
	decodePrev := func() (runtime.Object, error) {
		if e.PrevKv == nil {
			return nil, nil
		}
		prev := newFunc()
		return prev, s.decode(e.PrevKv.Key, e.PrevKv.Value, e.PrevKv.ModRevision, prev)
	}
	switch e.Type {
	case clientv3.EventTypeDelete:
		prev, err := decodePrev()
		if err != nil || prev == nil {
			return Event{}, err
		}
		// A deleted object is reported at the revision of its deletion.
		if err := setRV(prev, rev); err != nil {
			return Event{}, err
		}
		return Event{Type: watch.Deleted, Object: prev, Revision: rev}, nil
	default:
		obj := newFunc()
		if err := s.decode(e.Kv.Key, e.Kv.Value, rev, obj); err != nil {
			return Event{}, err
		}
		if e.IsCreate() {
			return Event{Type: watch.Added, Object: obj, Revision: rev}, nil
		}
		prev, err := decodePrev()
		if err != nil {
			return Event{}, err
		}
		return Event{Type: watch.Modified, Object: obj, Prev: prev, Revision: rev}, nil
	}
}

// FilterEvent turns a store event into what a watcher with a selector sees:
// an object that starts matching is ADDED, one that stops is DELETED.
func FilterEvent(ev Event, match func(runtime.Object) bool) (watch.EventType, runtime.Object) {
	if ev.Type == watch.Bookmark || ev.Type == watch.Error || match == nil {
		return ev.Type, ev.Object
	}
	switch ev.Type {
	case watch.Added, watch.Deleted:
		if match(ev.Object) {
			return ev.Type, ev.Object
		}
	case watch.Modified:
		now := match(ev.Object)
		before := now
		if ev.Prev != nil {
			before = match(ev.Prev)
		}
		switch {
		case now && before:
			return watch.Modified, ev.Object
		case now:
			return watch.Added, ev.Object
		case before:
			return watch.Deleted, ev.Object
		}
	}
	return "", nil
}

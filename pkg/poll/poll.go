// Package poll waits in tests for a condition, with a deadline, on
// apimachinery's wait package: Until for something that must happen, Never
// for something that must not happen during a window.
package poll

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Interval is how often conditions are checked.
const Interval = 20 * time.Millisecond

// Until checks cond every Interval until it reports done, and fails t when
// timeout passes first. The failure names what was awaited and the last
// error cond returned (cond's error means "not yet, and here is why", not
// "stop").
func Until(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	UntilEvery(t, Interval, timeout, what, cond)
}

// UntilEvery is Until checking every interval, for conditions that cost
// something to check (scraping a process's metrics in a benchmark).
func UntilEvery(t testing.TB, interval, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), interval, timeout, true, func(context.Context) (bool, error) {
		done, err := cond()
		last = err
		return done, nil
	})
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s (last: %v)", timeout, what, last)
	}
}

// Never checks cond every Interval for window and fails t at the first
// error it returns: the way to show that something does not happen.
func Never(t testing.TB, window time.Duration, what string, cond func() error) {
	t.Helper()
	var violation error
	err := wait.PollUntilContextTimeout(context.Background(), Interval, window, true, func(context.Context) (bool, error) {
		violation = cond()
		return violation != nil, nil
	})
	switch {
	case err == nil:
		t.Fatalf("%s: %v", what, violation)
	case !errors.Is(err, context.DeadlineExceeded) && !wait.Interrupted(err):
		t.Fatalf("%s: %v", what, err)
	}
}

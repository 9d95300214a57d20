package poll

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a testing.TB that records a Fatalf instead of ending the test.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.failed = fmt.Sprintf(format, args...)
	r.mu.Unlock()
}

func TestUntil(t *testing.T) {
	n := 0
	r := &recorder{TB: t}
	Until(r, 5*time.Second, "three calls", func() (bool, error) { n++; return n == 3, nil })
	if r.failed != "" || n != 3 {
		t.Fatalf("failed %q after %d calls, want success after 3", r.failed, n)
	}

	r = &recorder{TB: t}
	Until(r, 50*time.Millisecond, "never", func() (bool, error) { return false, errors.New("still 2 pods") })
	if !strings.Contains(r.failed, "waiting for never") || !strings.Contains(r.failed, "still 2 pods") {
		t.Fatalf("failure %q should name what and the last error", r.failed)
	}
}

func TestNever(t *testing.T) {
	r := &recorder{TB: t}
	calls := 0
	Never(r, 60*time.Millisecond, "quiet", func() error { calls++; return nil })
	if r.failed != "" || calls < 2 {
		t.Fatalf("failed %q after %d checks, want success after several", r.failed, calls)
	}

	r = &recorder{TB: t}
	calls = 0
	start := time.Now()
	Never(r, 10*time.Second, "no duplicates", func() error {
		if calls++; calls == 2 {
			return errors.New("9 pods")
		}
		return nil
	})
	if !strings.Contains(r.failed, "no duplicates: 9 pods") {
		t.Fatalf("failure %q should name what and the violation", r.failed)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("Never kept waiting after the violation")
	}
}

package logs

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := NewWriter(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w.now = func() time.Time { now = now.Add(time.Second); return now }
	long := strings.Repeat("x", MaxLineSize+10)
	if err := w.Copy("stdout", strings.NewReader("one\ntwo\n"+long+"\nthree")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var all bytes.Buffer
	if err := Read(context.Background(), path, Options{TailLines: -1}, &all, nil); err != nil {
		t.Fatal(err)
	}
	if want := "one\ntwo\n" + long + "\nthree\n"; all.String() != want {
		t.Errorf("read %d bytes, want %d", all.Len(), len(want))
	}
	var tail bytes.Buffer
	_ = Read(context.Background(), path, Options{TailLines: 1, Timestamps: true}, &tail, nil)
	if got := tail.String(); got != "2026-01-01T00:00:05Z three\n" {
		t.Errorf("tail = %q", got)
	}
}

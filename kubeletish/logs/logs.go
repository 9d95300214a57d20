// Package logs writes and reads container logs in the CRI format, one
// line per record:
//
//	2016-10-06T00:17:09.669794202Z stdout F the line
//
// (F: a full line, P: part of a longer one). The writer is the log driver
// the containerd shim starts for each container (kubeletish log-driver), so
// logs keep flowing while the agent restarts.
package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// MaxLineSize is the longest record; longer lines are split into P records.
const MaxLineSize = 16 << 10

// Writer appends CRI records to a file, rotating it to FILE.1 past MaxSize.
type Writer struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	size    int64
	MaxSize int64
	now     func() time.Time
}

// NewWriter opens (appends to) path.
func NewWriter(path string, maxSize int64) (*Writer, error) {
	w := &Writer{path: path, MaxSize: maxSize, now: time.Now}
	return w, w.open()
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, st.Size()
	return nil
}

// WriteRecord writes one record of stream ("stdout" or "stderr").
func (w *Writer) WriteRecord(stream string, line []byte, partial bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	tag := "F"
	if partial {
		tag = "P"
	}
	rec := make([]byte, 0, len(line)+48)
	rec = w.now().UTC().AppendFormat(rec, time.RFC3339Nano)
	rec = append(rec, ' ')
	rec = append(rec, stream...)
	rec = append(rec, ' ')
	rec = append(rec, tag...)
	rec = append(rec, ' ')
	rec = append(rec, line...)
	rec = append(rec, '\n')
	if w.MaxSize > 0 && w.size+int64(len(rec)) > w.MaxSize && w.size > 0 {
		w.f.Close()
		if err := os.Rename(w.path, w.path+".1"); err != nil {
			return err
		}
		if err := w.open(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(rec)
	w.size += int64(n)
	return err
}

// Copy reads r line by line into records of stream until EOF.
func (w *Writer) Copy(stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, MaxLineSize)
	for {
		line, isPrefix, err := br.ReadLine()
		if len(line) > 0 || (err == nil && !isPrefix) {
			if werr := w.WriteRecord(stream, line, isPrefix); werr != nil {
				return werr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// Close closes the file.
func (w *Writer) Close() error { w.mu.Lock(); defer w.mu.Unlock(); return w.f.Close() }

// Record is one parsed line.
type Record struct {
	Time    time.Time
	Stream  string
	Partial bool
	Line    []byte
}

// Parse parses one CRI record (without its newline).
func Parse(b []byte) (Record, error) {
	var r Record
	parts := bytes.SplitN(b, []byte{' '}, 4)
	if len(parts) < 3 {
		return r, fmt.Errorf("not a CRI log record: %q", b)
	}
	t, err := time.Parse(time.RFC3339Nano, string(parts[0]))
	if err != nil {
		return r, err
	}
	r.Time, r.Stream, r.Partial = t, string(parts[1]), string(parts[2]) == "P"
	if len(parts) == 4 {
		r.Line = parts[3]
	}
	return r, nil
}

// Options of a read, as in the pods/log API.
type Options struct {
	Follow     bool
	TailLines  int64 // < 0: all
	Timestamps bool
	SinceTime  time.Time
	LimitBytes int64
}

// Read writes the container output in file to w per opts. With Follow it
// keeps reading as the file grows until ctx ends or stop returns true.
func Read(ctx context.Context, file string, opts Options, w io.Writer, stop func() bool) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var lines [][]byte
	br := bufio.NewReader(f)
	var pending []byte
	readAvailable := func() error {
		for {
			b, err := br.ReadBytes('\n')
			if len(b) > 0 {
				if b[len(b)-1] != '\n' {
					pending = append(pending, b...)
					return nil
				}
				lines = append(lines, append(pending, b[:len(b)-1]...))
				pending = nil
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	}
	if err := readAvailable(); err != nil {
		return err
	}
	if opts.TailLines >= 0 && int64(len(lines)) > opts.TailLines {
		lines = lines[int64(len(lines))-opts.TailLines:]
	}
	written := int64(0)
	emit := func() error {
		for _, l := range lines {
			rec, err := Parse(l)
			if err != nil {
				continue
			}
			if !opts.SinceTime.IsZero() && rec.Time.Before(opts.SinceTime) {
				continue
			}
			var out []byte
			if opts.Timestamps {
				out = append(out, rec.Time.Format(time.RFC3339Nano)...)
				out = append(out, ' ')
			}
			out = append(out, rec.Line...)
			if !rec.Partial {
				out = append(out, '\n')
			}
			if opts.LimitBytes > 0 && written+int64(len(out)) > opts.LimitBytes {
				out = out[:opts.LimitBytes-written]
			}
			n, err := w.Write(out)
			written += int64(n)
			if err != nil {
				return err
			}
			if opts.LimitBytes > 0 && written >= opts.LimitBytes {
				return io.EOF
			}
		}
		lines = lines[:0]
		if fl, ok := w.(interface{ Flush() }); ok {
			fl.Flush()
		}
		return nil
	}
	if err := emit(); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	if !opts.Follow {
		return nil
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := readAvailable(); err != nil {
			return err
		}
		done := len(lines) == 0 && stop != nil && stop()
		if err := emit(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if done {
			return nil
		}
	}
}

// RunDriver is the log driver's main: the shim passes the container's
// stdout as fd 3, stderr as fd 4, and fd 5 to close once ready.
func RunDriver(path string) error {
	stdout := os.NewFile(3, "stdout")
	stderr := os.NewFile(4, "stderr")
	ready := os.NewFile(5, "ready")
	w, err := NewWriter(path, 10<<20)
	if err != nil {
		return err
	}
	defer w.Close()
	if ready != nil {
		ready.Close()
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []struct {
		name string
		f    *os.File
	}{{"stdout", stdout}, {"stderr", stderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.f != nil {
				errs[i] = w.Copy(s.name, s.f)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

package main

import (
	"bufio"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// benchLine matches one result line of `go test -bench`:
// "BenchmarkX/sub-2   <N>   <value> <unit>   <value> <unit> ...".
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// benchResults are the metrics of each benchmark by name (without the
// -GOMAXPROCS suffix): one map of unit → value per run (-count).
type benchResults map[string][]map[string]float64

// parseBench reads `go test -bench` output; skips holds the reasons of
// skipped benchmarks (the lines after "--- SKIP").
func parseBench(r io.Reader) (res benchResults, skips []string) {
	res = benchResults{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	inSkip := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "--- SKIP") {
			inSkip = true
			continue
		}
		if inSkip {
			if t := strings.TrimSpace(line); strings.HasPrefix(line, " ") && t != "" {
				// "file_test.go:123: reason"
				if _, reason, ok := strings.Cut(t, ": "); ok {
					t = reason
				}
				skips = append(skips, t)
				continue
			}
			inSkip = false
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := strings.Fields(m[3])
		metrics := map[string]float64{}
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				metrics[f[i+1]] = v
			}
		}
		res[m[1]] = append(res[m[1]], metrics)
	}
	return res, skips
}

// median of one metric over the runs of a benchmark; ok is false when no
// run reported it.
func (r benchResults) median(name, unit string) (float64, bool) {
	var v []float64
	for _, m := range r[name] {
		if x, ok := m[unit]; ok {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0, false
	}
	return medianOf(v), true
}

func medianOf(v []float64) float64 {
	v = append([]float64(nil), v...)
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

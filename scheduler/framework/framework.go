package framework

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
)

// WeightedScorePlugin is a score plugin with its weight in the sum.
type WeightedScorePlugin struct {
	ScorePlugin
	Weight int64
}

// Config configures a Framework.
type Config struct {
	Filters []FilterPlugin
	Scores  []WeightedScorePlugin
	// Parallelism is how many goroutines filter and score nodes (default 16).
	Parallelism int
	// PercentageOfNodesToScore: once this share of the nodes (at least
	// MinFeasibleNodesToFind) is found feasible, stop filtering. 0 means
	// Kubernetes' adaptive default (50% minus 1% per 125 nodes, at least 5%).
	PercentageOfNodesToScore int
	// Rand breaks ties between equally scored nodes; default seeded by time.
	Rand *rand.Rand
}

// MinFeasibleNodesToFind is the fewest feasible nodes searched for before
// the percentage cut-off applies, as in Kubernetes.
const MinFeasibleNodesToFind = 100

// Framework runs the filter and score plugins. Schedule is not safe for
// concurrent use (it keeps the round-robin start index and the random
// source); the scheduler calls it from its one scheduling goroutine.
type Framework struct {
	cfg       Config
	nextStart int
	// Buffers reused across cycles (Schedule runs on one goroutine): at
	// 5,000 nodes, allocating and clearing them per pod showed in the
	// profile as GC and memclr time.
	statusBuf   []*Status
	feasibleBuf []*NodeInfo
	scoreBuf    []int64
}

// New validates cfg and returns a Framework.
func New(cfg Config) (*Framework, error) {
	if len(cfg.Filters) == 0 {
		return nil, errors.New("framework: no filter plugins")
	}
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = 16
	}
	if cfg.PercentageOfNodesToScore < 0 || cfg.PercentageOfNodesToScore > 100 {
		return nil, fmt.Errorf("framework: percentageOfNodesToScore %d is not in [0, 100]", cfg.PercentageOfNodesToScore)
	}
	for _, s := range cfg.Scores {
		if s.Weight < 0 {
			return nil, fmt.Errorf("framework: score plugin %s has negative weight %d", s.Name(), s.Weight)
		}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewSource(rand.Int63()))
	}
	return &Framework{cfg: cfg}, nil
}

// Filters returns the filter plugins in order.
func (f *Framework) Filters() []FilterPlugin { return f.cfg.Filters }

// Result is a successful scheduling decision.
type Result struct {
	SuggestedHost string
	// EvaluatedNodes were filtered; FeasibleNodes passed every filter.
	EvaluatedNodes, FeasibleNodes int
}

// Schedule picks a node for pod in snap, or returns a *FitError that says
// why no node fits. It does not modify snap.
func (f *Framework) Schedule(ctx context.Context, pod *PodInfo, snap *Snapshot) (Result, error) {
	nodes := snap.List
	if len(nodes) == 0 {
		return Result{}, &FitError{Pod: pod, NumAllNodes: 0, Diagnosis: Diagnosis{NodeToStatus: map[string]*Status{}}}
	}
	feasible, diag, err := f.findNodesThatFit(ctx, pod, nodes)
	if err != nil {
		return Result{}, err
	}
	evaluated := len(feasible) + len(diag.NodeToStatus)
	if len(feasible) == 0 {
		return Result{}, &FitError{Pod: pod, NumAllNodes: len(nodes), Diagnosis: diag}
	}
	if len(feasible) == 1 {
		return Result{SuggestedHost: feasible[0].Name(), EvaluatedNodes: evaluated, FeasibleNodes: 1}, nil
	}
	totals := f.prioritize(ctx, pod, feasible)
	return Result{SuggestedHost: f.selectHost(feasible, totals), EvaluatedNodes: evaluated, FeasibleNodes: len(feasible)}, nil
}

// RunFilters runs the filters on one node in order and returns the first
// rejection (nil if the node fits).
func (f *Framework) RunFilters(pod *PodInfo, node *NodeInfo) *Status {
	for _, p := range f.cfg.Filters {
		if st := p.Filter(pod, node); !st.IsSuccess() {
			st.Plugin = p.Name()
			return st
		}
	}
	return nil
}

// NumFeasibleNodesToFind is how many feasible nodes to look for among n.
func (f *Framework) NumFeasibleNodesToFind(n int) int {
	if n < MinFeasibleNodesToFind {
		return n
	}
	pct := f.cfg.PercentageOfNodesToScore
	if pct == 0 {
		pct = 50 - n/125
		if pct < 5 {
			pct = 5
		}
	}
	if pct >= 100 {
		return n
	}
	k := n * pct / 100
	if k < MinFeasibleNodesToFind {
		return MinFeasibleNodesToFind
	}
	return k
}

func (f *Framework) findNodesThatFit(ctx context.Context, pod *PodInfo, nodes []*NodeInfo) ([]*NodeInfo, Diagnosis, error) {
	diag := Diagnosis{NodeToStatus: map[string]*Status{}, UnschedulablePlugins: map[string]struct{}{}}
	n := len(nodes)
	want := f.NumFeasibleNodesToFind(n)
	if cap(f.feasibleBuf) < want {
		f.feasibleBuf = make([]*NodeInfo, want)
	}
	if cap(f.statusBuf) < n {
		f.statusBuf = make([]*Status, n)
	}
	feasible := f.feasibleBuf[:want]
	statuses := f.statusBuf[:n]
	var found atomic.Int32
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := f.nextStart % n
	check := func(i int) {
		ni := nodes[(start+i)%n]
		if st := f.RunFilters(pod, ni); st != nil {
			statuses[i] = st
			return
		}
		k := found.Add(1)
		if int(k) > want {
			cancel()
			found.Add(-1)
			return
		}
		feasible[k-1] = ni
		if int(k) == want {
			cancel()
		}
	}
	parallelizeUntil(ctx, f.cfg.Parallelism, n, check)
	var firstErr *Status
	for i, st := range statuses {
		if st == nil {
			continue
		}
		statuses[i] = nil // leave the buffer clean for the next cycle
		name := nodes[(start+i)%n].Name()
		diag.NodeToStatus[name] = st
		diag.UnschedulablePlugins[st.Plugin] = struct{}{}
		if st.Code == Error && firstErr == nil {
			firstErr = st
		}
	}
	// The caller's slice must not alias the reused buffer.
	feasible = append([]*NodeInfo(nil), feasible[:found.Load()]...)
	clear(f.feasibleBuf[:want])
	// Kubernetes moves the start past every node it looked at, so that
	// consecutive pods begin their search at different nodes.
	f.nextStart = (start + len(feasible) + len(diag.NodeToStatus)) % n
	if firstErr != nil && len(feasible) == 0 {
		return nil, diag, fmt.Errorf("running filter %s: %v", firstErr.Plugin, firstErr.Reasons)
	}
	return feasible, diag, nil
}

func (f *Framework) prioritize(ctx context.Context, pod *PodInfo, nodes []*NodeInfo) []int64 {
	totals := make([]int64, len(nodes))
	if len(f.cfg.Scores) == 0 {
		return totals
	}
	need := len(f.cfg.Scores) * len(nodes)
	if cap(f.scoreBuf) < need {
		f.scoreBuf = make([]int64, need)
	}
	buf := f.scoreBuf[:need]
	scores := make([][]int64, len(f.cfg.Scores))
	for i := range scores {
		scores[i] = buf[i*len(nodes) : (i+1)*len(nodes)]
	}
	parallelizeUntil(ctx, f.cfg.Parallelism, len(nodes), func(j int) {
		for i, p := range f.cfg.Scores {
			if p.Weight != 0 {
				scores[i][j] = p.Score(pod, nodes[j])
			}
		}
	})
	for i, p := range f.cfg.Scores {
		if p.Weight == 0 {
			continue
		}
		if nz, ok := p.ScorePlugin.(ScoreNormalizer); ok {
			nz.NormalizeScore(pod, scores[i])
		}
		for j, s := range scores[i] {
			totals[j] += s * p.Weight
		}
	}
	return totals
}

// selectHost returns the highest-scoring node, choosing uniformly among
// ties (reservoir sampling), as Kubernetes does.
func (f *Framework) selectHost(nodes []*NodeInfo, totals []int64) string {
	best, ties := 0, 1
	for j := 1; j < len(nodes); j++ {
		switch {
		case totals[j] > totals[best]:
			best, ties = j, 1
		case totals[j] == totals[best]:
			ties++
			if f.cfg.Rand.Intn(ties) == 0 {
				best = j
			}
		}
	}
	return nodes[best].Name()
}

// parallelizeUntil calls fn(i) for i in [0, n) on up to workers
// goroutines, in chunks, stopping early when ctx is cancelled. Small
// inputs run on the calling goroutine: a goroutine costs more than
// filtering a few nodes.
func parallelizeUntil(ctx context.Context, workers, n int, fn func(int)) {
	chunk := 1
	for chunk*chunk < n {
		chunk++
	}
	if c := n/workers + 1; c < chunk {
		chunk = c
	}
	if chunk < 8 {
		chunk = 8
	}
	chunks := (n + chunk - 1) / chunk
	if workers > chunks {
		workers = chunks
	}
	if workers <= 1 || n <= 32 {
		for i := 0; i < n; i++ {
			if i%chunk == 0 && ctx.Err() != nil {
				return
			}
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for w := 0; w < workers; w++ {
		go func() {
			defer wg.Done()
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks || ctx.Err() != nil {
					return
				}
				end := (c + 1) * chunk
				if end > n {
					end = n
				}
				for i := c * chunk; i < end; i++ {
					fn(i)
				}
			}
		}()
	}
	wg.Wait()
}

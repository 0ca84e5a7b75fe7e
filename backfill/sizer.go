package backfill

import (
	"math"
	"time"
)

// sizer picks a worker's batch sizes so that batches stay within the
// target at the tail, not on average: adapt moves the size toward the
// target from the last batch alone, and the sizer also never lets it grow
// past what the slowest of the recent batches (per row) would do within
// the target. A batch over the target shrinks the next one by at least a
// quarter; a batch cancelled at its cap, by at least half.
type sizer struct {
	o Options
	// capped is the batches' cap now as a fraction of the cap with no
	// slack (see runner.batchCap): the target shrinks in proportion.
	capped func() float64
	costs  []float64 // time per row of recent batches, oldest first
}

// sizerWindow is how many recent batches the slowest per-row time is
// taken over: a slow spell keeps batches small for that many.
const sizerWindow = 32

func newSizer(o Options, capped func() float64) *sizer { return &sizer{o: o, capped: capped} }

// target is the batch duration aimed at.
func (s *sizer) target() time.Duration {
	if s.capped == nil {
		return s.o.TargetBatch
	}
	return time.Duration(float64(s.o.TargetBatch) * min(1, s.capped()))
}

func (s *sizer) observe(rows int64, took time.Duration) {
	if rows <= 0 || took <= 0 {
		return
	}
	s.costs = append(s.costs, float64(took)/float64(rows))
	if len(s.costs) > sizerWindow {
		s.costs = s.costs[len(s.costs)-sizerWindow:]
	}
}

// ceiling is the most rows the slowest recent batch would have done
// within the target.
func (s *sizer) ceiling() int {
	worst := 0.0
	for _, c := range s.costs {
		worst = max(worst, c)
	}
	if worst == 0 {
		return s.o.MaxBatch
	}
	return int(min(float64(s.o.MaxBatch), math.Floor(float64(s.target())/worst)))
}

// next is the size after a batch of size asked that went through rows in
// took.
func (s *sizer) next(size int, rows int64, took time.Duration) int {
	if rows >= int64(size/4) {
		s.observe(rows, took)
	}
	o := s.o
	o.TargetBatch = s.target()
	next := min(adapt(size, rows, took, o), s.ceiling())
	if took > o.TargetBatch {
		next = min(next, size*3/4)
	}
	return min(s.o.MaxBatch, max(s.o.MinBatch, next))
}

// cancelled is the size after a batch of size rows that the server
// cancelled at its cap after took: at least half as big, and small enough
// for the rate it had (at most) reached.
func (s *sizer) cancelled(size int, took time.Duration) int {
	s.observe(int64(size), took)
	return min(s.o.MaxBatch, max(s.o.MinBatch, min(size/2, s.ceiling())))
}

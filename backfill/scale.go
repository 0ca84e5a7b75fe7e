package backfill

// This file is how many workers a Run keeps when Options.Workers is 0.
// What the server can spare (its cores, its disks, what else runs there)
// is in no catalog, so it is measured: one worker to start, and one more
// while the one added last raised this process's rate by scaleGain, up to
// MaxWorkers. A worker that adds less only adds contention for the
// application.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgplanner/planner/internal/clock"
)

const (
	// scaleGain is the rate an added worker must reach, against the rate
	// before it: on 2 cores a second worker measured 1.3–1.45×, a third
	// about 1×, and a window's rate varies by a few percent.
	scaleGain = 1.15
	// scaleRetry is how long after an added worker did not pay off
	// another is tried: the application's load changes.
	scaleRetry = time.Minute
)

// crew is the workers of one Run.
type crew struct {
	work   func(retired *atomic.Bool) error
	cancel context.CancelFunc // one failure stops the others

	mu      sync.Mutex
	running int
	over    bool
	errs    []error
	idle    chan struct{} // closed when the last worker has returned
}

func newCrew(work func(retired *atomic.Bool) error, cancel context.CancelFunc) *crew {
	return &crew{work: work, cancel: cancel, idle: make(chan struct{})}
}

// add starts a worker and returns what retires it after its batch, or nil
// when every worker has already returned (the job is over).
func (c *crew) add() (retire func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over {
		return nil
	}
	c.running++
	retired := new(atomic.Bool)
	go func() {
		err := c.work(retired)
		if err != nil {
			c.cancel()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.errs = append(c.errs, err)
		c.running--
		if c.running == 0 {
			c.over = true
			close(c.idle)
		}
	}()
	return func() { retired.Store(true) }
}

// scale adds workers to c, which runs one, while each pays off (see the
// file comment), until ctx ends. On a busy machine (busy) it adds or keeps none:
// more workers would win CPU from the application, and their row locks
// would be held longer past their statements' caps.
func (r *runner) scale(ctx context.Context, c *crew) {
	window := r.opts.scaleWindow
	if window <= 0 {
		// About ten batches of one worker: a batch more or less in the
		// window moves its rate by a tenth at most.
		window = max(1500*time.Millisecond, 10*r.opts.TargetBatch)
	}
	n, saidBusy := 1, false
	base, err := r.measure(ctx, window)
	for err == nil && n < r.opts.MaxWorkers {
		if why := r.busy(base); why != "" || base.rate == 0 {
			// No rows (paused, waiting for replicas, batches failing):
			// nothing to compare another worker with.
			if why != "" && !saidBusy {
				r.note(fmt.Sprintf("%s: %s; not adding one", workers(n), why))
				saidBusy = true
			}
			base, err = r.measure(ctx, window)
			continue
		}
		retire := c.add()
		if retire == nil {
			return
		}
		var now reading
		if now, err = r.measure(ctx, window); err != nil {
			return
		}
		why := r.busy(now)
		if now.rate >= base.rate*scaleGain && why == "" {
			n++
			r.note(fmt.Sprintf("%s: the one added raised the rate from %.0f to %.0f rows/s (batches held their rows up to %s past their statements)",
				workers(n), base.rate, now.rate, now.slack.Round(time.Millisecond)))
			base = now
			continue
		}
		retire()
		if why == "" {
			why = fmt.Sprintf("it made %.0f rows/s of %.0f, less than ×%.2f", now.rate, base.rate, scaleGain)
		}
		r.note(fmt.Sprintf("%s: one more did not pay off (%s); trying again in %s", workers(n), why, scaleRetry))
		if err = clock.Sleep(ctx, scaleRetry); err == nil {
			base, err = r.measure(ctx, window)
		}
	}
}

// reading is a measurement window's rate, in rows per second, and the
// most slack (see noteSlack) a batch showed in it.
type reading struct {
	rate  float64
	slack time.Duration
}

// busyAfter is the least slack past the round trip that busy reads as a
// busy machine: a few milliseconds of it show on any shared machine now
// and then (up to 7ms seen on an idle one of 2 cores), a saturated one
// shows a hundred and more.
const busyAfter = 10 * time.Millisecond

// busy says why the machine looked too busy for another worker in a
// window, or "": a batch held its row locks past its statement by more
// than a tenth of the cap, and busyAfter, beyond the least any batch
// showed (on a saturated machine, the wait to be scheduled; the least is
// the round trip, which holds no lock: the commit is queued behind the
// statement).
func (r *runner) busy(w reading) string {
	floor := time.Duration(max(r.leastSlack.Load(), 0))
	if w.slack-floor > max(r.fullCap()/10, busyAfter) {
		return fmt.Sprintf("batches held their rows up to %s past their statements (%s more than the least), the machine is busy",
			w.slack.Round(time.Millisecond), (w.slack - floor).Round(time.Millisecond))
	}
	return ""
}

// measure reads this process's rate over window, after a pause for a
// worker just added or retired to settle into its batches.
func (r *runner) measure(ctx context.Context, window time.Duration) (reading, error) {
	if err := clock.Sleep(ctx, window/5); err != nil {
		return reading{}, err
	}
	from, start := r.done.Load(), time.Now()
	r.peakSlack.Store(0)
	if err := clock.Sleep(ctx, window); err != nil {
		return reading{}, err
	}
	return reading{float64(r.done.Load()-from) / time.Since(start).Seconds(), time.Duration(r.peakSlack.Load())}, nil
}

func workers(n int) string {
	if n == 1 {
		return "1 worker"
	}
	return fmt.Sprintf("%d workers", n)
}

func (r *runner) note(msg string) {
	if r.opts.Log != nil {
		r.opts.Log(msg)
	}
}

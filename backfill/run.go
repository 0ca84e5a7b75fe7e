package backfill

// This file is Run: its options and their defaults, the workers that claim
// ranges and adapt their batch size, progress reports and which failures
// are retried. It is long mostly because the options document what each
// default protects; a batch's transaction is in batch.go, its SQL in
// sweep.go, range splitting in split.go.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgplanner/planner/internal/clock"
)

// Options tune Run. The zero value is a sensible default.
type Options struct {
	// Workers is the number of goroutines claiming ranges. 0 (the
	// default) picks it: one to start, and one more while the one added
	// last raises this process's rate by 15%, up to MaxWorkers (default 4;
	// see scale.go). With Sleep set, 0 means one.
	Workers, MaxWorkers int
	// TargetBatch is the duration a batch should take; the batch size
	// adapts toward its time on the server. An application write that
	// meets a row the batch has updated waits for its commit, up to a
	// batch's duration, so it is at most 75% of MaxAppWait, and by default
	// that (37.5ms): fewer, longer batches are a little faster and make the
	// application wait longer. MinBatch and MaxBatch clamp the size
	// (defaults 10 and 200,000 rows: a batch of 10 rows has to fit in the
	// cap, 40ms by default).
	TargetBatch        time.Duration
	MinBatch, MaxBatch int
	// Sleep between two batches of a worker, to leave room to the
	// application (default none).
	Sleep time.Duration
	// MaxAppWait bounds how long an application statement can wait for a
	// batch's row locks (default 50ms): batches skip rows the application
	// holds and come back for them, and the server cancels a batch whose
	// statement runs past its cap (batchCap: 80% of MaxAppWait less the
	// slack recent batches showed), which is then retried with fewer rows
	// (see sweep.go). TargetBatch is lowered to 75% of it when larger.
	MaxAppWait time.Duration
	// LockTimeout bounds a batch's waits for table locks (a DDL queued
	// ahead) and a revisit's wait for a row an application transaction has
	// held for many revisits; StatementTimeout bounds such a waiting
	// revisit and a range split's statements (defaults 1s and
	// max(20×TargetBatch, 10s)). A batch that times out is retried smaller.
	LockTimeout, StatementTimeout time.Duration
	// MaxRetries is how many batches in a row may fail with a retryable
	// error (timeout, lock, deadlock, serialization) before Run gives up
	// (default 10); a batch cancelled at its cap and retried smaller at
	// once does not count.
	MaxRetries int
	// MaxReplicaLag and MaxReplicaLagBytes pause the workers while a
	// replica in pg_stat_replication replays more than this far behind
	// the primary: in time (default 10s) or in bytes of WAL (default
	// 256MB). Negative: no such limit; with neither, no check (see
	// replicas.go).
	MaxReplicaLag      time.Duration
	MaxReplicaLagBytes int64
	// Log, when set, receives notices for an operator, e.g. a replica
	// that disconnected during the backfill.
	Log func(msg string)
	// SynchronousCommit keeps synchronous_commit on for batches. By
	// default it is off per batch: a crash may lose the last batches, but
	// their cursor advance with them, so they are simply done again.
	SynchronousCommit bool
	// Poll is how often a waiting worker looks again (pause, replica lag,
	// ranges held by other workers); default 250ms.
	Poll time.Duration
	// StopWhenPaused makes Run return ErrPaused when the job is paused,
	// instead of waiting for Resume.
	StopWhenPaused bool
	// Progress, when set, is called every ProgressEvery (default 1s) and
	// once at the end, with the job's progress over all workers and
	// processes and this process's recent rate.
	Progress      func(Progress)
	ProgressEvery time.Duration
	// OnBatch, when set, is called after every committed or failed batch
	// (from the worker goroutines).
	OnBatch func(Batch)

	scaleWindow time.Duration // tests: scale's measurement window
}

// Batch describes one batch, for OnBatch.
type Batch struct {
	Range   int
	Verify  bool // a verification batch
	Size    int  // rows asked for
	Rows    int64
	Updated int64 // rows changed (verification: rows fixed)
	// Skipped rows were locked by an application transaction: the batch
	// went past them and a later revisit does them.
	Skipped int64
	// Revisit: the batch took up skipped rows (Size of them) of a range
	// whose keys are all swept; Skipped is the rows still locked.
	Revisit bool
	// Took is the time of the batch's work statement(s) as this process
	// sees it (a backfill batch's commit included); Elapsed is the whole
	// transaction's. Held is a backfill batch's statement time on the
	// server, about as long as it held its first row lock (commit
	// excepted): the duration its size adapts to (0: unknown; Took then).
	Took    time.Duration
	Held    time.Duration
	Elapsed time.Duration
	Next    int   // size of the worker's next batch
	Err     error // a retryable error: the batch rolled back
}

// Defaults are the options Run uses for a field left zero; the planner
// command's backfill flags default to them. Left zero here, TargetBatch
// defaults to 75% of MaxAppWait and StatementTimeout to max(20×TargetBatch,
// 10s). Not to be modified.
var Defaults = Options{
	MaxWorkers:         4,
	MinBatch:           10,
	MaxBatch:           200_000,
	MaxAppWait:         50 * time.Millisecond,
	LockTimeout:        time.Second,
	MaxRetries:         10,
	MaxReplicaLag:      10 * time.Second,
	MaxReplicaLagBytes: 256 << 20,
	Poll:               250 * time.Millisecond,
	ProgressEvery:      time.Second,
}

func (o Options) withDefaults() Options {
	d := Defaults
	o.Workers = max(o.Workers, 0)
	if o.MaxWorkers <= 0 {
		o.MaxWorkers = d.MaxWorkers
	}
	if o.MaxAppWait <= 0 {
		o.MaxAppWait = d.MaxAppWait
	}
	if most := o.MaxAppWait * 3 / 4; o.TargetBatch <= 0 || o.TargetBatch > most {
		o.TargetBatch = most
	}
	if o.MinBatch <= 0 {
		o.MinBatch = d.MinBatch
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = d.MaxBatch
	}
	o.MaxBatch = max(o.MaxBatch, o.MinBatch)
	if o.LockTimeout <= 0 {
		o.LockTimeout = d.LockTimeout
	}
	if o.StatementTimeout <= 0 {
		o.StatementTimeout = max(20*o.TargetBatch, 10*time.Second)
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = d.MaxRetries
	}
	if o.MaxReplicaLag == 0 {
		o.MaxReplicaLag = d.MaxReplicaLag
	}
	if o.MaxReplicaLagBytes == 0 {
		o.MaxReplicaLagBytes = d.MaxReplicaLagBytes
	}
	if o.Poll <= 0 {
		o.Poll = d.Poll
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = d.ProgressEvery
	}
	return o
}

// MostWorkers is the most workers Run starts with these options: a pool
// for it needs as many connections, and one more for progress.
func (o Options) MostWorkers() int {
	o = o.withDefaults()
	if o.Workers > 0 {
		return o.Workers
	}
	if o.Sleep > 0 {
		return 1
	}
	return o.MaxWorkers
}

// nextSize moves the batch size toward the target duration: proportional
// to target/took, but by at most ×1.5 up and ÷2 down per batch, clamped.
func nextSize(size int, took, target time.Duration, lo, hi int) int {
	ratio := 1.5
	if took > 0 {
		ratio = min(1.5, max(0.5, float64(target)/float64(took)))
	}
	return min(hi, max(lo, int(float64(size)*ratio)))
}

// adapt picks the next batch size after a batch of size asked and rows
// done. A batch cut short by the end of its range says little when tiny;
// otherwise its own rate is extrapolated, within the same step limits.
func adapt(size int, rows int64, took time.Duration, o Options) int {
	if rows >= int64(size) {
		return nextSize(size, took, o.TargetBatch, o.MinBatch, o.MaxBatch)
	}
	if rows < int64(size/4) || took <= 0 {
		return size
	}
	est := float64(rows) * float64(o.TargetBatch) / float64(took)
	est = min(1.5*float64(size), max(float64(size)/2, est))
	return min(o.MaxBatch, max(o.MinBatch, int(est)))
}

// Run works on the change's job until every range is backfilled and
// verified, with Options.Workers goroutines (0: as many as pay off); other
// processes may run it at the same time. It returns the final progress.
func Run(ctx context.Context, pool *pgxpool.Pool, schema, changeID string, opts Options) (Progress, error) {
	opts = opts.withDefaults()
	r, err := newRunner(ctx, pool, schema, changeID, opts)
	if err != nil {
		return Progress{}, err
	}
	// The rate is measured from now on: the time the job spent killed,
	// paused or waiting for a worker is no work. Another process joining
	// restarts the window too, which only shortens it.
	if _, err := pool.Exec(ctx, fmt.Sprintf(`UPDATE %s SET started_at = coalesce(started_at, now()), seen_at = now(),
  rate_since = now(), rate_rows = %s WHERE change_id = $1`, jobsTable(schema), rowsDoneSQL(schema)), changeID); err != nil {
		return Progress{}, fmt.Errorf("backfill: %w", err)
	}

	workCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	reporterDone := make(chan struct{})
	go func() {
		defer close(reporterDone)
		r.report(workCtx)
	}()
	c := newCrew(func(retired *atomic.Bool) error { return r.work(workCtx, retired) }, cancel)
	for range max(opts.Workers, 1) {
		c.add()
	}
	scaled := make(chan struct{})
	go func() {
		defer close(scaled)
		if opts.Workers == 0 && opts.Sleep == 0 {
			r.scale(workCtx, c)
		}
	}()
	<-c.idle
	cancel()
	<-scaled
	<-reporterDone
	err = firstError(c.errs)
	p, gerr := Get(ctx, pool, schema, changeID)
	if gerr == nil {
		p.RowsPerSec, p.ETA = r.rate(p)
		if opts.Progress != nil {
			opts.Progress(p)
		}
	}
	if err == nil {
		err = gerr
	}
	return p, err
}

// firstError prefers a real failure over the cancellations it caused.
func firstError(errs []error) error {
	var canceled error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if errors.Is(err, context.Canceled) {
			canceled = err
			continue
		}
		return err
	}
	return canceled
}

// newRunner loads the change's job.
func newRunner(ctx context.Context, pool *pgxpool.Pool, schema, changeID string, opts Options) (*runner, error) {
	if err := addJobColumns(ctx, pool, schema); err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	var j struct {
		schema, table, column, columnType, expr string
		keyCols, keyTypes                       []string
		undo                                    bool
	}
	err := pool.QueryRow(ctx, fmt.Sprintf(`
SELECT table_schema, table_name, column_name, column_type, expr, key_columns, key_types, undo
FROM %s WHERE change_id = $1`, jobsTable(schema)), changeID).
		Scan(&j.schema, &j.table, &j.column, &j.columnType, &j.expr, &j.keyCols, &j.keyTypes, &j.undo)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w for change %s", ErrNoJob, changeID)
	}
	if err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	r := &runner{
		pool: pool, schema: schema, changeID: changeID, opts: opts,
		t: newTarget(j.schema, j.table, j.column, j.columnType, j.expr, keySpec{cols: j.keyCols, types: j.keyTypes}),
	}
	r.leastSlack.Store(-1)
	if j.undo {
		r.t.undo = &undoLog{table: undoTable(schema), changeID: changeID}
	}
	return r, nil
}

type runner struct {
	pool     *pgxpool.Pool
	schema   string
	changeID string
	opts     Options
	t        *target

	throttled   atomic.Int32           // workers waiting for replicas
	throttledBy atomic.Pointer[string] // why, as the latest check said
	replicas    replicaWatch

	mu      sync.Mutex
	samples []sample // recent (time, rows) for the rate

	slack atomic.Int64 // nanoseconds; see noteSlack
	// for scale: rows this process's batches went through, the most slack
	// since its window began, and the least a committed batch has shown
	// (nanoseconds; the round trip to the server, busy or not; -1: none yet)
	done, peakSlack, leastSlack atomic.Int64
}

type sample struct {
	at   time.Time
	rows int64
}

// report calls opts.Progress periodically until ctx ends, and beats the
// job's heartbeat (seen_at) so that a job whose workers wait (paused,
// replicas lagging, ranges held by other processes) does not look idle.
func (r *runner) report(ctx context.Context) {
	tick := time.NewTicker(r.opts.ProgressEvery)
	defer tick.Stop()
	beat := time.NewTicker(max(IdleAfter/3, time.Millisecond))
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			// Best effort: a missed beat at worst shows the job idle.
			r.pool.Exec(ctx, fmt.Sprintf(`UPDATE %s SET seen_at = now() WHERE change_id = $1`, jobsTable(r.schema)), r.changeID)
			continue
		case <-tick.C:
		}
		if r.opts.Progress == nil {
			continue
		}
		p, err := Get(ctx, r.pool, r.schema, r.changeID)
		if err != nil {
			continue
		}
		p.RowsPerSec, p.ETA = r.rate(p)
		// The job row read may predate a wait that began since: say why
		// from memory then, not "throttled" with no reason.
		if r.throttled.Load() > 0 && !p.Throttled {
			p.Throttled, p.ThrottledBy = true, *r.throttledBy.Load()
		}
		r.opts.Progress(p)
	}
}

// rate is the job's rows per second over the last ten seconds (all
// workers, all processes), and the time left at that rate. Until this
// process has watched for a second, it is the job's persisted rate.
func (r *runner) rate(p Progress) (float64, time.Duration) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, sample{now, p.Rows + p.VerifiedRows})
	i := 0
	for i < len(r.samples)-2 && now.Sub(r.samples[i+1].at) > 10*time.Second {
		i++
	}
	r.samples = slices.Delete(r.samples, 0, i)
	first, last := r.samples[0], r.samples[len(r.samples)-1]
	switch dt := last.at.Sub(first.at).Seconds(); {
	case p.Paused:
		p.RowsPerSec = 0
	case dt >= 1:
		p.RowsPerSec = float64(last.rows-first.rows) / dt
	default:
		// Too short a window here yet: keep the job's persisted rate.
	}
	return p.RowsPerSec, eta(p)
}

// batchCap is the statement_timeout of a batch's statement: MaxAppWait
// less a margin for its commit and the server's cancel (a fifth: on a
// saturated machine the cancel alone took a tenth), less the slack seen
// lately. At least a quarter of MaxAppWait, so that batches still make
// progress.
func (r *runner) batchCap() time.Duration {
	return max(r.opts.MaxAppWait/4, r.fullCap()-time.Duration(r.slack.Load()))
}

// fullCap is the cap with no slack.
func (r *runner) fullCap() time.Duration { return r.opts.MaxAppWait * 4 / 5 }

// noteSlack records how long a batch's row locks may have been held past
// what its statement_timeout sees: the round trip beyond the statement's
// own time on the server (its commit, and on a busy machine the wait to be
// scheduled), or how far a cancelled batch overran its cap. The latest
// large one counts, decaying by an eighth per batch.
func (r *runner) noteSlack(d time.Duration) {
	for {
		old := r.peakSlack.Load()
		if int64(d) <= old || r.peakSlack.CompareAndSwap(old, int64(d)) {
			break
		}
	}
	for {
		old := r.slack.Load()
		next := max(int64(max(d, 0)), old*7/8)
		if r.slack.CompareAndSwap(old, next) {
			return
		}
	}
}

// noteRoundTrip records the slack of a committed batch, for leastSlack.
func (r *runner) noteRoundTrip(d time.Duration) {
	for {
		old := r.leastSlack.Load()
		if old >= 0 && int64(d) >= old || r.leastSlack.CompareAndSwap(old, int64(max(d, 0))) {
			return
		}
	}
}

// retryError is a batch that failed in a way worth retrying, smaller.
// capped: the server cancelled it at its cap, which only says the batch was
// too big for its time, and the next one is smaller: no backoff.
type retryError struct {
	err    error
	capped bool
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// work is one worker: batches until the job is verified, or until it is
// retired.
func (r *runner) work(ctx context.Context, retired *atomic.Bool) error {
	size := 0 // 0: take the range's persisted size
	sz := newSizer(r.opts, func() float64 { return float64(r.batchCap()) / float64(r.fullCap()) })
	skipLocked := false // the last batch met a row held by the application
	failures := 0
	var lagChecked, splitTried time.Time
	for !retired.Load() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if (r.opts.MaxReplicaLag > 0 || r.opts.MaxReplicaLagBytes > 0) && time.Since(lagChecked) > time.Second {
			if err := r.waitForReplicas(ctx); err != nil {
				return err
			}
			lagChecked = time.Now()
		}
		outcome, next, err := r.batch(ctx, size, sz, skipLocked)
		skipLocked = outcome == rowLocked
		var retry *retryError
		switch {
		case errors.As(err, &retry):
			size = next
			if retry.capped {
				// Smaller at once, and not a failure: only those at the
				// smallest size count, so that a stalled server has the
				// backoffs' time to recover.
				continue
			}
			failures++
			if failures > r.opts.MaxRetries {
				return fmt.Errorf("backfill %s: %d batches in a row failed, last: %w", r.changeID, failures, err)
			}
			backoff := min(5*time.Second, r.opts.Poll*time.Duration(1<<min(failures, 5)))
			if err := clock.Sleep(ctx, backoff/2+rand.N(backoff/2+1)); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		failures = 0
		switch outcome {
		case worked:
			size = next
			if r.opts.Sleep > 0 {
				if err := clock.Sleep(ctx, r.opts.Sleep); err != nil {
					return err
				}
			}
		case paused:
			if r.opts.StopWhenPaused {
				return fmt.Errorf("%w: change %s", ErrPaused, r.changeID)
			}
			if err := clock.Sleep(ctx, r.opts.Poll); err != nil {
				return err
			}
		case nothingToClaim:
			finished, err := r.finish(ctx)
			if err != nil || finished {
				return err
			}
			// Every range left is held by another worker: split one, at
			// most once per poll interval per worker.
			if time.Since(splitTried) >= r.opts.Poll {
				splitTried = time.Now()
				split, err := r.split(ctx)
				if err != nil {
					return err
				}
				if split {
					continue
				}
			}
			// Other workers hold the remaining ranges; if one dies, its
			// lock goes with it and we take the range over. Look again
			// soon: a range is held for one batch at a time.
			if err := clock.Sleep(ctx, min(r.opts.Poll, 50*time.Millisecond)); err != nil {
				return err
			}
		}
	}
	return nil
}

type outcome int

const (
	worked outcome = iota
	paused
	nothingToClaim
	rowLocked // rolled back on a row the application holds
)

// finish runs when no range can be claimed: it marks the job done and
// verified when every range is, and says whether the work is over.
func (r *runner) finish(ctx context.Context) (bool, error) {
	var notDone, notVerified int
	if err := r.pool.QueryRow(ctx, fmt.Sprintf(`
SELECT count(*) FILTER (WHERE done_at IS NULL), count(*) FILTER (WHERE verified_at IS NULL)
FROM %s WHERE change_id = $1`, rangesTable(r.schema)), r.changeID).Scan(&notDone, &notVerified); err != nil {
		return false, fmt.Errorf("backfill: %w", err)
	}
	if notDone > 0 {
		return false, nil
	}
	if _, err := r.pool.Exec(ctx, fmt.Sprintf(`UPDATE %s SET done_at = now() WHERE change_id = $1 AND done_at IS NULL`,
		jobsTable(r.schema)), r.changeID); err != nil {
		return false, fmt.Errorf("backfill: %w", err)
	}
	if notVerified > 0 {
		// The copy proves the ranges of a job kept by a trigger (proof.go).
		proven, err := r.proven(ctx)
		if err != nil || !proven {
			return false, err
		}
		if _, err := r.pool.Exec(ctx, fmt.Sprintf(`UPDATE %s SET verified_at = now() WHERE change_id = $1 AND verified_at IS NULL`,
			rangesTable(r.schema)), r.changeID); err != nil {
			return false, fmt.Errorf("backfill: %w", err)
		}
	}
	if _, err := r.pool.Exec(ctx, fmt.Sprintf(`UPDATE %s SET verified_at = now() WHERE change_id = $1 AND verified_at IS NULL`,
		jobsTable(r.schema)), r.changeID); err != nil {
		return false, fmt.Errorf("backfill: %w", err)
	}
	return true, nil
}

// retryable errors roll a batch back to be tried again, smaller: timeouts,
// lock and serialization conflicts, and a lost connection (failover, an
// administrator's pg_terminate_backend, a network blip). A batch is one
// transaction, so trying it again is always safe; errors in the SQL itself
// (the expression, a constraint) fail at once.
func retryable(err error) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		// No answer from the server: the connection broke.
		return pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isConnectionError(err)
	}
	switch pg.Code {
	case "57014", // query_canceled: statement_timeout
		"55P03", // lock_not_available: lock_timeout
		"40001", // serialization_failure
		"40P01", // deadlock_detected
		"57P01", // admin_shutdown: pg_terminate_backend, fast shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now: the server is starting
		"25P03": // idle_in_transaction_session_timeout
		return true
	}
	return strings.HasPrefix(pg.Code, "08") // connection_exception
}

// isConnectionError recognizes a connection that broke under a query.
func isConnectionError(err error) bool {
	var netErr net.Error
	var connect *pgconn.ConnectError
	return errors.As(err, &netErr) || errors.As(err, &connect) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "conn closed")
}

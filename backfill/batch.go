package backfill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A batch is one transaction in two round trips, so that a busy server
// or a distant one costs little per batch, and so that no row lock is held
// across a round trip (see sweep.go):
//
//  1. BEGIN, the transaction's settings, and the claim of a range
//     (FOR UPDATE SKIP LOCKED), pipelined;
//  2. one statement that finds the batch's end key, updates the rows up
//     to it that differ and are not locked, records the keys it skipped
//     and advances the range's cursor; then COMMIT, pipelined.
//
// A verification batch counts the rows that differ instead, in a third
// round trip fixes them if any, and records its cursor with the commit.

// claim is a range locked by this worker's batch transaction.
type claim struct {
	no     int
	verify bool
	cursor []string
	upper  []string
	size   int
	paused bool
	// swept: every key of the range has been gone through; the batch
	// revisits its skipped keys. waits: the most revisits one of those
	// found still locked.
	swept bool
	waits int
	cap   time.Duration // the batch's statement_timeout
}

type result struct {
	end     []string // new cursor; nil with last: the open range is finished
	last    bool
	rows    int64
	changed int64 // rows updated (verification: rows fixed)
	skipped int64 // rows skipped: locked by the application
	// held is the batch statement's time on the server, from just before
	// it took its first row lock to its end (a sweep only; 0: unknown).
	held time.Duration
}

// batch runs one batch transaction of at most size rows (0: the range's
// persisted size) and returns the size for the worker's next batch.
func (r *runner) batch(ctx context.Context, size int, sz *sizer, skipLocked bool) (outcome, int, error) {
	begun := time.Now()
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		if ctx.Err() == nil && retryable(err) {
			return 0, size, &retryError{err: err}
		}
		return 0, size, fmt.Errorf("backfill: %w", err)
	}
	defer conn.Release()
	open := true
	defer func() {
		if open {
			rollback(conn)
		}
	}()
	c, ok, err := r.begin(ctx, conn)
	if err != nil {
		if ctx.Err() == nil && retryable(err) {
			return 0, size, &retryError{err: err}
		}
		return 0, size, err
	}
	if !ok {
		return nothingToClaim, size, nil
	}
	if c.paused {
		return paused, size, nil
	}
	if size <= 0 {
		size = c.size
	}
	size = min(r.opts.MaxBatch, max(r.opts.MinBatch, size))
	report := func(b Batch) {
		if r.opts.OnBatch != nil {
			b.Range, b.Verify, b.Elapsed = c.no, c.verify, time.Since(begun)
			r.opts.OnBatch(b)
		}
	}
	start := time.Now()
	var res result
	switch {
	case c.verify:
		res, err = r.verify(ctx, conn, c, size)
	case c.swept:
		res, err = r.revisit(ctx, conn, c, size)
	default:
		res, err = r.sweep(ctx, conn, c, size, skipLocked)
	}
	took := time.Since(start)
	if err != nil && !c.verify && !c.swept && !skipLocked && isLockTimeout(err) && ctx.Err() == nil {
		return rowLocked, size, nil // the server rolled it back; again, skipping locked rows
	}
	if err != nil {
		if ctx.Err() == nil && retryable(err) {
			next := max(r.opts.MinBatch, size/2)
			capped := false // cut short by its own cap, and smaller next
			switch {
			case c.swept && !isTimeout(err):
				next = size // a revisit that waited for a row's lock
			case c.swept:
				// Fewer keys next time: a revisit takes at most size.
			case isTimeout(err):
				r.noteSlack(took - c.cap)
				next = sz.cancelled(size, took)
				capped = next < size
				err = fmt.Errorf("a batch of %d rows ran past its cap of %s (--max-app-wait %s): %w",
					size, c.cap, r.opts.MaxAppWait, err)
			}
			report(Batch{Size: size, Took: took, Next: next, Err: err, Revisit: c.swept})
			// A capped batch is tried again at once while it can shrink; at
			// its smallest, after the backoff (a stalled server).
			return 0, next, &retryError{err: err, capped: capped}
		}
		return 0, size, fmt.Errorf("backfill %s: range %d: %w", r.changeID, c.no, err)
	}
	r.done.Add(res.rows)
	if c.swept {
		// A revisit says nothing about the size of sweeping batches.
		open = false
		report(Batch{Size: int(res.rows), Updated: res.changed, Skipped: res.skipped, Revisit: true, Took: took, Next: size})
		return worked, size, nil
	}
	// The size adapts to the time the rows were held on the server: the
	// round trip around it holds no row lock, and on a busy client machine
	// it may be most of the time.
	held := took
	if res.held > 0 {
		held = res.held
		r.noteSlack(took - res.held)
		r.noteRoundTrip(took - res.held)
	}
	next := sz.next(size, res.rows, held)
	if c.verify {
		open = false
		if err := r.commit(ctx, conn, c, res, next); err != nil {
			rollback(conn)
			if ctx.Err() == nil && retryable(err) {
				return 0, max(r.opts.MinBatch, size/2), &retryError{err: err}
			}
			return 0, size, fmt.Errorf("backfill %s: range %d: commit: %w", r.changeID, c.no, err)
		}
	}
	open = false
	report(Batch{Size: size, Rows: res.rows, Updated: res.changed, Skipped: res.skipped, Took: took, Held: res.held, Next: next})
	return worked, next, nil
}

// isTimeout: the server cancelled the statement (statement_timeout).
func isTimeout(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "57014"
}

func isLockTimeout(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "55P03"
}

// sweep runs the batch of a range being swept, and commits it.
func (r *runner) sweep(ctx context.Context, conn *pgxpool.Conn, c claim, size int, skipLocked bool) (result, error) {
	// The statement's start on the server, for held.
	pre := []string{"SELECT set_config('planner.batch_start', clock_timestamp()::text, true)"}
	if !skipLocked {
		pre = append(pre, fmt.Sprintf("SELECT set_config('lock_timeout', '%d', true)", rowLockWait.Milliseconds()))
	}
	sql, args := r.sweepSQL(c, size, skipLocked, r.opts.Poll)
	row, err := execAndCommit(ctx, conn.Conn().PgConn(), pre, sql, args)
	if err != nil {
		return result{}, err
	}
	n, err := ints(row, 3)
	if err != nil {
		return result{}, err
	}
	if row[4] != "1" {
		return result{}, fmt.Errorf("range %d vanished under its batch", c.no)
	}
	res := result{rows: n[0], changed: n[1], skipped: n[2], last: row[3] == "t"}
	if len(row) > 5 {
		if us, err := strconv.ParseInt(row[5], 10, 64); err == nil && us > 0 {
			res.held = time.Duration(us) * time.Microsecond
		}
	}
	return res, nil
}

// revisit takes up at most size skipped keys of a swept range that are
// due, and commits. After revisitWaitAfter revisits it waits for a key's lock.
func (r *runner) revisit(ctx context.Context, conn *pgxpool.Conn, c claim, size int) (result, error) {
	wait := c.waits >= revisitWaitAfter
	var pre []string
	if wait {
		// This batch holds no other row lock while it waits.
		pre = append(pre, fmt.Sprintf("SELECT set_config('statement_timeout', '%d', true)",
			(r.opts.StatementTimeout+r.opts.LockTimeout).Milliseconds()))
	}
	sql, args := r.revisitSQL(c, min(size, revisitBatch), wait, r.opts.Poll)
	row, err := execAndCommit(ctx, conn.Conn().PgConn(), pre, sql, args)
	if err != nil {
		return result{}, err
	}
	n, err := ints(row, 4)
	if err != nil {
		return result{}, err
	}
	if n[3] != 1 {
		return result{}, fmt.Errorf("range %d vanished under its batch", c.no)
	}
	return result{rows: n[0], changed: n[1], skipped: n[2]}, nil
}

// rollback ends a failed batch; a connection that cannot roll back is
// closed rather than handed back to the pool mid-transaction.
func rollback(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		conn.Conn().Close(ctx)
	}
}

// begin opens the transaction and claims a range with work left: backfill
// first; verification once every range is backfilled (committed), as late
// as possible, just before the gate.
func (r *runner) begin(ctx context.Context, conn *pgxpool.Conn) (claim, bool, error) {
	syncCommit := "off"
	if r.opts.SynchronousCommit {
		syncCommit = "on"
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	// A worker whose machine vanishes mid-batch leaves its backend idle in
	// the transaction, holding its range: the idle timeout ends it, so that
	// another worker takes the range over.
	// The batch's statements run under its cap (MaxAppWait): the server
	// cancels one that would hold its row locks any longer.
	idle := max(30*time.Second, 2*r.opts.StatementTimeout)
	c := claim{cap: max(time.Millisecond, r.batchCap())}
	b.Queue(`SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true),
  set_config('synchronous_commit', $3, true), set_config('idle_in_transaction_session_timeout', $4, true), `+pinTextFormsExprs,
		fmt.Sprint(r.opts.LockTimeout.Milliseconds()), fmt.Sprint(c.cap.Milliseconds()), syncCommit,
		fmt.Sprint(idle.Milliseconds()))
	// A range whose keys are all swept is claimed again when its skipped
	// keys are due for a revisit.
	b.Queue(fmt.Sprintf(`
SELECT r.range_no, false, r.cursor, r.upper_bound, r.batch_size, j.paused, r.swept,
       coalesce((SELECT max(s.tries) FROM %[3]s s WHERE s.change_id = $1 AND s.range_no = r.range_no AND s.retry_at <= now()), 0)
FROM %[1]s r JOIN %[2]s j USING (change_id)
WHERE r.change_id = $1 AND r.done_at IS NULL
  AND (NOT r.swept
       OR EXISTS (SELECT 1 FROM %[3]s s WHERE s.change_id = $1 AND s.range_no = r.range_no AND s.retry_at <= now())
       OR NOT EXISTS (SELECT 1 FROM %[3]s s WHERE s.change_id = $1 AND s.range_no = r.range_no))
ORDER BY r.range_no LIMIT 1
FOR UPDATE OF r SKIP LOCKED`, rangesTable(r.schema), jobsTable(r.schema), skippedTable(r.schema)), r.changeID)
	br := conn.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if err == nil {
		err = br.QueryRow().Scan(&c.no, &c.verify, &c.cursor, &c.upper, &c.size, &c.paused, &c.swept, &c.waits)
	}
	if cerr := br.Close(); err == nil || errors.Is(err, pgx.ErrNoRows) && cerr != nil {
		err = cerr
	}
	if errors.Is(err, pgx.ErrNoRows) {
		err = conn.QueryRow(ctx, fmt.Sprintf(`
SELECT r.range_no, true, r.verify_cursor, r.upper_bound, r.batch_size, j.paused
FROM %[1]s r JOIN %[2]s j USING (change_id)
WHERE r.change_id = $1 AND r.verified_at IS NULL AND j.kept_by IS NULL
  AND NOT EXISTS (SELECT 1 FROM %[1]s x WHERE x.change_id = $1 AND x.done_at IS NULL)
ORDER BY r.range_no LIMIT 1
FOR UPDATE OF r SKIP LOCKED`, rangesTable(r.schema), jobsTable(r.schema)), r.changeID).
			Scan(&c.no, &c.verify, &c.cursor, &c.upper, &c.size, &c.paused)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("backfill: claim a range: %w", err)
	}
	return c, true, nil
}

// verify runs a verification batch after the cursor of a claimed range,
// fixing the rows that differ.
func (r *runner) verify(ctx context.Context, conn *pgxpool.Conn, c claim, size int) (result, error) {
	var res result
	sql, args := r.t.verifySQL(c.cursor, c.upper, size)
	// Unnamed statement: the literal size changes from batch to batch.
	args = append([]any{pgx.QueryExecModeExec}, args...)
	if err := conn.QueryRow(ctx, sql, args...).Scan(&res.rows, &res.changed, &res.end); err != nil {
		return res, err
	}
	if res.rows < int64(size) {
		// The range's rows after the cursor were all read.
		res.last, res.end = true, c.upper
	} else {
		res.last = c.upper != nil && slices.Equal(res.end, c.upper)
	}
	if res.changed == 0 {
		return res, nil
	}
	// Verification found rows that differ: fix them and count again. The
	// fix's row locks keep them fixed until commit.
	bad := res.changed
	res.changed = 0
	for attempt := 0; bad > 0; attempt++ {
		if attempt == 3 {
			return res, fmt.Errorf("verification: %d rows of %s still differ after %d fixes", bad, r.t.name, attempt)
		}
		sql, args := r.t.updateSQL(c.cursor, res.end)
		var fixed int64
		if err := conn.QueryRow(ctx, sql, args...).Scan(&fixed); err != nil {
			return res, err
		}
		res.changed += fixed
		sql, args = r.t.diffSQL(c.cursor, res.end)
		if err := conn.QueryRow(ctx, sql, args...).Scan(&bad); err != nil {
			return res, err
		}
	}
	return res, nil
}

// commit records the batch in its range row and commits, pipelined.
func (r *runner) commit(ctx context.Context, conn *pgxpool.Conn, c claim, res result, next int) error {
	cursor := res.end
	if cursor == nil {
		cursor = c.cursor // finished open range: keep the last key seen
	}
	sql := `UPDATE %s SET cursor = $3, rows_done = rows_done + $4, rows_updated = rows_updated + $5,
  batch_size = $6, batches = batches + 1, updated_at = now(), done_at = CASE WHEN $7 THEN now() END
WHERE change_id = $1 AND range_no = $2`
	if c.verify {
		sql = `UPDATE %s SET verify_cursor = $3, rows_verified = rows_verified + $4, rows_fixed = rows_fixed + $5,
  batch_size = $6, batches = batches + 1, updated_at = now(), verified_at = CASE WHEN $7 THEN now() END
WHERE change_id = $1 AND range_no = $2`
	}
	b := &pgx.Batch{}
	b.Queue(fmt.Sprintf(sql, rangesTable(r.schema)), r.changeID, c.no, cursor, res.rows, res.changed, next, res.last)
	b.Queue("COMMIT")
	br := conn.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		var tag interface{ String() string }
		tag, err = br.Exec()
		// A COMMIT of a failed transaction reports ROLLBACK, not an error.
		if err == nil && tag.String() != "COMMIT" {
			err = fmt.Errorf("transaction rolled back (%s)", tag)
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

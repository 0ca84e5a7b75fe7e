package backfill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Range splitting. Start cuts the key space into about 16 ranges and a
// batch locks one range for its duration, so without splitting at most 16
// batches run at once and the last range of a job runs on one worker. A
// worker that finds every unfinished range of the current pass held by
// other workers calls split: it picks the range with the most work left,
// waits for that range's batch in flight to commit, and cuts the part not
// yet done (after the range's cursor) in two. The range keeps the nearer
// part; a new range takes the far part, from the split key on.
//
// Why no key is lost or done twice: ranges are (lower, upper] and tile the
// key space, and a batch reads its range's cursor and upper bound under the
// range's row lock, which it holds until it commits. The split takes that
// lock too (waiting, not skipping), so no batch of the range is in flight
// while it cuts: the cursor it reads is final and the next batch sees the
// new upper bound. Shrinking the range and inserting the new one commit in
// one transaction: a worker killed at any moment leaves both or neither.
// An advisory lock lets one worker per job split at a time (they would all
// pick the same range) and keeps new range numbers unique.

// splitSpan bounds how many keys after a range's cursor a split counts (in
// batches of the range's current size): the count runs before the lock is
// taken, but should stay short. A range with more left is cut after half
// of that many keys; the new, larger range is cut again when a worker is
// idle again.
const splitSpan = 64

// splitMin: a range with fewer than this many batches left is not split;
// each part gets at least half of it.
const splitMin = 4

// split cuts the range with the most work left when it is worth it, and
// says whether it did. Conflicts (the lock not granted in time, another
// worker splitting) are no error: the caller tries again later.
func (r *runner) split(ctx context.Context) (bool, error) {
	ok, err := r.trySplit(ctx)
	if err != nil && ctx.Err() == nil && retryable(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("backfill %s: split a range: %w", r.changeID, err)
	}
	return ok, nil
}

func (r *runner) trySplit(ctx context.Context) (bool, error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Waiting for the range's lock is waiting for one batch to commit.
	lockWait := max(r.opts.LockTimeout, 4*r.opts.TargetBatch)
	var mine bool
	if err := tx.QueryRow(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true), `+
		pinTextFormsExprs+`, pg_try_advisory_xact_lock(hashtext('planner backfill split'), hashtext($3))`,
		fmt.Sprint(lockWait.Milliseconds()), fmt.Sprint(r.opts.StatementTimeout.Milliseconds()), r.schema+"."+r.changeID).
		Scan(nil, nil, nil, nil, nil, &mine); err != nil {
		return false, err
	}
	if !mine {
		return false, nil // another worker is splitting
	}

	// The candidate: the unfinished range of the current pass with the
	// fewest rows done in it (ranges start about equal; a range split off
	// starts at zero). Read without a lock: counting its keys takes a
	// while and must not hold up its worker.
	verify := false
	var no, size int
	var cursor, upper []string
	err = tx.QueryRow(ctx, fmt.Sprintf(`
SELECT range_no, cursor, upper_bound, batch_size FROM %s
WHERE change_id = $1 AND done_at IS NULL AND NOT swept ORDER BY rows_done, range_no LIMIT 1`, rangesTable(r.schema)), r.changeID).
		Scan(&no, &cursor, &upper, &size)
	if errors.Is(err, pgx.ErrNoRows) {
		verify = true
		err = tx.QueryRow(ctx, fmt.Sprintf(`
SELECT range_no, verify_cursor, upper_bound, batch_size FROM %s
WHERE change_id = $1 AND verified_at IS NULL ORDER BY rows_verified, range_no LIMIT 1`, rangesTable(r.schema)), r.changeID).
			Scan(&no, &cursor, &upper, &size)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	size = min(r.opts.MaxBatch, max(r.opts.MinBatch, size))
	span := min(splitSpan*size, 2_000_000)
	var left int
	sql, args := r.t.countUpToSQL(cursor, upper, span)
	if err := tx.QueryRow(ctx, sql, args...).Scan(&left); err != nil {
		return false, err
	}
	if left < splitMin*size {
		return false, nil
	}
	at := make([]string, len(r.t.key.cols))
	ptrs := make([]any, len(at))
	for i := range at {
		ptrs[i] = &at[i]
	}
	sql, args = r.t.probeSQL(cursor, upper, left/2)
	if err := tx.QueryRow(ctx, sql, args...).Scan(ptrs...); errors.Is(err, pgx.ErrNoRows) {
		return false, nil // rows deleted meanwhile
	} else if err != nil {
		return false, err
	}
	if upper != nil && slices.Equal(at, upper) {
		return false, nil
	}

	// Now the lock: the batch in flight commits, its cursor is final. The
	// split key must still lie ahead of it.
	var lockedCursor, lockedUpper, backfilledTo []string
	var open bool
	var doneAt *time.Time
	err = tx.QueryRow(ctx, fmt.Sprintf(`
SELECT CASE WHEN $3 THEN verify_cursor ELSE cursor END, upper_bound, cursor, done_at,
       CASE WHEN $3 THEN verified_at IS NULL ELSE done_at IS NULL AND NOT swept END
FROM %s WHERE change_id = $1 AND range_no = $2 FOR UPDATE`, rangesTable(r.schema)), r.changeID, no, verify).
		Scan(&lockedCursor, &lockedUpper, &backfilledTo, &doneAt, &open)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !open || (lockedUpper == nil) != (upper == nil) || !slices.Equal(lockedUpper, upper) {
		return false, nil
	}
	if lockedCursor != nil {
		var ahead bool
		sql, args := r.t.afterSQL(at, lockedCursor)
		if err := tx.QueryRow(ctx, sql, args...).Scan(&ahead); err != nil {
			return false, err
		}
		if !ahead {
			return false, nil // its worker got there first
		}
	}

	// The range ends at the split key; the new range starts after it. In
	// the verification pass both are backfilled already.
	newCursor, newDone := at, (*time.Time)(nil)
	rangeCursor := "cursor"
	if verify {
		// Both parts are backfilled: a closed range up to its end, the open
		// last range up to the last key it saw (which may lie before the
		// split key when rows were inserted since).
		newDone, rangeCursor = doneAt, "$3"
		newCursor = upper
		if upper == nil && backfilledTo != nil {
			sql, args := r.t.afterSQL(backfilledTo, at)
			var after bool
			if err := tx.QueryRow(ctx, sql, args...).Scan(&after); err != nil {
				return false, err
			}
			if after {
				newCursor = backfilledTo
			}
		}
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET upper_bound = $3, cursor = %s WHERE change_id = $1 AND range_no = $2`,
		rangesTable(r.schema), rangeCursor), r.changeID, no, at); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`
INSERT INTO %[1]s (change_id, range_no, lower_bound, upper_bound, cursor, verify_cursor, batch_size, done_at)
SELECT $1, max(range_no) + 1, $2::text[], $3::text[], $4::text[], $2::text[], $5::int, $6::timestamptz
FROM %[1]s WHERE change_id = $1`, rangesTable(r.schema)),
		r.changeID, at, upper, newCursor, size, newDone); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, err
	}
	return true, nil
}

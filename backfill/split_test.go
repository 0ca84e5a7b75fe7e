package backfill

import (
	"context"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

// assertTiling checks that the job's ranges (integer keys) cover the key
// space exactly: from no lower bound, each starting where another ends,
// to no upper bound, with every cursor inside its range.
func assertTiling(t *testing.T, db *pgtest.DB, change string) int {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `
SELECT range_no, lower_bound, upper_bound, cursor, verify_cursor,
       (cursor IS NULL OR (lower_bound IS NULL OR cursor[1]::int >= lower_bound[1]::int) AND (upper_bound IS NULL OR cursor[1]::int <= upper_bound[1]::int))
   AND (verify_cursor IS NULL OR (lower_bound IS NULL OR verify_cursor[1]::int >= lower_bound[1]::int) AND (upper_bound IS NULL OR verify_cursor[1]::int <= upper_bound[1]::int))
FROM planner.backfill_ranges WHERE change_id = $1
ORDER BY lower_bound[1]::int NULLS FIRST`, change)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type rng struct {
		no                            int
		lower, upper, cursor, vcursor []string
		inside                        bool
	}
	var all []rng
	for rows.Next() {
		var r rng
		if err := rows.Scan(&r.no, &r.lower, &r.upper, &r.cursor, &r.vcursor, &r.inside); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for i, r := range all {
		ok := r.inside
		if i == 0 {
			ok = ok && r.lower == nil
		} else {
			ok = ok && r.lower != nil && slices.Equal(r.lower, all[i-1].upper)
		}
		if i == len(all)-1 {
			ok = ok && r.upper == nil
		} else {
			ok = ok && r.upper != nil
		}
		if !ok {
			t.Fatalf("ranges do not tile the key space at range %d: %+v", r.no, all)
		}
	}
	return len(all)
}

// TestIdleWorkersSplitRanges starts a job with a single range: without
// splitting, one worker at a time could work on it. A process with four
// workers splits it and is killed with SIGKILL mid-way; here six workers
// finish it. The ranges tile the key space at every point, every row is
// changed exactly once, and batches ran on many ranges in both passes. A
// verification pass on a single range is split too.
func TestIdleWorkersSplitRanges(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, old text, new text, new2 text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20000) g`)
	countUpdates(t, db, "t", "new")
	if err := StartWith(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old"}, nil,
		StartOptions{RangeRows: 1_000_000, BatchSize: 50}); err != nil {
		t.Fatal(err)
	}
	if p, err := Get(ctx, db.Pool, state, "c1"); err != nil || p.Ranges != 1 {
		t.Fatalf("Get = %+v, %v; want one range", p, err)
	}

	c := startChild(t, db, "c1", 4, 2*time.Millisecond, "backfill-splitter")
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
		p, err := Get(ctx, db.Pool, state, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if p.Ranges >= 3 && p.Rows >= 3000 {
			break
		}
		if p.Done || time.Now().After(deadline) {
			t.Fatalf("the worker process did not split the range: %+v", p)
		}
	}
	if err := c.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.killed(t, db, "backfill-splitter")
	mid, err := Get(ctx, db.Pool, state, "c1")
	if err != nil {
		t.Fatal(err)
	}
	n := assertTiling(t, db, "c1")
	if changed := queryInt(t, db, `SELECT count(*) FROM t WHERE n_updates = 1`); changed != mid.Rows || mid.Done {
		t.Fatalf("after kill: %d rows changed, the ranges say %d (%+v)", changed, mid.Rows, mid)
	}
	t.Logf("killed at %d rows, %d ranges", mid.Rows, n)

	var mu sync.Mutex
	ranges := map[bool]map[int]bool{false: {}, true: {}}
	onBatch := func(b Batch) {
		mu.Lock()
		defer mu.Unlock()
		if b.Err == nil {
			ranges[b.Verify][b.Range] = true
		}
	}
	p, err := Run(ctx, db.Pool, state, "c1", Options{Workers: 6, MinBatch: 10, MaxBatch: 50, Sleep: time.Millisecond, Poll: 10 * time.Millisecond, OnBatch: onBatch})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Verified || p.Rows != 20000 || p.Updated != 20000 || p.VerifiedRows != 20000 {
		t.Fatalf("after resume: %+v", p)
	}
	assertAllRight(t, db, "t", "new = old AND n_updates = 1")
	n = assertTiling(t, db, "c1")
	if len(ranges[false]) < 3 || len(ranges[true]) < 3 {
		t.Fatalf("batches on %d ranges backfilling, %d verifying; want several", len(ranges[false]), len(ranges[true]))
	}
	t.Logf("%d ranges; batches on %d of them backfilling, %d verifying", n, len(ranges[false]), len(ranges[true]))

	// The verification pass of a job backfilled on one range by one
	// worker, with rows spoiled behind its back: split while verifying,
	// the pass still checks and fixes every row.
	if err := StartWith(ctx, db.Pool, state, "c2", phases.Backfill{Table: "t", Column: "new2", Expr: "old"}, nil,
		StartOptions{RangeRows: 1_000_000, BatchSize: 50}); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, db.Pool, state, "c2", Options{Workers: 1, MinBatch: 50, MaxBatch: 50}); err != nil {
		t.Fatal(err)
	}
	db.Exec(t, `UPDATE planner.backfill_ranges SET verify_cursor = lower_bound, verified_at = NULL, rows_verified = 0, rows_fixed = 0
WHERE change_id = 'c2';
UPDATE planner.backfill_jobs SET verified_at = NULL WHERE change_id = 'c2';
UPDATE t SET new2 = 'spoiled' WHERE id % 1000 = 0`)
	if n := assertTiling(t, db, "c2"); n != 1 {
		t.Fatalf("one worker split the range: %d ranges", n)
	}
	ranges[true] = map[int]bool{}
	p, err = Run(ctx, db.Pool, state, "c2", Options{Workers: 4, MinBatch: 10, MaxBatch: 50, Sleep: time.Millisecond, Poll: 10 * time.Millisecond, OnBatch: onBatch})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Verified || p.VerifiedRows != 20000 || p.Fixed != 20 {
		t.Fatalf("verification: %+v, want 20000 rows checked and 20 fixed", p)
	}
	assertAllRight(t, db, "t", "new2 = old")
	n = assertTiling(t, db, "c2")
	if len(ranges[true]) < 2 {
		t.Fatalf("verification batches on %d ranges, want several", len(ranges[true]))
	}
	t.Logf("verification: %d ranges, batches on %d", n, len(ranges[true]))
}

package backfill

import (
	"context"
	"testing"

	"github.com/pgplanner/planner/phases"
)

// TestRestoreSetsFilledRowsBack: a backfill with Undo fills the NULLs of an
// existing column (composite key with awkward text, a timestamptz value, a
// verification pass that fixes rows); Restore sets exactly those rows back
// to NULL, except one an application changed since, and a second Restore
// finds nothing to do.
func TestRestoreSetsFilledRowsBack(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (tenant int, name text, v timestamptz, PRIMARY KEY (tenant, name));
INSERT INTO t SELECT g % 5, 'n ' || g || CASE WHEN g % 2 = 0 THEN ' "q",)' ELSE '' END,
  CASE WHEN g % 3 = 0 THEN NULL ELSE '2026-01-01'::timestamptz + g * interval '1 hour' END
FROM generate_series(1, 3000) g;
CREATE TABLE before AS SELECT * FROM t`)
	work := phases.Backfill{Table: "t", Column: "v", Expr: "COALESCE(v, '2000-01-01 00:00:00+00')", Undo: true}
	if err := StartWith(ctx, db.Pool, state, "c1", work, nil, StartOptions{RangeRows: 700, BatchSize: 100}); err != nil {
		t.Fatal(err)
	}
	// Rows an application sets to NULL during the verification pass (the
	// two last keys: one worker verifies the ranges in key order) are
	// fixed by it, and recorded: rolling back gives them the NULL the
	// application wrote.
	var spoiled bool
	opts := Options{Workers: 1, OnBatch: func(b Batch) {
		if b.Verify && !spoiled {
			spoiled = true
			db.Exec(t, `WITH last AS (SELECT tenant, name FROM t ORDER BY tenant DESC, name DESC LIMIT 2),
a AS (UPDATE t SET v = NULL FROM last WHERE (t.tenant, t.name) = (last.tenant, last.name))
UPDATE before b SET v = NULL FROM last WHERE (b.tenant, b.name) = (last.tenant, last.name)`)
		}
	}}
	if p, err := Run(ctx, db.Pool, state, "c1", opts); err != nil || !p.Verified || p.Fixed != 2 {
		t.Fatalf("run: %+v %v; want verified with 2 rows fixed", p, err)
	}
	if n := queryInt(t, db, `SELECT count(*) FROM t WHERE v IS NULL`); n != 0 {
		t.Fatalf("%d NULL rows after the backfill", n)
	}
	// Every row that was NULL, before the backfill or when the
	// verification fixed it, is recorded once.
	filled := queryInt(t, db, `SELECT count(*) FROM before WHERE v IS NULL`)
	if n := queryInt(t, db, `SELECT count(*) FROM planner.backfill_undo WHERE change_id = 'c1'`); n != filled || n < 1001 {
		t.Fatalf("%d rows recorded, want %d (the 1000 filled and those fixed)", n, filled)
	}
	// Changed since by an application: it keeps its value.
	db.Exec(t, `UPDATE t SET v = '2030-01-01' WHERE tenant = 0 AND name = 'n 15'`)

	n, err := Restore(ctx, db.Pool, state, "c1", work, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n != filled-1 {
		t.Errorf("Restore set back %d rows, want %d", n, filled-1)
	}
	if diff := queryInt(t, db, `SELECT count(*) FROM t FULL JOIN before b USING (tenant, name)
WHERE t.v IS DISTINCT FROM b.v AND NOT (t.tenant = 0 AND t.name = 'n 15')`); diff != 0 {
		t.Errorf("%d rows differ from before the backfill", diff)
	}
	if v := queryInt(t, db, `SELECT count(*) FROM t WHERE tenant = 0 AND name = 'n 15' AND v = '2030-01-01'`); v != 1 {
		t.Error("a row changed since the backfill lost its value")
	}
	if left := queryInt(t, db, `SELECT count(*) FROM planner.backfill_undo`); left != 0 {
		t.Errorf("%d records left", left)
	}
	if n, err := Restore(ctx, db.Pool, state, "c1", work, nil, Options{}); n != 0 || err != nil {
		t.Errorf("second Restore: %d, %v", n, err)
	}
}

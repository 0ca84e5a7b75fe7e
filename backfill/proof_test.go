package backfill

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgplanner/planner/phases"
)

// TestCopyProvesRangesKeptByATrigger: a job kept by a trigger that fires
// on every write skips the verification pass and still loses no write, a
// key update moving a row not copied yet behind the cursors included; a
// trigger that does not fire on every update, or that is disabled
// meanwhile, leaves the job to the verification pass, which finds that row.
func TestCopyProvesRangesKeptByATrigger(t *testing.T) {
	cases := []struct {
		name string
		// trigger: "" the sync trigger as installed; "columns": it fires on
		// updates of old and new only; "disabled": it is disabled after
		// the first batch.
		trigger    string
		workload   bool // application writes of every kind meanwhile
		wantVerify bool
	}{
		{name: "kept by the sync trigger, under writes", workload: true},
		{name: "trigger on updates of some columns", trigger: "columns", wantVerify: true},
		{name: "trigger disabled meanwhile", trigger: "disabled", wantVerify: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := newDB(t)
			ctx := context.Background()
			db.Exec(t, `CREATE TABLE t (id bigserial PRIMARY KEY, old text, other int);
INSERT INTO t (old, other) SELECT 'v' || g, g FROM generate_series(1, 6000) g;
ALTER TABLE t ADD COLUMN new text`)
			installSync(t, db, "t", "old", "new")
			s := phases.Sync{ID: "test-t", Table: phases.TableRef{Name: "t"}, Old: "old", New: "new"}
			if c.trigger == "columns" {
				db.Exec(t, `DROP TRIGGER "`+s.TriggerName()+`" ON t;
CREATE TRIGGER "`+s.TriggerName()+`" BEFORE INSERT OR UPDATE OF old, new ON t FOR EACH ROW
WHEN (NEW.new IS DISTINCT FROM NEW.old) EXECUTE FUNCTION "`+s.TriggerName()+`"()`)
			}
			if err := StartWith(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old", KeptBy: s.TriggerName()}, nil,
				StartOptions{RangeRows: 1500, BatchSize: 50}); err != nil {
				t.Fatal(err)
			}
			writes, stopWrites := new(atomic.Int64), func() {}
			if c.workload {
				writes, stopWrites = writeDuringBackfill(t, db, 7000, true)
			}
			var verifyBatches atomic.Int64
			var moved atomic.Bool
			p, err := Run(ctx, db.Pool, state, "c1", Options{Workers: 2, MinBatch: 20, MaxBatch: 100, Sleep: 2 * time.Millisecond,
				OnBatch: func(b Batch) {
					if b.Verify {
						verifyBatches.Add(1)
					}
					if b.Err != nil || b.Verify || !moved.CompareAndSwap(false, true) {
						return
					}
					if c.trigger == "disabled" {
						db.Exec(t, `ALTER TABLE t DISABLE TRIGGER "`+s.TriggerName()+`"`)
					}
					// The last row, not copied yet (ranges are taken in order),
					// moves behind the first range's cursor.
					db.Exec(t, `UPDATE t SET id = -1000000 WHERE id = 6000`)
				}})
			stopWrites()
			if err != nil {
				t.Fatal(err)
			}
			if !p.Verified {
				t.Fatalf("not verified: %+v", p)
			}
			if got := verifyBatches.Load() > 0; got != c.wantVerify {
				t.Fatalf("verification batches: %d, want them: %v (%+v)", verifyBatches.Load(), c.wantVerify, p)
			}
			if c.wantVerify && p.Fixed != 1 {
				t.Fatalf("the verification fixed %d rows, want the moved one (%+v)", p.Fixed, p)
			}
			if !c.wantVerify && p.Fixed != 0 {
				t.Fatalf("fixed %d rows without a verification pass (%+v)", p.Fixed, p)
			}
			if c.workload && writes.Load() < 100 {
				t.Fatalf("only %d writes during the backfill", writes.Load())
			}
			assertAllRight(t, db, "t", "new = old")
			t.Logf("%d writes during the backfill; %+v", writes.Load(), p)
		})
	}
}

package backfill

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/pgplanner/planner/phases"
)

// partitioned makes t range-partitioned on the second key column into
// three partitions and a default one, with rows in every one of them.
const partitioned = `CREATE TABLE t (a int, b int, old text, new text, PRIMARY KEY (a, b)) PARTITION BY RANGE (b);
CREATE TABLE t_p0 PARTITION OF t FOR VALUES FROM (0) TO (5);
CREATE TABLE t_p1 PARTITION OF t FOR VALUES FROM (5) TO (10);
CREATE TABLE t_p2 PARTITION OF t FOR VALUES FROM (10) TO (15);
CREATE TABLE t_def PARTITION OF t DEFAULT;
INSERT INTO t SELECT g, g % 20, 'v' || g FROM generate_series(1, 20000) g;
ANALYZE t_p0, t_p1, t_p2, t_def` // as autovacuum does: it never analyzes a partitioned parent

// A backfill through a partitioned parent: keyset batches on its primary
// key (which includes the partition key) cover every partition, and the
// verification checks them all.
func TestPartitionedTable(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, partitioned)
	countUpdates(t, db, "t", "new")
	if err := Start(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old"}, nil); err != nil {
		t.Fatal(err)
	}
	p, err := Run(ctx, db.Pool, state, "c1", Options{Workers: 2, MinBatch: 100, MaxBatch: 1000})
	if err != nil || !p.Verified || p.Rows != 20000 || p.Updated != 20000 {
		t.Fatalf("Run = %+v, %v", p, err)
	}
	assertAllRight(t, db, "t", "new = old AND n_updates = 1")
	for _, part := range []string{"t_p0", "t_p1", "t_p2", "t_def"} {
		if n := queryInt(t, db, "SELECT count(*) FROM "+part+" WHERE new = old"); n != 5000 {
			t.Errorf("%s: %d rows filled, want 5000", part, n)
		}
	}
}

// A big partitioned table is split from a sample, like a plain one: its
// row estimate is the sum over its partitions (the parent's own reltuples
// says nothing), not an exact walk of the whole key.
func TestPartitionedSampledSplit(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, partitioned)
	defer func(was float64) { exactSplitUpTo = was }(exactSplitUpTo)
	exactSplitUpTo = 1000
	if err := Start(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old"}, nil); err != nil {
		t.Fatal(err)
	}
	p, err := Get(ctx, db.Pool, state, "c1")
	if err != nil || p.Ranges < 8 || p.Ranges > 17 || p.Total != 20000 {
		t.Fatalf("Get = %+v, %v; want about 16 ranges and the estimate of 20000 rows", p, err)
	}
	p, err = Run(ctx, db.Pool, state, "c1", Options{Workers: 2})
	if err != nil || !p.Verified || p.Rows != 20000 {
		t.Fatalf("Run = %+v, %v", p, err)
	}
}

// A partitioned table's sync trigger is cloned onto every partition: the
// copy proves the ranges, unless the clone of one partition is disabled,
// which leaves the job to the verification pass.
func TestPartitionedTableKeptByItsTrigger(t *testing.T) {
	for _, disabled := range []bool{false, true} {
		db := newDB(t)
		ctx := context.Background()
		db.Exec(t, partitioned)
		installSync(t, db, "t", "old", "new")
		s := phases.Sync{ID: "test-t", Table: phases.TableRef{Name: "t"}, Old: "old", New: "new"}
		if disabled {
			db.Exec(t, `ALTER TABLE t_p1 DISABLE TRIGGER "`+s.TriggerName()+`"`)
		}
		if err := Start(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old", KeptBy: s.TriggerName()}, nil); err != nil {
			t.Fatal(err)
		}
		var verifyBatches atomic.Int64
		p, err := Run(ctx, db.Pool, state, "c1", Options{Workers: 2, MinBatch: 100, MaxBatch: 1000, OnBatch: func(b Batch) {
			if b.Verify {
				verifyBatches.Add(1)
			}
		}})
		if err != nil || !p.Verified || p.Rows != 20000 {
			t.Fatalf("Run = %+v, %v", p, err)
		}
		if got := verifyBatches.Load() > 0; got != disabled {
			t.Fatalf("one partition's trigger disabled: %v; verification batches %d", disabled, verifyBatches.Load())
		}
		assertAllRight(t, db, "t", "new = old")
	}
}

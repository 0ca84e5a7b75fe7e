package backfill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

const state = "planner"

// childEnv makes the test binary a backfill worker process (kill -9 and
// multi-process tests): "url|change|workers|sleep|application_name". The
// process prints "updated N" at the end: the rows its committed backfill
// batches changed.
const childEnv = "BACKFILL_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(child(spec))
	}
	os.Exit(pgtest.Main(m))
}

func child(spec string) int {
	parts := strings.Split(spec, "|")
	workers, _ := strconv.Atoi(parts[2])
	sleepFor, _ := time.ParseDuration(parts[3])
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(parts[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = parts[4]
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pool.Close()
	var updated atomic.Int64
	_, err = Run(ctx, pool, state, parts[1], Options{Workers: workers, Sleep: sleepFor, MaxBatch: 50, MinBatch: 10,
		Poll: 20 * time.Millisecond,
		OnBatch: func(b Batch) {
			if !b.Verify && b.Err == nil {
				updated.Add(b.Updated)
			}
		}})
	fmt.Printf("updated %d\n", updated.Load())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// childProcess is a running worker process.
type childProcess struct {
	*exec.Cmd
	out bytes.Buffer
}

// startChild runs a worker process whose connections carry the given
// application_name.
func startChild(t *testing.T, db *pgtest.DB, change string, workers int, sleepFor time.Duration, app string) *childProcess {
	t.Helper()
	c := &childProcess{Cmd: exec.Command(os.Args[0], "-test.run=^$")}
	c.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%d|%s|%s", childEnv, db.URL, change, workers, sleepFor, app))
	c.Stdout, c.Stderr = &c.out, os.Stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// killed waits for a SIGKILLed child to be gone from the server too: a
// batch whose COMMIT it had sent may still commit after the process died,
// so reading the state any earlier could see a batch half counted.
func (c *childProcess) killed(t *testing.T, db *pgtest.DB, app string) {
	t.Helper()
	c.Wait()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if queryInt(t, db, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backends of the killed %s are still there", app)
		}
	}
}

// updated is the rows the finished process says its batches changed.
func (c *childProcess) updated(t *testing.T) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscanf(c.out.String(), "updated %d", &n); err != nil {
		t.Fatalf("worker process output %q: %v", c.out.String(), err)
	}
	return n
}

// newDB is a fresh database with the state tables.
func newDB(t *testing.T) *pgtest.DB {
	t.Helper()
	db := pgtest.NewDB(t)
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := Migrate(ctx, tx, state); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, tx, state); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// countUpdates adds n_updates to the table, bumped whenever an update
// changes column col: the backfill must change every row exactly once.
func countUpdates(t *testing.T, db *pgtest.DB, table, col string) {
	t.Helper()
	db.Exec(t, fmt.Sprintf(`ALTER TABLE %[1]s ADD COLUMN n_updates int NOT NULL DEFAULT 0;
CREATE FUNCTION %[1]s_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.%[2]s IS DISTINCT FROM OLD.%[2]s THEN NEW.n_updates := OLD.n_updates + 1; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER %[1]s_count BEFORE UPDATE ON %[1]s FOR EACH ROW EXECUTE FUNCTION %[1]s_count()`, table, col))
}

// installSync installs the planner's sync trigger keeping new = old.
func installSync(t *testing.T, db *pgtest.DB, table, old, new string) {
	t.Helper()
	s := phases.Sync{ID: "test-" + table, Table: phases.TableRef{Name: table}, Old: old, New: new}
	for _, st := range s.Install() {
		db.Exec(t, st.SQL)
	}
}

func queryInt(t *testing.T, db *pgtest.DB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func assertAllRight(t *testing.T, db *pgtest.DB, table, check string) {
	t.Helper()
	if bad := queryInt(t, db, fmt.Sprintf(`SELECT count(*) FROM %s WHERE NOT coalesce(%s, false)`, table, check)); bad != 0 {
		t.Fatalf("%d rows of %s fail %s", bad, table, check)
	}
}

func TestNextSize(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		size     int
		took     time.Duration
		want     int
		lo, hi   int
		target   time.Duration
		describe string
	}{
		{"fast batch grows by at most 1.5x", 1000, 10 * ms, 1500, 10, 100_000, 150 * ms, ""},
		{"slightly fast grows proportionally", 1000, 120 * ms, 1250, 10, 100_000, 150 * ms, ""},
		{"on target stays", 1000, 150 * ms, 1000, 10, 100_000, 150 * ms, ""},
		{"slow batch shrinks by at most half", 1000, 2000 * ms, 500, 10, 100_000, 150 * ms, ""},
		{"clamped to max", 90_000, 10 * ms, 100_000, 10, 100_000, 150 * ms, ""},
		{"clamped to min", 12, 2000 * ms, 10, 10, 100_000, 150 * ms, ""},
		{"zero duration grows", 100, 0, 150, 10, 100_000, 150 * ms, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextSize(tt.size, tt.took, tt.target, tt.lo, tt.hi); got != tt.want {
				t.Fatalf("nextSize(%d, %v) = %d, want %d", tt.size, tt.took, got, tt.want)
			}
		})
	}
}

// TestAdaptToShortBatches: a batch cut short by its range's end adapts
// from its own rate; a tiny tail leaves the size alone.
func TestAdaptToShortBatches(t *testing.T) {
	o := Options{TargetBatch: 100 * time.Millisecond, MinBatch: 10, MaxBatch: 1_000_000}
	tests := []struct {
		name string
		size int
		rows int64
		took time.Duration
		want int
	}{
		{"full batch: proportional step", 1000, 1000, 50 * time.Millisecond, 1500},
		{"half batch at half the target: unchanged", 1000, 500, 50 * time.Millisecond, 1000},
		{"half batch, fast: grows at most 1.5x", 1000, 500, 10 * time.Millisecond, 1500},
		{"half batch, slow: shrinks at most half", 1000, 500, time.Second, 500},
		{"tiny tail: unchanged", 100_000, 300, time.Millisecond, 100_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := adapt(tt.size, tt.rows, tt.took, o); got != tt.want {
				t.Fatalf("adapt(%d, %d, %v) = %d, want %d", tt.size, tt.rows, tt.took, got, tt.want)
			}
		})
	}
}

// TestKeys backfills tables keyed in different ways, with four workers on
// two ranges (so that idle workers split them, at keys of every kind), and
// checks every row changed exactly once.
func TestKeys(t *testing.T) {
	tests := []struct {
		name  string
		ddl   string
		fill  string
		rows  int64
		key   []string
		check string
	}{
		{
			name: "bigint",
			ddl:  `CREATE TABLE t (id bigint PRIMARY KEY, old text, new text)`,
			fill: `INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3000) g`,
			rows: 3000,
		},
		{
			name: "composite",
			ddl:  `CREATE TABLE t (tenant int, seq text, old text, new text, PRIMARY KEY (tenant, seq))`,
			fill: `INSERT INTO t SELECT g % 7, 'k' || g, 'v' || g FROM generate_series(1, 3000) g`,
			rows: 3000,
		},
		{
			name: "text with awkward values",
			ddl:  `CREATE TABLE t (name text PRIMARY KEY, old text, new text)`,
			fill: `INSERT INTO t SELECT CASE g % 4 WHEN 0 THEN 'a b ' || g WHEN 1 THEN 'Ünï "' || g WHEN 2 THEN 'x,y)' || g ELSE '' || g END, 'v' || g FROM generate_series(1, 3000) g`,
			rows: 3000,
		},
		{
			name: "uuid",
			ddl:  `CREATE TABLE t (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), old text, new text)`,
			fill: `INSERT INTO t (old) SELECT 'v' || g FROM generate_series(1, 3000) g`,
			rows: 3000,
		},
		{
			name: "unique not null varchar, no primary key",
			ddl:  `CREATE TABLE t (code varchar(20) NOT NULL UNIQUE, old text, new text)`,
			fill: `INSERT INTO t SELECT 'c' || g, 'v' || g FROM generate_series(1, 3000) g`,
			rows: 3000,
		},
		{
			name: "timestamptz key given by the caller",
			ddl:  `CREATE TABLE t (at timestamptz NOT NULL, n int NOT NULL, old text, new text, PRIMARY KEY (n, at))`,
			fill: `INSERT INTO t SELECT '2024-01-01'::timestamptz + g * interval '1.5 seconds', g % 3, 'v' || g FROM generate_series(1, 3000) g`,
			rows: 3000,
			key:  []string{"at", "n"},
		},
		{
			name: "empty",
			ddl:  `CREATE TABLE t (id bigint PRIMARY KEY, old text, new text)`,
			rows: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newDB(t)
			ctx := context.Background()
			db.Exec(t, tt.ddl)
			if tt.fill != "" {
				db.Exec(t, tt.fill)
			}
			countUpdates(t, db, "t", "new")
			work := phases.Backfill{Table: "t", Column: "new", Expr: `upper("old")`}
			if err := StartWith(ctx, db.Pool, state, "c1", work, tt.key, StartOptions{RangeRows: 1500, BatchSize: 50}); err != nil {
				t.Fatal(err)
			}
			// An idle worker's split, on this key type: deterministic here
			// (no batch in flight); Run below must still do every row once.
			if tt.rows > 0 {
				r, err := newRunner(ctx, db.Pool, state, "c1", Options{}.withDefaults())
				if err != nil {
					t.Fatal(err)
				}
				if ok, err := r.split(ctx); !ok || err != nil {
					t.Fatalf("split: %v, %v", ok, err)
				}
				if p, _ := Get(ctx, db.Pool, state, "c1"); p.Ranges != 3 {
					t.Fatalf("%d ranges after a split of 2", p.Ranges)
				}
			}
			// Workers whose sessions print dates and times differently
			// from Start's: cursor text must not depend on it.
			cfg, err := pgxpool.ParseConfig(db.URL)
			if err != nil {
				t.Fatal(err)
			}
			cfg.ConnConfig.RuntimeParams["datestyle"] = "SQL, DMY"
			cfg.ConnConfig.RuntimeParams["timezone"] = "Asia/Kolkata"
			odd, err := pgxpool.NewWithConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer odd.Close()
			var calls atomic.Int32
			p, err := Run(ctx, odd, state, "c1", Options{Workers: 4, MinBatch: 10, MaxBatch: 150, Poll: 10 * time.Millisecond,
				Progress: func(Progress) { calls.Add(1) }, ProgressEvery: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if !p.Done || !p.Verified || p.Phase != "verified" || p.Rows != tt.rows || p.Total != tt.rows || p.Updated != tt.rows || p.VerifiedRows != tt.rows || p.Fixed != 0 {
				t.Fatalf("progress = %+v, want %d rows done, updated and verified", p, tt.rows)
			}
			if calls.Load() == 0 {
				t.Fatal("progress callback never called")
			}
			assertAllRight(t, db, "t", `new = upper(old) AND n_updates = 1`)
			// Running again finds nothing to do.
			if p, err := Run(ctx, db.Pool, state, "c1", Options{}); err != nil || p.Updated != tt.rows {
				t.Fatalf("second run: %+v, %v", p, err)
			}
		})
	}
}

// TestSampledSplit splits a table (big for Start: the threshold is
// lowered) at quantiles of a sample instead of walking its index.
func TestSampledSplit(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (a int, b text, old text, new text, PRIMARY KEY (a, b));
INSERT INTO t SELECT g % 13, 'k' || g, 'v' || g FROM generate_series(1, 20000) g;
ANALYZE t`)
	countUpdates(t, db, "t", "new")
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
	assertAllRight(t, db, "t", "new = old AND n_updates = 1")
}

func TestNoKeyIsRefused(t *testing.T) {
	db := newDB(t)
	db.Exec(t, `CREATE TABLE t (id int, old text, new text); CREATE UNIQUE INDEX ON t (id)`) // nullable: no key
	err := Start(context.Background(), db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old"}, nil)
	if !errors.Is(err, ErrNoKey) {
		t.Fatalf("err = %v, want ErrNoKey", err)
	}
	if _, err := Get(context.Background(), db.Pool, state, "c1"); !errors.Is(err, ErrNoJob) {
		t.Fatalf("job created for a table without key: %v", err)
	}
}

// TestGivenKeyMustStillBeUnique: the key recorded at registration is
// checked again at Start; once its index is gone, paging on it is refused.
func TestGivenKeyMustStillBeUnique(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, code text NOT NULL, old text, new text);
CREATE UNIQUE INDEX t_code ON t (code); INSERT INTO t SELECT g, 'c' || g, 'v' || g FROM generate_series(1, 100) g`)
	work := phases.Backfill{Table: "t", Column: "new", Expr: "old"}
	db.Exec(t, `DROP INDEX t_code`)
	for _, key := range [][]string{{"code"}, {"id", "code"}, {"old"}} {
		if err := Start(ctx, db.Pool, state, "c1", work, key); !errors.Is(err, ErrNoKey) {
			t.Errorf("key %v: err = %v, want ErrNoKey", key, err)
		}
	}
	if err := Start(ctx, db.Pool, state, "c1", work, []string{"id"}); err != nil {
		t.Fatalf("key (id), the primary key: %v", err)
	}
}

func TestStartIsIdempotentAndResetForgets(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE SCHEMA app; CREATE TABLE app."Odd ""T""" (id int PRIMARY KEY, "Old" text, "New" text);
INSERT INTO app."Odd ""T""" SELECT g, 'v' || g FROM generate_series(1, 1000) g`)
	work := phases.Backfill{Schema: "app", Table: `Odd "T"`, Column: "New", Expr: `"Old"`}
	if _, err := Get(ctx, db.Pool, state, "c1"); !errors.Is(err, ErrNoJob) {
		t.Fatalf("Get before Start: %v", err)
	}
	for range 2 {
		if err := StartWith(ctx, db.Pool, state, "c1", work, nil, StartOptions{RangeRows: 300}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := Get(ctx, db.Pool, state, "c1")
	if err != nil || p.Ranges != 4 || p.Total != 1000 || p.Table != `app.Odd "T"` || p.Phase != "backfill" {
		t.Fatalf("Get = %+v, %v; want 4 ranges of 1000 rows", p, err)
	}
	all, err := List(ctx, db.Pool, state)
	if err != nil || len(all) != 1 {
		t.Fatalf("List = %v, %v", all, err)
	}
	if _, err := Run(ctx, db.Pool, state, "c1", Options{}); err != nil {
		t.Fatal(err)
	}
	assertAllRight(t, db, `app."Odd ""T"""`, `"New" = "Old"`)
	if err := Reset(ctx, db.Pool, state, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := Get(ctx, db.Pool, state, "c1"); !errors.Is(err, ErrNoJob) {
		t.Fatalf("Get after Reset: %v", err)
	}
	if err := Reset(ctx, db.Pool, state, "c1"); err != nil {
		t.Fatalf("second Reset: %v", err)
	}
	if err := Pause(ctx, db.Pool, state, "c1"); !errors.Is(err, ErrNoJob) {
		t.Fatalf("Pause of no job: %v", err)
	}
	if all, err := List(ctx, db.Pool, "no_such_schema"); err != nil || len(all) != 0 {
		t.Fatalf("List without state tables: %v, %v", all, err)
	}
}

// TestWritesDuringBackfill inserts, updates (old-app and new-app style) and
// deletes rows while the backfill runs with the planner's sync trigger:
// every row is right at the end.
func TestWritesDuringBackfill(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id bigserial PRIMARY KEY, old text, other int);
INSERT INTO t (old, other) SELECT 'v' || g, g FROM generate_series(1, 8000) g;
ALTER TABLE t ADD COLUMN new text`)
	installSync(t, db, "t", "old", "new")
	if err := StartWith(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old"}, nil,
		StartOptions{RangeRows: 2000, BatchSize: 50}); err != nil {
		t.Fatal(err)
	}
	writes, stopWrites := writeDuringBackfill(t, db, 9000, false)
	p, err := Run(ctx, db.Pool, state, "c1", Options{Workers: 2, MinBatch: 20, MaxBatch: 100, Sleep: 2 * time.Millisecond})
	stopWrites()
	if err != nil {
		t.Fatal(err)
	}
	if !p.Verified || writes.Load() < 100 {
		t.Fatalf("progress %+v after %d writes", p, writes.Load())
	}
	assertAllRight(t, db, "t", "new = old")
	t.Logf("%d writes during the backfill; %+v", writes.Load(), p)
}

// TestKillAndResume kills a worker process with SIGKILL in the middle of
// the backfill; a rerun finishes with every row changed exactly once.
func TestKillAndResume(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, old text, new text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20000) g`)
	countUpdates(t, db, "t", "new")
	if err := StartWith(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old || '!'"}, nil,
		StartOptions{RangeRows: 5000, BatchSize: 50}); err != nil {
		t.Fatal(err)
	}
	cmd := startChild(t, db, "c1", 2, 5*time.Millisecond, "backfill-killed")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, err := Get(ctx, db.Pool, state, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if p.Rows >= 2000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child made no progress: %+v", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.killed(t, db, "backfill-killed")
	mid, err := Get(ctx, db.Pool, state, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if mid.Done || mid.Rows >= 20000 {
		t.Fatalf("child finished before the kill: %+v", mid)
	}
	if done := queryInt(t, db, `SELECT count(*) FROM t WHERE n_updates = 1`); done != mid.Rows {
		t.Fatalf("after kill: %d rows changed, cursor says %d", done, mid.Rows)
	}
	p, err := Run(ctx, db.Pool, state, "c1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Verified || p.Rows != 20000 || p.Updated != 20000 {
		t.Fatalf("after resume: %+v", p)
	}
	assertAllRight(t, db, "t", `new = old || '!' AND n_updates = 1`)
	t.Logf("killed at %d rows, resumed to %d", mid.Rows, p.Rows)
}

// TestProcessesShareOneBackfill runs two processes of two workers each
// and two goroutines here on one job. Every connection says who it is
// (application_name) and a trigger writes that into each row it changes:
// each process did rows, each did exactly the rows it reports, and every
// row was changed exactly once.
func TestProcessesShareOneBackfill(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, old text, new text, worker text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20000) g`)
	countUpdates(t, db, "t", "new")
	db.Exec(t, `CREATE FUNCTION who() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.worker := current_setting('application_name'); RETURN NEW; END $$;
CREATE TRIGGER who BEFORE UPDATE OF new ON t FOR EACH ROW EXECUTE FUNCTION who()`)
	if err := StartWith(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old"}, nil,
		StartOptions{RangeRows: 1000, BatchSize: 50}); err != nil {
		t.Fatal(err)
	}
	// Paused until both processes are up, so that neither finds the work
	// done before it starts.
	if err := Pause(ctx, db.Pool, state, "c1"); err != nil {
		t.Fatal(err)
	}
	a := startChild(t, db, "c1", 2, 2*time.Millisecond, "backfill-a")
	b := startChild(t, db, "c1", 2, 2*time.Millisecond, "backfill-b")
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		up := queryInt(t, db, `SELECT count(DISTINCT application_name) FROM pg_stat_activity
WHERE datname = current_database() AND application_name IN ('backfill-a', 'backfill-b')`)
		if up == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 worker processes connected", up)
		}
	}
	if err := Resume(ctx, db.Pool, state, "c1"); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "backfill-here"
	here, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	var hereUpdated atomic.Int64
	p, err := Run(ctx, here, state, "c1", Options{Workers: 2, MaxBatch: 50, MinBatch: 10, Sleep: 2 * time.Millisecond,
		OnBatch: func(b Batch) {
			if !b.Verify && b.Err == nil {
				hereUpdated.Add(b.Updated)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err != nil {
		t.Fatalf("process a: %v", err)
	}
	if err := b.Wait(); err != nil {
		t.Fatalf("process b: %v", err)
	}
	if !p.Verified {
		t.Fatalf("progress %+v", p)
	}
	assertAllRight(t, db, "t", `new = old AND n_updates = 1`)
	rows, err := db.Pool.Query(ctx, `SELECT coalesce(worker, '(none)'), count(*) FROM t GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	byWorker := map[string]int64{}
	for rows.Next() {
		var w string
		var n int64
		if err := rows.Scan(&w, &n); err != nil {
			t.Fatal(err)
		}
		byWorker[w] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("rows changed by each process: %v", byWorker)
	reported := map[string]int64{"backfill-a": a.updated(t), "backfill-b": b.updated(t), "backfill-here": hereUpdated.Load()}
	var sum int64
	for w, n := range byWorker {
		if _, ok := reported[w]; !ok {
			t.Errorf("%d rows changed by %q, not one of the workers", n, w)
		}
		sum += n
	}
	for w, n := range reported {
		if byWorker[w] != n {
			t.Errorf("%s reports %d rows changed, the table says %d", w, n, byWorker[w])
		}
	}
	if byWorker["backfill-a"] == 0 || byWorker["backfill-b"] == 0 {
		t.Errorf("a worker process did no rows: %v", byWorker)
	}
	if sum != 20000 {
		t.Errorf("%d rows changed in all, want 20000", sum)
	}
	final, _ := Get(ctx, db.Pool, state, "c1")
	if final.Rows != 20000 || final.Updated != 20000 {
		t.Fatalf("rows counted %d, updated %d, want 20000", final.Rows, final.Updated)
	}
}

func TestPauseAndResume(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, old text, new text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5000) g`)
	if err := StartWith(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old"}, nil,
		StartOptions{BatchSize: 20}); err != nil {
		t.Fatal(err)
	}
	if err := Pause(ctx, db.Pool, state, "c1"); err != nil {
		t.Fatal(err)
	}
	// A paused job: StopWhenPaused returns at once.
	if _, err := Run(ctx, db.Pool, state, "c1", Options{StopWhenPaused: true}); !errors.Is(err, ErrPaused) {
		t.Fatalf("Run on a paused job = %v, want ErrPaused", err)
	}
	if err := Resume(ctx, db.Pool, state, "c1"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var final Progress
	go func() {
		var err error
		final, err = Run(ctx, db.Pool, state, "c1", Options{MinBatch: 20, MaxBatch: 20, Sleep: 5 * time.Millisecond, Poll: 20 * time.Millisecond})
		done <- err
	}()
	waitRows := func(n int64) Progress {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
			p, err := Get(ctx, db.Pool, state, "c1")
			if err != nil {
				t.Fatal(err)
			}
			if p.Rows >= n {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("stuck at %+v", p)
			}
		}
	}
	waitRows(200)
	if err := Pause(ctx, db.Pool, state, "c1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the batch in flight commit
	before, _ := Get(ctx, db.Pool, state, "c1")
	time.Sleep(300 * time.Millisecond)
	after, _ := Get(ctx, db.Pool, state, "c1")
	if !after.Paused || after.Rows != before.Rows || after.Done {
		t.Fatalf("paused job advanced: %d → %d rows (%+v)", before.Rows, after.Rows, after)
	}
	if err := Resume(ctx, db.Pool, state, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !final.Verified || final.Paused {
		t.Fatalf("after resume: %+v", final)
	}
	assertAllRight(t, db, "t", "new = old")
}

// TestBatchSizeAdapts starts tiny batches with a generous target: sizes
// grow, by at most 1.5× a step.
func TestBatchSizeAdapts(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, old text, new text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 30000) g`)
	if err := StartWith(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old"}, nil,
		StartOptions{BatchSize: 10}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sizes []int
	_, err := Run(ctx, db.Pool, state, "c1", Options{Workers: 1, MinBatch: 10, TargetBatch: 100 * time.Millisecond,
		OnBatch: func(b Batch) {
			mu.Lock()
			defer mu.Unlock()
			if !b.Verify && b.Err == nil {
				sizes = append(sizes, b.Size)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) < 3 || sizes[0] != 10 {
		t.Fatalf("sizes %v", sizes)
	}
	top := 0
	for i := 1; i < len(sizes); i++ {
		if float64(sizes[i]) > 1.5*float64(sizes[i-1])+1 {
			t.Fatalf("size jumped %d → %d: %v", sizes[i-1], sizes[i], sizes)
		}
		top = max(top, sizes[i])
	}
	if top < 200 {
		t.Fatalf("batch size did not grow toward the target: %v", sizes)
	}
	t.Logf("batch sizes: %v", sizes)
}

// TestVerificationFixesRowsMadeWrong spoils rows already backfilled, with
// no trigger to keep them right: verification finds and fixes them.
func TestVerificationFixesRowsMadeWrong(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, old text, new text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3000) g`)
	if err := StartWith(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old"}, nil,
		StartOptions{BatchSize: 100}); err != nil {
		t.Fatal(err)
	}
	var spoiled atomic.Bool
	p, err := Run(ctx, db.Pool, state, "c1", Options{MinBatch: 100, MaxBatch: 100,
		OnBatch: func(b Batch) {
			if b.Verify || b.Err != nil || !spoiled.CompareAndSwap(false, true) {
				return
			}
			// Behind the backfill's back: rows it already did.
			if _, err := db.Pool.Exec(ctx, `UPDATE t SET new = 'wrong' WHERE id IN (1, 50)`); err != nil {
				t.Error(err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Verified || p.Fixed != 2 {
		t.Fatalf("progress %+v, want 2 rows fixed", p)
	}
	assertAllRight(t, db, "t", "new = old")
}

// TestBatchOverItsCapIsCancelledAndRetriedSmaller makes the first 200 rows
// slow (3ms each time their value is computed): a batch of 400 rows, 200 or
// 100 runs far past its cap (MaxAppWait 300ms), the server cancels it, and it is retried
// at once (no backoff: Poll is long) with half the rows until batches fit,
// without counting against MaxRetries; every row is changed exactly once.
func TestBatchOverItsCapIsCancelledAndRetriedSmaller(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, old text, new text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2000) g`)
	countUpdates(t, db, "t", "new")
	db.Exec(t, `CREATE FUNCTION slow(id int, v text) RETURNS text LANGUAGE sql VOLATILE AS $$
SELECT CASE WHEN id <= 200 THEN v || left(pg_sleep(0.003)::text, 0) ELSE v END $$`)
	if err := StartWith(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "slow(id, old)"}, nil,
		StartOptions{BatchSize: 400, RangeRows: 1000}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var failed, small []Batch
	var failedAt time.Time   // the report of the last batch, when it failed
	var gaps []time.Duration // from a failed batch's report to the next one's start
	p, err := Run(ctx, db.Pool, state, "c1", Options{Workers: 1, MinBatch: 10, MaxBatch: 400, MaxAppWait: 300 * time.Millisecond,
		// Fewer retries than the cancellations in a row: those that shrink
		// the batch are not failures.
		Poll: 2 * time.Second, MaxRetries: 2,
		OnBatch: func(b Batch) {
			mu.Lock()
			defer mu.Unlock()
			now := time.Now()
			if !failedAt.IsZero() {
				gaps = append(gaps, now.Add(-b.Elapsed).Sub(failedAt))
			}
			failedAt = time.Time{}
			if b.Err != nil {
				failedAt = now
			}
			switch {
			case b.Err != nil:
				failed = append(failed, b)
			case !b.Verify && b.Range == 0 && b.Size < 100:
				small = append(small, b)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	// The first batch of the slow range (400 rows) is cancelled, and each
	// retry has at most half the rows of the one before (fewer when the
	// cancelled batches show a higher cost per row, as on a busy machine).
	var slow []Batch
	for _, b := range failed {
		if !b.Verify && b.Range == 0 {
			slow = append(slow, b)
		}
	}
	if len(slow) < 2 || slow[0].Size != 400 {
		t.Fatalf("failed batches %+v, want the 400-row batch cancelled, then smaller ones", failed)
	}
	for i := 1; i < len(slow); i++ {
		if slow[i].Size > slow[i-1].Size/2 {
			t.Fatalf("failed batches %+v: a retry of %d rows after a cancelled one of %d, want at most half", failed, slow[i].Size, slow[i-1].Size)
		}
	}
	for _, b := range slow {
		if !strings.Contains(b.Err.Error(), "statement timeout") || !strings.Contains(b.Err.Error(), "ran past its cap") {
			t.Fatalf("batch error %v, want a cancellation at the cap", b.Err)
		}
	}
	if len(small) == 0 {
		t.Fatalf("no batch under 100 rows committed in the slow range; failed %+v", failed)
	}
	for _, g := range gaps {
		if g > time.Second {
			t.Fatalf("a batch began %s after the cancelled one before it, want at once (a backoff would be 2s or more); gaps %v", g, gaps)
		}
	}
	if !p.Verified || p.Updated != 2000 {
		t.Fatalf("progress %+v", p)
	}
	assertAllRight(t, db, "t", "new = old AND n_updates = 1")
}

// TestBackfillDoesNotWaitForApplicationLocks: an application transaction
// holds the lock of one row (and changes it) for as long as it takes the
// backfill to do every other row; the backfill goes past it (after waiting
// rowLockWait once, no batch failing),
// is not done while the row is left, and comes back for it once the
// transaction commits: the row is right, changed once by the backfill, and
// not by the verification pass. With a plain key and a composite one.
func TestBackfillDoesNotWaitForApplicationLocks(t *testing.T) {
	for _, tc := range []struct{ name, ddl, held string }{
		{"int key", `CREATE TABLE t (id int PRIMARY KEY, old text, new text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 3000) g`, "id = 1500"},
		{"composite key", `CREATE TABLE t (id int, k text, old text, new text, PRIMARY KEY (k, id));
INSERT INTO t SELECT g, 'k' || (g % 7), 'v' || g FROM generate_series(1, 3000) g`, "k = 'k2' AND id = 1500"},
	} {
		t.Run(tc.name, func(t *testing.T) { backfillPastHeldRow(t, tc.ddl, tc.held) })
	}
}

func backfillPastHeldRow(t *testing.T, ddl, held string) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, ddl)
	countUpdates(t, db, "t", "new")
	if err := StartWith(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old || '!'"}, nil,
		StartOptions{BatchSize: 100, RangeRows: 1000}); err != nil {
		t.Fatal(err)
	}
	holder, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if tag, err := holder.Exec(ctx, `UPDATE t SET old = 'held' WHERE `+held); err != nil || tag.RowsAffected() != 1 {
		t.Fatal(tag, err)
	}
	var failures, skipped atomic.Int64
	done := make(chan error, 1)
	var final Progress
	go func() {
		// A bound well above these batches' time: a batch cancelled at its
		// cap on a busy test machine is no failure this test is about.
		p, err := Run(ctx, db.Pool, state, "c1", Options{Workers: 2, MinBatch: 50, MaxBatch: 100,
			Poll: 20 * time.Millisecond, LockTimeout: 100 * time.Millisecond, MaxAppWait: 500 * time.Millisecond,
			OnBatch: func(b Batch) {
				if b.Err != nil {
					failures.Add(1)
				}
				if !b.Revisit {
					skipped.Add(b.Skipped)
				}
			}})
		final = p
		done <- err
	}()
	// Every other row is done while the transaction is open.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if queryInt(t, db, `SELECT count(*) FROM t WHERE new IS NOT DISTINCT FROM old || '!'`) == 2999 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the backfill did not get past the locked row")
		}
	}
	time.Sleep(300 * time.Millisecond) // a few revisits find the row still locked
	p, err := Get(ctx, db.Pool, state, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Done || p.RangesDone != p.Ranges-1 {
		t.Fatalf("with a row left, progress %+v: want its range not done", p)
	}
	if failures.Load() != 0 || skipped.Load() != 1 {
		t.Fatalf("%d batches failed, %d rows skipped: want none failed, the held row skipped", failures.Load(), skipped.Load())
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !final.Verified || final.Fixed != 0 || final.Updated != 3000 {
		t.Fatalf("progress %+v: want verified, every row updated by the backfill, none fixed", final)
	}
	assertAllRight(t, db, "t", "new = old || '!' AND n_updates = 1")
	if v := queryInt(t, db, `SELECT count(*) FROM t WHERE new = 'held!' AND `+held); v != 1 {
		t.Fatal("the held row does not have the value computed from the application's write")
	}
}

// TestLostConnectionsAreRetried terminates the backends of batches in
// flight (as a failover or an administrator would): the batches roll back,
// are retried, and every row is changed exactly once.
func TestLostConnectionsAreRetried(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, old text, new text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10000) g`)
	countUpdates(t, db, "t", "new")
	// Slow batches (50ms each), so that there is one in flight to terminate.
	db.Exec(t, `CREATE FUNCTION slow(id int, v text) RETURNS text LANGUAGE sql VOLATILE AS $$
SELECT CASE WHEN id % 500 = 0 THEN v || left(pg_sleep(0.05)::text, 0) ELSE v END $$`)
	if err := StartWith(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "slow(id, old)"}, nil,
		StartOptions{BatchSize: 500}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var killed atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		for killed.Load() < 2 {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var n int32
			err := db.Pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid))::int FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE '%WITH bound AS%'`).Scan(&n)
			if err != nil {
				t.Error(err)
				return
			}
			killed.Add(n)
		}
	})
	var failed atomic.Int32
	// Fixed-size batches cannot shrink: a bound they fit in on a busy test
	// machine, so that only the lost connections fail batches.
	p, err := Run(ctx, db.Pool, state, "c1", Options{Workers: 2, MinBatch: 500, MaxBatch: 500, Poll: 10 * time.Millisecond, MaxAppWait: time.Second,
		OnBatch: func(b Batch) {
			if b.Err != nil {
				failed.Add(1)
			}
		}})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if killed.Load() == 0 || failed.Load() == 0 || !p.Verified {
		t.Fatalf("terminated %d backends, %d batches failed; progress %+v", killed.Load(), failed.Load(), p)
	}
	assertAllRight(t, db, "t", "new = old AND n_updates = 1")
	t.Logf("terminated %d backends, %d batches retried", killed.Load(), failed.Load())
}

// TestRetriesGiveUp: a lock held for good makes Run fail after MaxRetries.
func TestRetriesGiveUp(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, old text, new text); INSERT INTO t VALUES (1, 'a')`)
	if err := Start(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old"}, nil); err != nil {
		t.Fatal(err)
	}
	holder, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, `SELECT * FROM t FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	_, err = Run(ctx, db.Pool, state, "c1", Options{MaxRetries: 2, LockTimeout: 20 * time.Millisecond, Poll: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "lock timeout") {
		t.Fatalf("err = %v, want a lock timeout after retries", err)
	}
}

// TestRowChangedUnderABatchGetsItsNewValue: an application commits a new
// value in a row after a batch's statement began but before the batch
// reached (and locked) it; the batch writes the value computed from the
// row as the application left it, so verification has nothing to fix.
func TestRowChangedUnderABatchGetsItsNewValue(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, old text, new text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g`)
	// Row 1 takes 300ms each time its value is computed: the batch's
	// statement is still at row 1 when the application writes row 2.
	db.Exec(t, `CREATE FUNCTION slow(id int, v text) RETURNS text LANGUAGE sql VOLATILE AS $$
SELECT CASE WHEN id = 1 THEN v || left(pg_sleep(0.3)::text, 0) ELSE v END || '!' $$`)
	if err := StartWith(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "slow(id, old)"}, nil,
		StartOptions{BatchSize: 100}); err != nil {
		t.Fatal(err)
	}
	written := make(chan error, 1)
	var once sync.Once
	p, err := Run(ctx, db.Pool, state, "c1", Options{MaxAppWait: 5 * time.Second, MinBatch: 100,
		Progress: func(Progress) {
			once.Do(func() {
				go func() {
					time.Sleep(100 * time.Millisecond)
					_, err := db.Pool.Exec(ctx, `UPDATE t SET old = 'changed' WHERE id = 2`)
					written <- err
				}()
			})
		}, ProgressEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if !p.Verified || p.Fixed != 0 {
		t.Fatalf("progress %+v: want verified with nothing to fix", p)
	}
	assertAllRight(t, db, "t", "new = old || '!'")
}

// writeDuringBackfill runs three application writers on table t (id, old,
// other, new) until the returned stop is called: inserts, old-app and
// new-app updates, updates of neither column, and deletes, over ids below
// ids; moveKeys adds updates of the key that move a row behind every
// cursor. writes counts the statements that ran.
func writeDuringBackfill(t *testing.T, db *pgtest.DB, ids int, moveKeys bool) (writes *atomic.Int64, stop func()) {
	t.Helper()
	statements := []string{
		`INSERT INTO t (old, other) VALUES ('ins' || $1::int, 0)`,
		`UPDATE t SET old = 'upd-old' || $1::int WHERE id = $1`,                             // old app
		`UPDATE t SET new = 'upd-new' || $1::int, old = 'upd-new' || $1::int WHERE id = $1`, // new app
		`UPDATE t SET other = other + 1 WHERE id = $1`,                                      // neither column
		`DELETE FROM t WHERE id = $1 AND id % 3 = 0`,
	}
	if moveKeys {
		statements = append(statements, `UPDATE t SET id = -id WHERE id = $1 AND id > 0`)
	}
	writes = new(atomic.Int64)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				id := (i*7919 + w*104729) % ids
				if _, err := db.Pool.Exec(context.Background(), statements[i%len(statements)], id); err != nil {
					t.Errorf("workload: %v", err)
					return
				}
				writes.Add(1)
			}
		})
	}
	return writes, func() { close(done); wg.Wait() }
}

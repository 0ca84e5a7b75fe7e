package backfill

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

// replicated is a primary of its own with a streaming standby (the shared
// test cluster's other tests must not see a replica), its state tables
// migrated, and a connection to the standby.
type replicated struct {
	db      *pgtest.DB // the primary's postgres database
	standby *pgtest.Standby
	replica *pgx.Conn
}

func startReplicated(t *testing.T) *replicated {
	t.Helper()
	ctx := context.Background()
	primary, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(primary.Stop)
	standby, err := pgtest.StartStandby(primary)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(standby.Stop)
	pool, err := pgxpool.New(ctx, primary.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	replica, err := pgx.Connect(ctx, standby.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replica.Close(context.Background()) })
	db := &pgtest.DB{URL: primary.URL("postgres"), Name: "postgres", Pool: pool}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := Migrate(ctx, tx, state); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return &replicated{db: db, standby: standby, replica: replica}
}

// job creates table name with rows rows, wide enough that a second of
// batches writes well over 64kB of WAL, and its backfill job.
func (r *replicated) job(t *testing.T, name string, rows int) {
	t.Helper()
	r.db.Exec(t, `CREATE TABLE `+name+` (id int PRIMARY KEY, old text, new text)`)
	r.db.Exec(t, `INSERT INTO `+name+` SELECT g, repeat('x', 100) || g FROM generate_series(1, $1::int) g`, rows)
	if err := Start(context.Background(), r.db.Pool, state, name, phases.Backfill{Table: name, Column: "new", Expr: "old"}, nil); err != nil {
		t.Fatal(err)
	}
}

// caughtUp waits until the standby has replayed all the primary wrote.
func (r *replicated) caughtUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var caughtUp bool
		if err := r.db.Pool.QueryRow(context.Background(), `SELECT coalesce(bool_and(replay_lsn >= pg_current_wal_flush_lsn()), false)
FROM pg_stat_replication WHERE application_name = $1`, r.standby.Name).Scan(&caughtUp); err != nil {
			t.Fatal(err)
		}
		if caughtUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("standby never caught up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *replicated) replay(t *testing.T, fn string) {
	t.Helper()
	if _, err := r.replica.Exec(context.Background(), `SELECT `+fn+`()`); err != nil {
		t.Fatal(err)
	}
}

// slowly makes a backfill last seconds: 300 rows per batch, 100ms between
// batches, so that it is still running when the lag checks (once a
// second) see the replica behind.
func slowly(o Options) Options {
	o.MinBatch, o.MaxBatch, o.Sleep, o.Poll = 300, 300, 100*time.Millisecond, 20*time.Millisecond
	o.ProgressEvery = 20 * time.Millisecond
	return o
}

// running is a backfill in a goroutine and the progress it reported.
type running struct {
	done      chan error
	throttled chan Progress // the first progress that waits for replicas
}

func runInBackground(r *replicated, change string, o Options) *running {
	run := &running{done: make(chan error, 1), throttled: make(chan Progress, 1)}
	var once sync.Once
	o.Progress = func(p Progress) {
		if p.Throttled {
			once.Do(func() { run.throttled <- p })
		}
	}
	go func() {
		_, err := Run(context.Background(), r.db.Pool, state, change, o)
		run.done <- err
	}()
	return run
}

// waitThrottled returns the first progress that says the backfill waits
// for replicas, failing if the backfill ends first.
func (run *running) waitThrottled(t *testing.T) Progress {
	t.Helper()
	select {
	case p := <-run.throttled:
		return p
	case err := <-run.done:
		t.Fatalf("backfill ended without waiting for the paused standby: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("backfill never waited for the paused standby")
	}
	return Progress{}
}

func (run *running) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-run.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("backfill did not finish after the replica caught up")
	}
}

// assertStalls shows that no batch commits while the backfill waits.
func assertStalls(t *testing.T, db *pgtest.DB, change string) Progress {
	t.Helper()
	ctx := context.Background()
	time.Sleep(100 * time.Millisecond) // a batch in flight in another worker
	before, err := Get(ctx, db.Pool, state, change)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	after, err := Get(ctx, db.Pool, state, change)
	if err != nil {
		t.Fatal(err)
	}
	if after.Rows != before.Rows || after.Done {
		t.Fatalf("backfill went on while the standby lags: %d → %d rows", before.Rows, after.Rows)
	}
	return after
}

// TestReplicaLagPausesBackfill pauses replay on a real standby: the
// backfill waits once the standby is behind by more than a limit, says
// why (in Run's progress and in the job, as status reads it), and
// finishes once replay resumes, the standby holding the same rows.
func TestReplicaLagPausesBackfill(t *testing.T) {
	r := startReplicated(t)

	t.Run("bytes", func(t *testing.T) {
		r.job(t, "by_bytes", 4500)
		r.caughtUp(t)
		r.replay(t, "pg_wal_replay_pause")
		run := runInBackground(r, "by_bytes", slowly(Options{MaxReplicaLagBytes: 64 << 10, MaxReplicaLag: time.Hour}))
		p := run.waitThrottled(t)
		want := "replica " + r.standby.Name + " is "
		if p.Rows == 0 || p.Rows >= p.Total || !strings.Contains(p.ThrottledBy, want) || !strings.HasSuffix(p.ThrottledBy, "behind (limit 64 kB)") {
			t.Fatalf("progress while throttled: %d/%d rows, %q; want some of the rows done and %q…behind (limit 64 kB)", p.Rows, p.Total, p.ThrottledBy, want)
		}
		status := assertStalls(t, r.db, "by_bytes")
		if s := status.Summary(); !strings.Contains(s, "waiting for replicas to catch up: "+want) {
			t.Fatalf("status says %q, want why it waits", s)
		}
		r.replay(t, "pg_wal_replay_resume")
		run.wait(t)
		assertCaughtUp(t, r, "by_bytes")
	})

	// replay_lag alone would stop this one late: while replay is paused it
	// stays at a stale value for a while. The replay position that does
	// not move while WAL waits makes the lag count from the first check
	// that saw it; replay pauses before the table is written, so that is
	// the backfill's first check, and the second (a second later) waits.
	t.Run("time", func(t *testing.T) {
		r.replay(t, "pg_wal_replay_pause")
		r.job(t, "by_time", 4500)
		run := runInBackground(r, "by_time", slowly(Options{MaxReplicaLag: time.Second, MaxReplicaLagBytes: -1}))
		p := run.waitThrottled(t)
		if p.Rows == 0 || p.Rows >= p.Total || !strings.Contains(p.ThrottledBy, "replica "+r.standby.Name+" replays ") || !strings.HasSuffix(p.ThrottledBy, "behind (limit 1s)") {
			t.Fatalf("progress while throttled: %d/%d rows, %q", p.Rows, p.Total, p.ThrottledBy)
		}
		assertStalls(t, r.db, "by_time")
		r.replay(t, "pg_wal_replay_resume")
		run.wait(t)
		assertCaughtUp(t, r, "by_time")
	})
}

// TestReplicaLagNeedsPgMonitor runs a backfill as a role that cannot see
// the standby's positions in pg_stat_replication: rather than take the
// hidden lag for none, it stops before its first batch and says what to
// grant; with pg_monitor granted it runs.
func TestReplicaLagNeedsPgMonitor(t *testing.T) {
	r := startReplicated(t)
	ctx := context.Background()
	r.job(t, "t", 1000)
	r.db.Exec(t, `CREATE ROLE backfiller LOGIN`)
	r.db.Exec(t, `ALTER TABLE t OWNER TO backfiller`)
	r.db.Exec(t, `GRANT USAGE ON SCHEMA `+state+` TO backfiller`)
	r.db.Exec(t, `GRANT ALL ON ALL TABLES IN SCHEMA `+state+` TO backfiller`)
	cfg, err := pgxpool.ParseConfig(r.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.User = "backfiller"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, err = Run(ctx, pool, state, "t", Options{})
	if err == nil || !strings.Contains(err.Error(), "lacks pg_monitor") || !strings.Contains(err.Error(), `GRANT pg_monitor TO "backfiller"`) {
		t.Fatalf("backfill without pg_monitor: %v; want it to say to grant pg_monitor", err)
	}
	if p, _ := Get(ctx, r.db.Pool, state, "t"); p.Rows != 0 {
		t.Fatalf("%d rows backfilled without seeing the replica", p.Rows)
	}
	r.db.Exec(t, `GRANT pg_monitor TO backfiller`)
	if _, err := Run(ctx, pool, state, "t", Options{}); err != nil {
		t.Fatal(err)
	}
	assertAllRight(t, r.db, "t", "new = old")
}

// assertCaughtUp checks the finished job on the primary and, once replayed,
// on the standby; and that nothing says it waits any more.
func assertCaughtUp(t *testing.T, r *replicated, table string) {
	t.Helper()
	ctx := context.Background()
	p, err := Get(ctx, r.db.Pool, state, table)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Verified || p.Throttled {
		t.Fatalf("after replay resumed: %+v", p)
	}
	assertAllRight(t, r.db, table, "new = old")
	deadline := time.Now().Add(10 * time.Second)
	for {
		var wrong int
		err := r.replica.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE new IS DISTINCT FROM old`).Scan(&wrong)
		if err == nil && wrong == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("standby: %d rows not backfilled (%v)", wrong, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestVanishedReplicaDoesNotStallBackfill stops a lagging standby while
// the backfill waits for it: the backfill says once that the replica left
// and finishes.
func TestVanishedReplicaDoesNotStallBackfill(t *testing.T) {
	r := startReplicated(t)
	r.replay(t, "pg_wal_replay_pause")
	r.job(t, "t", 2000) // behind by the table's WAL from the start
	var mu sync.Mutex
	var logged []string
	o := slowly(Options{MaxReplicaLagBytes: 64 << 10})
	o.Log = func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, msg)
	}
	run := runInBackground(r, "t", o)
	run.waitThrottled(t)
	r.standby.Stop()
	run.wait(t)
	assertAllRight(t, r.db, "t", "new = old")
	mu.Lock()
	defer mu.Unlock()
	if len(logged) != 1 || !strings.Contains(logged[0], "replica "+r.standby.Name+" disconnected") {
		t.Fatalf("logged %q, want one line saying the standby disconnected", logged)
	}
}

package planner

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/internal/clock"
	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

func TestGroupStatements(t *testing.T) {
	tx := func(sql string) phases.Statement { return phases.Statement{SQL: sql} }
	commit := func(sql string) phases.Statement { return phases.Statement{SQL: sql, CommitAfter: true} }
	alone := func(sql string) phases.Statement { return phases.Statement{SQL: sql, NoTransaction: true} }
	cases := []struct {
		name  string
		stmts []phases.Statement
		want  string // units as "tx(a b) alone(c)"
	}{
		{"empty", nil, ""},
		{"one transaction", []phases.Statement{tx("a"), tx("b"), tx("c")}, "tx(a b c)"},
		{"commit after splits", []phases.Statement{tx("a"), commit("b"), tx("c")}, "tx(a b) tx(c)"},
		{"commit after last", []phases.Statement{tx("a"), commit("b")}, "tx(a b)"},
		{"no transaction alone", []phases.Statement{tx("a"), alone("b"), tx("c"), tx("d")}, "tx(a) alone(b) tx(c d)"},
		{"consecutive alone", []phases.Statement{alone("a"), alone("b")}, "alone(a) alone(b)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var parts []string
			next := 0
			for _, u := range groupStatements(c.stmts) {
				if u.First != next {
					t.Errorf("unit starts at %d, want %d", u.First, next)
				}
				next += len(u.Statements)
				var sqls []string
				for _, s := range u.Statements {
					sqls = append(sqls, s.SQL)
				}
				kind := "alone"
				if u.Tx {
					kind = "tx"
				}
				parts = append(parts, kind+"("+strings.Join(sqls, " ")+")")
			}
			if got := strings.Join(parts, " "); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func testRunner(db *pgtest.DB) *runner {
	return &runner{Pool: db.Pool, LockTimeout: 200 * time.Millisecond, StatementTimeout: 10 * time.Second,
		LongStatementTimeout: time.Hour, Tries: 3, Backoff: 20 * time.Millisecond}
}

func TestRunnerCommitsStatementsWithFinishAtomically(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE marks (phase text)`)
	r := testRunner(db)
	finish := func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO marks VALUES ('done')`)
		return err
	}
	// The second statement fails: the first must roll back with it and the
	// finish must not be recorded.
	err := r.Run(ctx, []phases.Statement{
		{SQL: `ALTER TABLE t ADD COLUMN a int`, Lock: phases.AccessExclusive},
		{SQL: `ALTER TABLE t ADD COLUMN a int`, Lock: phases.AccessExclusive},
	}, finish)
	var se *statementError
	if !errors.As(err, &se) || se.Index != 1 {
		t.Fatalf("err = %v, want a statementError for statement 2", err)
	}
	if engHasColumn(t, db, "t", "a") || engCount(t, db, `SELECT count(*) FROM marks`) != 0 {
		t.Fatal("a failed transaction left changes behind")
	}
	// The state update fails: the DDL must roll back with it.
	err = r.Run(ctx, []phases.Statement{{SQL: `ALTER TABLE t ADD COLUMN a int`, Lock: phases.AccessExclusive}},
		func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO no_such_table VALUES (1)`)
			return err
		})
	if err == nil || engHasColumn(t, db, "t", "a") {
		t.Fatalf("err = %v; the DDL must not commit without its state update", err)
	}
	// Success: DDL and finish commit together.
	if err := r.Run(ctx, []phases.Statement{
		{SQL: `ALTER TABLE t ADD COLUMN a int`, Lock: phases.AccessExclusive},
		{SQL: `ALTER TABLE t ADD COLUMN b int`, Lock: phases.AccessExclusive},
	}, finish); err != nil {
		t.Fatal(err)
	}
	if !engHasColumn(t, db, "t", "b") || engCount(t, db, `SELECT count(*) FROM marks`) != 1 {
		t.Fatal("phase not applied with its finish")
	}
}

func TestRunnerSkipsStatementsAlreadyDone(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, a int)`)
	stmts := []phases.Statement{
		{SQL: `ALTER TABLE t ADD COLUMN a int`, Lock: phases.AccessExclusive,
			Done: `SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'a' AND NOT attisdropped)`},
		{SQL: `ALTER TABLE t ADD COLUMN b int`, Lock: phases.AccessExclusive,
			Done: `SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'b' AND NOT attisdropped)`},
	}
	if err := testRunner(db).Run(ctx, stmts, nil); err != nil {
		t.Fatalf("a statement already in effect was not skipped: %v", err)
	}
	if !engHasColumn(t, db, "t", "b") {
		t.Fatal("statement b did not run")
	}
}

// TestRunnerRunsOneStatementAtATime: a spec's expression is spliced into
// DDL; one that smuggles in a second statement must fail, in a transaction
// and alone, and run nothing.
func TestRunnerRunsOneStatementAtATime(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, a text); CREATE TABLE victim (id int)`)
	smuggled := `ALTER TABLE t ALTER COLUMN a SET DEFAULT (E'\'' || 'x'); DROP TABLE victim; SELECT ('')`
	for _, alone := range []bool{false, true} {
		err := testRunner(db).Run(ctx, []phases.Statement{{SQL: smuggled, Lock: phases.AccessExclusive, NoTransaction: alone}}, nil)
		if err == nil || !strings.Contains(err.Error(), "multiple commands") {
			t.Errorf("alone=%v: two statements in one: %v, want an error", alone, err)
		}
		if engCount(t, db, `SELECT count(*) FROM pg_class WHERE relname = 'victim'`) != 1 {
			t.Fatalf("alone=%v: the smuggled DROP TABLE ran", alone)
		}
	}
}

func TestRunnerTimeouts(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE settings (what text, lock_timeout text, statement_timeout text)`)
	record := func(what string) string {
		return `INSERT INTO settings SELECT '` + what + `', current_setting('lock_timeout'), current_setting('statement_timeout')`
	}
	r := testRunner(db)
	err := r.Run(ctx, []phases.Statement{
		{SQL: record("ddl"), Lock: phases.AccessExclusive},
		{SQL: record("long"), Lock: phases.AccessExclusive, Long: true, CommitAfter: true},
		{SQL: record("validate"), Lock: phases.ShareUpdateExclusive, Long: true},
	}, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, record("finish"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// A statement that cannot run in a transaction sets session timeouts
	// and must reset them before the connection goes back to the pool.
	db.Exec(t, `CREATE TABLE big (id int)`)
	if err := r.Run(ctx, []phases.Statement{{SQL: `CREATE INDEX CONCURRENTLY big_id ON big (id)`,
		Lock: phases.ShareUpdateExclusive, NoTransaction: true, Long: true}}, nil); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	rows, _ := db.Pool.Query(ctx, `SELECT what, lock_timeout, statement_timeout FROM settings`)
	for rows.Next() {
		var what, lt, st string
		if err := rows.Scan(&what, &lt, &st); err != nil {
			t.Fatal(err)
		}
		got[what] = lt + " " + st
	}
	want := map[string]string{
		"ddl":      "200ms 10s",
		"long":     "200ms 1h", // its transaction takes a blocking lock: short lock timeout
		"validate": "1h 1h",    // blocks no traffic: may wait as long as it may run
		"finish":   "1h 10s",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: lock_timeout, statement_timeout = %q, want %q", k, got[k], v)
		}
	}
	for i := 0; i < 8; i++ { // every pooled connection is back to the defaults
		var lt, st string
		if err := db.Pool.QueryRow(ctx, `SELECT current_setting('lock_timeout'), current_setting('statement_timeout')`).Scan(&lt, &st); err != nil {
			t.Fatal(err)
		}
		if lt != "0" || st != "0" {
			t.Fatalf("a pooled connection kept lock_timeout=%s statement_timeout=%s", lt, st)
		}
	}
}

// A session holding a lock on the table makes the DDL time out; the runner
// retries with backoff and succeeds once the blocker ends, and meanwhile a
// reader is never stuck behind the waiting DDL for much longer than the
// lock timeout.
func TestRunnerRetriesLockTimeoutWithoutStallingReaders(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	db.Exec(t, `INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g`)

	// The blocker: a transaction that read the table and stays open.
	blocker, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(ctx, `SELECT count(*) FROM t`); err != nil {
		t.Fatal(err)
	}
	const lockTimeout = 200 * time.Millisecond
	r := testRunner(db)
	r.LockTimeout = lockTimeout
	r.Tries = 30
	r.Backoff = 50 * time.Millisecond
	r.MaxBackoff = 300 * time.Millisecond
	var tries atomic.Int32
	sleep := r.Sleep
	r.Sleep = func(ctx context.Context, d time.Duration) error {
		tries.Add(1)
		if sleep == nil {
			return clock.Sleep(ctx, d)
		}
		return sleep(ctx, d)
	}

	reader := startReader(db.Pool, `SELECT v FROM t WHERE id = $1`, 1000)
	time.AfterFunc(1500*time.Millisecond, func() { blocker.Rollback(ctx) })
	err = r.Run(ctx, []phases.Statement{{SQL: `ALTER TABLE t ADD COLUMN w int`, Lock: phases.AccessExclusive, Tables: phases.TableList{{Schema: "public", Name: "t"}}}}, nil)
	readerMax, readerErrs := reader.stop()
	if err != nil {
		t.Fatalf("DDL did not succeed after the blocker ended: %v", err)
	}
	if tries.Load() == 0 {
		t.Fatal("the DDL never waited: the blocker did not block it")
	}
	if !engHasColumn(t, db, "t", "w") {
		t.Fatal("column not added")
	}
	if readerErrs > 0 {
		t.Fatalf("%d reader queries failed", readerErrs)
	}
	if bound := lockTimeout + time.Second; readerMax > bound {
		t.Fatalf("a reader waited %s behind the DDL; bound is lock_timeout + 1s = %s", readerMax, bound)
	}
	t.Logf("DDL waited %d times; reader max latency %s", tries.Load(), readerMax.Round(time.Millisecond))
}

// reader runs single-row reads in a loop and records the slowest.
type reader struct {
	done   chan struct{}
	wg     sync.WaitGroup
	max    atomic.Int64
	errors atomic.Int32
}

func startReader(pool *pgxpool.Pool, query string, rows int) *reader {
	r := &reader{done: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-r.done:
				return
			default:
			}
			start := time.Now()
			var v any
			if err := pool.QueryRow(context.Background(), query, i%rows+1).Scan(&v); err != nil {
				r.errors.Add(1)
			}
			if d := int64(time.Since(start)); d > r.max.Load() {
				r.max.Store(d)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return r
}

// stop ends the reader and returns its slowest query and error count.
func (r *reader) stop() (time.Duration, int) {
	close(r.done)
	r.wg.Wait()
	return time.Duration(r.max.Load()), int(r.errors.Load())
}

func TestRunnerGivesUpClearlyAfterTries(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	blocker, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(ctx)
	if _, err := blocker.Exec(ctx, `LOCK TABLE t IN ACCESS SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	r := testRunner(db)
	r.LockTimeout = 50 * time.Millisecond
	r.Sleep = func(context.Context, time.Duration) error { return nil }
	err = r.Run(ctx, []phases.Statement{{SQL: `ALTER TABLE t ADD COLUMN a int`, Lock: phases.AccessExclusive, Tables: phases.TableList{{Schema: "public", Name: "t"}}}}, nil)
	var le *lockError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v, want a lockError", err)
	}
	msg := err.Error()
	for _, want := range []string{"ALTER TABLE t ADD COLUMN a int", "public.t", "3 tries", "AccessShareLock", "resumable"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if engHasColumn(t, db, "t", "a") {
		t.Fatal("column added despite the failure")
	}
}

func engHasColumn(t *testing.T, db *pgtest.DB, table, column string) bool {
	t.Helper()
	var ok bool
	if err := db.Pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT FROM pg_attribute
		WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped)`, table, column).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func engCount(t *testing.T, db *pgtest.DB, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// A concurrent index build that times out waiting for a writer leaves an
// INVALID index; the retry starts the phase over, so its first (probed)
// statement drops the leftover before the build runs again.
func TestRunnerRestartsPhaseAfterConcurrentBuildTimesOut(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE big (id int PRIMARY KEY, v int)`)
	db.Exec(t, `INSERT INTO big SELECT g, g FROM generate_series(1, 1000) g`)
	writer, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Exec(ctx, `UPDATE big SET v = v + 1 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(700*time.Millisecond, func() { writer.Rollback(ctx) })
	r := testRunner(db)
	r.LockTimeout, r.Tries, r.Backoff, r.MaxBackoff = 100*time.Millisecond, 30, 20*time.Millisecond, 100*time.Millisecond
	var invalidSeen atomic.Bool
	r.Sleep = func(ctx context.Context, d time.Duration) error {
		var n int
		db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('big_v') AND NOT indisvalid`).Scan(&n)
		if n > 0 {
			invalidSeen.Store(true)
		}
		return clock.Sleep(ctx, d)
	}
	// Declared ACCESS EXCLUSIVE so that the short lock timeout applies.
	stmts := []phases.Statement{
		{SQL: `DROP INDEX CONCURRENTLY IF EXISTS big_v`, NoTransaction: true, Lock: phases.AccessExclusive,
			Done: `SELECT NOT EXISTS (SELECT FROM pg_index WHERE indexrelid = to_regclass('big_v') AND NOT indisvalid)`},
		{SQL: `CREATE INDEX CONCURRENTLY big_v ON big (v)`, NoTransaction: true, Lock: phases.AccessExclusive,
			Done: `SELECT EXISTS (SELECT FROM pg_index WHERE indexrelid = to_regclass('big_v') AND indisvalid)`},
	}
	if err := r.Run(ctx, stmts, nil); err != nil {
		t.Fatalf("phase did not complete after the writer ended: %v", err)
	}
	if !invalidSeen.Load() {
		t.Fatal("no INVALID index was left by a timed-out build: the test did not exercise the restart")
	}
	if engCount(t, db, `SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('big_v') AND indisvalid`) != 1 {
		t.Fatal("index not valid at the end")
	}
}

package planner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

// session opens a connection with an open transaction that holds lock on
// table, and returns its backend pid.
func session(t *testing.T, url, app, lock string) int {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = app
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var pid int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "BEGIN; "+lock); err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestLockErrorNamesBlockersOfThisDatabaseOldestFirst: seven sessions of
// the database hold locks on the table, and a session of another database
// holds a lock on its twin (a table with the same OID, the database being
// copied from this one). The lock-timeout error names the seven, oldest
// transaction first, and not the other database's session; so does the
// listing used when the statement was not seen waiting.
func TestLockErrorNamesBlockersOfThisDatabaseOldestFirst(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	db.Pool.Close() // a template has no sessions
	other := pgtest.NewDB(t)
	twin := db.Name + "_twin"
	if _, err := other.Pool.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`,
		pgx.Identifier{twin}.Sanitize(), pgx.Identifier{db.Name}.Sanitize())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		other.Pool.Exec(context.Background(), `DROP DATABASE IF EXISTS `+pgx.Identifier{twin}.Sanitize()+` WITH (FORCE)`)
	})
	twinURL := strings.Replace(db.URL, "/"+db.Name, "/"+twin, 1)
	pool, err := pgxpool.New(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	oid := func(url string) uint32 {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var o uint32
		if err := conn.QueryRow(ctx, `SELECT 'public.t'::regclass::oid`).Scan(&o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	if oid(db.URL) != oid(twinURL) {
		t.Fatal("the twin table has another OID: the test cannot tell the databases apart by pg_locks alone")
	}
	stranger := session(t, twinURL, "other database", `LOCK TABLE t IN ACCESS SHARE MODE`)
	var pids []int
	for i := range 7 {
		pids = append(pids, session(t, db.URL, fmt.Sprintf("holder %d", i), `SELECT count(*) FROM t`))
		time.Sleep(20 * time.Millisecond) // distinct transaction start times
	}

	r := &runner{Pool: pool, LockTimeout: 50 * time.Millisecond, StatementTimeout: 10 * time.Second, Tries: 2,
		Sleep: func(context.Context, time.Duration) error { return nil }}
	err = r.Run(ctx, []phases.Statement{{SQL: `ALTER TABLE t ADD COLUMN a int`, Lock: phases.AccessExclusive,
		Tables: phases.TableList{{Schema: "public", Name: "t"}}}}, nil)
	var le *lockError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v, want a lockError", err)
	}
	check := func(what string, holders []string) {
		t.Helper()
		joined := strings.Join(holders, "; ")
		if strings.Contains(joined, fmt.Sprintf("pid %d ", stranger)) || strings.Contains(joined, "other database") {
			t.Errorf("%s names the session of another database: %s", what, joined)
		}
		if len(holders) != len(pids) {
			t.Fatalf("%s: %d sessions named, want %d: %s", what, len(holders), len(pids), joined)
		}
		for i, pid := range pids {
			if !strings.HasPrefix(holders[i], fmt.Sprintf("pid %d (AccessShareLock, idle in transaction, transaction open ", pid)) ||
				!strings.Contains(holders[i], fmt.Sprintf(`application "holder %d"`, i)) {
				t.Errorf("%s: session %d is %q, want pid %d (holder %d), oldest first", what, i, holders[i], pid, i)
			}
		}
	}
	check("the lock-timeout error", le.Holders)
	check("the listing of lock holders", r.lockHolders(ctx, phases.TableList{{Name: "t"}}))
	if !strings.Contains(err.Error(), fmt.Sprintf("blocked by pid %d ", pids[0])) {
		t.Errorf("error %q does not name the oldest blocker first", err)
	}
}

// TestConcurrentBuildSaysWhoItWaitsFor: CREATE INDEX CONCURRENTLY waits for
// a transaction holding an old snapshot; while it waits, the log names
// that session.
func TestConcurrentBuildSaysWhoItWaitsFor(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v int); CREATE TABLE other (x int)`)
	cfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = "snapshot holder"
	holder, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	var pid int
	if err := holder.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, `BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM other`); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	r := testRunner(db)
	r.Log, r.waitEvery, r.waitAfter = &log, 50*time.Millisecond, 100*time.Millisecond
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, []phases.Statement{{SQL: `CREATE INDEX CONCURRENTLY t_v ON t (v)`, NoTransaction: true,
			Lock: phases.ShareUpdateExclusive, Long: true}}, nil)
	}()
	// The build waits for the holder's snapshot until it ends.
	deadline := time.Now().Add(20 * time.Second)
	for engCount(t, db, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the build never waited")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := holder.Exec(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`for pid %d (`, pid)
	if !strings.Contains(log.String(), want) || !strings.Contains(log.String(), `application "snapshot holder"`) {
		t.Fatalf("log does not name the session the build waited for (%s):\n%s", want, log.String())
	}
}

// TestLockHoldersMatchTablesByIdentity: schema "x.y" table "z" and schema
// "x" table "y.z" read the same when written schema.table; the lock holders
// of one are not those of the other.
func TestLockHoldersMatchTablesByIdentity(t *testing.T) {
	db := pgtest.NewDB(t)
	db.Exec(t, `CREATE SCHEMA "x.y"; CREATE TABLE "x.y".z (id int); CREATE SCHEMA x; CREATE TABLE x."y.z" (id int)`)
	pid := session(t, db.URL, "holder of x.y.z", `LOCK TABLE "x.y".z IN ACCESS SHARE MODE`)
	r := &runner{Pool: db.Pool}
	ctx := context.Background()
	if got := r.lockHolders(ctx, phases.TableList{{Schema: "x", Name: "y.z"}}); len(got) != 0 {
		t.Errorf("holders of x.\"y.z\" = %q, want none: the lock is on \"x.y\".z", got)
	}
	got := r.lockHolders(ctx, phases.TableList{{Schema: "x.y", Name: "z"}})
	if len(got) != 1 || !strings.HasPrefix(got[0], fmt.Sprintf("pid %d (AccessShareLock", pid)) {
		t.Errorf("holders of \"x.y\".z = %q, want pid %d", got, pid)
	}
}

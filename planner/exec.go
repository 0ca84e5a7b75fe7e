package planner

// This file is the statement runner. It is long because its guarantees
// act on the same transactions and are only convincing read together:
// the grouping of statements into transactions, the timeouts set in each,
// the done probes that make a phase resumable, the bounded retries of lock
// timeouts and the crash points of the kill tests. Watching whom a
// statement waits for is in waits.go.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/internal/clock"
	"github.com/pgplanner/planner/internal/pgq"
	"github.com/pgplanner/planner/phases"
)

// runner runs a phase's statements safely:
//
//   - consecutive transactional statements share one transaction, split
//     after a CommitAfter statement and around NoTransaction statements;
//   - every transaction starts with SET LOCAL lock_timeout and
//     statement_timeout (Long statements get the long timeout), so a DDL
//     statement waiting for its lock never queues application traffic for
//     longer than the lock timeout;
//   - a statement whose Done probe says it already took effect is skipped,
//     so a phase killed between transactions resumes where it stopped;
//   - a lock timeout (or deadlock) aborts the transaction, which is retried
//     whole after an escalating, jittered pause, a bounded number of times
//     per phase; a statement that cannot run in a transaction (a concurrent
//     index build, which may leave an INVALID index when it times out)
//     restarts the phase from its first statement instead, so the phase's
//     probed cleanup runs again.
type runner struct {
	Pool *pgxpool.Pool
	// LockTimeout bounds each wait for a lock that blocks reads or writes.
	LockTimeout time.Duration
	// StatementTimeout bounds ordinary DDL; LongStatementTimeout bounds Long
	// statements (VALIDATE, CREATE INDEX CONCURRENTLY); 0 means no limit.
	StatementTimeout     time.Duration
	LongStatementTimeout time.Duration
	// Tries is the number of attempts per phase on lock timeouts.
	Tries int
	// Backoff is the first pause between tries; it doubles each try, up to
	// MaxBackoff, with jitter.
	Backoff, MaxBackoff time.Duration
	// Log receives one line per statement run or skipped (nil: silent), and
	// one per retry.
	Log io.Writer
	// Tables are named in a lockError, with the sessions holding locks on
	// them, when the failing statement declares none.
	Tables phases.TableList
	// Sleep waits between tries; tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error

	// waitEvery and waitAfter replace waitReportEvery and waitLogAfter.
	waitEvery, waitAfter time.Duration
}

// unit is a group of statements run together: one transaction, or one
// NoTransaction statement alone.
type unit struct {
	// First is the index of the unit's first statement in the phase.
	First      int
	Statements []phases.Statement
	Tx         bool
}

// groupStatements splits a phase's statements into units.
func groupStatements(stmts []phases.Statement) []unit {
	var units []unit
	var cur *unit
	for i, s := range stmts {
		if s.NoTransaction {
			units = append(units, unit{First: i, Statements: []phases.Statement{s}})
			cur = nil
			continue
		}
		if cur == nil {
			units = append(units, unit{First: i, Tx: true})
			cur = &units[len(units)-1]
		}
		cur.Statements = append(cur.Statements, s)
		if s.CommitAfter {
			cur = nil
		}
	}
	return units
}

// lockError is a statement that could not get its lock within the lock
// timeout on any try. The phase stopped between transactions; a rerun
// resumes it.
type lockError struct {
	Statement string
	Tables    phases.TableList
	Tries     int
	Timeout   time.Duration
	// Holders describes the sessions holding locks on Tables when the last
	// try failed, as far as pg_locks could tell.
	Holders []string
	Err     error
}

func (e *lockError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "could not get a lock within lock_timeout %s after %d tries for: %s", e.Timeout, e.Tries, oneLine(e.Statement, 120))
	if len(e.Tables) > 0 {
		fmt.Fprintf(&b, " (on %s)", e.Tables)
	}
	if len(e.Holders) > 0 {
		fmt.Fprintf(&b, "; blocked by %s", strings.Join(e.Holders, "; "))
	}
	b.WriteString("; that transaction was rolled back and the change is resumable: rerun when the blocking sessions end, or raise --lock-timeout/--retries")
	return b.String()
}

func (e *lockError) Unwrap() error { return e.Err }

// statementError is a statement that failed for another reason than a lock.
type statementError struct {
	Index     int // in the phase
	Statement string
	Err       error
}

func (e *statementError) Error() string {
	return fmt.Sprintf("statement %d (%s): %v", e.Index+1, oneLine(e.Statement, 160), e.Err)
}

func (e *statementError) Unwrap() error { return e.Err }

// Run runs stmts. finish, when not nil, runs inside the last transaction
// (so a phase's DDL and its state update commit together) or, when the last
// unit cannot run in a transaction, in a transaction of its own after it.
// finish may be retried with its transaction on lock timeouts.
func (r *runner) Run(ctx context.Context, stmts []phases.Statement, finish func(ctx context.Context, tx pgx.Tx) error) error {
	units := groupStatements(stmts)
	finishAlone := finish != nil && (len(units) == 0 || !units[len(units)-1].Tx)
	from := 0 // the unit a try starts with; units before it are committed
	return r.retry(ctx, func() error {
		for i := from; i < len(units); i++ {
			u := units[i]
			var err error
			if u.Tx {
				var fin func(context.Context, pgx.Tx) error
				if i == len(units)-1 {
					fin = finish
				}
				err = r.runTx(ctx, u, fin)
			} else {
				err = r.runAlone(ctx, u)
			}
			if err != nil {
				from = i
				var le *lockAttemptError
				if !u.Tx && errors.As(err, &le) {
					// A concurrent build that timed out may leave an
					// INVALID index behind, which the phase's earlier
					// statements (probed, idempotent) clean up: start over.
					from = 0
				}
				return err
			}
		}
		from = len(units)
		if finishAlone {
			return r.runTx(ctx, unit{Tx: true}, finish)
		}
		return nil
	})
}

// retry runs attempt until it succeeds, fails for another reason than a
// lock, or has been tried Tries times.
func (r *runner) retry(ctx context.Context, attempt func() error) error {
	tries := max(r.Tries, 1)
	backoff := r.Backoff
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	maxBackoff := r.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 10 * time.Second
	}
	for try := 1; ; try++ {
		err := attempt()
		if err == nil {
			return nil
		}
		var le *lockAttemptError
		if !errors.As(err, &le) {
			return err
		}
		if try >= tries {
			tables := le.stmt.Tables
			if len(tables) == 0 {
				tables = r.Tables
			}
			holders := le.blockers
			if len(holders) == 0 {
				holders = r.lockHolders(ctx, tables)
			}
			return &lockError{
				Statement: le.stmt.SQL, Tables: tables, Tries: tries, Timeout: r.LockTimeout,
				Holders: holders, Err: le.err,
			}
		}
		// Full doubling with jitter in [d/2, d): concurrent planners and
		// the lock holder's retries do not line up.
		d := min(backoff<<(try-1), maxBackoff)
		d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
		r.logf("  lock not available (%s), try %d of %d: waiting %s\n", oneLine(le.stmt.SQL, 60), try, tries, d.Round(time.Millisecond))
		sleep := r.Sleep
		if sleep == nil {
			sleep = clock.Sleep
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

// lockAttemptError marks a try that failed on a lock timeout or deadlock;
// blockers are the sessions the statement was seen waiting for.
type lockAttemptError struct {
	stmt     phases.Statement
	err      error
	blockers []string
}

func (e *lockAttemptError) Error() string { return e.err.Error() }

func isLockFailure(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "55P03" || pe.Code == "40P01")
}

// blocksTraffic says whether waiting for this statement's lock would queue
// application reads or writes. Statements without a declared lock count as
// blocking: a guess must err on the safe side.
func blocksTraffic(s phases.Statement) bool {
	if s.Lock == phases.NoLock {
		return s.SQL != ""
	}
	return s.Lock.Blocks() != "nothing"
}

func (r *runner) runTx(ctx context.Context, u unit, finish func(context.Context, pgx.Tx) error) error {
	tx, err := r.Pool.Begin(ctx)
	if err != nil {
		return wrapf(err, "begin a transaction")
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The lock timeout covers the whole transaction: once it holds a
	// blocking lock, any later wait would queue traffic behind it too.
	blocking := false
	for _, s := range u.Statements {
		blocking = blocking || blocksTraffic(s)
	}
	lockTimeout := r.LockTimeout
	if !blocking {
		lockTimeout = r.LongStatementTimeout
	}
	if err := setLocal(ctx, tx, "lock_timeout", lockTimeout); err != nil {
		return err
	}
	current := time.Duration(-1)
	for i, s := range u.Statements {
		idx := u.First + i
		done, err := probe(ctx, tx, s)
		if err != nil {
			return &statementError{Index: idx, Statement: s.Done, Err: fmt.Errorf("done probe: %w", err)}
		}
		if done {
			r.logf("  skip (already done) %s\n", oneLine(s.SQL, 100))
			continue
		}
		timeout := r.StatementTimeout
		if s.Long {
			timeout = r.LongStatementTimeout
		}
		if timeout != current {
			if err := setLocal(ctx, tx, "statement_timeout", timeout); err != nil {
				return err
			}
			current = timeout
		}
		r.logf("  %s\n", oneLine(s.SQL, 200))
		if blockers, err := r.execWatched(ctx, tx.Conn().PgConn(), s, lockTimeout); err != nil {
			if isLockFailure(err) {
				return &lockAttemptError{stmt: s, err: err, blockers: blockers}
			}
			return &statementError{Index: idx, Statement: s.SQL, Err: err}
		}
		crashHook(crashAfterStatement)
	}
	if finish != nil {
		if err := setLocal(ctx, tx, "statement_timeout", r.StatementTimeout); err != nil {
			return err
		}
		if err := finish(ctx, tx); err != nil {
			if isLockFailure(err) {
				return &lockAttemptError{stmt: phases.Statement{SQL: "(recording the phase in the state tables)"}, err: err}
			}
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		if isLockFailure(err) && len(u.Statements) > 0 {
			return &lockAttemptError{stmt: u.Statements[len(u.Statements)-1], err: err}
		}
		return wrapf(err, "commit")
	}
	crashHook(crashAfterCommit)
	return nil
}

// runAlone runs a NoTransaction statement on a connection of its own, with
// session-level timeouts reset afterwards.
func (r *runner) runAlone(ctx context.Context, u unit) error {
	s := u.Statements[0]
	conn, err := r.Pool.Acquire(ctx)
	if err != nil {
		return wrapf(err, "acquire a connection")
	}
	defer conn.Release()
	done, err := probe(ctx, conn, s)
	if err != nil {
		return &statementError{Index: u.First, Statement: s.Done, Err: fmt.Errorf("done probe: %w", err)}
	}
	if done {
		r.logf("  skip (already done) %s\n", oneLine(s.SQL, 100))
		return nil
	}
	lockTimeout, timeout := r.LockTimeout, r.StatementTimeout
	if !blocksTraffic(s) {
		lockTimeout = r.LongStatementTimeout
	}
	if s.Long {
		timeout = r.LongStatementTimeout
	}
	if err := setSession(ctx, conn, "lock_timeout", lockTimeout); err != nil {
		return err
	}
	defer func() {
		// A broken connection is discarded by the pool; a healthy one must
		// not keep our timeouts.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "RESET lock_timeout; RESET statement_timeout"); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	if err := setSession(ctx, conn, "statement_timeout", timeout); err != nil {
		return err
	}
	r.logf("  %s\n", oneLine(s.SQL, 200))
	if blockers, err := r.execWatched(ctx, conn.Conn().PgConn(), s, lockTimeout); err != nil {
		if isLockFailure(err) {
			return &lockAttemptError{stmt: s, err: err, blockers: blockers}
		}
		return &statementError{Index: u.First, Statement: s.SQL, Err: err}
	}
	crashHook(crashAfterStatement)
	crashHook(crashAfterCommit)
	return nil
}

// probe runs a statement's Done probe; no probe means "run it".
func probe(ctx context.Context, q pgq.Querier, s phases.Statement) (bool, error) {
	if strings.TrimSpace(s.Done) == "" {
		return false, nil
	}
	var done *bool
	if err := q.QueryRow(ctx, s.Done).Scan(&done); err != nil {
		return false, err
	}
	return done != nil && *done, nil
}

func setLocal(ctx context.Context, tx pgx.Tx, name string, d time.Duration) error {
	_, err := tx.Exec(ctx, `SELECT set_config($1, $2, true)`, name, pgDuration(d))
	return wrapf(err, "set %s", name)
}

func setSession(ctx context.Context, c *pgxpool.Conn, name string, d time.Duration) error {
	_, err := c.Exec(ctx, `SELECT set_config($1, $2, false)`, name, pgDuration(d))
	return wrapf(err, "set %s", name)
}

// pgDuration formats d for a timeout setting; 0 disables the timeout.
func pgDuration(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10) + "ms"
}

// execWatched runs a statement while watching whom it waits for (see
// waits.go): a statement that may wait for a lock is looked at halfway
// through its lock timeout, long ones every few seconds, logged after
// waitLogAfter.
// It returns the sessions the statement was last seen waiting for, and
// its error.
func (r *runner) execWatched(ctx context.Context, conn *pgconn.PgConn, s phases.Statement, lockTimeout time.Duration) ([]string, error) {
	_, first := r.waitTimes()
	if lockTimeout > 0 {
		first = min(first, lockTimeout/2)
	}
	w := r.watchWaits(ctx, conn.PID(), s.SQL, first)
	err := execOne(ctx, conn, s.SQL)
	return w.stop(), err
}

// lockHolders describes the sessions of this database holding locks on
// tables, oldest transaction first, for an error message when the
// statement was not seen waiting. Best effort: errors yield nothing.
func (r *runner) lockHolders(ctx context.Context, tables phases.TableList) []string {
	if len(tables) == 0 {
		return nil
	}
	schemas, names := make([]string, len(tables)), make([]string, len(tables))
	for i, t := range tables {
		schemas[i], names[i] = t.SchemaOrPublic(), t.Name
	}
	rows, err := r.Pool.Query(ctx, `
		SELECT a.pid, string_agg(DISTINCT l.mode, ', '), coalesce(a.state, ''), coalesce(a.application_name, ''),
		       extract(epoch FROM now() - coalesce(a.xact_start, a.backend_start))::int, left(coalesce(a.query, ''), 80),
		       count(*) OVER ()
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.granted AND l.locktype = 'relation' AND a.pid <> pg_backend_pid()
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND a.datname = current_database()
		  AND l.relation IN (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		                     JOIN unnest($1::text[], $2::text[]) AS t(schema, name) ON t.schema = n.nspname AND t.name = c.relname)
		GROUP BY a.pid, a.state, a.application_name, a.xact_start, a.backend_start, a.query
		ORDER BY a.xact_start NULLS LAST, a.backend_start, a.pid LIMIT $3`, schemas, names, maxNamed)
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []string
	total := 0
	for rows.Next() {
		var pid, age int
		var mode, st, app, query string
		if rows.Scan(&pid, &mode, &st, &app, &age, &query, &total) != nil {
			return out
		}
		out = append(out, describeSession(pid, []string{mode}, st, age, app, query))
	}
	if total > len(out) && rows.Err() == nil {
		out = append(out, fmt.Sprintf("and %d more", total-len(out)))
	}
	return out
}

func (r *runner) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format, args...)
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Test hooks for crash tests: PLANNER_TEST_CRASH_AFTER=N kills the process
// (SIGKILL, like kill -9) right after the Nth statement it executes, before
// that statement's transaction commits; PLANNER_TEST_CRASH_AFTER_COMMIT=N
// kills it right after its Nth transaction (or NoTransaction statement)
// completes. Unset in production.
const (
	crashAfterStatement = "PLANNER_TEST_CRASH_AFTER"
	crashAfterCommit    = "PLANNER_TEST_CRASH_AFTER_COMMIT"
)

var crashCounts = map[string]*atomic.Int64{crashAfterStatement: {}, crashAfterCommit: {}}

func crashHook(env string) {
	limit := os.Getenv(env)
	if limit == "" {
		return
	}
	n, err := strconv.ParseInt(limit, 10, 64)
	if err != nil {
		return
	}
	if crashCounts[env].Add(1) == n {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

// execOne runs one statement through the extended protocol, which refuses a
// string holding several: an expression from a spec cannot end the
// statement it is spliced into and start another.
func execOne(ctx context.Context, conn *pgconn.PgConn, sql string) error {
	return conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err
}

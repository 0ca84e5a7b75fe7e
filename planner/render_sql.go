package planner

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/phases"
)

// SQLScriptOptions are the guards a SQL script sets, as planner next would.
type SQLScriptOptions struct {
	// Timeouts left zero are those of Defaults, as for an Engine; a
	// negative LongStatementTimeout means no limit.
	LockTimeout, StatementTimeout, LongStatementTimeout time.Duration
	// BatchSize is the rows per transaction of a backfill's loop.
	BatchSize int
	// Offline: compiled without a database, so column types are
	// placeholders and the script is for review, not for running.
	Offline bool
}

// sqlUnit is one piece of a phase's SQL, to run as written.
type sqlUnit struct {
	// Comment says what the unit is, when it needs saying.
	Comment string
	// Setup, SQL and Teardown: for a statement that cannot run in a
	// transaction, the session SETs before it, the statement alone and the
	// RESETs after it (three strings: PostgreSQL refuses such a statement in
	// a multi-statement string). Otherwise SQL only: a whole transaction
	// (BEGIN, SET LOCAL guards, statements, COMMIT) or a backfill's DO loop,
	// each one string that runs on one connection.
	Setup, SQL, Teardown string
}

// Script is the unit's statements, each ending with a semicolon.
func (u sqlUnit) Script() string {
	var b strings.Builder
	for _, s := range []string{u.Setup, u.SQL, u.Teardown} {
		if s != "" {
			b.WriteString(s)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// phaseSQL is one phase of one change as SQL: Up runs it, Down undoes it
// from the phase's rollback statements, under the same guards.
type phaseSQL struct {
	Spec Spec
	// Index is the phase's 0-based position, Total the change's phase count.
	Index, Total int
	Phase        phases.Phase
	Up, Down     []sqlUnit
}

// Gate describes the phase's gate for a comment.
func (p phaseSQL) Gate() string {
	if p.Phase.Gate == phases.NoGate {
		return "none: may run at any deploy"
	}
	return string(p.Phase.Gate) + ": " + p.Phase.Gate.Describe()
}

// phasesSQL turns every phase of every plan, in order, into SQL units.
func phasesSQL(plans []Plan, opts SQLScriptOptions) []phaseSQL {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	set := (&Engine{LockTimeout: opts.LockTimeout, StatementTimeout: opts.StatementTimeout, LongStatementTimeout: opts.LongStatementTimeout}).settings()
	opts.LockTimeout, opts.StatementTimeout, opts.LongStatementTimeout = set.LockTimeout, set.StatementTimeout, set.LongStatementTimeout
	var out []phaseSQL
	for _, p := range plans {
		for i, ph := range p.Phases {
			ps := phaseSQL{Spec: p.Spec, Index: i, Total: len(p.Phases), Phase: ph}
			for _, u := range groupStatements(ph.Statements) {
				ps.Up = append(ps.Up, unitSQL(u, opts))
			}
			if b := ph.Backfill; b != nil {
				ps.Up = append(ps.Up, backfillSQL(*b, opts))
			}
			for _, u := range groupStatements(ph.Rollback) {
				ps.Down = append(ps.Down, unitSQL(u, opts))
			}
			out = append(out, ps)
		}
	}
	return out
}

// RenderSQL writes each phase of each plan as a psql script for review or
// for a hand-run: the phase's transactions under the same lock_timeout and
// statement_timeout guards planner next uses, statements that cannot run in
// a transaction on their own, a backfill as a loop of short transactions,
// and the gate, the flags and the rollback as comments.
func RenderSQL(w io.Writer, plans []Plan, opts SQLScriptOptions) error {
	r := &textRenderer{w: w}
	r.printf("-- planner plan --format sql: %d change(s). Run with psql; stop at the first error.\n", len(plans))
	if opts.Offline {
		r.printf("-- %s\n", OfflineNote)
	}
	r.printf("\\set ON_ERROR_STOP on\n")
	for _, ps := range phasesSQL(plans, opts) {
		r.printf("\n-- ==== %s (%s), phase %d of %d: %s\n", ps.Spec.ID, ps.Spec.Kind, ps.Index+1, ps.Total, ps.Phase.Name)
		r.printf("-- %s\n", ps.Phase.Purpose)
		r.printf("-- gate: %s\n", ps.Gate())
		for _, u := range ps.Up {
			r.printf("%s", u.commented())
		}
		if len(ps.Phase.Flags) > 0 {
			r.printf("-- flags after this phase (planner next publishes them): %s\n", flagList(ps.Phase.Flags))
		}
		switch {
		case ps.Phase.Irreversible != "":
			r.printf("-- rollback: none, irreversible: %s\n", ps.Phase.Irreversible)
		case len(ps.Phase.Rollback) > 0:
			r.printf("-- rollback:\n")
			for _, s := range ps.Phase.Rollback {
				r.printf("--   %s;\n", oneLine(s.SQL, 1000))
			}
		}
	}
	return r.err
}

// commented is the unit's script after its comment.
func (u sqlUnit) commented() string {
	if u.Comment == "" {
		return u.Script()
	}
	return "-- " + u.Comment + "\n" + u.Script()
}

func unitSQL(u unit, opts SQLScriptOptions) sqlUnit {
	lockTimeout, timeout := opts.LockTimeout, opts.StatementTimeout
	if u.Tx {
		long := false
		for _, s := range u.Statements {
			long = long || s.Long
		}
		if long {
			timeout = opts.LongStatementTimeout
		}
		var b strings.Builder
		fmt.Fprintf(&b, "BEGIN;\nSET LOCAL lock_timeout = '%s';\nSET LOCAL statement_timeout = '%s';\n", pgDuration(lockTimeout), pgDuration(timeout))
		for _, s := range u.Statements {
			fmt.Fprintf(&b, "%s;\n", strings.TrimSpace(s.SQL))
		}
		b.WriteString("COMMIT;")
		return sqlUnit{SQL: b.String()}
	}
	s := u.Statements[0]
	if !blocksTraffic(s) {
		lockTimeout = opts.LongStatementTimeout
	}
	if s.Long {
		timeout = opts.LongStatementTimeout
	}
	return sqlUnit{
		Comment:  "cannot run in a transaction: session settings, reset after it",
		Setup:    fmt.Sprintf("SET lock_timeout = '%s';\nSET statement_timeout = '%s';", pgDuration(lockTimeout), pgDuration(timeout)),
		SQL:      strings.TrimSpace(s.SQL) + ";",
		Teardown: "RESET lock_timeout;\nRESET statement_timeout;",
	}
}

// backfillSQL is a loop of short transactions (PostgreSQL 11+: COMMIT in
// DO), each updating at most BatchSize rows that still differ. planner next
// and planner backfill run do better: keyset batches sized by time,
// resumable, verified, in parallel.
func backfillSQL(b phases.Backfill, opts SQLScriptOptions) sqlUnit {
	table := pgx.Identifier{b.Schema, b.Table}.Sanitize()
	col := pgx.Identifier{b.Column}.Sanitize()
	return sqlUnit{
		Comment: fmt.Sprintf("backfill: %s.%s = %s, %d rows per transaction", table, col, b.Expr, opts.BatchSize),
		SQL: fmt.Sprintf(`DO $planner$
DECLARE n bigint;
BEGIN
  LOOP
    PERFORM set_config('lock_timeout', '%s', true);
    UPDATE %s SET %s = (%s
    ) WHERE ctid = ANY (ARRAY(SELECT ctid FROM %s WHERE %s IS DISTINCT FROM (%s
    ) LIMIT %d));
    GET DIAGNOSTICS n = ROW_COUNT;
    COMMIT;
    EXIT WHEN n = 0;
  END LOOP;
END
$planner$;`, pgDuration(opts.LockTimeout), table, col, b.Expr, table, col, b.Expr, opts.BatchSize),
	}
}

func flagList(f phases.Flags) string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + f[k]
	}
	return strings.Join(parts, " ")
}

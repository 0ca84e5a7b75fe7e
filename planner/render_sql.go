package planner

import (
	"io"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/phases"
)

// SQLScriptOptions are the guards a SQL script sets, as planner next would.
type SQLScriptOptions struct {
	LockTimeout, StatementTimeout, LongStatementTimeout time.Duration
	// BatchSize is the rows per transaction of a backfill's loop.
	BatchSize int
	// Offline: compiled without a database, so column types are
	// placeholders and the script is for review, not for running.
	Offline bool
}

// RenderSQL writes each phase of each plan as a psql script for review or
// for a hand-run: the phase's transactions under the same lock_timeout and
// statement_timeout guards planner next uses, statements that cannot run in
// a transaction on their own, a backfill as a loop of short transactions,
// and the gate, the flags and the rollback as comments.
func RenderSQL(w io.Writer, plans []Plan, opts SQLScriptOptions) error {
	r := &textRenderer{w: w}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	r.printf("-- planner plan --format sql: %d change(s). Run with psql; stop at the first error.\n", len(plans))
	if opts.Offline {
		r.printf("-- %s\n", OfflineNote)
	}
	r.printf("\\set ON_ERROR_STOP on\n")
	for _, p := range plans {
		for i, ph := range p.Phases {
			r.printf("\n-- ==== %s (%s), phase %d of %d: %s\n", p.Spec.ID, p.Spec.Kind, i+1, len(p.Phases), ph.Name)
			r.printf("-- %s\n", ph.Purpose)
			gate := "none: may run at any deploy"
			if ph.Gate != phases.NoGate {
				gate = string(ph.Gate) + ": " + ph.Gate.Describe()
			}
			r.printf("-- gate: %s\n", gate)
			for _, u := range GroupStatements(ph.Statements) {
				r.unitSQL(u, opts)
			}
			if b := ph.Backfill; b != nil {
				r.backfillSQL(*b, opts)
			}
			if len(ph.Flags) > 0 {
				r.printf("-- flags after this phase (planner next publishes them): %s\n", flagList(ph.Flags))
			}
			switch {
			case ph.Irreversible != "":
				r.printf("-- rollback: none, irreversible: %s\n", ph.Irreversible)
			case len(ph.Rollback) > 0:
				r.printf("-- rollback:\n")
				for _, s := range ph.Rollback {
					r.printf("--   %s;\n", oneLine(s.SQL, 1000))
				}
			}
		}
	}
	return r.err
}

func (r *textRenderer) unitSQL(u Unit, opts SQLScriptOptions) {
	lockTimeout, timeout := opts.LockTimeout, opts.StatementTimeout
	if u.Tx {
		long := false
		for _, s := range u.Statements {
			long = long || s.Long
		}
		if long {
			timeout = opts.LongStatementTimeout
		}
		r.printf("BEGIN;\nSET LOCAL lock_timeout = '%s';\nSET LOCAL statement_timeout = '%s';\n", pgDuration(lockTimeout), pgDuration(timeout))
		for _, s := range u.Statements {
			r.printf("%s;\n", strings.TrimSpace(s.SQL))
		}
		r.printf("COMMIT;\n")
		return
	}
	s := u.Statements[0]
	if !blocksTraffic(s) {
		lockTimeout = opts.LongStatementTimeout
	}
	if s.Long {
		timeout = opts.LongStatementTimeout
	}
	r.printf("-- cannot run in a transaction: session settings, reset after it\n")
	r.printf("SET lock_timeout = '%s';\nSET statement_timeout = '%s';\n%s;\nRESET lock_timeout;\nRESET statement_timeout;\n",
		pgDuration(lockTimeout), pgDuration(timeout), strings.TrimSpace(s.SQL))
}

// backfillSQL is a loop of short transactions (PostgreSQL 11+: COMMIT in
// DO), each updating at most BatchSize rows that still differ. planner next
// and planner backfill run do better: keyset batches sized by time,
// resumable, verified, in parallel.
func (r *textRenderer) backfillSQL(b phases.Backfill, opts SQLScriptOptions) {
	table := pgx.Identifier{b.Schema, b.Table}.Sanitize()
	col := pgx.Identifier{b.Column}.Sanitize()
	r.printf("-- backfill: %s.%s = %s, %d rows per transaction\n", table, col, b.Expr, opts.BatchSize)
	r.printf(`DO $planner$
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
$planner$;
`, pgDuration(opts.LockTimeout), table, col, b.Expr, table, col, b.Expr, opts.BatchSize)
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

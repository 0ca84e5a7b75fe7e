package planner

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/backfill"
)

// Engine advances changes against one database, one phase per change per
// deploy, and keeps its state in the database (schema Schema).
//
// Next and Rollback hold the planner lease (lease.go) for their whole run.
// They need a direct connection (or a pooler in session mode): they refuse
// a pooler in transaction mode before they change anything (CheckSessions).
type Engine struct {
	Pool *pgxpool.Pool
	// Schema holds the planner's state and flags; default "planner".
	Schema string
	// A field of the settings below left zero takes its value from
	// Defaults (defaults.go), as the command line's flags do.
	//
	// LockTimeout bounds each wait for a lock that blocks traffic;
	// StatementTimeout bounds ordinary DDL; LongStatementTimeout bounds
	// VALIDATE and CREATE INDEX CONCURRENTLY (negative: no limit).
	LockTimeout, StatementTimeout, LongStatementTimeout time.Duration
	// Retries is the number of tries per phase on lock timeouts, with
	// escalating, jittered pauses in between.
	Retries int
	// Wait is how long Next and Rollback wait for another planner to finish
	// before failing with ErrBusy (negative: fail at once).
	Wait time.Duration
	// LeaseTTL is how long the planner lease outlives its holder's last
	// renewal: a planner killed with kill -9 holds up the next one for at
	// most this long.
	LeaseTTL time.Duration
	// MinSoak is the minimum time the previous phase's flags must have been
	// live before a FlagsSoaked gate opens (and, for the application
	// instances that report heartbeats, loaded by every live one).
	MinSoak time.Duration
	// FleetExpiry is how long an instance that stopped heartbeating still
	// counts as live for the gates.
	FleetExpiry time.Duration
	// PurgeAfter is how long a reversible contract stays reversible: the
	// purge that drops its tombstone runs at a later deploy, at least this
	// long after the contract (negative: no delay).
	PurgeAfter time.Duration
	// GateStatements makes a contract that removes a column (or a table
	// name) wait while statements naming it keep being called (pg_stat_statements,
	// statements.go); without it they are only reported.
	GateStatements bool
	// Only, when set, limits Next to the changes with these ids: the others
	// are neither advanced nor reported.
	Only []string
	// Async starts backfills and lets their gate wait instead of running
	// them inside `planner next`.
	Async bool
	// Backfill configures inline backfills.
	Backfill backfill.Options
	// Log receives progress lines (nil: silent); Verbose adds every statement.
	Log     io.Writer
	Verbose bool
	// Logger, when set, receives the progress as structured events
	// (events.go) instead of Log's lines.
	Logger *slog.Logger
}

func (e *Engine) schema() string {
	if e.Schema == "" {
		return "planner"
	}
	return e.Schema
}

func (e *Engine) state() state { return state{schema: e.schema()} }

func (e *Engine) runner() *runner {
	set := e.settings()
	r := &runner{
		Pool:                 e.Pool,
		LockTimeout:          set.LockTimeout,
		StatementTimeout:     set.StatementTimeout,
		LongStatementTimeout: set.LongStatementTimeout,
		Tries:                set.Retries,
	}
	if e.Verbose {
		r.Log = e.Log
	}
	return r
}

func (e *Engine) logf(format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	e.event(text, EventNote, slog.String("reason", strings.TrimSpace(text)))
}

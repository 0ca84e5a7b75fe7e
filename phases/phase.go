// Package phases holds the building blocks of a compiled change: phases made
// of statements, each statement with the lock it takes, whether it may run in
// a transaction, the probe that tells whether it already ran, and the
// statements that undo it. Change kinds (package planner) assemble phases from
// the constructors here; the engine runs them; `planner plan` prints them.
package phases

// Lock is a PostgreSQL table lock mode.
type Lock string

const (
	NoLock               Lock = ""
	AccessShare          Lock = "ACCESS SHARE"
	RowExclusive         Lock = "ROW EXCLUSIVE"
	ShareUpdateExclusive Lock = "SHARE UPDATE EXCLUSIVE"
	Share                Lock = "SHARE"
	ShareRowExclusive    Lock = "SHARE ROW EXCLUSIVE"
	AccessExclusive      Lock = "ACCESS EXCLUSIVE"
)

// Blocks says, for a reviewer, what application traffic the lock blocks.
func (l Lock) Blocks() string {
	switch l {
	case AccessExclusive:
		return "reads and writes"
	case ShareRowExclusive, Share:
		return "writes"
	case ShareUpdateExclusive, AccessShare, RowExclusive, NoLock:
		return "nothing"
	}
	return "unknown"
}

// Statement is one SQL statement of a phase.
type Statement struct {
	SQL string `json:"sql"`
	// Lock is the strongest table lock the statement takes, on Tables.
	Lock   Lock      `json:"lock"`
	Tables TableList `json:"tables"`
	// Held says how long the lock is held, e.g. "instant (catalog only)" or
	// "while scanning the table".
	Held string `json:"held"`
	// NoTransaction marks statements PostgreSQL refuses inside a transaction
	// block (CREATE/DROP INDEX CONCURRENTLY). They run alone.
	NoTransaction bool `json:"no_transaction"`
	// CommitAfter ends the transaction after this statement, e.g. an
	// ADD CONSTRAINT ... NOT VALID that must commit before its VALIDATE.
	CommitAfter bool `json:"commit_after"`
	// Scans / Rewrites: the statement reads / rewrites the whole table.
	Scans    bool `json:"scans"`
	Rewrites bool `json:"rewrites"`
	// Long statements block no traffic but may run for a long time
	// (VALIDATE, CREATE INDEX CONCURRENTLY): they get the long statement
	// timeout instead of the DDL one.
	Long bool `json:"long"`
	// Done is a query returning one boolean: true when the statement's effect
	// is already in place, so a resumed phase skips it. Empty means the
	// statement is idempotent by itself (IF EXISTS, CREATE OR REPLACE, ...).
	Done string `json:"done_probe"`
	// Effect, for a statement without a Done probe (idempotent by itself,
	// so the runner always runs it), is a query returning one boolean:
	// true when its effect is in place. planner adopt checks it where it
	// cannot check Done; the runner ignores it. Empty when the effect
	// cannot be read from the catalogs.
	Effect string `json:"-"`
	// Object names the catalog object the statement creates, replaces or
	// drops ("function public.f", "trigger public.t.name"), when a later
	// statement of the same change may act on that object again: for
	// planner adopt, the later statement's effect supersedes this one's.
	Object string `json:"-"`
}

// Gate is a condition checked before a phase runs.
type Gate string

const (
	// NoGate: the phase may run at any deploy.
	NoGate Gate = ""
	// BackfillVerified: the change's backfill is complete and a verification
	// pass found no row where the target column differs from its expression.
	BackfillVerified Gate = "backfill_verified"
	// FlagsSoaked: the flags published by the previous phase have been live
	// for at least one earlier deploy and the configured minimum soak time,
	// and every live application instance that reports heartbeats has had
	// them for that soak time, so no running instance still uses the old
	// column.
	FlagsSoaked Gate = "flags_soaked"
	// FlagsLoaded: every live application instance that reports heartbeats
	// has loaded the flags of the previous phase (met when none reports).
	FlagsLoaded Gate = "flags_loaded"
	// PurgeAfter: the previous phase (a reversible contract) was applied in
	// an earlier deploy and at least the configured purge delay ago, so the
	// tombstoned column it kept for a rollback may go.
	PurgeAfter Gate = "purge_after"
)

// Describe explains the gate to a reviewer.
func (g Gate) Describe() string {
	switch g {
	case BackfillVerified:
		return "backfill complete and verified: no row differs"
	case FlagsSoaked:
		return "previous flags live for at least one earlier deploy (and the minimum soak time); with instances reporting heartbeats, every live one has had them for the soak time"
	case FlagsLoaded:
		return "every live application instance reporting heartbeats has loaded the previous flags (none reporting: met)"
	case PurgeAfter:
		return "contract applied in an earlier deploy and at least the purge delay ago (--purge-after, default 24h); until then rollback restores the old column"
	}
	return "none"
}

// Backfill is set-based work on existing rows: Column = Expr for every row
// where they differ, in keyset-paginated batches (package backfill).
type Backfill struct {
	Schema string `json:"schema"`
	Table  string `json:"table"`
	Column string `json:"column"`
	// Expr computes the value from the row's other columns. It must be
	// idempotent: re-running a batch leaves rows already done unchanged
	// (e.g. COALESCE(col, fill) for fills with volatile expressions).
	Expr string `json:"expr"`
	// Undo records the key and new value of every row the backfill
	// changes, so that rolling the phase back can set those rows back to
	// NULL (set_not_null, which fills an existing column in place).
	Undo bool `json:"undo"`
	// KeptBy names the trigger (Sync, Fill) installed before the backfill
	// that gives every row an INSERT or UPDATE writes the value Expr
	// computes. A range the backfill copied then stays right, so its copy
	// proves it and no verification pass reads the rows again; the backfill
	// trusts the trigger only while the catalog shows it firing on every
	// INSERT and UPDATE, enabled (package backfill, proof.go).
	KeptBy string `json:"kept_by,omitempty"`
}

// Flags maps flag keys (e.g. "users-email.read") to the variant published.
type Flags map[string]string

// Phase is one step of a change, advanced by one `planner next`.
type Phase struct {
	Name    string `json:"name"`
	Purpose string `json:"purpose"`
	// Gate must hold before the phase runs.
	Gate Gate `json:"gate"`
	// Statements run in order; consecutive transactional statements share a
	// transaction (until CommitAfter or a NoTransaction statement), and the
	// last transaction also records the phase in the planner's state.
	Statements []Statement `json:"statements"`
	// Backfill, when set, runs after Statements.
	Backfill *Backfill `json:"backfill"`
	// Flags are published in the transaction that completes the phase.
	Flags Flags `json:"flags"`
	// Rollback undoes the phase; RollbackFlags are published by it.
	Rollback      []Statement `json:"rollback"`
	RollbackFlags Flags       `json:"rollback_flags"`
	// Irreversible, when set, says why the phase cannot be rolled back.
	Irreversible string `json:"irreversible"`
	// Partitions, when set, are the partitions of a
	// partitioned table that the phase's statements handle one by one; the
	// engine refuses to run the phase when the table's partitions differ.
	// Its rollback does not depend on them.
	Partitions TableList `json:"partitions"`
}

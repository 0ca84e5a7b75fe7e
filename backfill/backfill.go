// Package backfill computes a column for every existing row of a table in
// short, keyset-paginated batches while the application keeps running.
//
// PostgreSQL is the coordinator: a job row and a set of key ranges live in
// the planner's state schema; each batch is one transaction that locks one
// unfinished range (FOR UPDATE SKIP LOCKED), updates the rows after the
// range's cursor and advances the cursor in the same commit. Any number of
// goroutines and processes may work on one job; a process killed at any
// moment loses at most its uncommitted batch, and a rerun resumes.
//
// A batch does not queue behind the application's row locks, nor holds
// its own longer than Options.MaxAppWait (see sweep.go): it skips rows
// locked by the application and records their keys in the same commit; a range whose
// keys are all swept is done once a later batch has done those rows.
//
// The ranges split the keys that exist at Start; the last range has no
// upper bound, so rows inserted meanwhile past the last key are covered
// too (not only by a sync trigger: an add_column has none). A batch ends
// where the range ends or when it has found fewer rows than its size. A
// worker that finds every unfinished range held by others splits the one
// with the most work left (see split.go), so that more workers than ranges,
// and the tail of a job, still share the work.
//
// Once every range is done, a verification pass (batched the same way)
// looks for rows where the column still differs from its expression, fixes
// them, and marks the job verified: the gate the next phase waits for. A
// job kept by a trigger that fires on every write skips that pass: its
// copy proves its ranges (see proof.go).
package backfill

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/internal/pgq"
	"github.com/pgplanner/planner/phases"
)

var (
	// ErrNoJob: no backfill job exists for the change.
	ErrNoJob = errors.New("no backfill job")
	// ErrNoKey: the table has no primary key and no unique NOT NULL column
	// set to paginate on.
	ErrNoKey = errors.New("table has neither a primary key nor a unique index on NOT NULL columns: the backfill paginates on one; add a primary key first")
	// ErrPaused: Run stopped because an operator paused the job
	// (Options.StopWhenPaused).
	ErrPaused = errors.New("backfill paused")
)

// Querier is what Get, Pause, Resume and Reset need: a pool, a connection
// or a transaction.
type Querier = pgq.Querier

func jobsTable(schema string) string   { return pgx.Identifier{schema, "backfill_jobs"}.Sanitize() }
func rangesTable(schema string) string { return pgx.Identifier{schema, "backfill_ranges"}.Sanitize() }
func undoTable(schema string) string   { return pgx.Identifier{schema, "backfill_undo"}.Sanitize() }
func skippedTable(schema string) string {
	return pgx.Identifier{schema, "backfill_skipped"}.Sanitize()
}

// Migrate creates the job and range tables in the state schema (created if
// missing). Idempotent; the engine runs it inside its own migration.
func Migrate(ctx context.Context, tx pgx.Tx, schema string) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		return fmt.Errorf("backfill: migrate: %w", err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return fmt.Errorf("backfill: migrate: %w", err)
		}
	}
	ddl := fmt.Sprintf(`
CREATE TABLE IF NOT EXISTS %[1]s (
  change_id    text PRIMARY KEY,
  table_schema text NOT NULL,
  table_name   text NOT NULL,
  column_name  text NOT NULL,
  column_type  text NOT NULL,
  expr         text NOT NULL,
  key_columns  text[] NOT NULL,
  key_types    text[] NOT NULL,
  total_rows   bigint NOT NULL,
  paused       boolean NOT NULL DEFAULT false,
  created_at   timestamptz NOT NULL DEFAULT now(),
  started_at   timestamptz,
  done_at      timestamptz,
  verified_at  timestamptz,
  rate_since   timestamptz, -- start of the window RowsPerSec is measured over
  rate_rows    bigint NOT NULL DEFAULT 0, -- rows done and verified at rate_since
  seen_at      timestamptz  -- last heartbeat of a running worker process
);
CREATE TABLE IF NOT EXISTS %[2]s (
  change_id     text NOT NULL REFERENCES %[1]s ON DELETE CASCADE,
  range_no      int NOT NULL,
  lower_bound   text[],  -- exclusive; NULL: from the first key
  upper_bound   text[],  -- inclusive; NULL: to the last key, rows inserted since Start included
  cursor        text[],  -- last key backfilled; NULL: none yet
  verify_cursor text[],  -- last key verified; NULL: none yet
  batch_size    int NOT NULL,
  rows_done     bigint NOT NULL DEFAULT 0,
  rows_updated  bigint NOT NULL DEFAULT 0,
  rows_verified bigint NOT NULL DEFAULT 0,
  rows_fixed    bigint NOT NULL DEFAULT 0,
  batches       bigint NOT NULL DEFAULT 0,
  updated_at    timestamptz,
  done_at       timestamptz,
  verified_at   timestamptz,
  PRIMARY KEY (change_id, range_no)
);
-- The rows a backfill with Undo changed, until Restore sets them back. Not
-- tied to the job: a rollback forgets the job before it restores the rows.
CREATE TABLE IF NOT EXISTS %[3]s (
  change_id text NOT NULL,
  key       text[] NOT NULL,
  value     text,  -- the value written, as text: a row changed since is left alone
  PRIMARY KEY (change_id, key)
)`, jobsTable(schema), rangesTable(schema), undoTable(schema)) + ";\n" + fmt.Sprintf(skippedDDL, jobsTable(schema), skippedTable(schema))
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("backfill: migrate: %w", err)
	}
	if err := addJobColumns(ctx, tx, schema); err != nil {
		return fmt.Errorf("backfill: migrate: %w", err)
	}
	return nil
}

// skippedDDL is the table of keys a backfill batch passed over because an
// application transaction held their row lock (see sweep.go): the range
// they belong to is done only once they are.
const skippedDDL = `CREATE TABLE IF NOT EXISTS %[2]s (
  change_id text NOT NULL REFERENCES %[1]s ON DELETE CASCADE,
  range_no  int NOT NULL,
  key       text[] NOT NULL,
  tries     int NOT NULL DEFAULT 0,  -- revisits that found the row still locked
  retry_at  timestamptz NOT NULL,   -- next revisit
  PRIMARY KEY (change_id, key)
)`

// laterColumns were added to the jobs and ranges tables after their first
// release.
var laterColumns = []struct {
	table     func(schema string) string
	name, def string
}{
	{jobsTable, "rate_since", "timestamptz"},
	{jobsTable, "rate_rows", "bigint NOT NULL DEFAULT 0"},
	{jobsTable, "seen_at", "timestamptz"},
	{jobsTable, "undo", "boolean NOT NULL DEFAULT false"},
	{jobsTable, "throttled_by", "text"},        // why workers wait for replicas; NULL: they do not
	{jobsTable, "throttled_at", "timestamptz"}, // when a waiting worker last said so
	// swept: the range's cursor went through all its keys; it is done
	// once its skipped keys are.
	{rangesTable, "swept", "boolean NOT NULL DEFAULT false"},
	// kept_by: the trigger that keeps written rows right (proof.go); NULL:
	// the job ends with a verification pass.
	{jobsTable, "kept_by", "oid"},
}

// addJobColumns adds the later columns where they are missing, and the
// skipped keys' table (state written by an older planner). It looks at the
// catalog first: ALTER TABLE takes an ACCESS EXCLUSIVE lock even when there
// is nothing to add, and would wait for every batch in flight. Readers do
// not depend on it (list reads these columns tolerantly); Run and Resume,
// which write them, call it.
func addJobColumns(ctx context.Context, q Querier, schema string) error {
	have := map[string][]string{}
	for _, table := range []string{jobsTable(schema), rangesTable(schema)} {
		var cols []string
		if err := q.QueryRow(ctx, `
SELECT coalesce(array_agg(attname::text), '{}') FROM pg_catalog.pg_attribute
WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, table).Scan(&cols); err != nil {
			return err
		}
		have[table] = cols
	}
	for _, c := range laterColumns {
		if slices.Contains(have[c.table(schema)], c.name) {
			continue
		}
		if _, err := q.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s`,
			c.table(schema), pgx.Identifier{c.name}.Sanitize(), c.def)); err != nil {
			return err
		}
	}
	var skipped bool
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, skippedTable(schema)).Scan(&skipped); err != nil {
		return err
	}
	if !skipped {
		if _, err := q.Exec(ctx, fmt.Sprintf(skippedDDL, jobsTable(schema), skippedTable(schema))); err != nil {
			return err
		}
	}
	return nil
}

// Pause asks every worker of the job to stop after its current batch.
func Pause(ctx context.Context, q Querier, schema, changeID string) error {
	return setPaused(ctx, q, schema, changeID, true)
}

// Resume lets paused workers continue.
func Resume(ctx context.Context, q Querier, schema, changeID string) error {
	return setPaused(ctx, q, schema, changeID, false)
}

func setPaused(ctx context.Context, q Querier, schema, changeID string, paused bool) error {
	sql := `UPDATE %s SET paused = $2 WHERE change_id = $1`
	if !paused {
		// The rate starts afresh: the time spent paused is no work.
		if err := addJobColumns(ctx, q, schema); err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
		sql = `UPDATE %s SET paused = $2, rate_since = now(), rate_rows = ` + rowsDoneSQL(schema) + ` WHERE change_id = $1`
	}
	tag, err := q.Exec(ctx, fmt.Sprintf(sql, jobsTable(schema)), changeID, paused)
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w for change %s", ErrNoJob, changeID)
	}
	return nil
}

// rowsDoneSQL sums the rows done and verified of job $1 (the base of the
// rate window).
func rowsDoneSQL(schema string) string {
	return fmt.Sprintf(`(SELECT coalesce(sum(rows_done + rows_verified), 0) FROM %s WHERE change_id = $1)`, rangesTable(schema))
}

// Reset forgets the job and its ranges (rollback of the backfill phase).
// The rows already written stay: the phase before it owns the column. It
// is not an error when no job exists.
func Reset(ctx context.Context, q Querier, schema, changeID string) error {
	if _, err := q.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE change_id = $1`, jobsTable(schema)), changeID); err != nil {
		return fmt.Errorf("backfill: reset %s: %w", changeID, err)
	}
	return nil
}

// pinTextForms makes key values print the same way in every session, as
// they are stored as text and parsed back (transaction-local settings, safe
// behind PgBouncer).
const pinTextForms = "SELECT " + pinTextFormsExprs

const pinTextFormsExprs = `set_config('datestyle', 'ISO, YMD', true), set_config('intervalstyle', 'postgres', true),
  set_config('extra_float_digits', '1', true)`

// StartOptions tune how Start splits the key space.
type StartOptions struct {
	// RangeRows is the number of rows per range; 0 picks one from the
	// table's size (about 16 ranges, each of 10,000 to 10,000,000 rows).
	// Workers split ranges further when they find none free (split.go).
	RangeRows int
	// BatchSize is the first batch size of every range; 0 means 1000.
	BatchSize int
}

// Start creates the job for a change: it resolves the key columns (the
// primary key when key is empty, else a unique NOT NULL index), splits the
// key space into ranges (walking the key index in steps, which also counts
// the rows, or at quantiles of a sample for big tables), and stores the job
// and its ranges. Idempotent: when the job
// exists already, Start does nothing.
func Start(ctx context.Context, pool *pgxpool.Pool, schema, changeID string, work phases.Backfill, key []string) error {
	return StartWith(ctx, pool, schema, changeID, work, key, StartOptions{})
}

// StartWith is Start with options.
func StartWith(ctx context.Context, pool *pgxpool.Pool, schema, changeID string, work phases.Backfill, key []string, opts StartOptions) error {
	if work.Schema == "" {
		work.Schema = "public"
	}
	if work.Table == "" || work.Column == "" || work.Expr == "" {
		return fmt.Errorf("backfill: change %s: table, column and expression are required", changeID)
	}
	if _, err := Get(ctx, pool, schema, changeID); err == nil {
		return nil
	} else if !errors.Is(err, ErrNoJob) {
		return err
	}
	t, err := describe(ctx, pool, work, key)
	if err != nil {
		return fmt.Errorf("backfill: change %s: %w", changeID, err)
	}
	if err := addJobColumns(ctx, pool, schema); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	kept, err := keptBy(ctx, pool, t.name, work.KeptBy)
	if err != nil {
		return fmt.Errorf("backfill: change %s: %w", changeID, err)
	}
	bounds, total, err := split(ctx, pool, t, opts.RangeRows)
	if err != nil {
		return fmt.Errorf("backfill: change %s: split %s: %w", changeID, t.name, err)
	}
	batch := opts.BatchSize
	if batch <= 0 {
		batch = 1000
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, fmt.Sprintf(`
INSERT INTO %s (change_id, table_schema, table_name, column_name, column_type, expr, key_columns, key_types, total_rows, undo, kept_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (change_id) DO NOTHING`, jobsTable(schema)),
		changeID, work.Schema, work.Table, work.Column, t.columnType, work.Expr, t.key.cols, t.key.types, total, work.Undo, kept)
	if err != nil {
		return fmt.Errorf("backfill: create job %s: %w", changeID, err)
	}
	if tag.RowsAffected() == 0 {
		return nil // another Start won the race
	}
	// Range i covers keys in (bounds[i-1], bounds[i]]; the first starts
	// before the first key, the last has no upper bound.
	var lower []string
	for i := 0; i <= len(bounds); i++ {
		var upper []string
		if i < len(bounds) {
			upper = bounds[i]
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`
INSERT INTO %s (change_id, range_no, lower_bound, upper_bound, cursor, verify_cursor, batch_size)
VALUES ($1, $2, $3, $4, $3, $3, $5)`, rangesTable(schema)), changeID, i, lower, upper, batch); err != nil {
			return fmt.Errorf("backfill: create ranges of %s: %w", changeID, err)
		}
		lower = upper
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("backfill: create job %s: %w", changeID, err)
	}
	return nil
}

// exactSplitUpTo: tables estimated below this many rows are counted
// exactly by walking their key index; larger ones are split at quantiles
// of a sample, so that Start stays quick on any table.
var exactSplitUpTo = 500_000.0

// split returns the inclusive upper bound of every range but the last, and
// the number of rows (exact, or the planner's estimate for big tables).
// With step > 0 it walks the key index in steps of that many rows.
func split(ctx context.Context, pool *pgxpool.Pool, t *target, step int) ([][]string, int64, error) {
	if step <= 0 {
		// A partitioned parent has no reltuples of its own (autovacuum
		// never analyzes it): sum its leaf partitions'.
		var est float64
		if err := pool.QueryRow(ctx, `SELECT CASE WHEN c.relkind = 'p' THEN (
  SELECT coalesce(sum(l.reltuples) FILTER (WHERE l.reltuples > 0), 0)
  FROM pg_catalog.pg_partition_tree(c.oid) p JOIN pg_catalog.pg_class l ON l.oid = p.relid WHERE p.isleaf) ELSE c.reltuples END
FROM pg_catalog.pg_class c WHERE c.oid = to_regclass($1)`, t.name).Scan(&est); err != nil {
			return nil, 0, err
		}
		if est >= exactSplitUpTo {
			return sampleSplit(ctx, pool, t, est, 16)
		}
		step = int(min(max(est/16, 10_000), 10_000_000))
	}
	// One READ COMMITTED transaction: each probe takes a fresh snapshot, so
	// a long walk holds back no vacuum; it pins the text form of keys.
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, pinTextForms); err != nil {
		return nil, 0, err
	}
	var bounds [][]string
	var total int64
	var cursor []string
	for {
		next := make([]string, len(t.key.cols))
		ptrs := make([]any, len(next))
		for i := range next {
			ptrs[i] = &next[i]
		}
		sql, args := t.probeSQL(cursor, nil, step)
		err := tx.QueryRow(ctx, sql, args...).Scan(ptrs...)
		if errors.Is(err, pgx.ErrNoRows) {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		bounds = append(bounds, next)
		total += int64(step)
		cursor = next
	}
	var rest int64
	sql, args := t.countSQL(cursor, nil)
	if err := tx.QueryRow(ctx, sql, args...).Scan(&rest); err != nil {
		return nil, 0, err
	}
	if rest == 0 && len(bounds) > 0 {
		// Nothing after the last step: let that step be the open last range.
		bounds = bounds[:len(bounds)-1]
	}
	return bounds, total + rest, nil
}

// sampleSplit picks range bounds at quantiles of about 30,000 keys sampled
// by whole pages (TABLESAMPLE SYSTEM): a few pages read, whatever the
// table's size. The total is the planner's estimate.
func sampleSplit(ctx context.Context, pool *pgxpool.Pool, t *target, est float64, ranges int) ([][]string, int64, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, pinTextForms); err != nil {
		return nil, 0, err
	}
	percent := min(100, max(0.0001, 100*30_000/est))
	rows, err := tx.Query(ctx, fmt.Sprintf(`
SELECT %s FROM (
  SELECT %s, row_number() OVER (ORDER BY %s) AS "planner sample row", count(*) OVER () AS "planner sample size"
  FROM %s TABLESAMPLE SYSTEM ($1)
) s
WHERE "planner sample row" %% greatest(1, "planner sample size" / $2) = 0 AND "planner sample row" < "planner sample size"
ORDER BY "planner sample row"`, t.keyListOf("s.", "::text"), t.keyList(""), t.orderBy(), t.name), percent, ranges)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var bounds [][]string
	for rows.Next() {
		key := make([]string, len(t.key.cols))
		ptrs := make([]any, len(key))
		for i := range key {
			ptrs[i] = &key[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, 0, err
		}
		bounds = append(bounds, key)
	}
	return bounds, int64(est), rows.Err()
}

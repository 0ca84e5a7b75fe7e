package backfill

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// When the copy proves a range.
//
// A batch's statement updates every row of its key interval that differs
// from the expression and commits: at that moment the interval is right.
// The verification pass exists for the rows a write made wrong since, or
// moved from a part of the table not copied yet to one already copied (a
// key update). A trigger that gives every row an INSERT or UPDATE writes
// its value (phases.Backfill.KeptBy: the sync trigger of a rename, the fill
// trigger of a NOT NULL fill) rules both out: whatever a write does to a
// row, the row is right afterwards. Such a job skips the verification
// pass: once every range is done, it is verified.
//
// The backfill trusts the trigger only as the catalog shows it, when the
// job starts and again when its ranges are done (the same trigger, by
// oid): a BEFORE ROW trigger on INSERT and on UPDATE of any column,
// enabled, and so on every leaf partition. A trigger that fires on some
// columns only, or disabled, or gone, leaves the job to the verification
// pass.

// keptTriggerCond is true for a trigger row of alias that fires before
// every INSERT and every UPDATE of a row (tgtype: ROW 1, BEFORE 2, INSERT 4,
// UPDATE 16), whatever the columns written, and is enabled.
func keptTriggerCond(alias string) string {
	return fmt.Sprintf(`%[1]s.tgenabled IN ('O', 'A') AND (%[1]s.tgtype::int & 23) = 23 AND cardinality(%[1]s.tgattr::int2[]) = 0`, alias)
}

// keptTriggerSQL finds such a trigger t, present on every leaf partition
// too; where is the condition that picks t.
func keptTriggerSQL(where string) string {
	return fmt.Sprintf(`SELECT t.oid FROM pg_catalog.pg_trigger t
WHERE %s AND %s
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_partition_tree(t.tgrelid) p
    WHERE p.isleaf AND p.relid <> t.tgrelid
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger c WHERE c.tgrelid = p.relid AND c.tgname = t.tgname AND %s))`,
		where, keptTriggerCond("t"), keptTriggerCond("c"))
}

// keptBy is the oid of the trigger named trigger on table (quoted) when it
// keeps every written row right; nil when there is none such.
func keptBy(ctx context.Context, q Querier, table, trigger string) (*uint32, error) {
	if trigger == "" {
		return nil, nil
	}
	var oid uint32
	err := q.QueryRow(ctx, keptTriggerSQL("t.tgrelid = to_regclass($1) AND t.tgname = $2"), table, trigger).Scan(&oid)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &oid, nil
}

// proven says whether the job's copy proves its ranges: it was started
// with a trigger that keeps written rows right and the trigger still does.
// When it no longer does, the job falls back to the verification pass.
func (r *runner) proven(ctx context.Context) (bool, error) {
	var trigger *uint32
	if err := r.pool.QueryRow(ctx, fmt.Sprintf(`SELECT kept_by FROM %s WHERE change_id = $1`, jobsTable(r.schema)),
		r.changeID).Scan(&trigger); err != nil {
		return false, fmt.Errorf("backfill: %w", err)
	}
	if trigger == nil {
		return false, nil
	}
	var oid uint32
	err := r.pool.QueryRow(ctx, keptTriggerSQL("t.oid = $1"), *trigger).Scan(&oid)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("backfill: %w", err)
	}
	if _, err := r.pool.Exec(ctx, fmt.Sprintf(`UPDATE %s SET kept_by = NULL WHERE change_id = $1`, jobsTable(r.schema)), r.changeID); err != nil {
		return false, fmt.Errorf("backfill: %w", err)
	}
	if r.opts.Log != nil {
		r.opts.Log(fmt.Sprintf("the trigger that kept the rows of %s right no longer fires on every write (disabled, changed or dropped): verifying every row", r.t.name))
	}
	return false, nil
}

package backfill

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/phases"
)

// A backfill done outside the planner (planner adopt) is checked by a
// read-only pass over the rows, batched on the key like the verification
// pass but fixing nothing, and then recorded as a verified job, so that the
// next phase's gate opens as after a backfill the planner ran.

// CheckResult is what Check found.
type CheckResult struct {
	// Rows is the number of rows read; Differ those whose column differs
	// from the expression.
	Rows, Differ int64
	// Example is the key (as text) of the first row found differing.
	Example []string
	// Key names the key columns the pass paginated on.
	Key []string
}

// Check reads every row of work's table, batchSize keys at a time (0:
// 10,000), and counts the rows where work's column is distinct from its
// expression, exactly as the verification pass compares them. It changes
// nothing: each batch is one read-only statement.
func Check(ctx context.Context, q Querier, work phases.Backfill, key []string, batchSize int) (CheckResult, error) {
	if work.Schema == "" {
		work.Schema = "public"
	}
	if batchSize <= 0 {
		batchSize = 10_000
	}
	t, err := describe(ctx, q, work, key)
	if err != nil {
		return CheckResult{}, fmt.Errorf("backfill: check %s.%s: %w", work.Schema, work.Table, err)
	}
	res := CheckResult{Key: t.key.cols}
	var cursor []string
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var rows, differ int64
		var end []string
		sql, args := t.verifySQL(cursor, nil, batchSize)
		// Unnamed statement: the batch size is a literal in the SQL.
		args = append([]any{pgx.QueryExecModeExec}, args...)
		if err := q.QueryRow(ctx, sql, args...).Scan(&rows, &differ, &end); err != nil {
			return res, fmt.Errorf("backfill: check %s: %w", t.name, err)
		}
		res.Rows += rows
		var upper []string
		if rows == int64(batchSize) {
			upper = end
		}
		if differ > 0 && res.Example == nil {
			if res.Example, err = t.firstDiffering(ctx, q, cursor, upper); err != nil {
				return res, err
			}
		}
		res.Differ += differ
		if upper == nil {
			return res, nil
		}
		cursor = upper
	}
}

// firstDiffering is the key of the first row between lower and upper whose
// column differs.
func (t *target) firstDiffering(ctx context.Context, q Querier, lower, upper []string) ([]string, error) {
	cond, args := t.cond(lower, upper)
	if lower == nil {
		cond += " AND " + t.firstKeyCond()
	}
	out := make([]*string, len(t.key.cols))
	dest := make([]any, len(out))
	for i := range out {
		dest[i] = &out[i]
	}
	sql := fmt.Sprintf("SELECT %s FROM %s WHERE %s AND %s IS DISTINCT FROM %s ORDER BY %s LIMIT 1",
		t.keyList("::text"), t.name, cond, t.column, t.value, t.orderBy())
	if err := q.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		return nil, fmt.Errorf("backfill: check %s: %w", t.name, err)
	}
	key := make([]string, len(out))
	for i, v := range out {
		if v != nil {
			key[i] = *v
		}
	}
	return key, nil
}

// Describe names the first differing row for a message: (id)=(42).
func (r CheckResult) Describe() string {
	if r.Example == nil {
		return ""
	}
	return "(" + strings.Join(r.Key, ", ") + ")=(" + strings.Join(r.Example, ", ") + ")"
}

// RecordVerified records in tx a backfill that Check found complete: a
// job for the change with one range, done and verified, so that the gate
// of the phase after the backfill opens. A job that exists already has its
// ranges and itself marked done and verified.
func RecordVerified(ctx context.Context, tx pgx.Tx, schema, changeID string, work phases.Backfill, key []string, res CheckResult) error {
	if work.Schema == "" {
		work.Schema = "public"
	}
	if res.Differ > 0 {
		return fmt.Errorf("backfill: change %s: %d rows differ; not recording it as verified", changeID, res.Differ)
	}
	t, err := describe(ctx, tx, work, key)
	if err != nil {
		return fmt.Errorf("backfill: change %s: %w", changeID, err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`
INSERT INTO %s (change_id, table_schema, table_name, column_name, column_type, expr, key_columns, key_types, total_rows, undo,
  started_at, done_at, verified_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), now(), now()) ON CONFLICT (change_id) DO NOTHING`, jobsTable(schema)),
		changeID, work.Schema, work.Table, work.Column, t.columnType, work.Expr, t.key.cols, t.key.types, res.Rows, work.Undo); err != nil {
		return fmt.Errorf("backfill: record job %s: %w", changeID, err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`
INSERT INTO %s (change_id, range_no, batch_size, rows_done, rows_verified, updated_at, done_at, verified_at, swept)
SELECT $1, 0, 1000, $2, $2, now(), now(), now(), true
WHERE NOT EXISTS (SELECT 1 FROM %[1]s WHERE change_id = $1)`, rangesTable(schema)), changeID, res.Rows); err != nil {
		return fmt.Errorf("backfill: record job %s: %w", changeID, err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET done_at = coalesce(done_at, now()), verified_at = coalesce(verified_at, now()),
  swept = true, updated_at = now() WHERE change_id = $1`, rangesTable(schema)), changeID); err != nil {
		return fmt.Errorf("backfill: record job %s: %w", changeID, err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE change_id = $1`, skippedTable(schema)), changeID); err != nil {
		return fmt.Errorf("backfill: record job %s: %w", changeID, err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET done_at = coalesce(done_at, now()), verified_at = coalesce(verified_at, now())
WHERE change_id = $1`, jobsTable(schema)), changeID); err != nil {
		return fmt.Errorf("backfill: record job %s: %w", changeID, err)
	}
	return nil
}

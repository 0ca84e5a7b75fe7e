package backfill

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/internal/clock"
	"github.com/pgplanner/planner/phases"
)

// restoreBatch is how many recorded rows one Restore transaction sets back.
const restoreBatch = 1000

// Restore sets the rows that a backfill with Undo changed back to NULL (the
// rollback of set_not_null's backfill), in batches of one short
// transaction each. A batch deletes the records it applies, so a rerun
// after a crash goes on where it stopped. A row whose column no longer
// holds the value the backfill wrote was changed since and keeps it. It
// returns the rows set back; without records it does nothing.
//
// Run it after whatever would refill the column (the fill trigger) is gone.
func Restore(ctx context.Context, pool *pgxpool.Pool, schema, changeID string, work phases.Backfill, key []string, opts Options) (int64, error) {
	opts = opts.withDefaults()
	var pending bool
	if err := pool.QueryRow(ctx, fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM %s WHERE change_id = $1)`, undoTable(schema)),
		changeID).Scan(&pending); err != nil {
		return 0, fmt.Errorf("backfill: restore %s: %w", changeID, err)
	}
	if !pending {
		return 0, nil
	}
	if work.Schema == "" {
		work.Schema = "public"
	}
	t, err := describe(ctx, pool, work, key)
	if err != nil {
		return 0, fmt.Errorf("backfill: restore %s: %w", changeID, err)
	}
	// The key and the value were recorded as text under pinTextForms: they
	// are matched the same way, and the key cast back to its types so that
	// the key index serves the lookup.
	match := make([]string, len(t.key.cols))
	for i, c := range t.key.cols {
		match[i] = fmt.Sprintf("%s.%s = gone.key[%d]::%s", t.name, pgx.Identifier{c}.Sanitize(), i+1, t.key.types[i])
	}
	sql := fmt.Sprintf(`
WITH gone AS (
  DELETE FROM %[1]s WHERE change_id = $1 AND key IN (SELECT key FROM %[1]s WHERE change_id = $1 LIMIT $2)
  RETURNING key, value),
restored AS (
  UPDATE %[2]s SET %[3]s = NULL FROM gone
  WHERE %[4]s AND %[2]s.%[3]s::text IS NOT DISTINCT FROM gone.value
  RETURNING 1)
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM restored)`,
		undoTable(schema), t.name, t.column, strings.Join(match, " AND "))
	var total int64
	failures := 0
	for {
		var gone, restored int64
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true), `+pinTextFormsExprs,
				fmt.Sprint(opts.LockTimeout.Milliseconds()), fmt.Sprint(opts.StatementTimeout.Milliseconds())); err != nil {
				return err
			}
			return tx.QueryRow(ctx, sql, changeID, restoreBatch).Scan(&gone, &restored)
		})
		switch {
		case err == nil:
			failures = 0
			total += restored
			if gone == 0 {
				return total, nil
			}
		case ctx.Err() == nil && retryable(err) && failures < opts.MaxRetries:
			failures++
			if err := clock.Sleep(ctx, min(5*time.Second, 100*time.Millisecond<<failures)); err != nil {
				return total, err
			}
		default:
			return total, fmt.Errorf("backfill: restore %s: %w", changeID, err)
		}
	}
}

// The state of the statements report (statements.go): per change, the
// pg_stat_statements call counts at the baseline and at the last check.

package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// storedBaseline is a change's row of the statement_baselines table.
type storedBaseline struct {
	taken      time.Time
	statsReset *time.Time
	baseline   map[int64]int64
	checkedAt  *time.Time
	checked    map[int64]int64
	// ignored are the entries that named a renamed table before its
	// rename (renamedEntries).
	ignored map[int64]int64
}

func countsJSON(m map[int64]int64) string {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[strconv.FormatInt(k, 10)] = v
	}
	b, _ := json.Marshal(out)
	return string(b)
}

func parseCounts(raw []byte) (map[int64]int64, error) {
	if raw == nil {
		return nil, nil
	}
	var in map[string]int64
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	out := make(map[int64]int64, len(in))
	for k, v := range in {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			return nil, err
		}
		out[id] = v
	}
	return out, nil
}

// statementBaseline reads a change's baseline; nil when none was taken
// (or the state predates the table).
func (s state) statementBaseline(ctx context.Context, q Querier, change string) (*storedBaseline, error) {
	var b storedBaseline
	var base, checked, ignored []byte
	err := q.QueryRow(ctx, `SELECT taken, stats_reset, baseline, checked_at, checked, ignored FROM `+s.table("statement_baselines")+` WHERE change = $1`, change).
		Scan(&b.taken, &b.statsReset, &base, &b.checkedAt, &checked, &ignored)
	var pe *pgconn.PgError
	if errors.Is(err, pgx.ErrNoRows) || errors.As(err, &pe) && pe.Code == "42P01" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if b.baseline, err = parseCounts(base); err != nil {
		return nil, fmt.Errorf("change %s: stored statement baseline: %w", change, err)
	}
	if b.checked, err = parseCounts(checked); err != nil {
		return nil, fmt.Errorf("change %s: stored statement counts: %w", change, err)
	}
	if b.ignored, err = parseCounts(ignored); err != nil {
		return nil, fmt.Errorf("change %s: stored statements of the renamed table: %w", change, err)
	}
	return &b, nil
}

// setStatementBaseline replaces a change's baseline with snap (nil: only
// forgets the old one); the time is the database's.
func (s state) setStatementBaseline(ctx context.Context, q Querier, change string, snap *statementSnapshot) (time.Time, error) {
	var taken time.Time
	if snap == nil {
		_, err := q.Exec(ctx, `DELETE FROM `+s.table("statement_baselines")+` WHERE change = $1`, change)
		return taken, err
	}
	err := q.QueryRow(ctx, `INSERT INTO `+s.table("statement_baselines")+` (change, taken, stats_reset, baseline)
		VALUES ($1, clock_timestamp(), $2, $3)
		ON CONFLICT (change) DO UPDATE SET taken = EXCLUDED.taken, stats_reset = EXCLUDED.stats_reset,
			baseline = EXCLUDED.baseline, checked_at = NULL, checked = NULL
		RETURNING taken`, change, snap.statsReset, countsJSON(snap.calls)).Scan(&taken)
	return taken, err
}

// recordStatementCheck stores the counts a gate check saw. After a reset of
// pg_stat_statements every count restarted, later than the baseline: the
// baseline becomes zero.
func (s state) recordStatementCheck(ctx context.Context, q Querier, change string, snap *statementSnapshot, reset bool) error {
	sql := `UPDATE ` + s.table("statement_baselines") + ` SET checked_at = clock_timestamp(), checked = $2, stats_reset = $3`
	if reset {
		sql += `, baseline = '{}'`
	}
	_, err := q.Exec(ctx, sql+` WHERE change = $1`, change, countsJSON(snap.calls), snap.statsReset)
	return err
}

// ensureStatementBaselines creates the baseline table of state written
// before it existed (no state version bump: older binaries ignore it).
func (s state) ensureStatementBaselines(ctx context.Context, q Querier) error {
	var has bool
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, s.table("statement_baselines")).Scan(&has); err != nil || has {
		return err
	}
	// The foreign key locks the changes table: briefly, or not at all.
	var prev string
	if err := q.QueryRow(ctx, `SELECT current_setting('lock_timeout'), set_config('lock_timeout', '5s', true)`).Scan(&prev, new(string)); err != nil {
		return err
	}
	if _, err := q.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table("statement_baselines")+` (
		change text PRIMARY KEY REFERENCES `+s.table("changes")+` (id) ON DELETE CASCADE,
		taken timestamptz NOT NULL,
		stats_reset timestamptz,
		baseline jsonb NOT NULL,
		checked_at timestamptz,
		checked jsonb)`); err != nil {
		return err
	}
	_, err := q.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, prev)
	return err
}

// setIgnoredStatements stores the entries a contract leaves out
// (renamedEntries).
func (s state) setIgnoredStatements(ctx context.Context, q Querier, change string, snap *statementSnapshot) error {
	_, err := q.Exec(ctx, `INSERT INTO `+s.table("statement_baselines")+` (change, taken, stats_reset, baseline, ignored)
		VALUES ($1, clock_timestamp(), $2, '{}', $3)
		ON CONFLICT (change) DO UPDATE SET ignored = EXCLUDED.ignored`, change, snap.statsReset, countsJSON(snap.calls))
	return err
}

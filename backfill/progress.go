// A job's progress: what Get and List report, with its rate and ETA.

package backfill

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Progress is the state of a job, summed over its ranges.
type Progress struct {
	ChangeID string `json:"change_id"`
	Table    string `json:"table"` // schema.table
	Column   string `json:"column"`
	// Phase is "backfill", "verify" or "verified".
	Phase string `json:"phase"`
	// Rows is how many rows the backfill has gone through; Total is the
	// number of rows counted when the job started (rows inserted since may
	// take Rows past it).
	Rows  int64 `json:"rows"`
	Total int64 `json:"total"`
	// Updated rows were changed by the backfill (the others already agreed).
	Updated int64 `json:"updated"`
	// VerifiedRows have been checked by the verification pass; Fixed rows
	// were found wrong there and corrected.
	VerifiedRows int64 `json:"verified_rows"`
	Fixed        int64 `json:"fixed"`
	Ranges       int   `json:"ranges"`
	RangesDone   int   `json:"ranges_done"`
	// Done: every range is backfilled. Verified: and the verification pass
	// found no row left that differs.
	Done     bool `json:"done"`
	Verified bool `json:"verified"`
	Paused   bool `json:"paused"`
	// Idle: the job is not verified and no worker has shown signs of life
	// (a batch, or Run's heartbeat) for IdleAfter: nothing runs it.
	Idle bool `json:"idle"`
	// Throttled: a worker is waiting for replicas to catch up;
	// ThrottledBy says which replicas lag, by how much (from the job, so
	// status in another process sees it while the worker waits).
	Throttled   bool   `json:"throttled"`
	ThrottledBy string `json:"throttled_by"`
	// BatchSize is the largest current batch size over the ranges.
	BatchSize int `json:"batch_size"`
	// RowsPerSec is the recent rate (since the job was last started or
	// resumed, or since the verification pass began); 0 when unknown, and
	// while the job is paused or idle.
	RowsPerSec float64 `json:"rows_per_sec"`
	// ETA is the time left in the current pass at RowsPerSec (0: unknown).
	// (JSON: eta_seconds, null when unknown.)
	ETA        time.Duration `json:"-"`
	StartedAt  *time.Time    `json:"started_at"`
	VerifiedAt *time.Time    `json:"verified_at"`
}

// MarshalJSON writes ETA in seconds, its unit in its key, null when unknown.
func (p Progress) MarshalJSON() ([]byte, error) {
	type plain Progress
	var eta *float64
	if p.ETA > 0 {
		secs := p.ETA.Seconds()
		eta = &secs
	}
	return json.Marshal(struct {
		plain
		ETASeconds *float64 `json:"eta_seconds"`
	}{plain(p), eta})
}

// Pass returns the rows done in the current pass (backfill, then
// verification) and the pass's total: Total, or the rows done when more
// (Total is an estimate for big tables, and rows inserted since Start
// count too).
func (p Progress) Pass() (done, total int64) {
	done = p.Rows
	if p.Done {
		done = p.VerifiedRows
	}
	return done, max(p.Total, done)
}

// Summary describes the current pass with figures that agree: rows
// done of the pass's total (never less than the rows done: the total is an
// estimate), the percentage of those, then the rate and ETA while workers
// run, or why nothing runs. E.g. "backfill  12.3% (36900/300000 rows,
// 51234 rows/s, ETA 5s)" or "verify  40.0% (200/500 rows checked) paused
// (planner backfill resume c1)".
func (p Progress) Summary() string {
	var b strings.Builder
	done, total := p.Pass()
	switch p.Phase {
	case "backfill":
		fmt.Fprintf(&b, "backfill %5.1f%% (%d/%d rows", 100*p.Fraction(), done, total)
	case "verify":
		fmt.Fprintf(&b, "verify %5.1f%% (%d/%d rows checked", 100*p.Fraction(), done, total)
	default:
		fmt.Fprintf(&b, "verified (%d rows, %d changed, %d fixed by verification)", p.Rows, p.Updated, p.Fixed)
		return b.String()
	}
	running := !p.Paused && !p.Idle
	if running && p.RowsPerSec > 0 {
		fmt.Fprintf(&b, ", %.0f rows/s", p.RowsPerSec)
		if p.ETA > 0 {
			fmt.Fprintf(&b, ", ETA %s", p.ETA.Round(time.Second))
		}
	}
	b.WriteString(")")
	switch {
	case p.Paused:
		b.WriteString(" paused (planner backfill resume " + p.ChangeID + ")")
	case p.Idle:
		b.WriteString(" idle: no worker is running it (planner backfill run " + p.ChangeID + ")")
	case p.Throttled:
		b.WriteString(" waiting for replicas to catch up")
		if p.ThrottledBy != "" {
			b.WriteString(": " + p.ThrottledBy)
		}
	}
	return b.String()
}

// Fraction is the share of the current pass's work done, in [0, 1].
func (p Progress) Fraction() float64 {
	if p.Verified {
		return 1
	}
	done, total := p.Pass()
	if total <= 0 {
		if p.Done {
			return 1
		}
		return 0
	}
	return float64(done) / float64(total)
}

// Get returns the progress of the change's job, or ErrNoJob.
func Get(ctx context.Context, q Querier, schema, changeID string) (Progress, error) {
	all, err := list(ctx, q, schema, changeID)
	if err != nil {
		return Progress{}, err
	}
	if len(all) == 0 {
		return Progress{}, fmt.Errorf("%w for change %s", ErrNoJob, changeID)
	}
	return all[0], nil
}

// List returns every job in the state schema, oldest first; none when the
// state tables do not exist yet.
func List(ctx context.Context, q Querier, schema string) ([]Progress, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, jobsTable(schema)).Scan(&exists); err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	if !exists {
		return nil, nil
	}
	return list(ctx, q, schema, "")
}

// IdleAfter is how long a job that is not verified may show no sign of a
// worker (no batch committed, no heartbeat from Run) before it counts as
// idle: no process runs it. Run's heartbeat comes every IdleAfter/3.
var IdleAfter = 15 * time.Second

func list(ctx context.Context, q Querier, schema, changeID string) ([]Progress, error) {
	// The jobs table's later columns are read through to_jsonb, so that a
	// state written by an older planner (not migrated yet) reads too.
	rows, err := q.Query(ctx, fmt.Sprintf(`
SELECT j.change_id, j.table_schema, j.table_name, j.column_name, j.total_rows, j.paused,
       j.started_at, j.done_at IS NOT NULL OR r.all_done, j.verified_at,
       coalesce(r.ranges, 0), coalesce(r.ranges_done, 0),
       coalesce(r.rows_done, 0), coalesce(r.rows_updated, 0), coalesce(r.rows_verified, 0), coalesce(r.rows_fixed, 0),
       coalesce(r.batch_size, 0),
       coalesce((to_jsonb(j) ->> 'rate_since')::timestamptz, j.started_at), coalesce((to_jsonb(j) ->> 'rate_rows')::bigint, 0),
       r.last_batch, r.pass_start,
       coalesce(now() - greatest((to_jsonb(j) ->> 'seen_at')::timestamptz, r.last_batch) > $2 * interval '1 second', true),
       CASE WHEN now() - (to_jsonb(j) ->> 'throttled_at')::timestamptz < $2 * interval '1 second' THEN to_jsonb(j) ->> 'throttled_by' END
FROM %s j LEFT JOIN LATERAL (
  SELECT count(*)::int AS ranges, count(done_at)::int AS ranges_done, bool_and(done_at IS NOT NULL) AS all_done,
         sum(rows_done)::bigint AS rows_done, sum(rows_updated)::bigint AS rows_updated,
         sum(rows_verified)::bigint AS rows_verified, sum(rows_fixed)::bigint AS rows_fixed,
         max(batch_size) AS batch_size, max(updated_at) AS last_batch, max(done_at) AS pass_start
  FROM %s WHERE change_id = j.change_id) r ON true
WHERE $1 = '' OR j.change_id = $1
ORDER BY j.created_at, j.change_id`, jobsTable(schema), rangesTable(schema)), changeID, IdleAfter.Seconds())
	if err != nil {
		return nil, fmt.Errorf("backfill: read jobs: %w", err)
	}
	defer rows.Close()
	var out []Progress
	for rows.Next() {
		var p Progress
		var tschema, tname string
		var done *bool
		var w rateWindow
		var throttledBy *string
		if err := rows.Scan(&p.ChangeID, &tschema, &tname, &p.Column, &p.Total, &p.Paused,
			&p.StartedAt, &done, &p.VerifiedAt, &p.Ranges, &p.RangesDone,
			&p.Rows, &p.Updated, &p.VerifiedRows, &p.Fixed, &p.BatchSize,
			&w.since, &w.rows, &w.lastBatch, &w.passStart, &p.Idle, &throttledBy); err != nil {
			return nil, fmt.Errorf("backfill: read jobs: %w", err)
		}
		p.Table = tschema + "." + tname
		p.Done = done != nil && *done
		p.Verified = p.VerifiedAt != nil
		p.Idle = p.Idle && !p.Verified
		if throttledBy != nil && !p.Verified {
			p.Throttled, p.ThrottledBy = true, *throttledBy
		}
		switch {
		case p.Verified:
			p.Phase = "verified"
		case p.Done:
			p.Phase = "verify"
		default:
			p.Phase = "backfill"
		}
		if !p.Verified && !p.Paused && !p.Idle {
			p.RowsPerSec = w.rate(p)
		}
		p.ETA = eta(p)
		out = append(out, p)
	}
	return out, rows.Err()
}

// rateWindow is what the persisted rate is computed from: the rows done
// since the job was last (re)started or resumed (since, when rows were
// done and verified), up to the last batch.
type rateWindow struct {
	since     *time.Time
	rows      int64
	lastBatch *time.Time
	passStart *time.Time // the last range backfilled: the verification pass began
}

// rate is the job's rows per second over the window, or 0 when unknown.
// The verification pass counts from its own start: its rows are cheaper.
func (w rateWindow) rate(p Progress) float64 {
	from, n := w.since, p.Rows+p.VerifiedRows-w.rows
	if p.Done && w.passStart != nil && (from == nil || w.passStart.After(*from)) {
		from, n = w.passStart, p.VerifiedRows
	}
	if from == nil || w.lastBatch == nil || n <= 0 {
		return 0
	}
	secs := w.lastBatch.Sub(*from).Seconds()
	if secs <= 0 {
		return 0
	}
	return float64(n) / secs
}

// eta estimates the time left in the current pass (backfill, then
// verification) at RowsPerSec; 0 when unknown.
func eta(p Progress) time.Duration {
	if p.Verified || p.RowsPerSec <= 0 {
		return 0
	}
	done, total := p.Pass()
	return time.Duration(float64(total-done) / p.RowsPerSec * float64(time.Second)).Round(time.Second)
}

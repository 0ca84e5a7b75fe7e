package workload

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Stats is a live view of a running workload.
type Stats struct {
	Ops            int64         // requests finished
	OldOps, NewOps int64         // requests routed to old / new instances
	Failed         int64         // requests that returned an error
	Idle           int64         // requests not made: new instances had stopped using the dropped table
	ReadMismatches int64         // reads that did not return the last value written
	LongestStall   time.Duration // slowest request so far
}

// Stats reports progress so far; safe to call while the fleet runs.
func (w *Workload) Stats() Stats {
	return Stats{
		Ops:            w.oldOps.Load() + w.newOps.Load(),
		OldOps:         w.oldOps.Load(),
		NewOps:         w.newOps.Load(),
		Failed:         w.failed.Load(),
		Idle:           w.idle.Load(),
		ReadMismatches: w.mismatch.Load(),
		LongestStall:   time.Duration(w.maxLat.Load()),
	}
}

// Report summarizes a finished run.
type Report struct {
	Stats
	ByOp    map[string]int64
	Elapsed time.Duration
	// Latency percentiles over all requests; LongestStall is the maximum.
	P50, P99 time.Duration
	// Errors are the first failures, in order; ErrorCounts counts all of
	// them by message.
	Errors      []string
	ErrorCounts map[string]int
	// Mismatches are the first reads that disagreed with the last write.
	Mismatches []string
	// Unknown counts requests whose outcome cannot be known (failed without
	// a server error); their rows are left out of the verification.
	Unknown int64
}

func (w *Workload) report() Report {
	r := Report{Stats: w.Stats(), ByOp: map[string]int64{}, Elapsed: w.elapsed, Unknown: w.unknown.Load()}
	var all []time.Duration
	for _, wk := range w.workers {
		all = append(all, wk.lat...)
		for op, n := range wk.ops {
			r.ByOp[Op(op).String()] += n
		}
	}
	slices.Sort(all)
	r.P50, r.P99 = percentile(all, 0.50), percentile(all, 0.99)
	w.problemsMu.Lock()
	r.Errors = slices.Clone(w.errs)
	r.ErrorCounts = make(map[string]int, len(w.errCounts))
	for k, v := range w.errCounts {
		r.ErrorCounts[k] = v
	}
	r.Mismatches = slices.Clone(w.mismatches)
	w.problemsMu.Unlock()
	return r
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted)) + 0.5)
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests in %s (%d by old instances, %d by new): ", r.Ops, r.Elapsed.Round(time.Millisecond), r.OldOps, r.NewOps)
	if r.Idle > 0 {
		fmt.Fprintf(&b, "%d not made (the table is dropped), ", r.Idle)
	}
	ops := make([]string, 0, len(r.ByOp))
	for op := OpInsert; op < numOps; op++ {
		ops = append(ops, fmt.Sprintf("%d %ss", r.ByOp[op.String()], op))
	}
	b.WriteString(strings.Join(ops, ", "))
	fmt.Fprintf(&b, "\nlatency p50 %s, p99 %s, longest stall %s\n", r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.LongestStall.Round(time.Microsecond))
	fmt.Fprintf(&b, "failed requests: %d, reads of a stale or wrong value: %d, requests with unknown outcome: %d", r.Failed, r.ReadMismatches, r.Unknown)
	msgs := make([]string, 0, len(r.ErrorCounts))
	for m := range r.ErrorCounts {
		msgs = append(msgs, m)
	}
	sort.Strings(msgs)
	for _, m := range msgs {
		fmt.Fprintf(&b, "\n  %d× %s", r.ErrorCounts[m], m)
	}
	for _, m := range r.Mismatches {
		fmt.Fprintf(&b, "\n  read mismatch: %s", m)
	}
	return b.String()
}

// Verification compares the table with what the fleet wrote.
type Verification struct {
	// Columns are the compared columns that exist now.
	Columns []string
	// Rows the fleet has a known last state for (existing or deleted).
	RowsChecked int
	// Missing: rows the fleet did not delete that are gone. Resurrected:
	// rows it deleted that exist. Unexpected: rows it never knew of.
	Missing, Resurrected, Unexpected int
	// Divergent: rows whose value in some column is not the last one written.
	Divergent int
	// Skipped rows had a request with unknown outcome.
	Skipped  int
	Examples []string
}

// OK says the table holds exactly what the fleet wrote.
func (v Verification) OK() bool {
	return v.Missing == 0 && v.Resurrected == 0 && v.Unexpected == 0 && v.Divergent == 0
}

// Lost counts the writes that did not survive: rows that are missing,
// resurrected or hold another value.
func (v Verification) Lost() int { return v.Missing + v.Resurrected + v.Divergent }

func (v Verification) String() string {
	s := fmt.Sprintf("rows checked: %d (columns %s), divergent: %d, missing: %d, resurrected: %d, unexpected: %d, skipped: %d",
		v.RowsChecked, strings.Join(v.Columns, ", "), v.Divergent, v.Missing, v.Resurrected, v.Unexpected, v.Skipped)
	for _, e := range v.Examples {
		s += "\n  " + e
	}
	return s
}

// Verify checks every row of the table, under the name new instances use
// now, against the last value the fleet wrote, in each of the old and new
// columns that exist now. Call it after the run has ended (Stop or Wait).
func (w *Workload) Verify(ctx context.Context) (Verification, error) {
	name := w.cfg.Table
	if w.cfg.Tables != nil {
		var err error
		if name, err = w.cfg.Tables.Table(ctx); err != nil {
			return Verification{}, fmt.Errorf("workload: verify: %w", err)
		}
		if name == "" {
			return Verification{}, fmt.Errorf("workload: the fleet stopped using %s: VerifyIn the table its rows are kept in", w.cfg.Table)
		}
	}
	return w.VerifyIn(ctx, name)
}

// VerifyIn is Verify on the table named table in the workload's schema:
// where the rows are when the fleet's name no longer leads to them (the
// tombstone of a dropped table).
func (w *Workload) VerifyIn(ctx context.Context, table string) (Verification, error) {
	select {
	case <-w.done:
	default:
		return Verification{}, fmt.Errorf("workload: Verify while the fleet is running: call Stop first")
	}
	var v Verification
	quoted := pgx.Identifier{w.cfg.Schema, table}.Sanitize()
	cols, err := existingColumns(ctx, w.cfg.Pool, w.cfg.Schema, table)
	if err != nil {
		return v, err
	}
	hasOld, hasNew := cols[w.cfg.Old], w.cfg.New != "" && cols[w.cfg.New]
	oldExpr, newExpr := "NULL::text", "NULL::text"
	if hasOld {
		oldExpr = w.oldCol + "::text"
		v.Columns = append(v.Columns, w.cfg.Old)
	}
	if hasNew {
		newExpr = w.newCol + "::text"
		v.Columns = append(v.Columns, w.cfg.New)
	}
	expected := map[int64]*row{}
	for _, wk := range w.workers {
		for id, r := range wk.rows {
			expected[id] = r
		}
	}
	var current *row // the row an example is about, for its trace
	example := func(format string, args ...any) {
		if len(v.Examples) < keepProblems {
			e := fmt.Sprintf(format, args...)
			if current != nil {
				for _, step := range current.trace {
					e += "\n      " + step
				}
			}
			v.Examples = append(v.Examples, e)
		}
	}
	rows, err := w.cfg.Pool.Query(ctx, fmt.Sprintf("SELECT %s, %s, %s FROM %s", w.key, oldExpr, newExpr, quoted))
	if err != nil {
		return v, fmt.Errorf("workload: verify: %w", err)
	}
	defer rows.Close()
	seen := map[int64]bool{}
	for rows.Next() {
		var id int64
		var old, nw *string
		if err := rows.Scan(&id, &old, &nw); err != nil {
			return v, fmt.Errorf("workload: verify: %w", err)
		}
		seen[id] = true
		r, ok := expected[id]
		current = r
		switch {
		case !ok:
			v.Unexpected++
			example("row %d: not written by the fleet nor present at start", id)
		case r.unknown:
		case r.deleted:
			v.Resurrected++
			example("row %d: deleted, but present", id)
		case hasOld && !equal(old, r.old):
			v.Divergent++
			example("row %d: %s = %s, last written %s", id, w.cfg.Old, show(old), show(r.old))
		case hasNew && !equal(nw, w.expectedNew(r)):
			v.Divergent++
			example("row %d: %s = %s, want %s", id, w.cfg.New, show(nw), show(w.expectedNew(r)))
		}
	}
	if err := rows.Err(); err != nil {
		return v, fmt.Errorf("workload: verify: %w", err)
	}
	ids := make([]int64, 0, len(expected))
	for id := range expected {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		r := expected[id]
		current = r
		switch {
		case r.unknown:
			v.Skipped++
			continue
		case !r.deleted && !seen[id]:
			v.Missing++
			example("row %d: last written %s, but gone", id, show(r.old))
		}
		v.RowsChecked++
	}
	return v, nil
}

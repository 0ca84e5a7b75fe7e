// Advancing changes: Next picks one change per table, checks its gate
// (gates.go), runs the phase with the runner (exec.go) and records it in
// the same transaction (state.go), running or starting its backfill.

package planner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/phases"
)

// Next registers new specs and advances every active change by one phase.
// Changes on one table advance one at a time, in spec order; changes on
// different tables advance in the same call. A deploy id advances each change
// (and each table) at most once, so a retried deploy advances nothing more.
// dryRun reports what would run without changing anything (nor taking the
// lock).
func (e *Engine) Next(ctx context.Context, specs []Spec, deployID string, dryRun bool) (_ *Report, err error) {
	deployID = strings.TrimSpace(deployID)
	if deployID == "" {
		return nil, fmt.Errorf("no deploy id: pass --deploy-id or set PLANNER_DEPLOY_ID, so a retried deploy cannot advance twice: %w", ErrInput)
	}
	if err := checkUniqueIDs(specs); err != nil {
		return nil, err
	}
	// Its queries, dry run included, rely on server sessions of their own.
	if err := RequireSessions(ctx, e.Pool, "planner next"); err != nil {
		return nil, err
	}
	// Refuse before anything is created or registered: a newer state,
	// missing privileges, contradictions between the changes.
	if pf, err := e.preflight(ctx, specs); err != nil {
		return nil, err
	} else if err := pf.err(specs); err != nil {
		return nil, err
	}
	report := &Report{DeployID: deployID, DryRun: dryRun}
	st := e.state()
	var lease *lease
	if !dryRun {
		if lease, err = e.begin(ctx, deployID, "planner next"); err != nil {
			return nil, err
		}
		defer func() { err = lease.finish(err) }()
		ctx = lease.ctx
	} else if _, err := st.version(ctx, e.Pool); err != nil {
		return nil, err
	}
	version, err := ServerVersion(ctx, e.Pool)
	if err != nil {
		return nil, err
	}
	entries, err := e.load(ctx, specs, version, dryRun, false)
	if err != nil {
		return nil, err
	}
	var advanced map[string]HistoryEntry
	if ok, err := st.exists(ctx, e.Pool); err != nil {
		return nil, err
	} else if ok {
		if advanced, err = st.advancedIn(ctx, e.Pool, deployID); err != nil {
			return nil, err
		}
	}
	selected, err := e.selected(entries)
	if err != nil {
		return report, err
	}
	var failures []error
	for _, group := range byTable(entries) {
		if !selected.anyOf(group) {
			continue
		}
		if lease != nil {
			if err := lease.lost(); err != nil {
				return report, err
			}
		}
		reports, err := e.advanceTable(ctx, group, deployID, advanced, version, dryRun, selected)
		report.Changes = append(report.Changes, reports...)
		if err != nil {
			failures = append(failures, err)
		}
	}
	if lease != nil {
		if err := lease.lost(); err != nil {
			return report, err
		}
	}
	if len(failures) > 0 {
		return report, failed(failures)
	}
	return report, nil
}

// selection is the set of change ids Next works on; nil means all.
type selection map[string]bool

func (s selection) has(en *entry) bool { return s == nil || s[en.state.ID] }

func (s selection) anyOf(group []*entry) bool {
	for _, en := range group {
		if s.has(en) {
			return true
		}
	}
	return false
}

// selected checks Only against the changes known (specs and state).
func (e *Engine) selected(entries []*entry) (selection, error) {
	if len(e.Only) == 0 {
		return nil, nil
	}
	known := map[string]bool{}
	for _, en := range entries {
		known[en.state.ID] = true
	}
	s := selection{}
	for _, id := range e.Only {
		if !known[id] {
			return nil, fmt.Errorf("no change %q in the specs or the planner's state: see planner status: %w", id, ErrInput)
		}
		s[id] = true
	}
	return s, nil
}

// failed summarizes per-change failures. It is an ErrInput only when every
// failure is one: a pipeline must see a real failure (exit 1) first.
func failed(failures []error) error {
	allInput := true
	for _, err := range failures {
		allInput = allInput && errors.Is(err, ErrInput)
	}
	joined := errors.Join(failures...)
	if allInput || len(failures) == 1 {
		return fmt.Errorf("%d change(s) failed: %w", len(failures), joined)
	}
	return fmt.Errorf("%d change(s) failed: %s", len(failures), joined)
}

// inFlight: some phase applied or started, not every phase done.
func inFlight(c *ChangeState) bool {
	return c.Status != StatusDone && (c.Applied > 0 || c.Status == StatusApplying || c.Status == StatusFailed)
}

// advanceTable advances at most one change of one table.
func (e *Engine) advanceTable(ctx context.Context, group []*entry, deployID string, advanced map[string]HistoryEntry, version int, dryRun bool, only selection) ([]ChangeReport, error) {
	var reports []ChangeReport
	// The active change: one already in flight, else the first not done.
	var active *entry
	for _, en := range group {
		if inFlight(en.state) {
			active = en
			break
		}
	}
	if active == nil {
		for _, en := range group {
			if en.inFiles && en.state.Status != StatusDone {
				active = en
				break
			}
		}
	}
	var advancedHere *HistoryEntry
	for _, en := range group {
		if h, ok := advanced[en.state.ID]; ok {
			advancedHere = &h
		}
	}
	var err error
	for _, en := range group {
		r := baseReport(en)
		switch {
		case !only.has(en):
			continue
		case en == active && en.refused != nil:
			continue // status shows the refusal; nothing would run
		case en == active && !en.inFiles:
			r.Action, r.Reason = Missing, "in flight, but its spec is no longer in the spec files: restore the file to continue, or roll it back with planner rollback "+en.state.ID
		case en == active && advancedHere != nil:
			r.Action = NothingToDo
			if advancedHere.Change == en.state.ID {
				r.Reason = fmt.Sprintf("already advanced in deploy %s (phase %s); one phase per deploy", deployID, advancedHere.Phase)
			} else {
				r.Reason = fmt.Sprintf("change %s on the same table already advanced in deploy %s; one phase per table per deploy", advancedHere.Change, deployID)
			}
		case en == active:
			r, err = e.advance(ctx, en, deployID, version, dryRun)
		case en.state.Status == StatusDone:
			if !en.inFiles {
				continue
			}
			r.Action, r.Reason = Done, "every phase applied"
		case !en.inFiles:
			continue
		default:
			r.Action = NothingToDo
			r.Reason = fmt.Sprintf("queued behind change %s on the same table", active.state.ID)
		}
		reports = append(reports, r)
	}
	return reports, err
}

// advance runs the next phase of a change, if its gate is met.
func (e *Engine) advance(ctx context.Context, en *entry, deployID string, version int, dryRun bool) (ChangeReport, error) {
	c := en.state
	st := e.state()
	if c.Applied >= len(en.plan.Phases) {
		r := baseReport(en)
		r.Action, r.Reason = Done, "every phase applied"
		if !dryRun && c.Status != StatusDone {
			return r, st.setStatus(ctx, e.Pool, c.ID, c.Applied, StatusDone, "")
		}
		return r, nil
	}
	// A change that has not started compiles against the table as it is now
	// (an earlier change on the same table may have changed it since
	// registration); from then on, against that snapshot.
	if c.Applied == 0 && c.Status == StatusPending && (!en.registered || c.Catalog == nil) {
		fresh, err := e.newChangeState(ctx, e.Pool, en.spec, version)
		if err != nil {
			return failedReport(en, err), err
		}
		plan, err := Compile(en.spec, Target{Version: fresh.ServerVersion, Table: fresh.Catalog})
		if err != nil {
			err = fmt.Errorf("change %q: %w", c.ID, err)
			return failedReport(en, err), err
		}
		fresh.Total, fresh.File, fresh.Order = len(plan.Phases), c.File, c.Order
		if fresh.Fingerprint, err = storedFingerprints(fresh); err != nil {
			return failedReport(en, err), err
		}
		if !dryRun {
			if err := st.register(ctx, e.Pool, fresh); err != nil {
				return failedReport(en, err), err
			}
		}
		en.state, en.plan, c = fresh, plan, fresh
	}
	if c.Applied == 0 && c.Status == StatusPending {
		if problems, err := e.liveProblems(ctx, en.spec, en.plan, c.Catalog); err != nil {
			err = wrapf(err, "change %q: checking it against the live schema", c.ID)
			return failedReport(en, err), err
		} else if len(problems) > 0 {
			err := fmt.Errorf("change %q does not fit the live schema: %s: %w", c.ID, describeProblems(problems), ErrInput)
			return failedReport(en, err), err
		}
	}
	idx := c.Applied
	p := en.plan.Phases[idx]
	r := baseReport(en)
	r.Phase, r.PhaseIndex, r.Gate = p.Name, idx, string(p.Gate)
	met, reason, progress, err := e.gateMet(ctx, e.Pool, en, idx, deployID)
	r.Backfill = progress
	if err != nil {
		err = wrapf(err, "change %q: checking the %s gate of phase %s", c.ID, p.Gate, p.Name)
		return failedReport(en, err), err
	}
	stmts, wait, err := e.columnStatements(ctx, en, idx, !dryRun)
	r.OldColumnStatements = stmts
	if err != nil {
		fr := failedReport(en, err)
		fr.OldColumnStatements = stmts
		return fr, err
	}
	switch {
	case met && wait != "":
		met, reason = false, wait
	case !met && stmts != nil && (len(stmts.Statements) > 0 || stmts.Problem != ""):
		reason += "; " + stmts.Summary()
	}
	if !met {
		r.Action, r.Reason = Waiting, reason
		e.event("", EventGateNotMet, append(phaseAttrs(c.ID, p.Name, idx, len(en.plan.Phases), deployID), slog.String("gate", string(p.Gate)), slog.String("reason", reason))...)
		return r, nil
	}
	if err := checkPartitions(ctx, e.Pool, c.ID, c.Table, p); err != nil {
		return failedReport(en, err), err
	}
	if dryRun {
		r.Action = WouldApply
		if stmts != nil && (len(stmts.Statements) > 0 || stmts.Problem != "") {
			r.Reason = stmts.Summary()
		}
		r.Statements, r.BackfillWork, r.Flags = p.Statements, p.Backfill, p.Flags
		if p.Backfill != nil {
			e.dryRunBackfill(ctx, &r)
		}
		return r, nil
	}
	r, err = e.apply(ctx, en, idx, deployID)
	r.OldColumnStatements = stmts
	return r, err
}

// dryRunBackfill says what a backfill phase would do: start its job, wait
// for a job running in the background (--async), or run a job started
// earlier to its end.
func (e *Engine) dryRunBackfill(ctx context.Context, r *ChangeReport) {
	prog, err := backfill.Get(ctx, e.Pool, e.schema(), r.ID)
	switch {
	case err != nil && e.Async:
		r.Reason = "the backfill would start in the background (--async); the phase completes at a later deploy once it is verified"
	case err != nil:
		r.Reason = "the backfill would run inline to its end"
	case e.Async && !prog.Verified:
		r.Backfill = &prog
		r.Action = Waiting
		r.Reason = fmt.Sprintf("backfill running in the background (--async): %s; run it with `planner backfill run %s`, and a later planner next completes the phase once it is verified", prog.Summary(), r.ID)
	default:
		r.Backfill = &prog
		r.Reason = "the backfill started earlier would run inline to its end: " + prog.Summary()
	}
}

// apply runs phase idx of a change and records it.
func (e *Engine) apply(ctx context.Context, en *entry, idx int, deployID string) (ChangeReport, error) {
	c := en.state
	st := e.state()
	p := en.plan.Phases[idx]
	r := baseReport(en)
	r.Phase, r.PhaseIndex, r.Gate = p.Name, idx, string(p.Gate)
	var started time.Time
	if err := e.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&started); err != nil {
		err = wrapf(err, "change %q phase %s: reading the database clock", c.ID, p.Name)
		return failedReport(en, err), err
	}
	e.event(fmt.Sprintf("%s: phase %d/%d %s (%s)\n", c.ID, idx+1, len(en.plan.Phases), p.Name, p.Purpose),
		EventPhaseStart, phaseAttrs(c.ID, p.Name, idx, len(en.plan.Phases), deployID)...)
	// partial: the phase may be partly in effect (status applying), which
	// rollback must undo before anything else.
	partial := c.Status == StatusApplying
	fail := func(err error) (ChangeReport, error) {
		err = fmt.Errorf("change %q phase %s: %w", c.ID, p.Name, err)
		bg := context.WithoutCancel(ctx)
		status := StatusFailed
		if partial {
			status = StatusApplying
		}
		if serr := st.setStatus(bg, e.Pool, c.ID, c.Applied, status, err.Error()); serr == nil {
			st.addHistory(bg, e.Pool, HistoryEntry{Change: c.ID, PhaseIndex: idx, Phase: p.Name, Direction: Up,
				DeployID: deployID, Started: started, Error: err.Error()})
		}
		r.Action, r.Error = Failed, err.Error()
		return r, err
	}
	// A phase that cannot commit in one transaction is marked first, so a
	// crash midway leaves a record that rollback and status can read.
	units := groupStatements(p.Statements)
	if len(units) > 1 || (len(units) == 1 && !units[0].Tx) || p.Backfill != nil {
		if !partial {
			if err := st.setStatus(ctx, e.Pool, c.ID, c.Applied, StatusApplying, ""); err != nil {
				return fail(err)
			}
			partial = true
		}
	}
	finish := func(ctx context.Context, tx pgx.Tx) error {
		status := StatusActive
		if idx+1 == len(en.plan.Phases) {
			status = StatusDone
		}
		if err := st.setStatus(ctx, tx, c.ID, idx+1, status, ""); err != nil {
			return err
		}
		if err := st.recordFinish(ctx, tx, c.ID, idx, p.Name, Up, deployID, started); err != nil {
			return err
		}
		if len(p.Flags) > 0 {
			if err := flags.Publish(ctx, tx, e.schema(), c.ID, p.Name, p.Flags, flagMeta(en)); err != nil {
				return fmt.Errorf("publish flags: %w", err)
			}
		}
		return nil
	}
	if ret, ok := retired(en); ok && ret.renamed && idx == 0 && !partial {
		e.renamedEntries(ctx, en, ret)
	}
	run := e.runner()
	run.Tables = phases.TableList{c.Table}
	if p.Backfill == nil {
		if err := run.Run(ctx, p.Statements, finish); err != nil {
			return fail(err)
		}
	} else {
		if err := run.Run(ctx, p.Statements, nil); err != nil {
			return fail(err)
		}
		prog, complete, err := e.backfill(ctx, en, *p.Backfill)
		r.Backfill = prog
		if err != nil {
			return fail(err)
		}
		if !complete && prog.Paused {
			r.Action = Waiting
			r.Reason = fmt.Sprintf("backfill paused by an operator: %s; resume it with `planner backfill resume %s`", prog.Summary(), c.ID)
			return r, nil
		}
		if !complete {
			if err := st.recordStart(ctx, e.Pool, c.ID, idx, p.Name, deployID, started); err != nil {
				return fail(err)
			}
			r.Action = Waiting
			r.Reason = fmt.Sprintf("backfill started for the background (--async): %s; run it with `planner backfill run %s` (any number of processes), and a later planner next completes the phase once it is verified", prog.Summary(), c.ID)
			return r, nil
		}
		if err := run.Run(ctx, nil, finish); err != nil {
			return fail(err)
		}
	}
	var finished time.Time
	e.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&finished)
	r.Action, r.Applied, r.Duration = Advanced, idx+1, finished.Sub(started)
	if ret, ok := retired(en); ok && idx+1 == ret.contract {
		e.takeStatementBaseline(ctx, en, ret)
	}
	e.event(fmt.Sprintf("%s: phase %s applied in %s\n", c.ID, p.Name, r.Duration.Round(time.Millisecond)),
		EventPhaseEnd, append(phaseAttrs(c.ID, p.Name, idx, len(en.plan.Phases), deployID), durationAttr(r.Duration))...)
	return r, nil
}

// backfill starts the change's backfill job (idempotent) and either runs it
// to verified completion here or, with Async, only reports its progress.
func (e *Engine) backfill(ctx context.Context, en *entry, work phases.Backfill) (*backfill.Progress, bool, error) {
	var key []string
	if en.state.Catalog != nil {
		key = en.state.Catalog.Key
	}
	if err := backfill.Start(ctx, e.Pool, e.schema(), en.state.ID, work, key); err != nil {
		return nil, false, fmt.Errorf("start backfill: %w", err)
	}
	if e.Async {
		prog, err := backfill.Get(ctx, e.Pool, e.schema(), en.state.ID)
		if err != nil {
			return nil, false, err
		}
		return &prog, prog.Verified, nil
	}
	opts := e.Backfill
	if opts.Progress == nil && e.logging() {
		opts.Progress = func(p backfill.Progress) {
			e.event(fmt.Sprintf("%s: %s\n", en.state.ID, p.Summary()), EventBackfillProgress, ProgressAttrs(p)...)
		}
		if opts.ProgressEvery == 0 {
			opts.ProgressEvery = 2 * time.Second
		}
	}
	if opts.Log == nil && e.logging() {
		opts.Log = func(msg string) {
			e.event(fmt.Sprintf("%s: %s\n", en.state.ID, msg), EventBackfillNote, slog.String("change", en.state.ID), slog.String("reason", msg))
		}
	}
	// A job an operator paused must not hold the deploy (and the planner's
	// lock) hostage: report it as waiting instead.
	opts.StopWhenPaused = true
	prog, err := backfill.Run(ctx, e.Pool, e.schema(), en.state.ID, opts)
	if errors.Is(err, backfill.ErrPaused) {
		if p, gerr := backfill.Get(ctx, e.Pool, e.schema(), en.state.ID); gerr == nil {
			prog = p
		}
		prog.Paused = true
		return &prog, false, nil
	}
	if err != nil {
		return &prog, false, fmt.Errorf("backfill: %w", err)
	}
	if !prog.Verified {
		return &prog, false, fmt.Errorf("backfill finished but is not verified: %s", prog.Summary())
	}
	return &prog, true, nil
}

// flagMeta is the metadata published with a change's flags.
func flagMeta(en *entry) map[string]string {
	meta := map[string]string{"change_id": en.state.ID, "table": en.state.Table.String()}
	if fm, ok := en.spec.Change.(flagMetaer); ok {
		for k, v := range fm.FlagMeta() {
			meta[k] = v
		}
	}
	return meta
}

func describeProblems(ps []Problem) string {
	var parts []string
	for _, p := range ps {
		s := p.Message
		if p.Field != "" {
			s = p.Field + ": " + s
		}
		if p.Hint != "" {
			s += " (" + p.Hint + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

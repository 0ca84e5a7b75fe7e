// Rollback: reversing the last applied (or half-applied) phase of a change,
// with its flags restored and its backfill forgotten.

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

// RollbackResult says what Rollback did.
type RollbackResult struct {
	ID         string `json:"id"`
	Phase      string `json:"phase"`
	PhaseIndex int    `json:"phase_index"`
	// Partial: the phase had not finished (failed or killed midway).
	Partial bool `json:"partial"`
	Applied int  `json:"applied"` // phases applied after the rollback
	Total   int  `json:"total"`
	// NothingToDo is set, with Reason, when this deploy already rolled it back.
	NothingToDo bool   `json:"nothing_to_do"`
	Reason      string `json:"reason"`
}

// Rollback reverses the last applied phase of a change (or the phase that
// failed or was killed midway), publishing its rollback flags and forgetting
// its backfill. Irreversible phases are refused with their reason. A
// non-empty deployID makes it idempotent: the same deploy does not roll the
// same change back twice.
func (e *Engine) Rollback(ctx context.Context, changeID, deployID string) (_ *RollbackResult, err error) {
	if err := RequireSessions(ctx, e.Pool, "planner rollback"); err != nil {
		return nil, err
	}
	lease, err := e.begin(ctx, deployID, "planner rollback "+changeID)
	if err != nil {
		return nil, err
	}
	defer func() { err = lease.finish(err) }()
	return e.rollbackOne(lease.ctx, changeID, deployID, true)
}

// RollbackTo rolls a change back phase by phase until phase to is the last
// one applied (to "" rolls every phase back). It is idempotent by its
// target: rerun, it rolls back only what is still past it.
func (e *Engine) RollbackTo(ctx context.Context, changeID, to, deployID string) (_ []RollbackResult, err error) {
	if err := RequireSessions(ctx, e.Pool, "planner rollback"); err != nil {
		return nil, err
	}
	lease, err := e.begin(ctx, deployID, "planner rollback "+changeID+" --to "+to)
	if err != nil {
		return nil, err
	}
	defer func() { err = lease.finish(err) }()
	ctx = lease.ctx
	c, err := e.state().change(ctx, e.Pool, changeID)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("no change %q in the planner's state (schema %q): see planner status: %w", changeID, e.schema(), ErrInput)
	}
	en, err := e.compileStored(c)
	if err != nil {
		return nil, err
	}
	keep := 0 // phases to keep applied
	if to != "" {
		keep = -1
		var names []string
		for i, p := range en.plan.Phases {
			names = append(names, p.Name)
			if p.Name == to {
				keep = i + 1
			}
		}
		if keep < 0 {
			return nil, fmt.Errorf("change %q has no phase %q (its phases: %s): %w", changeID, to, strings.Join(names, ", "), ErrInput)
		}
	}
	var results []RollbackResult
	for c.Applied > keep || (c.Status == StatusApplying && c.Applied >= keep && c.Applied < len(en.plan.Phases)) {
		res, err := e.rollbackOne(ctx, changeID, deployID, false)
		if err != nil {
			return results, err
		}
		results = append(results, *res)
		if c, err = e.state().change(ctx, e.Pool, changeID); err != nil {
			return results, err
		}
	}
	return results, nil
}

// rollbackOne reverses the last applied (or half-applied) phase; with
// oncePerDeploy, not a second one in the same deploy.
func (e *Engine) rollbackOne(ctx context.Context, changeID, deployID string, oncePerDeploy bool) (*RollbackResult, error) {
	st := e.state()
	c, err := st.change(ctx, e.Pool, changeID)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("no change %q in the planner's state (schema %q): see planner status: %w", changeID, e.schema(), ErrInput)
	}
	en, err := e.compileStored(c)
	if err != nil {
		return nil, err
	}
	if c.Status == StatusDone {
		// Its rollback statements must be the ones it was planned with.
		if err := fingerprintDrift(c, en.plan); err != nil {
			return nil, err
		}
	}
	res := &RollbackResult{ID: c.ID, Total: len(en.plan.Phases), Applied: c.Applied}
	if deployID != "" && oncePerDeploy {
		last, err := st.lastSuccess(ctx, e.Pool, c.ID)
		if err != nil {
			return nil, err
		}
		if last != nil && last.Direction == Down && last.DeployID == deployID {
			res.NothingToDo = true
			res.Phase, res.PhaseIndex = last.Phase, last.PhaseIndex
			res.Reason = fmt.Sprintf("already rolled back phase %s in deploy %s", last.Phase, deployID)
			return res, nil
		}
	}
	if deployID == "" {
		deployID = "manual"
	}
	partial := c.Status == StatusApplying
	idx := c.Applied - 1
	if partial && c.Applied < len(en.plan.Phases) {
		idx = c.Applied
	} else {
		partial = false
	}
	if idx < 0 {
		return nil, fmt.Errorf("change %q has no phase applied: nothing to roll back: %w", c.ID, ErrInput)
	}
	p := en.plan.Phases[idx]
	res.Phase, res.PhaseIndex, res.Partial = p.Name, idx, partial
	if p.Irreversible != "" {
		if partial {
			return nil, fmt.Errorf("change %q: phase %s started but did not finish, and it cannot be rolled back: %s; rerun planner next to finish it: %w", c.ID, p.Name, p.Irreversible, ErrInput)
		}
		return nil, fmt.Errorf("change %q: phase %s cannot be rolled back: %s: %w", c.ID, p.Name, p.Irreversible, ErrInput)
	}
	var started time.Time
	if err := e.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&started); err != nil {
		return nil, wrapf(err, "change %q: reading the database clock", c.ID)
	}
	e.event(fmt.Sprintf("%s: rolling back phase %d/%d %s\n", c.ID, idx+1, len(en.plan.Phases), p.Name),
		EventRollbackStart, phaseAttrs(c.ID, p.Name, idx, len(en.plan.Phases), deployID)...)
	finish := func(ctx context.Context, tx pgx.Tx) error {
		status := StatusActive
		if idx == 0 {
			status = StatusPending
		}
		if err := st.setStatus(ctx, tx, c.ID, idx, status, ""); err != nil {
			return err
		}
		if err := st.recordFinish(ctx, tx, c.ID, idx, p.Name, Down, deployID, started); err != nil {
			return err
		}
		if p.Backfill != nil {
			if err := backfill.Reset(ctx, tx, e.schema(), c.ID); err != nil && !errors.Is(err, backfill.ErrNoJob) {
				return fmt.Errorf("forget the backfill job: %w", err)
			}
		}
		return e.restoreFlags(ctx, tx, en, idx)
	}
	run := e.runner()
	run.Tables = phases.TableList{c.Table}
	if p.Backfill == nil {
		err = run.Run(ctx, p.Rollback, finish)
	} else {
		err = e.rollbackBackfill(ctx, run, en, idx, finish)
	}
	if err != nil {
		err = fmt.Errorf("change %q: roll back phase %s: %w (rerun planner rollback %s to retry; rollback steps are idempotent)", c.ID, p.Name, err, c.ID)
		bg := context.WithoutCancel(ctx)
		st.addHistory(bg, e.Pool, HistoryEntry{Change: c.ID, PhaseIndex: idx, Phase: p.Name, Direction: Down,
			DeployID: deployID, Started: started, Error: err.Error()})
		return nil, err
	}
	res.Applied = idx
	e.event("", EventRollbackEnd, append(phaseAttrs(c.ID, p.Name, idx, len(en.plan.Phases), deployID), durationAttr(time.Since(started)))...)
	return res, nil
}

// rollbackBackfill undoes a backfill phase in steps. First the phase is
// marked partly applied and its job forgotten, so that after a crash at any
// later point both commands find a consistent state: next redoes the phase
// (refilling what was set back), rollback goes on. Then its statements run
// (the fill trigger goes, so that nothing refills the column), then the
// rows it filled are set back to NULL (a backfill with Undo), and last the
// state records the rollback.
func (e *Engine) rollbackBackfill(ctx context.Context, run *runner, en *entry, idx int, finish func(context.Context, pgx.Tx) error) error {
	id, p := en.state.ID, en.plan.Phases[idx]
	err := pgx.BeginFunc(ctx, e.Pool, func(tx pgx.Tx) error {
		if err := e.state().setStatus(ctx, tx, id, idx, StatusApplying, ""); err != nil {
			return err
		}
		return backfill.Reset(ctx, tx, e.schema(), id)
	})
	if err != nil {
		return wrapf(err, "marking phase %s partly rolled back", p.Name)
	}
	if err := run.Run(ctx, p.Rollback, nil); err != nil {
		return err
	}
	var key []string
	if en.state.Catalog != nil {
		key = en.state.Catalog.Key
	}
	n, err := backfill.Restore(ctx, e.Pool, e.schema(), id, *p.Backfill, key, e.Backfill)
	if err != nil {
		return err
	}
	if n > 0 {
		e.event(fmt.Sprintf("%s: %d rows the backfill filled set back to NULL\n", id, n), EventBackfillRestored, slog.String("change", id), slog.Int64("rows", n))
	}
	return run.Run(ctx, nil, finish)
}

// restoreFlags puts the change's flags back to what they were before phase
// idx: none when no earlier phase published flags (applications then get
// their defaults, as before the change started); else the phase's
// RollbackFlags when it declares them, or those of the last earlier phase
// that published flags.
func (e *Engine) restoreFlags(ctx context.Context, tx pgx.Tx, en *entry, idx int) error {
	p := en.plan.Phases[idx]
	if len(p.Flags) == 0 && len(p.RollbackFlags) == 0 {
		return nil
	}
	prev := -1
	for j := idx - 1; j >= 0; j-- {
		if len(en.plan.Phases[j].Flags) > 0 {
			prev = j
			break
		}
	}
	if prev < 0 {
		if err := flags.Forget(ctx, tx, e.schema(), en.state.ID); err != nil {
			return fmt.Errorf("remove flags: %w", err)
		}
		return nil
	}
	values, phase := en.plan.Phases[prev].Flags, en.plan.Phases[prev].Name
	if len(p.RollbackFlags) > 0 {
		values = p.RollbackFlags
	}
	if err := flags.Publish(ctx, tx, e.schema(), en.state.ID, phase, values, flagMeta(en)); err != nil {
		return fmt.Errorf("publish flags: %w", err)
	}
	return nil
}

// Gates: when the next phase of a change may run (backfill verified, flags
// loaded and soaked, fleet ready, purge delay).

package planner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/phases"
)

// gateMet checks the gate of phase idx.
func (e *Engine) gateMet(ctx context.Context, q Querier, en *entry, idx int, deployID string) (bool, string, *backfill.Progress, error) {
	p := en.plan.Phases[idx]
	switch p.Gate {
	case phases.NoGate:
		return true, "", nil, nil
	case phases.BackfillVerified:
		hasBackfill := false
		for _, ph := range en.plan.Phases[:idx] {
			hasBackfill = hasBackfill || ph.Backfill != nil
		}
		if !hasBackfill {
			return true, "", nil, nil
		}
		prog, err := backfill.Get(ctx, q, e.schema(), en.state.ID)
		if errors.Is(err, backfill.ErrNoJob) {
			return false, "no backfill job: the backfill phase has not run", nil, nil
		}
		if err != nil {
			return false, "", nil, err
		}
		if !prog.Verified {
			return false, "backfill not verified yet: " + prog.Summary(), &prog, nil
		}
		return true, "", &prog, nil
	case phases.FlagsLoaded:
		if idx == 0 {
			return true, "", nil, nil
		}
		met, reason, err := e.fleetReady(ctx, q, en, idx, 0)
		return met, reason, nil, err
	case phases.FlagsSoaked:
		if idx == 0 {
			return true, "", nil, nil
		}
		h, age, err := e.state().lastFinishedUp(ctx, q, en.state.ID, idx-1)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, "no record of the previous phase being applied", nil, nil
		}
		if err != nil {
			return false, "", nil, err
		}
		prev := en.plan.Phases[idx-1].Name
		if h.DeployID == deployID {
			return false, fmt.Sprintf("phase %s was applied in this deploy (%s); its flags must be live for at least one earlier deploy", prev, deployID), nil, nil
		}
		minSoak := e.settings().MinSoak
		if age < minSoak {
			return false, fmt.Sprintf("flags of phase %s live for %s; minimum soak %s (%s left)", prev, age.Round(time.Second), minSoak, (minSoak - age).Round(time.Second)), nil, nil
		}
		met, reason, err := e.fleetReady(ctx, q, en, idx, minSoak)
		return met, reason, nil, err
	case phases.PurgeAfter:
		met, reason, err := e.purgeGate(ctx, q, en, idx, deployID)
		return met, reason, nil, err
	}
	return false, "", nil, fmt.Errorf("change %q phase %s: unknown gate %q (a newer planner wrote this plan?)", en.state.ID, p.Name, p.Gate)
}

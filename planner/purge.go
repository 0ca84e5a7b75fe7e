package planner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// purgeGate opens once the contract before the purge (phase idx-1) was
// applied in an earlier deploy and at least PurgeAfter ago: until then a
// rollback can still bring the old column back. The reason says when the
// purge may run.
func (e *Engine) purgeGate(ctx context.Context, q Querier, en *entry, idx int, deployID string) (bool, string, error) {
	if idx == 0 {
		return true, "", nil
	}
	prev := en.plan.Phases[idx-1].Name
	deploy, applied, now, err := e.state().lastUp(ctx, q, en.state.ID, idx-1)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, "no record of the " + prev + " phase being applied", nil
	}
	if err != nil {
		return false, "", err
	}
	moved := "the old column"
	if en.spec.Kind == "drop_table" {
		moved = "the table"
	}
	rollback := fmt.Sprintf("until then planner rollback %s restores %s", en.state.ID, moved)
	purgeAfter := e.settings().PurgeAfter
	if deploy == deployID {
		return false, fmt.Sprintf("phase %s was applied in this deploy (%s); the purge runs at a later deploy, at least %s after it; %s",
			prev, deployID, purgeAfter, rollback), nil
	}
	if age := now.Sub(applied); age < purgeAfter {
		at := applied.Add(purgeAfter).UTC().Format(time.RFC3339)
		return false, fmt.Sprintf("phase %s applied %s ago; the purge may run from %s (%s left, --purge-after %s); %s",
			prev, age.Round(time.Second), at, (purgeAfter - age).Round(time.Second), purgeAfter, rollback), nil
	}
	return true, "", nil
}

// compileStoredPlan compiles a stored change as it was registered. A change
// registered by a planner whose contract was not reversible (its stored
// phase count matches the legacy plan, not the current one) keeps that
// contract: its phase list must not change under it.
func compileStoredPlan(spec Spec, c *ChangeState) (Plan, error) {
	target := Target{Version: c.ServerVersion, Table: c.Catalog}
	plan, err := Compile(spec, target)
	if err != nil || c.Total == 0 || c.Total == len(plan.Phases) {
		return plan, err
	}
	target.LegacyContract = true
	if legacy, lerr := Compile(spec, target); lerr == nil && len(legacy.Phases) == c.Total {
		return legacy, nil
	}
	return plan, nil
}

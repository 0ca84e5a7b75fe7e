package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pgplanner/planner/planner"
)

// TestRenameUnderLoadThroughPgBouncer is TestChangesUnderLoad's rename with
// the applications and their flags provider behind PgBouncer in transaction
// mode and the planner connected directly, as the README says to deploy
// them: no request may fail and every row must hold the last value written.
// The provider polls (every second here), so each deploy waits for the flags
// to reach the fleet within that bound.
func TestRenameUnderLoadThroughPgBouncer(t *testing.T) {
	sc := scenarios()[0]
	ctx := context.Background()
	env := newPooledEnv(t, sc)
	fleet := env.startFleet(t, sc, 21)
	eng := env.engine(t, 500*time.Millisecond)
	applied := advance(t, ctx, env, eng, fleet, sc.change, hooks{})
	finish(t, ctx, fleet)
	st := changeStatus(t, ctx, eng, env.specs, sc.change)
	if st.Status != planner.StatusDone || !slices.Equal(applied, st.Phases) {
		t.Errorf("status %s, applied %v, want done with every phase of %v", st.Status, applied, st.Phases)
	}
	sc.after(t, env.db)
	requireFinalFlags(t, env.db, sc.change)
}

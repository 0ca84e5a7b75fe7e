package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/planner"
)

// statementsDB is a database on a cluster of the test's own that preloads
// pg_stat_statements (the shared cluster does not), with the extension.
func statementsDB(t *testing.T) *pgtest.DB {
	t.Helper()
	c, err := pgtest.Start(pgtest.Options{Settings: []string{"shared_preload_libraries = 'pg_stat_statements'"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	db := c.NewDB(t)
	db.Exec(t, `CREATE EXTENSION pg_stat_statements`)
	return db
}

// TestStatementsHoldTheContract: old application instances that read no
// flags (so send no heartbeat) keep querying the old column after enforce,
// and the fleet gates cannot see them. With GateStatements the contract
// waits, naming their statement, until they are retired; then it runs, and
// no request failed and no write was lost.
func TestStatementsHoldTheContract(t *testing.T) {
	sc := scenarios()[0]    // rename_column users.email -> email_address
	sc.fleet.KeepOld = true // the rollout does not retire them at enforce
	ctx := context.Background()
	env := setupEnvOn(t, sc, statementsDB(t), false)
	fleet := env.startFleet(t, sc, 23)
	eng := env.engine(t, 500*time.Millisecond)
	eng.GateStatements = true

	heldBy := ""
	applied := advance(t, ctx, env, eng, fleet, sc.change, hooks{after: func(deploy int, c planner.ChangeReport) {
		if c.Phase != "contract" {
			return
		}
		switch c.Action {
		case planner.Waiting:
			if heldBy == "" && !fleet.Retired() {
				heldBy = c.Reason
				// The operator reads the reason and retires what runs the
				// statement; the next deploys find it no longer called.
				fleet.RetireOld()
			}
		case planner.Advanced:
			if !fleet.Retired() {
				t.Fatalf("deploy-%d: contract ran while old instances still query the old column: %s", deploy, c.Reason)
			}
		}
	}})
	if !strings.Contains(heldBy, "--gate-statements") || !strings.Contains(heldBy, "naming public.users.email") ||
		!strings.Contains(heldBy, `SELECT "email"::text FROM "public"."users"`) {
		t.Fatalf("contract never waited for the old instances' statements (reason: %q)", heldBy)
	}
	t.Logf("contract waited: %s", heldBy)
	finish(t, ctx, fleet)
	st := changeStatus(t, ctx, eng, env.specs, sc.change)
	if st.Status != planner.StatusDone || fmt.Sprint(applied) != fmt.Sprint(st.Phases) {
		t.Errorf("status %s, applied %v, want done with every phase of %v", st.Status, applied, st.Phases)
	}
	sc.after(t, env.db)
	requireFinalFlags(t, env.db, sc.change)
}

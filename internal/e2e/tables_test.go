package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgplanner/planner/internal/workload"
	"github.com/pgplanner/planner/phases"
	"github.com/pgplanner/planner/planner"
)

// dropTableScenario: the fleet reads and writes audit_log, which a
// drop_table removes.
func dropTableScenario() scenario {
	return scenario{
		name: "drop_table",
		setup: `CREATE TABLE audit_log (id bigserial PRIMARY KEY, entry text NOT NULL, at timestamptz DEFAULT now());
			INSERT INTO audit_log (entry) SELECT 'entry ' || g FROM generate_series(1, $1::int) g`,
		spec: `changes:
  - id: audit-log-drop
    kind: drop_table
    table: audit_log
`,
		change:  "audit-log-drop",
		follows: followTable,
		fleet:   workload.Config{Table: "audit_log", Old: "entry"},
	}
}

func scenarioNamed(t *testing.T, name string) scenario {
	t.Helper()
	for _, sc := range append(scenarios(), dropTableScenario()) {
		if sc.name == name {
			return sc
		}
	}
	t.Fatalf("no scenario %q", name)
	return scenario{}
}

// deployUntil runs deploys (the fleet rolls forward to the published
// flags, then `next`) until the change has applied phase until, and
// returns the phases applied in order.
func deployUntil(t *testing.T, ctx context.Context, env *env, eng *planner.Engine, fleet *workload.Workload, change, until string) []string {
	t.Helper()
	var applied []string
	for deploy := 1; ; deploy++ {
		if deploy > 20 {
			t.Fatalf("phase %s of %s not applied after 20 deploys (applied %v)", until, change, applied)
		}
		env.deploy(t, fleet, change)
		time.Sleep(dwell)
		rep, err := eng.Next(ctx, env.specs, fmt.Sprintf("deploy-%d", deploy), false)
		if err != nil {
			t.Fatalf("deploy-%d: next: %v", deploy, err)
		}
		c := rep.Changes[0]
		st := fleet.Stats()
		t.Logf("deploy-%d: %s %s (%d/%d) %s; fleet: %d requests, %d not made, %d failed", deploy, c.Action, c.Phase, c.Applied, c.Total, c.Reason, st.Ops, st.Idle, st.Failed)
		switch c.Action {
		case planner.Advanced:
			applied = append(applied, c.Phase)
			if c.Phase == until {
				return applied
			}
		case planner.Waiting:
		default:
			t.Fatalf("deploy-%d: %s: %s %s", deploy, c.Action, c.Reason, c.Error)
		}
	}
}

// TestDropTableUnderLoad: once the flag says dropped, new instances make
// no request on the table and that deploy retires the old ones; the
// contract renames it aside, with every row the fleet wrote, while the
// fleet runs on; the purge, once its delay is over, drops it. No request
// may fail.
func TestDropTableUnderLoad(t *testing.T) {
	sc := dropTableScenario()
	ctx := context.Background()
	env := newEnv(t, sc)
	fleet := env.startFleet(t, sc, 51)
	eng := env.engine(t, 500*time.Millisecond)
	// The tombstone stays until the fleet's rows are verified in it.
	eng.PurgeAfter = time.Hour
	applied := deployUntil(t, ctx, env, eng, fleet, sc.change, "contract")
	env.deploy(t, fleet, sc.change)
	time.Sleep(dwell)
	r := fleet.Stop()
	tomb := phases.TombstoneName(sc.change, "audit_log")
	v, err := fleet.VerifyIn(ctx, tomb)
	if err != nil {
		t.Fatal(err)
	}
	requireClean(t, r, v)
	if r.Idle == 0 {
		t.Errorf("new instances made every request after the flag said dropped: %s", r)
	}

	eng.PurgeAfter = -1 // none: the purge runs now
	rep, err := eng.Next(ctx, env.specs, "deploy-purge", false)
	if err != nil {
		t.Fatal(err)
	}
	if c := rep.Changes[0]; c.Action != planner.Advanced || c.Phase != "purge" {
		t.Fatalf("after the purge delay: %s %s %s %s, want purge advanced", c.Action, c.Phase, c.Reason, c.Error)
	}
	applied = append(applied, "purge")
	if st := changeStatus(t, ctx, eng, env.specs, sc.change); st.Status != planner.StatusDone || strings.Join(st.Phases, ",") != strings.Join(applied, ",") {
		t.Errorf("status %s, applied %v, want done with every phase of %v", st.Status, applied, st.Phases)
	}
	requireTrue(t, env.db, fmt.Sprintf(`SELECT to_regclass('audit_log') IS NULL AND to_regclass('%s') IS NULL`, tomb))
	requireFinal(t, env.db, sc, workload.Dropped)
}

// TestTableKindsNeedTheFlag: the assertions above can fail. With the old
// instances kept running on the old name, as if the application ignored
// the table flag, the contract (the view dropped, the table renamed aside)
// fails their requests.
func TestTableKindsNeedTheFlag(t *testing.T) {
	for i, name := range []string{"rename_table", "drop_table"} {
		t.Run(name, func(t *testing.T) {
			sc := scenarioNamed(t, name)
			sc.fleet.KeepOld = true
			ctx := context.Background()
			env := newEnv(t, sc)
			fleet := env.startFleet(t, sc, uint64(61+i))
			eng := env.engine(t, 500*time.Millisecond)
			deployUntil(t, ctx, env, eng, fleet, sc.change, "contract")
			time.Sleep(dwell)
			r := fleet.Stop()
			t.Logf("fleet: %s", r)
			want := fmt.Sprintf(`relation "public.%s" does not exist`, sc.fleet.Table)
			if r.Failed == 0 || !strings.Contains(strings.Join(r.Errors, "\n"), want) {
				t.Errorf("old instances on %s after the contract: %d failed requests, want failures with %q", sc.fleet.Table, r.Failed, want)
			}
		})
	}
}

// TestSQLScenarioCanFail: the sql scenario's assertions are real. The same
// change with a check the fleet's values break (they are not e-mail
// addresses) fails the fleet's writes from the deploy that runs it.
func TestSQLScenarioCanFail(t *testing.T) {
	sc := scenarioNamed(t, "sql")
	sc.spec = strings.Replace(sc.spec, "      COMMENT ON COLUMN", "      ALTER TABLE users ADD CONSTRAINT users_email_at CHECK (email LIKE '%@%') NOT VALID;\n      COMMENT ON COLUMN", 1)
	ctx := context.Background()
	env := newEnv(t, sc)
	fleet := env.startFleet(t, sc, 71)
	eng := env.engine(t, 500*time.Millisecond)
	advance(t, ctx, env, eng, fleet, sc.change, hooks{})
	r := fleet.Stop()
	t.Logf("fleet: %s", r)
	if want := `violates check constraint "users_email_at"`; r.Failed == 0 || !strings.Contains(strings.Join(r.Errors, "\n"), want) {
		t.Errorf("%d failed requests, want failures with %q", r.Failed, want)
	}
}

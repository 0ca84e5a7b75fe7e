package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/workload"
	"github.com/pgplanner/planner/planner"
)

// TestLateInstancesHoldTheGates: the new application instances read their
// flags through a provider that sees a change only at its next poll, 3s
// later (listening off), and keep using the old column until then. The
// pipeline does not wait for them: it runs planner next again at once,
// every 200ms. Enforce and contract wait for them (their heartbeats say
// which flags they run), so no request fails when contract takes the old
// column away, and the change completes once they caught up.
func TestLateInstancesHoldTheGates(t *testing.T) {
	sc := scenarios()[0] // rename_column
	ctx := context.Background()
	env := newEnv(t, sc)
	eng := env.engine(t, 500*time.Millisecond)
	// The first deploy creates the planner's state; the late instances
	// start on its flags (read=old, write=old).
	if _, err := eng.Next(ctx, env.specs, "deploy-0", false); err != nil {
		t.Fatal(err)
	}
	late := flags.NewProvider(env.db.URL, flags.WithService("late-api"), flags.WithoutListen(),
		flags.WithPollInterval(3*time.Second), flags.WithHeartbeat(200*time.Millisecond))
	domain := "e2e/late/" + t.Name()
	if err := openfeature.SetNamedProviderAndWait(domain, late); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = openfeature.SetNamedProviderAndWait(domain, openfeature.NoopProvider{})
		late.Shutdown()
	})
	cfg := sc.fleet
	cfg.Pool = env.pool
	cfg.Chooser = workload.FlagsChooser{Client: openfeature.NewClient(domain), ChangeID: sc.change, Old: cfg.Old, New: cfg.New}
	cfg.OldShare, cfg.Workers, cfg.Rate, cfg.Seed, cfg.Trace = 0.5, 4, 300, 41, true
	fleet, err := workload.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Stop() })

	waitedFor := map[string]bool{}
	applied := []string{"expand"}
	for deploy := 1; len(applied) < 6; deploy++ {
		if deploy > 200 {
			t.Fatalf("not done after 200 deploys (applied %v)", applied)
		}
		rep, err := eng.Next(ctx, env.specs, fmt.Sprintf("deploy-%d", deploy), false)
		if err != nil {
			t.Fatalf("deploy-%d: %v", deploy, err)
		}
		c := rep.Changes[0]
		switch c.Action {
		case planner.Advanced:
			applied = append(applied, c.Phase)
			t.Logf("deploy-%d: %s applied; fleet: %d failed", deploy, c.Phase, fleet.Stats().Failed)
			if c.Phase == "enforce" {
				// The old application version is rolled out of service once
				// the planner says write=new; the new one reads its flags.
				fleet.RetireOld()
			}
		case planner.Waiting:
			if strings.Contains(c.Reason, late.InstanceID()) && !waitedFor[c.Phase] {
				waitedFor[c.Phase] = true
				t.Logf("deploy-%d: %s waits: %s", deploy, c.Phase, c.Reason)
			}
		case planner.Done:
			applied = append(applied, "done")
		default:
			t.Fatalf("deploy-%d: %s %s %s", deploy, c.Action, c.Reason, c.Error)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, phase := range []string{"enforce", "contract"} {
		if !waitedFor[phase] {
			t.Errorf("%s never waited for the late instance %s", phase, late.InstanceID())
		}
	}
	finish(t, ctx, fleet)
	sc.after(t, env.db)
	requireFinalFlags(t, env.db, sc.change)
}

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgplanner/planner/planner"
)

// TestKillDashNine runs the rename through the real CLI while the fleet
// runs, and SIGKILLs `planner next` after a random delay on most deploys
// (a fixed seed per subtest). A killed deploy is retried, sometimes with
// the same deploy id (the pipeline retries the job), sometimes with a new
// one (the next deploy). The change must complete, every row must be
// right, and no application request may fail.
func TestKillDashNine(t *testing.T) {
	bin := plannerBinary(t)
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			sc := scenarios()[0]
			ctx := context.Background()
			env := newEnv(t, sc)
			fleet := env.startFleet(t, sc, 100+seed)
			specFile := filepath.Join(t.TempDir(), "plan.yaml")
			if err := os.WriteFile(specFile, []byte(sc.spec), 0o644); err != nil {
				t.Fatal(err)
			}
			eng := env.engine(t, 500*time.Millisecond)
			rng := rand.New(rand.NewPCG(seed, 42))
			deploy, kills, failures := 1, 0, 0
			for run := 1; ; run++ {
				if run > 60 {
					t.Fatalf("change not done after %d runs (%d killed)", run-1, kills)
				}
				// Roll the fleet forward to whatever the last run published,
				// even a run killed right after its commit.
				env.deploy(t, fleet, sc.change)
				time.Sleep(100 * time.Millisecond)
				if st := changeStatus(t, ctx, eng, env.specs, sc.change); st.Status == planner.StatusDone {
					t.Logf("done after %d runs, %d of them killed, %d failed", run-1, kills, failures)
					break
				}
				// Most runs are killed, at a random point of their work: the
				// delay spans startup, each phase's DDL and the backfill.
				var killAfter time.Duration
				if rng.IntN(4) != 0 {
					killAfter = time.Duration(rng.Int64N(int64(400 * time.Millisecond)))
				}
				id := fmt.Sprintf("deploy-%d", deploy)
				code, killed, out := runNext(t, bin, env.db.URL, specFile, id, killAfter)
				switch {
				case killed:
					kills++
					t.Logf("run %d (%s): killed after %s", run, id, killAfter.Round(time.Millisecond))
					if rng.IntN(2) == 0 {
						deploy++ // the next deploy, rather than a retry of this one
					}
					continue
				case code == 0 || code == 3:
					t.Logf("run %d (%s): exit %d: %s", run, id, code, bytes.TrimSpace(out))
				default:
					// A phase found half done by a killed run must resume,
					// not fail; allow a transient failure but not a stuck one.
					failures++
					t.Logf("run %d (%s): exit %d: %s", run, id, code, out)
					if failures > 3 {
						t.Fatalf("planner next keeps failing after kills")
					}
				}
				deploy++
			}
			if kills == 0 {
				t.Error("no run was killed")
			}
			finish(t, ctx, fleet)
			sc.after(t, env.db)
			requireFinalFlags(t, env.db, sc.change)
		})
	}
}

// runNext runs `planner next` and, when killAfter > 0, SIGKILLs it after
// that delay if it is still running.
func runNext(t *testing.T, bin, url, dir, deployID string, killAfter time.Duration) (code int, killed bool, out []byte) {
	t.Helper()
	var buf bytes.Buffer
	cmd := exec.Command(bin, "next", "--dir", dir, "--deploy-id", deployID, "--database-url", url,
		"--wait", "60s", "--lock-timeout", "500ms")
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timeout <-chan time.Time
	if killAfter > 0 {
		timeout = time.After(killAfter)
	}
	var err error
	select {
	case err = <-done:
	case <-timeout:
		cmd.Process.Kill() // SIGKILL: no deferred cleanup runs
		err = <-done
		killed = true
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("planner next %s hung:\n%s", deployID, buf.Bytes())
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, false, buf.Bytes()
	case errors.As(err, &exit):
		if killed && exit.ExitCode() != -1 {
			// It finished before the signal landed.
			killed = false
		}
		return exit.ExitCode(), killed, buf.Bytes()
	}
	t.Fatalf("planner next: %v", err)
	return 0, false, nil
}

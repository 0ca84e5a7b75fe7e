package e2e

import (
	"bufio"
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

// TestKillDashNine runs each change kind through the real CLI while the
// fleet runs, and SIGKILLs `planner next` after a random delay on most deploys
// (a fixed seed per subtest). A killed deploy is retried, sometimes with
// the same deploy id (the pipeline retries the job), sometimes with a new
// one (the next deploy). The change must complete, every row must be
// right, and no application request may fail.
func TestKillDashNine(t *testing.T) {
	bin := plannerBinary(t)
	all := scenarios()
	seeds := []uint64{1, 2, 3, 4, 5, 6}
	// A run may finish before its kill point; over all seeds, most must not.
	totalKills, ran := 0, 0
	defer func() {
		if !t.Failed() && totalKills < ran {
			t.Errorf("only %d runs were killed over %d seeds", totalKills, ran)
		}
	}()
	for _, seed := range seeds {
		sc := all[int(seed-1)%len(all)]
		t.Run(fmt.Sprintf("%s/seed=%d", sc.name, seed), func(t *testing.T) {
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
				if run > 40*len(env.specs) {
					t.Fatalf("changes not done after %d runs (%d killed)", run-1, kills)
				}
				// Roll the fleet forward to whatever the last run published,
				// even a run killed right after its commit.
				env.deploy(t, fleet, sc.change)
				time.Sleep(100 * time.Millisecond)
				if allDone(t, ctx, eng, env.specs) {
					t.Logf("done after %d runs, %d of them killed, %d failed", run-1, kills, failures)
					break
				}
				// Most runs are killed at a random point of their work: after
				// a random number of output lines (startup, each statement,
				// backfill progress) and a random few milliseconds more.
				killAt, extra := 0, time.Duration(0)
				if rng.IntN(5) != 0 {
					killAt = 1 + rng.IntN(5)
					extra = time.Duration(rng.Int64N(int64(40 * time.Millisecond)))
				}
				id := fmt.Sprintf("deploy-%d", deploy)
				code, killed, out := runNext(t, bin, env.db.URL, specFile, id, killAt, extra)
				switch {
				case killed:
					kills++
					t.Logf("run %d (%s): killed %s after output line %d: %s", run, id, extra.Round(time.Millisecond), killAt, lastLine(out))
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
			totalKills += kills
			ran++
			finish(t, ctx, fleet)
			sc.after(t, env.db)
			requireFinalFlags(t, env.db, sc.change)
		})
	}
}

// runNext runs `planner next -v` and, when killAt > 0, SIGKILLs it once it
// has printed killAt lines (it prints one per step and statement, so the
// kill lands between or inside any of them) plus a short random delay.
func runNext(t *testing.T, bin, url, dir, deployID string, killAt int, extra time.Duration) (code int, killed bool, out []byte) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd := exec.Command(bin, "next", "-v", "--dir", dir, "--deploy-id", deployID, "--database-url", url,
		"--wait", "60s", "--lease-ttl", "2s", "--lock-timeout", "500ms", "--backfill-batch-time", "10ms", "--purge-after", "0")
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pw.Close()
		t.Fatal(err)
	}
	pw.Close()
	var buf bytes.Buffer
	reached := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		lines := 0
		for sc.Scan() {
			buf.Write(sc.Bytes())
			buf.WriteByte('\n')
			if lines++; lines == killAt {
				close(reached)
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-reached:
		time.Sleep(extra)
		cmd.Process.Kill() // SIGKILL: no deferred cleanup runs
		err = <-done
		killed = true
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		<-copied
		t.Fatalf("planner next %s hung:\n%s", deployID, buf.Bytes())
	}
	<-copied
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, false, buf.Bytes()
	case errors.As(err, &exit):
		if killed && exit.ExitCode() != -1 {
			killed = false // it finished before the signal landed
		}
		return exit.ExitCode(), killed, buf.Bytes()
	}
	t.Fatalf("planner next: %v", err)
	return 0, false, nil
}

func lastLine(out []byte) string {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	return string(bytes.TrimSpace(lines[len(lines)-1]))
}

// allDone says whether every change of the scenario is done.
func allDone(t *testing.T, ctx context.Context, e *planner.Engine, specs []planner.Spec) bool {
	t.Helper()
	st, err := e.Status(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Status != planner.StatusDone {
			return false
		}
	}
	return true
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/pgtest"
)

// TestFlagsExportWatch: `flags export --watch` keeps the flagd file current
// through a whole rename, one `planner next` after another, on the
// planner's notifications alone (the poll interval is an hour), and stops
// cleanly on SIGTERM. Where node is present, flagd's own evaluator
// (@openfeature/flagd-core, strict schema validation) reads the file after
// every phase, as a Node or Python application's flagd file or in-process
// provider would, and must answer what the planner published.
func TestFlagsExportWatch(t *testing.T) {
	c, _ := newCLI(t)
	evaluate := flagdEvaluator(t)
	file := filepath.Join(t.TempDir(), "flags.json")
	watch := exec.Command(c.bin, "flags", "export", "--watch", "-f", file, "--poll-interval", "1h")
	watch.Env = c.env
	var log bytes.Buffer
	watch.Stdout, watch.Stderr = &log, &log
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Process.Kill() })
	waitForExport(t, c, file, &log)

	var seen []string
	for deploy := 1; ; deploy++ {
		if deploy > 12 {
			t.Fatalf("not done after 12 deploys; flags seen: %v", seen)
		}
		r := c.run(nil, "next", "--dir="+c.dir, fmt.Sprint("--deploy-id=d", deploy), "--purge-after=0", "-o", "json")
		var rep struct {
			Changes []struct{ Action string }
		}
		if (r.code != 0 && r.code != 3) || unmarshalResult(r.stdout, &rep) != nil || len(rep.Changes) != 1 {
			c.expect(r, 0)
			t.Fatalf("planner next -o json: %s", r.stdout)
		}
		want := waitForExport(t, c, file, &log)
		read, write := want["users-email-rename.read"], want["users-email-rename.write"]
		if state := read + "/" + write; len(seen) == 0 || seen[len(seen)-1] != state {
			seen = append(seen, state)
		}
		if evaluate != nil {
			got := evaluate(file, want)
			for key, variant := range want {
				if got[key].Variant != variant || got[key].Reason != "STATIC" {
					t.Fatalf("deploy %d: flagd-core evaluates %s as %+v, the planner published %s", deploy, key, got[key], variant)
				}
			}
		}
		if rep.Changes[0].Action == "done" {
			break
		}
	}
	t.Logf("read/write flags the file followed: %v", seen)
	if got := strings.Join(seen, " "); !strings.Contains(got, "old/old new/both new/new") {
		t.Errorf("flags seen through the rename: %s", got)
	}

	watch.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- watch.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("after SIGTERM: %v\n%s", err, log.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("--watch still running 10s after SIGTERM\n%s", log.String())
	}
	if evaluate == nil {
		t.Skip("node or npm not installed: the export was followed, but flagd-core did not evaluate it")
	}
}

// waitForExport waits until file holds what the planner publishes now and
// returns it as key → variant, derived boolean flags included.
func waitForExport(t *testing.T, c *cli, file string, log *bytes.Buffer) map[string]string {
	t.Helper()
	r := c.run(nil, "flags", "-o", "json")
	c.expect(r, 0)
	var published []flags.Flag
	if err := unmarshalResult(r.stdout, &published); err != nil {
		t.Fatal(err)
	}
	want, err := flags.ExportFlagd(published)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := os.ReadFile(file)
		if bytes.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s the watched file holds\n%s\nthe planner publishes\n%s\nwatch output:\n%s", got, want, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	variants := map[string]string{}
	var doc struct {
		Flags map[string]struct{ DefaultVariant string }
	}
	if err := json.Unmarshal(want, &doc); err != nil {
		t.Fatal(err)
	}
	for k, f := range doc.Flags {
		variants[k] = f.DefaultVariant
	}
	return variants
}

type flagdResult struct {
	Value     any
	Variant   string
	Reason    string
	ErrorCode string
}

// flagdEvaluator installs @openfeature/flagd-core (once, into .cache) and
// returns a function evaluating keys of a flagd file with it; nil without
// node or npm.
func flagdEvaluator(t *testing.T) func(file string, keys map[string]string) map[string]flagdResult {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		return nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return nil
	}
	out, err := exec.Command("../../internal/scripts/npm-flagd-core.sh").Output()
	if err != nil {
		t.Fatalf("install @openfeature/flagd-core: %v", err)
	}
	prefix := strings.TrimSpace(string(out))
	return func(file string, keys map[string]string) map[string]flagdResult {
		t.Helper()
		args := []string{"testdata/flagd-eval.cjs", prefix, file}
		for k := range keys {
			args = append(args, k)
		}
		cmd := exec.Command("node", args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("flagd-core: %v\n%s", err, stderr.String())
		}
		var res map[string]flagdResult
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("flagd-core output: %v\n%s", err, out)
		}
		return res
	}
}

// TestFlagsExportWatchPollsThroughPooler: behind PgBouncer in transaction
// mode notifications cannot be relied on; the poll interval keeps the file
// current all the same, and a bad invocation is refused before anything runs.
func TestFlagsExportWatchPollsThroughPooler(t *testing.T) {
	c, db := newCLI(t)
	c.expect(c.run(nil, "flags", "export", "--watch"), 2, "--watch needs --file")
	c.expect(c.run(nil, "flags", "export", "--watch", "-f", "x.json", "--poll-interval=0s"), 2, "--poll-interval must be positive")
	file := filepath.Join(t.TempDir(), "flags.json")
	watch := exec.Command(c.bin, "flags", "export", "--watch", "-f", file, "--poll-interval", "200ms")
	watch.Env = append(append([]string{}, c.env...), "DATABASE_URL="+pgtest.NewPgBouncer(t, db, "transaction", 1))
	var log bytes.Buffer
	watch.Stdout, watch.Stderr = &log, &log
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Process.Kill() })
	waitForExport(t, c, file, &log)
	c.expect(c.run(nil, "next", "--dir="+c.dir, "--deploy-id=d1"), 0, "expand")
	if got := waitForExport(t, c, file, &log); got["users-email-rename.write"] != "old" {
		t.Fatalf("after expand: %v", got)
	}
	watch.Process.Signal(syscall.SIGINT)
	if err := watch.Wait(); err != nil {
		t.Fatalf("after SIGINT: %v\n%s", err, log.String())
	}
}

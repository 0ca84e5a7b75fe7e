package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/backfill"
)

// Measurements 3 and 4 run the backfill as users do, `planner backfill run`
// in a process of its own: the application's latency then owes nothing to
// the planner sharing its Go runtime, and the memory compared is the
// process's whole resident set (Go runtime, stacks, pgx buffers), not only
// the heap.

// buildPlanner builds the planner command into a temporary directory and
// returns its path and a function that removes it.
func buildPlanner(ctx context.Context) (string, func(), error) {
	dir, err := os.MkdirTemp("", "bench-planner-")
	if err != nil {
		return "", nil, err
	}
	remove := func() { os.RemoveAll(dir) }
	bin := filepath.Join(dir, "planner")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/pgplanner/planner/cmd/planner").CombinedOutput(); err != nil {
		remove()
		return "", nil, fmt.Errorf("go build github.com/pgplanner/planner/cmd/planner: %w\n%s", err, out)
	}
	return bin, remove, nil
}

type processRun struct {
	took   time.Duration // from the job's start to the process's exit
	rss    uint64        // the process's largest resident set, in bytes
	anon   uint64        // the largest anonymous part of it seen, in bytes
	output string        // what the process printed (its notes on workers, its progress)
}

// processBackfill starts the rename's backfill of table and runs it to its
// end with `planner backfill run` (binary bin, database url), with opts'
// workers, batch time, sleep and application wait bound.
func processBackfill(ctx context.Context, pool *pgxpool.Pool, bin, url, table string, opts backfill.Options) (processRun, error) {
	change := table + "-email-rename"
	t0 := time.Now()
	if err := startRename(ctx, pool, table); err != nil {
		return processRun{}, err
	}
	args := []string{"backfill", "run", change, "--database-url", url, "--state-schema", state,
		fmt.Sprintf("--workers=%d", opts.Workers), fmt.Sprintf("--sleep=%s", opts.Sleep)}
	if opts.TargetBatch > 0 {
		args = append(args, fmt.Sprintf("--batch-time=%s", opts.TargetBatch))
	}
	if opts.MaxAppWait > 0 {
		args = append(args, fmt.Sprintf("--max-app-wait=%s", opts.MaxAppWait))
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return processRun{}, err
	}
	var run processRun
	sampled := make(chan struct{})
	done := make(chan struct{})
	go func() {
		run.rss, run.anon = peakMemory(cmd.Process.Pid, done)
		close(sampled)
	}()
	err := cmd.Wait()
	run.took = time.Since(t0)
	close(done)
	<-sampled
	if err != nil {
		return processRun{}, fmt.Errorf("planner %s: %w\n%s", strings.Join(args[:3], " "), err, out.Bytes())
	}
	job, err := backfill.Get(ctx, pool, state, change)
	if err != nil {
		return processRun{}, err
	}
	if !job.Verified {
		return processRun{}, fmt.Errorf("planner backfill run %s exited 0 with the job not verified: %+v\n%s", change, job, out.Bytes())
	}
	if run.rss == 0 {
		return processRun{}, fmt.Errorf("planner backfill run: no memory sample of the process (/proc/%d/status)", cmd.Process.Pid)
	}
	run.output = out.String()
	return run, nil
}

// peakMemory samples /proc/pid/status until done and returns the largest
// resident set the process reached (VmHWM) and the largest anonymous part
// of it seen (RssAnon: heap, stacks and runtime, without the pages of the
// binary, which a longer run touches more of), in bytes. The kernel's
// ru_maxrss of a child does not serve: Go starts it with vfork, and the
// child's count starts from the parent's resident set.
func peakMemory(pid int, done <-chan struct{}) (hwm, anon uint64) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	for {
		if b, err := os.ReadFile(path); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				name, v, _ := strings.Cut(l, ":")
				var kib uint64
				fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kib)
				switch name {
				case "VmHWM":
					hwm = max(hwm, kib*1024)
				case "RssAnon":
					anon = max(anon, kib*1024)
				}
			}
		}
		select {
		case <-done:
			return hwm, anon
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// printOutput prints what a planner process said, indented, its notes
// apart from the progress lines.
func printOutput(out string) {
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" && !strings.Contains(l, "% (") {
			fmt.Println("   planner:", l)
		}
	}
}

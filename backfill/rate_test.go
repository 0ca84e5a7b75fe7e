package backfill

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pgplanner/planner/phases"
)

func TestProgressPass(t *testing.T) {
	tests := []struct {
		name        string
		p           Progress
		done, total int64
		fraction    float64
	}{
		{"backfill", Progress{Rows: 250, Total: 1000}, 250, 1000, 0.25},
		{"verify counts verified rows", Progress{Rows: 1000, Total: 1000, Done: true, VerifiedRows: 100}, 100, 1000, 0.1},
		{"rows past the estimate raise the total", Progress{Rows: 100123, Total: 100079}, 100123, 100123, 1},
		{"no rows at all", Progress{}, 0, 0, 0},
		{"rows inserted into an empty table", Progress{Rows: 37}, 37, 37, 1},
		{"verified", Progress{Rows: 10, Total: 10, Done: true, Verified: true, VerifiedRows: 10}, 10, 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done, total := tt.p.Pass()
			if done != tt.done || total != tt.total || tt.p.Fraction() != tt.fraction {
				t.Fatalf("Pass() = %d, %d; Fraction() = %v; want %d, %d, %v", done, total, tt.p.Fraction(), tt.done, tt.total, tt.fraction)
			}
		})
	}
	p := Progress{Rows: 100123, Total: 100079, RowsPerSec: 1000}
	if got := eta(p); got != 0 {
		t.Fatalf("eta past the estimate = %s, want 0 (unknown)", got)
	}
	p = Progress{Rows: 1000, Total: 1000, Done: true, VerifiedRows: 400, RowsPerSec: 100}
	if got := eta(p); got != 6*time.Second {
		t.Fatalf("eta of the verification pass = %s, want 6s", got)
	}
}

// TestRateIsRecent: the persisted rate counts from the last (re)start, so
// that a job killed long ago and run again shows its present speed; a job
// nobody runs shows as idle, a paused one as paused, both without a rate.
func TestRateIsRecent(t *testing.T) {
	defer func(was time.Duration) { IdleAfter = was }(IdleAfter)
	IdleAfter = 3 * time.Second // heartbeat every second
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, old text, new text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 30000) g`)
	if err := StartWith(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old"}, nil,
		StartOptions{BatchSize: 50}); err != nil {
		t.Fatal(err)
	}
	get := func() Progress {
		t.Helper()
		p, err := Get(ctx, db.Pool, state, "c1")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	waitRows := func(n int64) Progress {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
			if p := get(); p.Rows >= n {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("stuck at %+v", get())
			}
		}
	}
	opts := Options{MinBatch: 50, MaxBatch: 50, Sleep: 5 * time.Millisecond, Poll: 20 * time.Millisecond}
	run := func() (context.CancelFunc, chan error) {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := Run(runCtx, db.Pool, state, "c1", opts)
			done <- err
		}()
		return cancel, done
	}

	if p := get(); !p.Idle || p.RowsPerSec != 0 || p.ETA != 0 {
		t.Fatalf("a job nobody ran: %+v, want idle without rate", p)
	}
	stop, done := run()
	p := waitRows(1000)
	if p.Idle || p.RowsPerSec <= 0 || p.ETA <= 0 {
		t.Fatalf("while running: %+v, want a rate and an ETA", p)
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}

	// As if it had been killed an hour ago.
	db.Exec(t, `UPDATE planner.backfill_jobs SET started_at = started_at - interval '1 hour',
  rate_since = rate_since - interval '1 hour', seen_at = seen_at - interval '1 hour';
UPDATE planner.backfill_ranges SET updated_at = updated_at - interval '1 hour'`)
	p = get()
	if !p.Idle || p.RowsPerSec != 0 || p.ETA != 0 {
		t.Fatalf("killed an hour ago: %+v, want idle without rate", p)
	}
	before := p.Rows

	// Run again: the rate counts from the restart. Nothing ran between
	// restarted and the restart, so the rate over the window the job
	// persisted is at least the rows since over the time since.
	restarted := time.Now()
	stop, done = run()
	p = waitRows(before + 2000)
	since := time.Since(restarted)
	atLeast := float64(p.Rows-before) / since.Seconds()
	sinceFirst := float64(p.Rows) / (time.Hour + since).Seconds()
	t.Logf("rate %.0f rows/s; at least %.0f; rows over the time since the first start: %.0f", p.RowsPerSec, atLeast, sinceFirst)
	if p.Idle || p.RowsPerSec < atLeast || p.ETA <= 0 {
		t.Fatalf("after a restart: %+v, want a rate of at least %.0f rows/s (not %.1f, since the first start) and an ETA", p, atLeast, sinceFirst)
	}

	// Paused: no rate and no ETA. The waiting worker keeps the job from
	// looking idle (its heartbeat).
	if err := Pause(ctx, db.Pool, state, "c1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(IdleAfter + time.Second)
	if p := get(); !p.Paused || p.Idle || p.RowsPerSec != 0 || p.ETA != 0 {
		t.Fatalf("paused with a worker waiting: %+v, want paused, not idle, no rate", p)
	}
	if err := Resume(ctx, db.Pool, state, "c1"); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	opts.Sleep = 0
	_, done = run()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p := get(); !p.Verified || p.Idle || p.ETA != 0 {
		t.Fatalf("verified job: %+v", p)
	}
	assertAllRight(t, db, "t", "new = old")
}

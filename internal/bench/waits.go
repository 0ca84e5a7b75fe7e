package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/internal/clock"
)

// backfillApp is the application_name of the backfill's connections in
// measurement 6: the blockers whose victims are counted.
const backfillApp = "bench backfill"

// part6 measures how long application statements wait for locks held by
// the backfill (sampling pg_locks), on a quiet machine and with a busy
// loop on every core, against the configured bound.
func part6(ctx context.Context, pool *pgxpool.Pool, url string, c config, opts backfill.Options) error {
	fmt.Printf("6. application lock waits behind the backfill, %d rows, %d clients at %d ops/s, bound --max-app-wait %s:\n",
		c.waitRows, c.clients, c.rate, c.maxAppWait)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = backfillApp
	cfg.MaxConns = int32(opts.MostWorkers() + 2)
	bpool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer bpool.Close()
	var worst [2]time.Duration // the longest wait, quiet and with the hog
	var errs int64
	for i, hog := range []bool{false, true} {
		table := fmt.Sprintf("waits%d", i)
		if err := makeTable(ctx, pool, table, c.waitRows); err != nil {
			return err
		}
		if err := expand(ctx, pool, table, true); err != nil {
			return err
		}
		var stopHog func()
		if hog {
			if stopHog, err = cpuHog(); err != nil {
				return err
			}
		}
		o := opts
		o.MaxAppWait = c.maxAppWait
		var mu sync.Mutex
		var took []time.Duration
		var cancelled, skipped atomic.Int64
		o.OnBatch = func(b backfill.Batch) {
			switch {
			case b.Err != nil:
				var pg *pgconn.PgError
				if errors.As(b.Err, &pg) && pg.Code == "57014" {
					cancelled.Add(1)
				}
			case !b.Verify && !b.Revisit:
				mu.Lock()
				took = append(took, b.Took)
				mu.Unlock()
				skipped.Add(b.Skipped)
			}
		}
		var waits []time.Duration
		var r result
		lat, err := workload(ctx, pool, c, table, func(ctx context.Context) error {
			sctx, stop := context.WithCancel(ctx)
			done := make(chan []time.Duration)
			go func() { done <- sampleWaits(sctx, pool) }()
			var err error
			r, err = timedBackfill(ctx, bpool, table, o, false)
			stop()
			waits = <-done
			return err
		})
		if stopHog != nil {
			stopHog()
		}
		if err != nil {
			return err
		}
		name := "quiet machine"
		if hog {
			name = fmt.Sprintf("CPU hog, %d busy loops", runtime.NumCPU())
		}
		wmax, wp99 := tail(waits)
		worst[i], errs = wmax, errs+lat.errors
		bmax, bp99 := tail(took)
		verdict := "within the bound"
		if wmax > c.maxAppWait {
			verdict = "OVER THE BOUND"
		}
		fmt.Printf("   %-26s %d waits behind the backfill, p99 %s, max %s = %.2f× the bound (%s); application errors %d\n",
			name+":", len(waits), wp99.Round(time.Millisecond), wmax.Round(time.Millisecond), wmax.Seconds()/c.maxAppWait.Seconds(), verdict, lat.errors)
		fmt.Printf("   %-26s backfill %s, %d batches, round trip of statement + commit as the planner sees it (an upper bound on the time it holds row locks): p99 %s, max %s;\n%-29s%d cancelled at the cap and retried smaller, %d rows skipped and revisited\n",
			"", r.total().Round(time.Millisecond), len(took), bp99.Round(time.Millisecond), bmax.Round(time.Millisecond), "", cancelled.Load(), skipped.Load())
		if _, err := pool.Exec(ctx, `DROP TABLE `+table); err != nil {
			return err
		}
	}
	report("application lock waits behind the backfill", fmt.Sprintf("max %s quiet, %s with a CPU hog, %d errors", ms(worst[0]), ms(worst[1]), errs),
		fmt.Sprintf("≤ %s (--max-app-wait), 0 errors", ms(c.maxAppWait)), max(worst[0], worst[1]) <= c.maxAppWait && errs == 0)
	return nil
}

// sampleWaits polls pg_locks (pg_locks.waitstart, PostgreSQL 14 and
// later) until ctx ends and returns the length of every lock wait whose
// blockers include a backfill connection, as far as it was seen: a wait
// may have lasted up to one polling interval more.
func sampleWaits(ctx context.Context, pool *pgxpool.Pool) []time.Duration {
	type wait struct {
		pid   int
		start time.Time
	}
	seen := map[wait]time.Duration{}
	for ctx.Err() == nil {
		rows, err := pool.Query(ctx, `
SELECT l.pid, l.waitstart, extract(epoch FROM clock_timestamp() - l.waitstart)::float8
FROM pg_locks l
WHERE NOT l.granted AND l.waitstart IS NOT NULL
  AND EXISTS (SELECT 1 FROM unnest(pg_blocking_pids(l.pid)) b(pid) JOIN pg_stat_activity a ON a.pid = b.pid
              WHERE a.application_name = $1)`, backfillApp)
		if err == nil {
			for rows.Next() {
				var w wait
				var secs float64
				if rows.Scan(&w.pid, &w.start, &secs) == nil {
					seen[w] = max(seen[w], time.Duration(secs*float64(time.Second)))
				}
			}
			rows.Close()
		}
		clock.Sleep(ctx, 5*time.Millisecond)
	}
	out := make([]time.Duration, 0, len(seen))
	for _, d := range seen {
		out = append(out, d)
	}
	return out
}

func tail(d []time.Duration) (maxOf, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)-1], s[len(s)*99/100]
}

// cpuHog starts a busy shell loop per core; the returned function stops
// them.
func cpuHog() (func(), error) {
	var procs []*exec.Cmd
	stop := func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	}
	for range runtime.NumCPU() {
		p := exec.Command("sh", "-c", "while :; do :; done")
		if err := p.Start(); err != nil {
			stop()
			return nil, err
		}
		procs = append(procs, p)
	}
	return stop, nil
}

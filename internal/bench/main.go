// Command bench measures the batched backfill against the physical floor
// (one set-based UPDATE of the same rows), the latency an application sees
// while it runs, and the planner's memory as the table grows. It starts a
// throwaway PostgreSQL of its own (make bench).
package main

// This file is long because the benchmark is one sequence that shares its
// tables and baselines: each measurement is printed as a ratio against a
// floor measured in the same run, so the floors, the measurements and the
// summary that divides them stay together. The flag hot path, validate and
// lock-wait benchmarks are in hotpath.go, validate.go and waits.go, the
// goals in targets.go.

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/internal/clock"
	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

const state = "planner"

type config struct {
	rows, scale      int
	repeat           int
	workers          int
	clients, rate    int
	workload         time.Duration
	batchTime        time.Duration
	sleep            time.Duration
	explain, verbose bool
	sync             bool
	parts            string
	autovacuum       bool
	gentle           time.Duration
	waitRows         int
	maxAppWait       time.Duration
	cpuProfile       string
}

func main() {
	var c config
	flag.IntVar(&c.rows, "rows", 1_000_000, "rows in the benchmark table")
	flag.IntVar(&c.scale, "scale", 4, "also backfill rows×scale rows to compare the planner's memory (1: skip)")
	flag.IntVar(&c.repeat, "repeat", 3, "times to measure the UPDATE and the backfill (medians are compared)")
	flag.IntVar(&c.workers, "workers", 0, "backfill workers (0: the default, as many as pay off)")
	flag.IntVar(&c.clients, "clients", 8, "application workload goroutines")
	flag.IntVar(&c.rate, "rate", 2000, "application operations per second, over all clients")
	flag.DurationVar(&c.workload, "workload", 10*time.Second, "duration of the baseline workload")
	flag.DurationVar(&c.batchTime, "batch-time", 0, "backfill target batch duration (0: the default)")
	flag.DurationVar(&c.sleep, "sleep", 0, "backfill pause between batches")
	flag.BoolVar(&c.explain, "explain", false, "print EXPLAIN ANALYZE of one batch UPDATE")
	flag.BoolVar(&c.verbose, "v", false, "print every batch of the backfills run in this process (all but those of measurements 3 and 4)")
	flag.StringVar(&c.parts, "parts", "1234567", "which measurements to run: 1-2 (UPDATE vs backfill), 3 (workload), 4 (time and memory at 1 and -scale times the rows), 5 (validate and connected plan of many changes), 6 (application lock waits, with and without a CPU hog), 7 (flag evaluation against the SDK's in-memory provider)")
	flag.IntVar(&c.waitRows, "wait-rows", 200_000, "rows of the table of measurement 6")
	flag.DurationVar(&c.maxAppWait, "max-app-wait", backfill.Defaults.MaxAppWait, "backfill bound on application lock waits (--max-app-wait)")
	flag.DurationVar(&c.gentle, "gentle-sleep", 150*time.Millisecond, "workload measurement: also backfill with this pause between batches (0: skip)")
	flag.BoolVar(&c.autovacuum, "autovacuum", true, "leave autovacuum on for the tables of measurement 3, and in 4 measure the growth with autovacuum on as well as off")
	flag.BoolVar(&c.sync, "sync", true, "install the sync trigger before backfilling, as a rename does")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write this process's CPU profile to this file (measurements 3 and 4 run the backfill in a planner process of their own)")
	flag.Parse()
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(context.Background(), c); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	cluster, err := pgtest.Start(pgtest.Options{Settings: []string{
		// Room for a 4M-row table and its new versions in memory, and no
		// checkpoint in the middle of a timed step.
		"shared_buffers=2GB", "max_wal_size=20GB", "checkpoint_timeout=1h",
		"work_mem=64MB", "maintenance_work_mem=512MB",
		// New WAL segments are not zero-filled: less disk noise for both sides.
		"wal_init_zero=off",
	}})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	defer printTargets()
	cfg, err := pgxpool.ParseConfig(cluster.URL("postgres"))
	if err != nil {
		return err
	}
	opts := backfill.Options{Workers: c.workers, TargetBatch: c.batchTime, Sleep: c.sleep, MaxAppWait: c.maxAppWait,
		Log: func(msg string) { fmt.Println("   backfill:", msg) }}
	cfg.MaxConns = int32(c.clients + opts.MostWorkers() + 4)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	workers := fmt.Sprint(c.workers)
	if c.workers == 0 {
		workers = "as many as pay off"
	}
	fmt.Printf("PostgreSQL %d, %d CPUs, %d rows; backfill workers: %s\n\n", cluster.Version, runtime.NumCPU(), c.rows, workers)
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	if err := backfill.Migrate(ctx, tx, state); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	if c.verbose {
		opts.OnBatch = func(b backfill.Batch) {
			fmt.Printf("   batch range %d verify=%v size %d rows %d changed %d took %s (held on the server %s) elapsed %s next %d err %v\n",
				b.Range, b.Verify, b.Size, b.Rows, b.Updated, b.Took.Round(time.Millisecond), b.Held.Round(time.Millisecond), b.Elapsed.Round(time.Millisecond), b.Next, b.Err)
		}
	}

	// 1 and 2, alternated on fresh tables `repeat` times (the machine may
	// be shared): the physical floor, one UPDATE of every row, and two
	// UPDATEs of half the rows at once, each with and without the sync
	// trigger; and the planner's backfill of a rename on the same data, with
	// the sync trigger installed as in real use, with the options given and
	// with two workers.
	var floors, trigFloors, halves, trigHalves, totals, pairs []time.Duration
	var r result
	if !strings.ContainsAny(c.parts, "12") {
		c.repeat = 0
	}
	if !strings.Contains(c.parts, "4") {
		c.scale = 1
	}
	two := opts
	two.Workers = 2
	for i := range c.repeat {
		floor, err := timedUpdate(ctx, pool, c, false, c.explain && i == 0)
		if err != nil {
			return err
		}
		trigFloor, err := timedUpdate(ctx, pool, c, true, false)
		if err != nil {
			return err
		}
		half, err := timedHalves(ctx, pool, c, false)
		if err != nil {
			return err
		}
		trigHalf, err := timedHalves(ctx, pool, c, true)
		if err != nil {
			return err
		}
		if r, err = itemsBackfill(ctx, pool, c, opts, c.explain && i == 0, true); err != nil {
			return err
		}
		fmt.Printf("   run %d: UPDATE %s (with the sync trigger %s, two halves at once %s, with the trigger %s), backfill %s (start %s, %d batches, max size %d) + verification %s: %.2f×\n",
			i+1, floor.Round(time.Millisecond), trigFloor.Round(time.Millisecond), half.Round(time.Millisecond), trigHalf.Round(time.Millisecond), r.write.Round(time.Millisecond), r.start.Round(time.Millisecond),
			r.batches, r.maxSize, r.verify.Round(time.Millisecond), r.total().Seconds()/floor.Seconds())
		floors, trigFloors = append(floors, floor), append(trigFloors, trigFloor)
		halves, trigHalves = append(halves, half), append(trigHalves, trigHalf)
		totals = append(totals, r.total())
		if c.workers < 2 {
			p, err := itemsBackfill(ctx, pool, c, two, false, false)
			if err != nil {
				return err
			}
			fmt.Printf("          with --workers 2: backfill %s + verification %s: %.2f×\n",
				p.write.Round(time.Millisecond), p.verify.Round(time.Millisecond), p.total().Seconds()/floor.Seconds())
			pairs = append(pairs, p.total())
		}
	}
	if c.repeat > 0 {
		summary(c, floors, trigFloors, halves, trigHalves, totals, pairs, r)
	}
	if strings.Contains(c.parts, "5") {
		if err := part5(ctx, pool); err != nil {
			return err
		}
	}
	if strings.Contains(c.parts, "7") {
		if err := part7(ctx, pool, cluster.URL("postgres")); err != nil {
			return err
		}
	}
	// Measurements 3 and 4 run the backfill as users do, in a planner
	// process of its own (process.go).
	var bin string
	if strings.Contains(c.parts, "3") || c.scale > 1 {
		var remove func()
		if bin, remove, err = buildPlanner(ctx); err != nil {
			return err
		}
		defer remove()
	}
	if strings.Contains(c.parts, "3") {
		if err := part3(ctx, pool, bin, cluster.URL("postgres"), c, opts); err != nil {
			return err
		}
	}
	if strings.Contains(c.parts, "6") {
		if err := part6(ctx, pool, cluster.URL("postgres"), c, opts); err != nil {
			return err
		}
	}
	if c.scale > 1 {
		return part4(ctx, bin, cluster.URL("postgres"), c, opts)
	}
	return nil
}

func summary(c config, floors, trigFloors, halves, trigHalves, totals, pairs []time.Duration, r result) {
	floor, trigFloor, half, trigHalf, total := median(floors), median(trigFloors), median(halves), median(trigHalves), median(totals)
	fmt.Printf("1. single UPDATE t SET new = old:        %8s (median of %d)\n", floor.Round(time.Millisecond), c.repeat)
	fmt.Printf("   the same with the sync trigger:       %8s  = %.2f× (a BEFORE UPDATE row trigger locks each row first,\n", trigFloor.Round(time.Millisecond), trigFloor.Seconds()/floor.Seconds())
	fmt.Printf("                                                   one more WAL record per row, even when its WHEN clause skips it)\n")
	fmt.Printf("   two UPDATEs of half the rows at once: %8s  = %.2f× (what two backends can do here, without the trigger)\n", half.Round(time.Millisecond), half.Seconds()/floor.Seconds())
	fmt.Printf("   the same with the sync trigger:       %8s  = %.2f×\n", trigHalf.Round(time.Millisecond), trigHalf.Seconds()/floor.Seconds())
	fmt.Printf("2. planner backfill with verification:  %8s  = %.2f× the UPDATE\n", total.Round(time.Millisecond), total.Seconds()/floor.Seconds())
	fmt.Printf("                                                   = %.2f× the UPDATE with the same trigger\n", total.Seconds()/trigFloor.Seconds())
	fmt.Printf("   Go heap in use (max, after GC):       %8s\n", mib(r.heap))
	name, goal := "backfill with verification (default settings)", backfillGoal
	if c.workers >= 2 {
		name, goal = fmt.Sprintf("backfill with verification (%d workers)", c.workers), parallelGoal
	}
	ratio := total.Seconds() / floor.Seconds()
	report(name, fmt.Sprintf("%.2f× the single UPDATE", ratio), fmt.Sprintf("≤ %.1f×", goal), ratio <= goal)
	if len(pairs) > 0 {
		pair := median(pairs)
		ratio := pair.Seconds() / floor.Seconds()
		fmt.Printf("   with --workers 2:                     %8s  = %.2f× the UPDATE, %.2f× the two halves with the same trigger\n", pair.Round(time.Millisecond), ratio, pair.Seconds()/trigHalf.Seconds())
		report("backfill with verification (2 workers)", fmt.Sprintf("%.2f× the single UPDATE (two UPDATEs of half the rows at once: %.2f×, with the sync trigger %.2f×)", ratio, half.Seconds()/floor.Seconds(), trigHalf.Seconds()/floor.Seconds()),
			fmt.Sprintf("≤ %.1f×", parallelGoal), ratio <= parallelGoal)
	}
}

// itemsBackfill times the rename's backfill of a fresh table with opts,
// explaining a batch first with explain.
func itemsBackfill(ctx context.Context, pool *pgxpool.Pool, c config, opts backfill.Options, explain, measureHeap bool) (result, error) {
	if err := makeTable(ctx, pool, "items", c.rows); err != nil {
		return result{}, err
	}
	if err := expand(ctx, pool, "items", c.sync); err != nil {
		return result{}, err
	}
	if explain {
		if err := explainBatch(ctx, pool, "items"); err != nil {
			return result{}, err
		}
	}
	r, err := timedBackfill(ctx, pool, "items", opts, measureHeap)
	if err != nil {
		return result{}, err
	}
	if c.verbose {
		var av, aa int64
		if err := pool.QueryRow(ctx, `SELECT autovacuum_count, autoanalyze_count FROM pg_stat_user_tables WHERE relname = 'items'`).Scan(&av, &aa); err == nil {
			fmt.Printf("   autovacuum ran %d times and autoanalyze %d times on the table during the backfill\n", av, aa)
		}
	}
	if _, err := pool.Exec(ctx, `DROP TABLE items`); err != nil {
		return result{}, err
	}
	return r, backfill.Reset(ctx, pool, state, "items-email-rename")
}

// part3 measures an application workload with no backfill, then during a
// backfill at full speed and with no backfill again, then during a gentler
// backfill (a pause between batches), each backfill on a fresh copy of the
// table; the ratios are against the lower of the two baselines.
func part3(ctx context.Context, pool *pgxpool.Pool, bin, url string, c config, opts backfill.Options) error {
	fmt.Printf("3. workload, %d clients at %d ops/s (50%% reads, 25%% writes of the column, 25%% of another),\n   sync trigger installed in all:\n", c.clients, c.rate)
	var base latencies
	runs := []struct {
		name  string
		sleep time.Duration
	}{{"full speed", opts.Sleep}, {"with --sleep " + c.gentle.String(), c.gentle}}
	if c.gentle <= 0 {
		runs = runs[:1]
	}
	for i, run := range runs {
		table := fmt.Sprintf("live%d", i)
		if err := makeTable(ctx, pool, table, c.rows); err != nil {
			return err
		}
		if !c.autovacuum {
			if _, err := pool.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s SET (autovacuum_enabled = off)`, table)); err != nil {
				return err
			}
		}
		// The baseline runs after the expand phase (new column, sync
		// trigger), so that the comparison isolates the backfill.
		if err := expand(ctx, pool, table, true); err != nil {
			return err
		}
		if i == 0 {
			var err error
			if base, err = workload(ctx, pool, c, table, func(ctx context.Context) error { return clock.Sleep(ctx, c.workload) }); err != nil {
				return err
			}
			fmt.Printf("   no backfill:       %s\n", base)
		}
		if i == 0 {
			// Reference: the same workload while one backend only burns CPU
			// (no rows touched) for about as long as a backfill takes.
			burn, err := workload(ctx, pool, c, table, func(ctx context.Context) error {
				_, err := pool.Exec(ctx, `SELECT count(*) FROM generate_series(1, 60000000)`)
				return err
			})
			if err != nil {
				return err
			}
			fmt.Printf("   reference, one backend busy with a CPU-bound query:\n                      %s\n", burn)
			fmt.Printf("                      p99 during/baseline %.2f×, p50 %.2f×\n",
				burn.p99.Seconds()/base.p99.Seconds(), burn.p50.Seconds()/base.p50.Seconds())
		}
		var r processRun
		o := opts
		o.Sleep = run.sleep
		during, err := workload(ctx, pool, c, table, func(ctx context.Context) error {
			var err error
			r, err = processBackfill(ctx, pool, bin, url, table, o)
			return err
		})
		if err != nil {
			return err
		}
		if bad, err := count(ctx, pool, fmt.Sprintf(`SELECT count(*) FROM %s WHERE email_address IS DISTINCT FROM email`, table)); err != nil || bad != 0 {
			return fmt.Errorf("after the backfill under load: %d rows differ (%v)", bad, err)
		}
		printOutput(r.output)
		fmt.Printf("   during backfill, %s (took %s):\n                      %s\n", run.name, r.took.Round(time.Millisecond), during)
		if i == 0 {
			// The baseline again, after the backfill: on a shared machine
			// the load may have changed meanwhile, and the lower of the two
			// makes the stricter ratio.
			after, err := workload(ctx, pool, c, table, func(ctx context.Context) error { return clock.Sleep(ctx, c.workload) })
			if err != nil {
				return err
			}
			fmt.Printf("   no backfill, after it:\n                      %s\n", after)
			if hi, lo := max(base.p99, after.p99), min(base.p99, after.p99); hi.Seconds() > 1.5*lo.Seconds() {
				fmt.Printf("                      the two baselines' p99 differ by %.1f×: the machine's load changed, the ratios are less sure\n", hi.Seconds()/lo.Seconds())
			}
			base.p99, base.p50, base.errors = min(base.p99, after.p99), min(base.p50, after.p50), base.errors+after.errors
		}
		fmt.Printf("                      p99 during/baseline (the lower) %.2f× (target ≤ 2×), p50 %.2f×, errors %d (target 0)\n",
			during.p99.Seconds()/base.p99.Seconds(), during.p50.Seconds()/base.p50.Seconds(), during.errors+base.errors)
		if i == 0 { // the target is about the default backfill
			ratio, errs := during.p99.Seconds()/base.p99.Seconds(), during.errors+base.errors
			report("application during the default backfill",
				fmt.Sprintf("p99 %.2f× baseline, max %s, %d errors", ratio, ms(during.max), errs),
				fmt.Sprintf("≤ %.0f×, ≤ %s, 0 errors", p99Goal, ms(maxLatencyGoal)),
				ratio <= p99Goal && during.max <= maxLatencyGoal && errs == 0)
		}
		if _, err := pool.Exec(ctx, `DROP TABLE `+table); err != nil {
			return err
		}
	}
	return nil
}

// timedUpdate times one UPDATE of every row of a fresh table, with or
// without the sync trigger.
func timedUpdate(ctx context.Context, pool *pgxpool.Pool, c config, sync, explainIt bool) (time.Duration, error) {
	if err := makeTable(ctx, pool, "floor", c.rows); err != nil {
		return 0, err
	}
	defer pool.Exec(ctx, `DROP TABLE floor`)
	if err := expand(ctx, pool, "floor", sync); err != nil {
		return 0, err
	}
	if explainIt {
		if err := explain(ctx, pool, "the single UPDATE", `UPDATE floor SET email_address = email`); err != nil {
			return 0, err
		}
		if _, err := pool.Exec(ctx, `CHECKPOINT`); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	if _, err := pool.Exec(ctx, `UPDATE floor SET email_address = email`); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// timedHalves times two UPDATEs of half the rows each, at once, on two
// connections, with or without the sync trigger: the floor of two workers
// on this machine.
func timedHalves(ctx context.Context, pool *pgxpool.Pool, c config, sync bool) (time.Duration, error) {
	if err := makeTable(ctx, pool, "floor", c.rows); err != nil {
		return 0, err
	}
	defer pool.Exec(ctx, `DROP TABLE floor`)
	if err := expand(ctx, pool, "floor", sync); err != nil {
		return 0, err
	}
	t0 := time.Now()
	errs := make(chan error, 2)
	for _, where := range []string{`id <= $1`, `id > $1`} {
		go func() {
			_, err := pool.Exec(ctx, `UPDATE floor SET email_address = email WHERE `+where, c.rows/2)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			return 0, err
		}
	}
	return time.Since(t0), nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// makeTable builds the benchmark table: bigint key, an email of about 30
// bytes, and two more columns.
func makeTable(ctx context.Context, pool *pgxpool.Pool, name string, rows int) error {
	t := pgx.Identifier{name}.Sanitize()
	for _, sql := range []string{
		`CREATE TABLE %[1]s (id bigint PRIMARY KEY, email text NOT NULL, visits int NOT NULL, updated_at timestamptz NOT NULL)`,
		`INSERT INTO %[1]s SELECT g, 'user' || lpad(g::text, 9, '0') || '@example-mail.com', g % 1000, now() FROM generate_series(1, $1::bigint) g`,
		`VACUUM ANALYZE %[1]s`,
		`CHECKPOINT`,
	} {
		var args []any
		if strings.Contains(sql, "$1") {
			args = append(args, rows)
		}
		if _, err := pool.Exec(ctx, strings.ReplaceAll(sql, "%[1]s", t), args...); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
	}
	return nil
}

// expand is the rename's expand phase: the new column and the sync trigger.
func expand(ctx context.Context, pool *pgxpool.Pool, table string, sync bool) error {
	s := phases.Sync{ID: table + "-email-rename", Table: phases.TableRef{Name: table}, Old: "email", New: "email_address"}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s ADD COLUMN email_address text`, pgx.Identifier{table}.Sanitize())); err != nil {
		return err
	}
	var install []phases.Statement
	if sync {
		install = s.Install()
	}
	for _, st := range install {
		if _, err := tx.Exec(ctx, st.SQL); err != nil {
			return fmt.Errorf("sync trigger: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	_, err = pool.Exec(ctx, `CHECKPOINT`)
	return err
}

// startRename registers the rename's backfill job of table as the rename
// compiles it: kept by the sync trigger (without one, as with -sync=false,
// the job ends with a verification pass).
func startRename(ctx context.Context, pool *pgxpool.Pool, table string) error {
	change := table + "-email-rename"
	kept := phases.Sync{ID: change, Table: phases.TableRef{Name: table}, Old: "email", New: "email_address"}.TriggerName()
	return backfill.Start(ctx, pool, state, change, phases.Backfill{Table: table, Column: "email_address", Expr: `"email"`, KeptBy: kept}, nil)
}

type result struct {
	start         time.Duration
	write, verify time.Duration
	batches       int
	maxSize       int
	heap          uint64
}

// total is the whole backfill: the write pass and the verification pass.
func (r result) total() time.Duration { return r.write + r.verify }

// timedBackfill starts and runs the rename's backfill on table, timing the
// write pass and the verification pass, and sampling the Go heap.
func timedBackfill(ctx context.Context, pool *pgxpool.Pool, table string, opts backfill.Options, measureHeap bool) (result, error) {
	var r result
	runtime.GC()
	var heap atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if !measureHeap {
			// Forced collections would add pauses to a workload measured
			// in this process.
			<-stop
			return
		}
		var ms runtime.MemStats
		for {
			// The live heap: collect first, so that garbage waiting for
			// the next GC cycle does not count.
			runtime.GC()
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > heap.Load() {
				heap.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	var mu sync.Mutex
	var verifyStart time.Time
	verbose := opts.OnBatch
	opts.OnBatch = func(b backfill.Batch) {
		if verbose != nil {
			verbose(b)
		}
		mu.Lock()
		defer mu.Unlock()
		if b.Verify && verifyStart.IsZero() {
			verifyStart = time.Now()
		}
		if !b.Verify && b.Err == nil {
			r.batches++
			r.maxSize = max(r.maxSize, b.Size)
		}
	}
	change := table + "-email-rename"
	t0 := time.Now()
	err := startRename(ctx, pool, table)
	r.start = time.Since(t0)
	if err == nil {
		var p backfill.Progress
		p, err = backfill.Run(ctx, pool, state, change, opts)
		if err == nil && !p.Verified {
			err = fmt.Errorf("not verified: %+v", p)
		}
	}
	end := time.Now()
	close(stop)
	wg.Wait()
	if err != nil {
		return r, err
	}
	if verifyStart.IsZero() {
		verifyStart = end
	}
	r.write, r.verify, r.heap = verifyStart.Sub(t0), end.Sub(verifyStart), heap.Load()
	return r, nil
}

type latencies struct {
	ops, errors int64
	p50, p99    time.Duration
	max         time.Duration
	byKind      [3]time.Duration // p99 of reads, writes of the column, writes of another column
}

func (l latencies) String() string {
	return fmt.Sprintf("%6d ops, p50 %7s, p99 %7s, max %7s, errors %d (p99 reads %s, column writes %s, other writes %s)", l.ops,
		l.p50.Round(time.Microsecond), l.p99.Round(time.Microsecond), l.max.Round(time.Microsecond), l.errors,
		l.byKind[0].Round(time.Microsecond), l.byKind[1].Round(time.Microsecond), l.byKind[2].Round(time.Microsecond))
}

var workloadRuns atomic.Uint64

// workload runs paced single-row reads and writes against table while
// during runs, and returns their latencies.
func workload(ctx context.Context, pool *pgxpool.Pool, c config, table string, during func(context.Context) error) (latencies, error) {
	n, err := count(ctx, pool, fmt.Sprintf(`SELECT max(id) FROM %s`, pgx.Identifier{table}.Sanitize()))
	if err != nil {
		return latencies{}, err
	}
	t := pgx.Identifier{table}.Sanitize()
	queries := [3]string{
		fmt.Sprintf(`SELECT id, email, visits FROM %s WHERE id = $1`, t),
		fmt.Sprintf(`UPDATE %s SET email = 'changed' || $1::bigint || '@example-mail.com', updated_at = now() WHERE id = $1`, t),
		fmt.Sprintf(`UPDATE %s SET visits = visits + 1, updated_at = now() WHERE id = $1`, t),
	}
	stop := make(chan struct{})
	var mu sync.Mutex
	var all [3][]time.Duration
	var errs atomic.Int64
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) * float64(c.clients) / float64(c.rate))
	// Each run draws other rows: replaying the ids of the baseline would
	// write only rows the sync trigger has already given their value,
	// which the backfill skips, and hide its row locks from the workload.
	run := workloadRuns.Add(1)
	for w := range c.clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), run))
			var mine [3][]time.Duration
			next := time.Now()
			for {
				next = next.Add(interval)
				select {
				case <-stop:
					mu.Lock()
					for k := range all {
						all[k] = append(all[k], mine[k]...)
					}
					mu.Unlock()
					return
				case <-time.After(time.Until(next)):
				}
				id := rng.Int64N(n) + 1
				kind := 0 // half reads, a quarter of each write
				if p := rng.IntN(4); p >= 2 {
					kind = p - 1
				}
				start := time.Now()
				var err error
				if kind == 0 {
					var e string
					var v, k int64
					err = pool.QueryRow(ctx, queries[kind], id).Scan(&k, &e, &v)
				} else {
					_, err = pool.Exec(ctx, queries[kind], id)
				}
				mine[kind] = append(mine[kind], time.Since(start))
				if err != nil {
					if errs.Add(1) <= 3 {
						fmt.Fprintln(os.Stderr, "workload error:", err)
					}
				}
			}
		})
	}
	err = during(ctx)
	close(stop)
	wg.Wait()
	if err != nil {
		return latencies{}, err
	}
	l := latencies{errors: errs.Load()}
	var merged []time.Duration
	for k := range all {
		slices.Sort(all[k])
		if len(all[k]) > 0 {
			l.byKind[k] = all[k][len(all[k])*99/100]
		}
		merged = append(merged, all[k]...)
	}
	slices.Sort(merged)
	l.ops = int64(len(merged))
	if len(merged) > 0 {
		l.p50 = merged[len(merged)/2]
		l.p99 = merged[len(merged)*99/100]
		l.max = merged[len(merged)-1]
	}
	return l, nil
}

func count(ctx context.Context, pool *pgxpool.Pool, sql string) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, sql).Scan(&n)
	return n, err
}

// explainBatch shows the plan of one batch UPDATE as the backfill runs it.
func explainBatch(ctx context.Context, pool *pgxpool.Pool, table string) error {
	return explain(ctx, pool, "a 50,000-row batch", fmt.Sprintf(`UPDATE %s SET email_address = CAST(("email") AS text)
WHERE (id) > ($1::text::bigint) AND (id) <= ($2::text::bigint) AND email_address IS DISTINCT FROM CAST(("email") AS text)`,
		pgx.Identifier{table}.Sanitize()), "0", "50000")
}

// explain prints EXPLAIN ANALYZE of sql, rolled back.
func explain(ctx context.Context, pool *pgxpool.Pool, what, sql string, args ...any) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, WAL) "+sql, args...)
	if err != nil {
		return err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	fmt.Printf("EXPLAIN of %s:\n", what)
	for _, l := range lines {
		fmt.Println("   ", l)
	}
	return nil
}

// part4 backfills -rows and -scale times as many rows, each on a fresh
// table, with `planner backfill run` (process.go): the planner's time
// should grow with the rows and its memory stay flat, since it never holds
// keys. The target is timed with autovacuum off
// for the tables: autovacuum wakes about once a minute, so it vacuums the
// table during a long backfill and seldom during a short one, and with it
// on the growth says more about when it woke than about the planner. With
// -autovacuum the pair runs again with it on, printed with the number of
// autovacuum runs each backfill saw.
func part4(ctx context.Context, bin, url string, c config, opts backfill.Options) error {
	type size struct {
		took        time.Duration
		rss, anon   uint64
		autovacuums int64
		update      time.Duration // the single UPDATE with the sync trigger, for reference
	}
	pair := func(autovacuum bool) ([2]size, error) {
		var out [2]size
		for i, rows := range []int{c.rows, c.rows * c.scale} {
			p, err := pgxpool.New(ctx, url+"&pool_max_conns="+fmt.Sprint(opts.MostWorkers()+2))
			if err != nil {
				return out, err
			}
			table := fmt.Sprintf("big%d", i)
			err = makeTable(ctx, p, table, rows)
			if err == nil && !autovacuum {
				_, err = p.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s SET (autovacuum_enabled = off)`, table))
			}
			if err == nil {
				err = expand(ctx, p, table, c.sync)
			}
			var run processRun
			if err == nil {
				run, err = processBackfill(ctx, p, bin, url, table, opts)
			}
			if err == nil {
				err = p.QueryRow(ctx, `SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = $1`, table).Scan(&out[i].autovacuums)
			}
			if err == nil {
				_, err = p.Exec(ctx, `DROP TABLE `+table)
			}
			if err == nil {
				err = backfill.Reset(ctx, p, state, table+"-email-rename")
			}
			if err == nil && !autovacuum {
				// How the server's own work grows with the table, apart from
				// the planner's.
				same := c
				same.rows = rows
				out[i].update, err = timedUpdate(ctx, p, same, c.sync, false)
			}
			p.Close()
			if err != nil {
				return out, err
			}
			printOutput(run.output)
			out[i].took, out[i].rss, out[i].anon = run.took, run.rss, run.anon
		}
		return out, nil
	}
	off, err := pair(false)
	if err != nil {
		return err
	}
	growth := off[1].took.Seconds() / off[0].took.Seconds()
	mem := float64(off[1].rss) / float64(off[0].rss)
	fmt.Printf("4. %d and %d rows, autovacuum off for the tables: planner backfill run, with verification, %s and %s (%.2f× the time for %d× the rows);\n   memory (the process's largest resident set) %s and %s (%.2f×; its anonymous part, without the binary's pages: %s and %s)\n",
		c.rows, c.rows*c.scale, off[0].took.Round(time.Millisecond), off[1].took.Round(time.Millisecond), growth, c.scale,
		mib(off[0].rss), mib(off[1].rss), mem, mib(off[0].anon), mib(off[1].anon))
	fmt.Printf("   for reference, the single UPDATE (sync trigger installed): %s and %s (%.2f×)\n",
		off[0].update.Round(time.Millisecond), off[1].update.Round(time.Millisecond), off[1].update.Seconds()/off[0].update.Seconds())
	if c.autovacuum {
		on, err := pair(true)
		if err != nil {
			return err
		}
		fmt.Printf("   autovacuum on: %s (autovacuum ran %d times during it) and %s (%d times): %.2f× the time\n",
			on[0].took.Round(time.Millisecond), on[0].autovacuums, on[1].took.Round(time.Millisecond), on[1].autovacuums,
			on[1].took.Seconds()/on[0].took.Seconds())
	}
	fmt.Println()
	report(fmt.Sprintf("backfill with verification at %d× the rows", c.scale), fmt.Sprintf("%.2f× the time", growth),
		fmt.Sprintf("≤ %.2f×", growthGoal*float64(c.scale)), growth <= growthGoal*float64(c.scale))
	report(fmt.Sprintf("planner memory (resident set) at %d× the rows", c.scale), fmt.Sprintf("%.2f× (%s → %s)", mem, mib(off[0].rss), mib(off[1].rss)),
		fmt.Sprintf("≤ %.2f× (flat)", memoryGoal), mem <= memoryGoal)
	return nil
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/planner"
)

// validateTarget is the wall time validate and a connected plan may take
// per change.
const validateTarget = time.Millisecond

// part5 times `validate` and a connected `plan` of many changes over many
// tables, against an offline plan of the same specs measured in the same
// run (the baseline: no database at all).
func part5(ctx context.Context, pool *pgxpool.Pool) error {
	fmt.Printf("5. validate and connected plan, target ≤ %s per change\n", validateTarget)
	allMet := true
	var worst time.Duration // per change, of validate and connected plan
	for _, sc := range []struct{ changes, tables int }{{1_000, 100}, {10_000, 100}, {10_000, 1_000}} {
		met, per, err := timedValidate(ctx, pool, sc.changes, sc.tables)
		if err != nil {
			return err
		}
		allMet = allMet && met
		worst = max(worst, per)
	}
	fmt.Printf("   validate ≤ %s/change: %s\n\n", validateTarget, metOrNot(allMet))
	report("validate and connected plan (up to 10,000 changes over 1,000 tables)", fmt.Sprintf("%.3f ms/change at worst", worst.Seconds()*1000),
		fmt.Sprintf("≤ %s/change", ms(validateTarget)), allMet)
	return nil
}

func metOrNot(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// timedValidate reports whether both met the target and the slower one's
// time per change.
func timedValidate(ctx context.Context, pool *pgxpool.Pool, changes, tables int) (bool, time.Duration, error) {
	var ddl strings.Builder
	for i := range tables {
		fmt.Fprintf(&ddl, `DROP TABLE IF EXISTS v%[1]d; CREATE TABLE v%[1]d (id bigserial PRIMARY KEY, a text, b int NOT NULL DEFAULT 0, c numeric(12,2), created timestamptz);
INSERT INTO v%[1]d (a, b) SELECT 'x' || g, g FROM generate_series(1, 20) g;
`, i)
	}
	if _, err := pool.Exec(ctx, ddl.String()); err != nil {
		return false, 0, err
	}
	defer func() {
		var drop strings.Builder
		for i := range tables {
			fmt.Fprintf(&drop, "DROP TABLE v%d;", i)
		}
		pool.Exec(context.WithoutCancel(ctx), drop.String())
	}()
	specs, err := validateSpecs(changes, tables)
	if err != nil {
		return false, 0, err
	}
	e := &planner.Engine{Pool: pool, Schema: state + "_validate"}
	start := time.Now()
	if _, err := planner.PlanOffline(specs, planner.DefaultVersion); err != nil {
		return false, 0, fmt.Errorf("offline plan: %w", err)
	}
	offline := time.Since(start)
	start = time.Now()
	results, err := e.Validate(ctx, specs)
	if err != nil {
		return false, 0, err
	}
	validate := time.Since(start)
	for _, v := range results {
		if !v.OK() {
			return false, 0, fmt.Errorf("validate refused a generated change: %s", v)
		}
	}
	version, err := planner.ServerVersion(ctx, pool)
	if err != nil {
		return false, 0, err
	}
	start = time.Now()
	if _, err := e.PlanLive(ctx, specs, version); err != nil {
		return false, 0, fmt.Errorf("connected plan: %w", err)
	}
	plan := time.Since(start)
	per := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(changes) }
	met := validate <= validateTarget*time.Duration(changes) && plan <= validateTarget*time.Duration(changes)
	fmt.Printf("   %6d changes over %4d tables: validate %s (%.3f ms/change, %.1f× offline plan %s), connected plan %s (%.3f ms/change, %.1f×): %s\n",
		changes, tables, validate.Round(time.Millisecond), per(validate), validate.Seconds()/offline.Seconds(), offline.Round(time.Millisecond),
		plan.Round(time.Millisecond), per(plan), plan.Seconds()/offline.Seconds(), metOrNot(met))
	return met, max(validate, plan) / time.Duration(changes), nil
}

// validateSpecs writes a spec file of n changes spread over the tables,
// of every kind that checks expressions or leans on the sequence model (a
// rename of a column an earlier change adds), and loads it.
func validateSpecs(n, tables int) ([]planner.Spec, error) {
	var b strings.Builder
	b.WriteString("changes:\n")
	for i := range n {
		t := fmt.Sprintf("v%d", (i/4)%tables) // a rename and the add it renames share a table
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "  - {id: c%d, kind: add_column, table: %s, column: col%d, type: int, backfill: \"b + %d\"}\n", i, t, i, i)
		case 1:
			fmt.Fprintf(&b, "  - {id: c%d, kind: add_check, table: %s, name: chk%d, check: \"b >= 0 OR a IS NULL\"}\n", i, t, i)
		case 2:
			fmt.Fprintf(&b, "  - {id: c%d, kind: add_index, table: %s, name: idx%d, columns: [a], where: \"b > %d\"}\n", i, t, i, i)
		case 3:
			fmt.Fprintf(&b, "  - {id: c%d, kind: rename_column, table: %s, column: col%d, to: col%d_r}\n", i, t, i-3, i-3)
		}
	}
	dir, err := os.MkdirTemp("", "planner-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "changes.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	return planner.Load(path)
}

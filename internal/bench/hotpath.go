package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/internal/flagbench"
)

const hotPathRounds = 5

// part7 times flag evaluation through the OpenFeature SDK client, the
// planner's provider against the SDK's in-memory provider serving the same
// flags (the benchmark of the flags package, run in this process).
func part7(ctx context.Context, pool *pgxpool.Pool, url string) error {
	fmt.Printf("7. flag evaluation through the SDK client, the flags of one rename, fastest of %d alternate runs,\n   target ≤ %.1f× memprovider in time and allocations:\n", hotPathRounds, hotPathGoal)
	p, err := flagbench.Start(ctx, pool, url, state+"_flagbench")
	if err != nil {
		return err
	}
	defer p.Close()
	per := func(r testing.BenchmarkResult) string {
		return fmt.Sprintf("%6.0f ns, %5d B, %3d allocations", flagbench.NsPerOp(r), r.AllocedBytesPerOp(), r.AllocsPerOp())
	}
	for _, row := range p.Benchmark(hotPathRounds) {
		mine, theirs := row.Planner, row.Memory
		timeRatio := flagbench.NsPerOp(mine) / flagbench.NsPerOp(theirs)
		allocRatio := float64(mine.AllocsPerOp()) / float64(theirs.AllocsPerOp())
		fmt.Printf("   %-8s planner %s; memprovider %s: %.2f× the time, %.2f× the allocations\n", row.Op+":", per(mine), per(theirs), timeRatio, allocRatio)
		report("flag evaluation ("+row.Op+")", fmt.Sprintf("%.2f× memprovider's time, %.2f× its allocations", timeRatio, allocRatio),
			fmt.Sprintf("≤ %.1f× both", hotPathGoal), timeRatio <= hotPathGoal && allocRatio <= hotPathGoal)
	}
	fmt.Println()
	return nil
}

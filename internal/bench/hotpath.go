package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/internal/flagbench"
)

const hotPathRounds = 100

// part7 times flag evaluation through the OpenFeature SDK client, the
// planner's provider against the SDK's in-memory provider serving the same
// flags (the benchmark of the flags package, run in this process). It also
// times memprovider serving the planner's metadata: the SDK copies a
// resolution's metadata on every evaluation, which memprovider alone never
// pays, so that line shows how much of the gap is the SDK's copy.
func part7(ctx context.Context, pool *pgxpool.Pool, url string) error {
	fmt.Printf("7. flag evaluation through the SDK client, the flags of one rename: CPU time, fastest of %d alternate\n   runs of %s (time ratios: median of the runs' ratios), target ≤ %.1f× memprovider in time and allocations:\n", hotPathRounds, flagbench.Slice, hotPathGoal)
	p, err := flagbench.Start(ctx, pool, url, state+"_flagbench")
	if err != nil {
		return err
	}
	defer p.Close()
	per := func(r testing.BenchmarkResult) string {
		return fmt.Sprintf("%6.0f ns, %5d B, %3d allocations", flagbench.NsPerOp(r), r.AllocedBytesPerOp(), r.AllocsPerOp())
	}
	allocs := func(a, b testing.BenchmarkResult) float64 {
		return float64(a.AllocsPerOp()) / float64(b.AllocsPerOp())
	}
	for _, row := range p.Benchmark(hotPathRounds) {
		timeRatio, allocRatio := row.TimeRatio, allocs(row.Planner, row.Memory)
		metaTime, metaAllocs := row.MetadataTimeRatio, allocs(row.Planner, row.MemoryMetadata)
		fmt.Printf("   %-8s planner              %s\n", row.Op+":", per(row.Planner))
		fmt.Printf("   %-8s memprovider          %s: planner %.2f× the time, %.2f× the allocations\n", "", per(row.Memory), timeRatio, allocRatio)
		fmt.Printf("   %-8s memprovider+metadata %s: planner %.2f× the time, %.2f× the allocations\n", "", per(row.MemoryMetadata), metaTime, metaAllocs)
		report("flag evaluation ("+row.Op+")", fmt.Sprintf("%.2f× memprovider's time, %.2f× its allocations", timeRatio, allocRatio),
			fmt.Sprintf("≤ %.1f× both", hotPathGoal), timeRatio <= hotPathGoal && allocRatio <= hotPathGoal)
	}
	fmt.Println()
	return nil
}

package main

import (
	"fmt"
	"time"
)

// target is one goal of the bench and what this run measured for it.
type target struct {
	name, figure, goal string
	met                bool
}

// targets collects the goals the measurements report, in the order they
// ran; printTargets prints them last so that a regression shows at a glance.
var targets []target

func report(name, figure, goal string, met bool) {
	targets = append(targets, target{name, figure, goal, met})
}

func printTargets() {
	if len(targets) == 0 {
		return
	}
	fmt.Println("\nsummary:")
	for _, t := range targets {
		verdict := "met"
		if !t.met {
			verdict = "not met"
		}
		fmt.Printf("target: %s %s vs %s — %s\n", t.name, t.figure, t.goal, verdict)
	}
}

// ms prints a duration in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", d.Seconds()*1000) }

// The goals, as ratios against a baseline measured in the same run.
const (
	// the whole backfill, verification included, against one UPDATE of
	// the same rows: with the default settings, and with 2 or more workers
	backfillGoal, parallelGoal = 1.3, 0.7
	// the application's p99 during the default backfill against its
	// baseline, and its slowest operation
	p99Goal        = 2.0
	maxLatencyGoal = 50 * time.Millisecond
	// at -scale times the rows: the backfill's time per row (5M rows
	// ≤ 5.3× the time of 1M) and the planner's heap against 1×
	growthGoal, memoryGoal = 1.06, 1.15
	// flag evaluation against the SDK's in-memory provider
	hotPathGoal = 1.2
)

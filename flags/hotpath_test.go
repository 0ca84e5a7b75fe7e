package flags_test

import (
	"context"
	"testing"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/flagbench"
	"github.com/pgplanner/planner/internal/pgtest"
)

// hotPathLimit is how much more the provider may cost per evaluation than
// the SDK's in-memory provider serving the same flags.
const hotPathLimit = 1.2

func startPair(tb testing.TB) *flagbench.Pair {
	tb.Helper()
	db := pgtest.NewDB(tb)
	p, err := flagbench.Start(context.Background(), db.Pool, db.URL, "planner")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	return p
}

// BenchmarkEvaluation times the provider and memprovider side by side
// through the SDK client, and memprovider serving the planner's metadata
// (make bench prints the ratios).
func BenchmarkEvaluation(b *testing.B) {
	p := startPair(b)
	for _, op := range flagbench.Ops {
		b.Run(op.Name+"/planner", flagbench.Body(op, p.Planner))
		b.Run(op.Name+"/memprovider", flagbench.Body(op, p.Memory))
		b.Run(op.Name+"/memprovider+metadata", flagbench.Body(op, p.MemoryMetadata))
	}
}

// Allocations are deterministic, so they make a fair pass/fail test (time
// is left to the benchmark). Through the SDK the provider may cost no more
// than memprovider serving the same metadata.
func TestEvaluationAllocations(t *testing.T) {
	p := startPair(t)
	for _, op := range flagbench.Ops {
		mine, theirs := flagbench.Allocs(op, p.Planner, 200), flagbench.Allocs(op, p.Memory, 200)
		withMetadata := flagbench.Allocs(op, p.MemoryMetadata, 200)
		t.Logf("%s: %.0f allocations per evaluation, memprovider %.0f, with the same metadata %.0f", op.Name, mine, theirs, withMetadata)
		if mine > hotPathLimit*theirs {
			t.Errorf("%s: %.0f allocations per evaluation, more than %.1f× memprovider's %.0f", op.Name, mine, hotPathLimit, theirs)
		}
		if mine > withMetadata {
			t.Errorf("%s: %.0f allocations per evaluation, more than memprovider serving the same metadata (%.0f)", op.Name, mine, withMetadata)
		}
	}
}

// The provider itself allocates nothing on a hit: all an evaluation through
// the SDK allocates is the SDK's own work.
func TestProviderEvaluationAllocatesNothing(t *testing.T) {
	p := startPair(t)
	ctx := context.Background()
	provider := p.Provider()
	read, readNew := flags.ReadKey(flagbench.ChangeID), flagbench.ChangeID+flags.ReadNewSuffix
	if d := provider.StringEvaluation(ctx, read, flags.Old, nil); d.Value != flags.New || d.Error() != nil || len(d.FlagMetadata) == 0 {
		t.Fatalf("%s: %+v", read, d)
	}
	if d := provider.BooleanEvaluation(ctx, readNew, false, nil); !d.Value || d.Error() != nil || len(d.FlagMetadata) == 0 {
		t.Fatalf("%s: %+v", readNew, d)
	}
	if n := testing.AllocsPerRun(200, func() { provider.StringEvaluation(ctx, read, flags.Old, nil) }); n != 0 {
		t.Errorf("StringEvaluation: %.0f allocations, want none", n)
	}
	if n := testing.AllocsPerRun(200, func() { provider.BooleanEvaluation(ctx, readNew, false, nil) }); n != 0 {
		t.Errorf("BooleanEvaluation: %.0f allocations, want none", n)
	}
}

// The provider builds each flag's metadata once per snapshot; what a caller
// does with the metadata it got must not change the next evaluation.
func TestEvaluationMetadataIsTheCallers(t *testing.T) {
	p := startPair(t)
	ctx := context.Background()
	for range 2 {
		d, err := p.Planner.StringValueDetails(ctx, flags.ReadKey(flagbench.ChangeID), flags.Old, openfeature.EvaluationContext{})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := d.FlagMetadata.GetString("old_column"); got != flagbench.OldColumn {
			t.Fatalf("metadata old_column = %q, want %q", got, flagbench.OldColumn)
		}
		d.FlagMetadata["old_column"] = "changed by the caller"
		delete(d.FlagMetadata, "table")
	}
}

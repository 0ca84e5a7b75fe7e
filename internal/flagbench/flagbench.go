// Package flagbench measures flag evaluation on the application's hot path:
// the planner's provider against the OpenFeature SDK's own in-memory
// provider serving the same flags, both through an SDK client. The flags
// package's benchmark and test and make bench share it.
package flagbench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/memprovider"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/phases"
)

// The flags of one rename change in its dual-write phase.
const (
	ChangeID  = "users-email"
	OldColumn = "email"
	NewColumn = "email_address"
)

var (
	values   = phases.Flags{flags.ReadKey(ChangeID): flags.New, flags.WriteKey(ChangeID): flags.Both}
	metadata = map[string]string{"table": "public.users", "old_column": OldColumn, "new_column": NewColumn}
	readKey  = flags.ReadKey(ChangeID)
	boolKey  = ChangeID + flags.ReadNewSuffix
)

// Pair is two SDK clients serving the same flags: Planner through the
// planner's provider, Memory through memprovider.
type Pair struct {
	Planner, Memory *openfeature.Client
	provider        *flags.Provider
	domains         [2]string
}

// Start publishes the flags in schema (through pool), starts the planner's
// provider on url and an in-memory provider with the same flags, and checks
// that both serve them.
func Start(ctx context.Context, pool *pgxpool.Pool, url, schema string) (*Pair, error) {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := flags.Migrate(ctx, tx, schema); err != nil {
			return err
		}
		return flags.Publish(ctx, tx, schema, ChangeID, "dual_write", values, metadata)
	})
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	p := &Pair{
		provider: flags.NewProvider(url, flags.WithSchema(schema), flags.WithLogger(quiet)),
		domains:  [2]string{"flagbench-planner-" + schema, "flagbench-memory-" + schema},
	}
	if err := openfeature.SetNamedProviderWithContextAndWait(ctx, p.domains[0], p.provider); err != nil {
		p.provider.Shutdown()
		return nil, err
	}
	if err := openfeature.SetNamedProviderWithContextAndWait(ctx, p.domains[1], memprovider.NewInMemoryProvider(memoryFlags())); err != nil {
		p.Close()
		return nil, err
	}
	p.Planner, p.Memory = openfeature.NewClient(p.domains[0]), openfeature.NewClient(p.domains[1])
	for _, c := range []*openfeature.Client{p.Planner, p.Memory} {
		if err := serves(ctx, c); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// memoryFlags are the published flags and their boolean views as
// memprovider flags.
func memoryFlags() map[string]memprovider.InMemoryFlag {
	m := map[string]memprovider.InMemoryFlag{}
	for key, variant := range values {
		variants := map[string]any{}
		for _, v := range flags.Variants(key) {
			variants[v] = v
		}
		m[key] = memprovider.InMemoryFlag{Key: key, State: memprovider.Enabled, DefaultVariant: variant, Variants: variants}
	}
	m[boolKey] = memprovider.InMemoryFlag{Key: boolKey, State: memprovider.Enabled, DefaultVariant: flags.On,
		Variants: map[string]any{flags.On: true, flags.Off: false}}
	return m
}

// serves checks that c answers the published values, so that no
// measurement times an error path.
func serves(ctx context.Context, c *openfeature.Client) error {
	ec := openfeature.EvaluationContext{}
	s, err := c.StringValueDetails(ctx, readKey, flags.Old, ec)
	if err != nil || s.Value != flags.New || s.Reason != openfeature.StaticReason {
		return fmt.Errorf("flagbench: %s: %s = %+v (%v), want %s", c.Metadata().Domain(), readKey, s, err, flags.New)
	}
	b, err := c.BooleanValueDetails(ctx, boolKey, false, ec)
	if err != nil || !b.Value || b.Reason != openfeature.StaticReason {
		return fmt.Errorf("flagbench: %s: %s = %+v (%v), want true", c.Metadata().Domain(), boolKey, b, err)
	}
	return nil
}

// Close unregisters both providers and stops the planner's.
func (p *Pair) Close() {
	for _, d := range p.domains {
		_ = openfeature.SetNamedProviderAndWait(d, openfeature.NoopProvider{})
	}
	p.provider.Shutdown()
}

// Op is one measured operation on a client.
type Op struct {
	Name string
	Run  func(*openfeature.Client)
}

// Ops are the measured operations: one string evaluation, one boolean
// evaluation, and flags.Columns (two string evaluations and the column
// choice).
var Ops = []Op{
	{"string", func(c *openfeature.Client) {
		c.String(context.Background(), readKey, flags.Old, openfeature.EvaluationContext{})
	}},
	{"boolean", func(c *openfeature.Client) {
		c.Boolean(context.Background(), boolKey, false, openfeature.EvaluationContext{})
	}},
	{"columns", func(c *openfeature.Client) {
		flags.Columns(context.Background(), c, ChangeID, OldColumn, NewColumn)
	}},
}

// Body is a benchmark of op on c.
func Body(op Op, c *openfeature.Client) func(*testing.B) {
	return func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			op.Run(c)
		}
	}
}

// Row is one operation measured on both clients.
type Row struct {
	Op              string
	Planner, Memory testing.BenchmarkResult
}

// Benchmark measures every operation on both clients, alternately, rounds
// times, and keeps each side's fastest run: load from elsewhere on a shared
// machine only ever adds time, so the fastest run is the closest to the
// cost itself, and alternating lets both sides have the quiet moments.
func (p *Pair) Benchmark(rounds int) []Row {
	var rows []Row
	for _, op := range Ops {
		var mine, theirs []testing.BenchmarkResult
		for range max(rounds, 1) {
			mine = append(mine, testing.Benchmark(Body(op, p.Planner)))
			theirs = append(theirs, testing.Benchmark(Body(op, p.Memory)))
		}
		rows = append(rows, Row{Op: op.Name, Planner: fastest(mine), Memory: fastest(theirs)})
	}
	return rows
}

// NsPerOp is r's time per operation, unrounded.
func NsPerOp(r testing.BenchmarkResult) float64 {
	return float64(r.T.Nanoseconds()) / float64(max(r.N, 1))
}

func fastest(rs []testing.BenchmarkResult) testing.BenchmarkResult {
	return slices.MinFunc(rs, func(a, b testing.BenchmarkResult) int { return cmp.Compare(NsPerOp(a), NsPerOp(b)) })
}

// Allocs is the average number of allocations of op on c over runs runs.
func Allocs(op Op, c *openfeature.Client, runs int) float64 {
	return testing.AllocsPerRun(runs, func() { op.Run(c) })
}

// Package flagbench measures flag evaluation on the application's hot path:
// the planner's provider against the OpenFeature SDK's own in-memory
// provider serving the same flags, both through an SDK client. The flags
// package's benchmark and test and make bench share it.
//
// memprovider serves no metadata, and the SDK copies a resolution's
// metadata for the caller on every evaluation (two allocations, about
// 300 bytes for the planner's flags), so a third client serves memprovider's
// flags with the planner's metadata attached: the floor of any provider that
// returns metadata.
package flagbench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

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

// Pair is SDK clients serving the same flags: Planner through the
// planner's provider, Memory through memprovider, MemoryMetadata through
// memprovider with the metadata the planner's provider serves.
type Pair struct {
	Planner, Memory, MemoryMetadata *openfeature.Client
	provider                        *flags.Provider
	domains                         [3]string
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
		domains: [3]string{"flagbench-planner-" + schema, "flagbench-memory-" + schema,
			"flagbench-memory-metadata-" + schema},
	}
	if err := openfeature.SetNamedProviderWithContextAndWait(ctx, p.domains[0], p.provider); err != nil {
		p.provider.Shutdown()
		return nil, err
	}
	p.Planner = openfeature.NewClient(p.domains[0])
	fail := func(err error) (*Pair, error) {
		p.Close()
		return nil, err
	}
	if err := serves(ctx, p.Planner); err != nil {
		return fail(err)
	}
	served, err := plannerMetadata(ctx, p.Planner)
	if err != nil {
		return fail(err)
	}
	memories := []*openfeature.Client{}
	for i, meta := range []map[string]openfeature.FlagMetadata{nil, served} {
		domain := p.domains[1+i]
		if err := openfeature.SetNamedProviderWithContextAndWait(ctx, domain, memprovider.NewInMemoryProvider(memoryFlags(meta))); err != nil {
			return fail(err)
		}
		c := openfeature.NewClient(domain)
		if err := serves(ctx, c); err != nil {
			return fail(err)
		}
		memories = append(memories, c)
	}
	p.Memory, p.MemoryMetadata = memories[0], memories[1]
	return p, nil
}

// plannerMetadata is the metadata the planner's provider serves for each
// measured key.
func plannerMetadata(ctx context.Context, c *openfeature.Client) (map[string]openfeature.FlagMetadata, error) {
	ec := openfeature.EvaluationContext{}
	out := map[string]openfeature.FlagMetadata{}
	for key := range values {
		d, err := c.StringValueDetails(ctx, key, flags.Old, ec)
		if err != nil || len(d.FlagMetadata) == 0 {
			return nil, fmt.Errorf("flagbench: %s: no metadata (%v)", key, err)
		}
		out[key] = d.FlagMetadata
	}
	d, err := c.BooleanValueDetails(ctx, boolKey, false, ec)
	if err != nil || len(d.FlagMetadata) == 0 {
		return nil, fmt.Errorf("flagbench: %s: no metadata (%v)", boolKey, err)
	}
	out[boolKey] = d.FlagMetadata
	return out, nil
}

// memoryFlags are the published flags and their boolean views as
// memprovider flags; with meta, each resolves (through memprovider's
// context evaluator) to its default variant with meta[key] attached.
func memoryFlags(meta map[string]openfeature.FlagMetadata) map[string]memprovider.InMemoryFlag {
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
	if meta != nil {
		for key, f := range m {
			f.ContextEvaluator = withMetadata(meta[key])
			m[key] = f
		}
	}
	return m
}

// withMetadata resolves a memprovider flag as memprovider does without a
// context evaluator, with meta attached.
func withMetadata(meta openfeature.FlagMetadata) memprovider.ContextEvaluator {
	eval := func(f memprovider.InMemoryFlag, _ openfeature.FlattenedContext) (any, openfeature.ProviderResolutionDetail) {
		return f.Variants[f.DefaultVariant], openfeature.ProviderResolutionDetail{
			Reason: openfeature.StaticReason, Variant: f.DefaultVariant, FlagMetadata: meta}
	}
	return &eval
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

// Provider is the planner's provider behind Planner.
func (p *Pair) Provider() *flags.Provider { return p.provider }

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

// Row is one operation measured on the three clients: each client's
// fastest run, and the planner's time against each memprovider client as
// the median of the ratios of runs made one after the other (a burst of
// load from elsewhere then weighs on both sides of a ratio, and the median
// ignores the rounds it hit one side of). Times are the process's CPU time
// (garbage collection included), not wall time: on a shared machine the
// time the process waits for a core says nothing about what it costs.
type Row struct {
	Op                              string
	Planner, Memory, MemoryMetadata testing.BenchmarkResult
	TimeRatio, MetadataTimeRatio    float64
}

// Slice is how long one timed run of Benchmark lasts: short, so that on a
// shared machine many runs fall in its quiet moments, and long enough to
// hold several garbage collections.
const Slice = 20 * time.Millisecond

// Benchmark measures every operation on the three clients, one after the
// other, rounds times, with runs of about Slice each.
func (p *Pair) Benchmark(rounds int) []Row {
	var rows []Row
	clients := []*openfeature.Client{p.Planner, p.Memory, p.MemoryMetadata}
	for _, op := range Ops {
		var runs [3][]testing.BenchmarkResult
		var ratios, metadataRatios []float64
		var n [3]int
		for i, c := range clients {
			n[i] = opsPerSlice(op, c)
		}
		for range max(rounds, 1) {
			var round [3]testing.BenchmarkResult
			for i, c := range clients {
				round[i] = timed(op, c, n[i])
				runs[i] = append(runs[i], round[i])
			}
			ratios = append(ratios, NsPerOp(round[0])/NsPerOp(round[1]))
			metadataRatios = append(metadataRatios, NsPerOp(round[0])/NsPerOp(round[2]))
		}
		rows = append(rows, Row{Op: op.Name, Planner: fastest(runs[0]), Memory: fastest(runs[1]), MemoryMetadata: fastest(runs[2]),
			TimeRatio: median(ratios), MetadataTimeRatio: median(metadataRatios)})
	}
	return rows
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// opsPerSlice is how many runs of op on c take about Slice.
func opsPerSlice(op Op, c *openfeature.Client) int {
	const probe = 2000
	r := timed(op, c, probe)
	return max(probe, int(float64(Slice)/max(NsPerOp(r), 1)))
}

// timed runs op on c n times; the result's T is the CPU time it took.
func timed(op Op, c *openfeature.Client, n int) testing.BenchmarkResult {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := cpuTime()
	for range n {
		op.Run(c)
	}
	took := cpuTime() - start
	runtime.ReadMemStats(&after)
	return testing.BenchmarkResult{N: n, T: took, MemAllocs: after.Mallocs - before.Mallocs, MemBytes: after.TotalAlloc - before.TotalAlloc}
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

// cpuTime is the CPU time the process has used, on every thread.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Command demo shows a zero-downtime rename under traffic: it starts a
// throwaway PostgreSQL, fills users with 100,000 rows, starts an application
// fleet (old instances that know only users.email, new ones that follow the
// planner's flags), and advances plans/01_rename_users_email.yaml one
// `planner next` per deploy, through the real CLI, printing each phase's
// statements and locks, the backfill, the flags the application sees and
// the application's errors and longest stall. It ends with a verdict:
// every row checked against the last value the fleet wrote to it.
//
// Run it with `make demo` (go run ./internal/demo). It exits non-zero if a
// request failed or a write was lost, and removes the cluster however it ends.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/clock"
	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/internal/workload"
	"github.com/pgplanner/planner/phases"
	"github.com/pgplanner/planner/planner"
)

const (
	specPath    = "plans/01_rename_users_email.yaml"
	changeID    = "users-email-rename"
	stateSchema = "planner"
)

// options size the demo; main uses the full size, the test a small one.
type options struct {
	rows int
	// dwell is how long the fleet runs on each deploy's flags.
	dwell time.Duration
	out   io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, options{rows: 100_000, dwell: 1500 * time.Millisecond, out: os.Stdout})
	interrupted := ctx.Err() != nil // before stop, which cancels ctx too
	stop()
	switch {
	case err != nil && interrupted:
		fmt.Fprintln(os.Stderr, "\ndemo interrupted; the throwaway PostgreSQL was stopped and removed")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
}

// errVerdict marks a run that completed but found failed requests or lost writes.
var errVerdict = errors.New("the application saw failures or lost writes")

func run(ctx context.Context, o options) error {
	w := o.out
	began := time.Now()
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "planner-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	step(w, "Building the planner CLI (go build ./cmd/planner)")
	bin := filepath.Join(tmp, "planner")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/planner")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}

	step(w, "Starting a throwaway PostgreSQL")
	cluster, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	url := cluster.URL("postgres")
	fmt.Fprintf(w, "   PostgreSQL %d, data in %s (removed at exit)\n", cluster.Version, cluster.Dir)

	pool, err := newPool(ctx, url, "demo", 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	step(w, fmt.Sprintf("Creating users with %d rows", o.rows))
	if err := createUsers(ctx, pool, o.rows); err != nil {
		return err
	}

	specs, err := planner.Load(filepath.Join(root, specPath))
	if err != nil {
		return err
	}
	plan, err := compile(ctx, pool, specs)
	if err != nil {
		return err
	}

	step(w, "Starting the application fleet: old instances use email only, new ones ask the flags")
	client, closeFlags, err := flagsClient(url)
	if err != nil {
		return err
	}
	defer closeFlags()
	fleetPool, err := newPool(ctx, url, "app", 8)
	if err != nil {
		return err
	}
	defer fleetPool.Close()
	fleet, err := workload.Start(ctx, workload.Config{
		Pool: fleetPool, Table: "users", Old: "email", New: "email_address", Kind: workload.Synced,
		Chooser:  workload.FlagsChooser{Client: client, ChangeID: changeID, Old: "email", New: "email_address"},
		OldShare: 0.5, Workers: 4, Rate: 200, Seed: uint64(time.Now().UnixNano()),
		Value: func(r *rand.Rand) string { return fmt.Sprintf("user-%x@example.com", r.Uint32()) },
	})
	if err != nil {
		return err
	}
	defer fleet.Stop()
	fmt.Fprintf(w, "   4 workers, 200 requests/s (inserts, updates, deletes, reads), half served by old instances\n")
	clock.Sleep(ctx, o.dwell)

	eng := &planner.Engine{Pool: pool, Schema: stateSchema}
	for deploy := 1; ; deploy++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if deploy > 12 {
			return errors.New("the change did not finish in 12 deploys")
		}
		st, err := status(ctx, eng, specs)
		if err != nil {
			return err
		}
		if st.Status == planner.StatusDone {
			break
		}
		step(w, fmt.Sprintf("Deploy %d: planner next", deploy))
		if st.Applied < len(plan.Phases) {
			describe(w, st.Applied, plan)
		}
		id := fmt.Sprintf("demo-%d", deploy)
		fmt.Fprintf(w, "   $ planner next --dir %s --deploy-id %s --purge-after 0\n", specPath, id)
		code, err := next(ctx, w, bin, root, url, id)
		if err != nil {
			return err
		}
		if code != 0 && code != 3 {
			return fmt.Errorf("planner next exited %d", code)
		}
		if err := showBackfill(ctx, w, pool); err != nil {
			return err
		}
		// The application rollout that follows the migration step.
		choice, err := fleet.Deploy(ctx, pool, stateSchema, changeID, 10*time.Second)
		if err != nil {
			return err
		}
		cols := flags.Columns(ctx, client, changeID, "email", "email_address")
		fmt.Fprintf(w, "   flags the application sees: read=%s write=%s (reads %s, writes %s)\n",
			choice.Read, choice.Write, cols.Read, strings.Join(cols.Write, " and "))
		if fleet.Retired() {
			fmt.Fprintf(w, "   rollout: write=new is live, every instance now runs the new code (no one touches email any more)\n")
		} else {
			fmt.Fprintf(w, "   rollout: old and new instances both serving\n")
		}
		clock.Sleep(ctx, o.dwell)
		s := fleet.Stats()
		fmt.Fprintf(w, "   application so far: %d requests (%d old, %d new), %d failed, %d wrong reads, longest stall %s\n",
			s.Ops, s.OldOps, s.NewOps, s.Failed, s.ReadMismatches, s.LongestStall.Round(time.Millisecond))
	}

	step(w, "Status")
	out, _ := exec.CommandContext(ctx, bin, "status", "--dir", specPath, "--database-url", url).CombinedOutput()
	fmt.Fprint(w, indent(string(out)))

	step(w, "Verdict")
	report := fleet.Stop()
	v, err := fleet.Verify(ctx)
	if err != nil {
		return err
	}
	fmt.Fprint(w, indent(report.String()+"\n"))
	fmt.Fprintf(w, "   rows checked: %d (column %s)\n", v.RowsChecked, strings.Join(v.Columns, ", "))
	fmt.Fprintf(w, "   writes lost: %d\n", v.Lost()+v.Unexpected)
	fmt.Fprintf(w, "   failed operations: %d\n", report.Failed)
	fmt.Fprintf(w, "   wrong reads: %d\n", report.ReadMismatches)
	fmt.Fprintf(w, "   longest stall: %s\n", report.LongestStall.Round(time.Millisecond))
	fmt.Fprintf(w, "   demo took %s\n", time.Since(began).Round(time.Second))
	if !v.OK() || report.Failed != 0 || report.ReadMismatches != 0 || report.Unknown != 0 {
		fmt.Fprint(w, indent(v.String()+"\n"))
		fmt.Fprintln(w, "\n   FAIL")
		return errVerdict
	}
	fmt.Fprintln(w, "\n   PASS: zero downtime, zero lost writes")
	return nil
}

func step(w io.Writer, s string) { fmt.Fprintf(w, "\n== %s\n", s) }

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "   " + strings.ReplaceAll(s, "\n", "\n   ") + "\n"
}

// moduleRoot is the repository's root, where plans/ and cmd/ live.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the demo from the repository (make demo)")
	}
	return filepath.Dir(mod), nil
}

func newPool(ctx context.Context, url, name string, conns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = conns
	cfg.ConnConfig.RuntimeParams["application_name"] = name
	return pgxpool.NewWithConfig(ctx, cfg)
}

func createUsers(ctx context.Context, pool *pgxpool.Pool, rows int) error {
	for _, sql := range []string{
		`CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, name text, created_at timestamptz DEFAULT now())`,
		fmt.Sprintf(`INSERT INTO users (email, name) SELECT 'user' || g || '@example.com', 'User ' || g FROM generate_series(1, %d) g`, rows),
		`ANALYZE users`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

// compile produces the phases the engine will run, for printing.
func compile(ctx context.Context, pool *pgxpool.Pool, specs []planner.Spec) (planner.Plan, error) {
	if len(specs) != 1 {
		return planner.Plan{}, fmt.Errorf("%s: want one change, found %d", specPath, len(specs))
	}
	version, err := planner.ServerVersion(ctx, pool)
	if err != nil {
		return planner.Plan{}, err
	}
	table, err := planner.LoadTable(ctx, pool, specs[0].Change.Table())
	if err != nil {
		return planner.Plan{}, err
	}
	return planner.Compile(specs[0], planner.Target{Version: version, Table: table})
}

// describe prints the phase about to run: its statements and their locks.
func describe(w io.Writer, i int, plan planner.Plan) {
	p := plan.Phases[i]
	fmt.Fprintf(w, "   phase %d/%d %s: %s\n", i+1, len(plan.Phases), p.Name, p.Purpose)
	if p.Gate != phases.NoGate {
		fmt.Fprintf(w, "   gate: %s\n", p.Gate.Describe())
	}
	for _, s := range p.Statements {
		lock := "no table lock"
		if s.Lock != phases.NoLock {
			lock = fmt.Sprintf("%s (blocks %s", s.Lock, s.Lock.Blocks())
			if s.Held != "" {
				lock += "; held " + s.Held
			}
			lock += ")"
		}
		fmt.Fprintf(w, "     %-60s  %s\n", firstLine(s.SQL, 60), lock)
	}
	if p.Backfill != nil {
		fmt.Fprintf(w, "     backfill: %s = %s in keyset batches (row locks only)\n", p.Backfill.Column, p.Backfill.Expr)
	}
	if len(p.Statements) == 0 && p.Backfill == nil {
		fmt.Fprintf(w, "     no SQL: only the flags change\n")
	}
}

func firstLine(sql string, n int) string {
	s := strings.Join(strings.Fields(sql), " ")
	if len(s) > n {
		s = s[:n-1] + "…"
	}
	return s
}

// next runs the real CLI for one deploy and shows its output.
func next(ctx context.Context, w io.Writer, bin, root, url, deployID string) (int, error) {
	// Streamed as it comes, so the backfill's progress lines show live.
	out := &indenter{w: w, prefix: "   | "}
	// --purge-after 0: the demo's deploys are seconds apart, not days.
	cmd := exec.CommandContext(ctx, bin, "next", "--dir", specPath, "--deploy-id", deployID, "--database-url", url, "--purge-after", "0")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	out.flush()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exit) && ctx.Err() == nil:
		return exit.ExitCode(), nil
	}
	return 0, fmt.Errorf("planner next: %w", err)
}

func status(ctx context.Context, eng *planner.Engine, specs []planner.Spec) (planner.ChangeStatus, error) {
	all, err := eng.Status(ctx, specs)
	if err != nil {
		return planner.ChangeStatus{}, err
	}
	for _, s := range all {
		if s.ID == changeID {
			return s, nil
		}
	}
	return planner.ChangeStatus{}, fmt.Errorf("change %s missing from status", changeID)
}

func showBackfill(ctx context.Context, w io.Writer, pool *pgxpool.Pool) error {
	p, err := backfill.Get(ctx, pool, stateSchema, changeID)
	if errors.Is(err, backfill.ErrNoJob) {
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "   backfill: %d of %d rows (%d updated), verified: %v (%d rows checked, %d fixed)\n",
		p.Rows, max(p.Total, p.Rows), p.Updated, p.Verified, p.VerifiedRows, p.Fixed)
	return nil
}

// flagsClient registers the planner's OpenFeature provider, as application
// code would at startup.
func flagsClient(url string) (*openfeature.Client, func(), error) {
	const domain = "demo-app"
	p := flags.NewProvider(url)
	if err := openfeature.SetNamedProviderAndWait(domain, p); err != nil {
		return nil, nil, err
	}
	return openfeature.NewClient(domain), func() {
		_ = openfeature.SetNamedProviderAndWait(domain, openfeature.NoopProvider{})
		p.Shutdown()
	}, nil
}

// indenter writes whole lines with a prefix.
type indenter struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  string
	partial []byte
}

func (d *indenter) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.partial = append(d.partial, p...)
	for {
		i := bytes.IndexByte(d.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		fmt.Fprintf(d.w, "%s%s\n", d.prefix, d.partial[:i])
		d.partial = d.partial[i+1:]
	}
}

func (d *indenter) flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.partial) > 0 {
		fmt.Fprintf(d.w, "%s%s\n", d.prefix, d.partial)
		d.partial = nil
	}
}

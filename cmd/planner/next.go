package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/planner"
)

func init() { commands = append(commands, nextCmd) }

// engineOptions are the flags of the commands that run phases.
type engineOptions struct {
	lockTimeout, statementTimeout, longStatementTimeout time.Duration
	retries                                             int
	wait, leaseTTL                                      time.Duration
	minSoak, fleetExpiry, purgeAfter                    time.Duration
	async, gateStatements                               bool
	// backfill tunes inline backfills (next only: hasBackfill).
	backfill    backfill.Options
	hasBackfill bool
	log         logFormat
}

func (o *engineOptions) register(cmd *cobra.Command) {
	o.registerTimeouts(cmd)
	o.log.register(cmd)
	f := cmd.Flags()
	f.IntVar(&o.retries, "retries", planner.Defaults.Retries, "tries per transaction when a lock is not available (escalating backoff with jitter)")
	f.DurationVar(&o.wait, "wait", planner.Defaults.Wait, "how long to wait for another planner to finish (then exit 4; 0: do not wait)")
	f.DurationVar(&o.leaseTTL, "lease-ttl", planner.Defaults.LeaseTTL, "how long the planner lease outlives its last renewal: a killed planner holds up the next one for at most this long")
}

// registerTimeouts adds the statement guards (plan --format sql takes them too).
func (o *engineOptions) registerTimeouts(cmd *cobra.Command) {
	f := cmd.Flags()
	f.DurationVar(&o.lockTimeout, "lock-timeout", planner.Defaults.LockTimeout, "longest wait for a lock that blocks application traffic, per try")
	f.DurationVar(&o.statementTimeout, "statement-timeout", planner.Defaults.StatementTimeout, "statement_timeout of ordinary DDL")
	f.DurationVar(&o.longStatementTimeout, "long-statement-timeout", planner.Defaults.LongStatementTimeout, "statement_timeout of VALIDATE and CREATE INDEX CONCURRENTLY (0: none)")
}

func (o *engineOptions) registerNext(cmd *cobra.Command) {
	o.register(cmd)
	f := cmd.Flags()
	f.DurationVar(&o.fleetExpiry, "fleet-expiry", planner.Defaults.FleetExpiry, "an application instance that stopped heartbeating counts as live for this long (for the enforce and contract gates)")
	f.DurationVar(&o.minSoak, "min-soak", planner.Defaults.MinSoak, "minimum time the previous phase's flags must be live before a phase gated on them (contract; add_column's enforce)")
	registerPurgeAfter(cmd, &o.purgeAfter)
	registerGateStatements(cmd, &o.gateStatements)
	f.BoolVar(&o.async, "async", false, "start backfills and return; the phase completes at a later deploy once the backfill is verified (run it with planner backfill run)")
	registerBackfillFlags(cmd, &o.backfill, "backfill-")
	o.hasBackfill = true
}

// registerPurgeAfter adds --purge-after (next, run, status).
func registerPurgeAfter(cmd *cobra.Command, d *time.Duration) {
	cmd.Flags().DurationVar(d, "purge-after", planner.Defaults.PurgeAfter, "how long a contract stays reversible: the purge that drops the old column runs at a later deploy, at least this long after the contract")
}

// noneIfZero passes a duration flag whose 0 means none (--wait,
// --purge-after, --long-statement-timeout) to the library, where zero
// means the default and a negative value none.
func noneIfZero(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// registerGateStatements adds --gate-statements (next, run, status).
func registerGateStatements(cmd *cobra.Command, b *bool) {
	cmd.Flags().BoolVar(b, "gate-statements", false, "with pg_stat_statements: a contract that removes a column or a table name waits while statements naming it keep being called (without: they are only reported)")
}

// engine connects and builds a planner.Engine from the flags.
func (o *engineOptions) engine(cmd *cobra.Command) (*planner.Engine, func(), error) {
	if o.hasBackfill {
		if err := checkBackfillFlags(&o.backfill, "backfill-"); err != nil {
			return nil, nil, err
		}
	}
	if o.retries < 1 {
		return nil, nil, usageErrorf("--retries must be at least 1")
	}
	if o.leaseTTL < time.Second {
		return nil, nil, usageErrorf("--lease-ttl must be at least 1s: the lease is renewed every quarter of it")
	}
	if o.purgeAfter < 0 {
		return nil, nil, usageErrorf("--purge-after must not be negative")
	}
	logger, err := o.log.logger(cmd.ErrOrStderr())
	if err != nil {
		return nil, nil, err
	}
	if o.lockTimeout <= 0 {
		return nil, nil, usageErrorf("--lock-timeout must be positive: without it a DDL statement waiting for its lock queues all application traffic behind it")
	}
	// One connection renews the planner lease, one runs statements, the
	// rest serve backfill workers and progress.
	// The Engine refuses a transaction-mode pooler itself, before its lease.
	pool, err := openPool(cmd.Context(), "planner", int32(max(4, o.backfill.MostWorkers()+3)), true)
	if err != nil {
		return nil, nil, err
	}
	e := &planner.Engine{
		Pool: pool, Schema: g.stateSchema,
		LockTimeout: o.lockTimeout, StatementTimeout: o.statementTimeout, LongStatementTimeout: noneIfZero(o.longStatementTimeout),
		Retries: o.retries, Wait: noneIfZero(o.wait), LeaseTTL: o.leaseTTL, MinSoak: o.minSoak, FleetExpiry: o.fleetExpiry, PurgeAfter: noneIfZero(o.purgeAfter), Async: o.async, GateStatements: o.gateStatements,
		Log: cmd.ErrOrStderr(), Verbose: g.verbose, Logger: logger,
	}
	e.Backfill = o.backfill
	return e, pool.Close, nil
}

// deployIDSources are the environment variables a deploy id is taken from,
// in order, when --deploy-id is not given. CI ids stay the same when a job
// of the same run is retried, so a retry advances nothing more.
var deployIDSources = []struct{ env, prefix string }{
	{"PLANNER_DEPLOY_ID", ""},
	{"GITHUB_RUN_ID", "github:"},         // not GITHUB_RUN_ATTEMPT: a re-run must not advance again
	{"CI_PIPELINE_ID", "gitlab:"},        // GitLab: one per pipeline, kept on job retry
	{"BUILDKITE_BUILD_ID", "buildkite:"}, // kept on job retry
	{"CIRCLE_WORKFLOW_ID", "circleci:"},  // note: "rerun workflow" gets a new id
}

// deployID resolves the deploy id and says where it came from.
func deployID(flag string) (id, source string) {
	if strings.TrimSpace(flag) != "" {
		return strings.TrimSpace(flag), "--deploy-id"
	}
	for _, s := range deployIDSources {
		if v := strings.TrimSpace(os.Getenv(s.env)); v != "" {
			return s.prefix + v, "$" + s.env
		}
	}
	return "", ""
}

func noDeployIDError() error {
	var envs []string
	for _, s := range deployIDSources {
		envs = append(envs, s.env)
	}
	return usageErrorf("no deploy id: pass --deploy-id ID (e.g. your release or pipeline id) or set one of %s; "+
		"the id makes a retried deploy advance nothing more, so the planner does not make one up", strings.Join(envs, ", "))
}

func nextCmd() *cobra.Command {
	var opts engineOptions
	var src specSource
	var id string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "next [CHANGE...]",
		Short: "Advance every active change by one phase (run once per deploy)",
		Long: `Registers new specs and advances every active change by exactly one phase;
with CHANGE ids, only those changes.
Changes on the same table advance one at a time, in spec order; changes on
different tables advance together. A deploy id advances each change at most
once: a retried deploy advances nothing more.

The deploy id is --deploy-id, else $PLANNER_DEPLOY_ID, else the CI's run id:
$GITHUB_RUN_ID, $CI_PIPELINE_ID (GitLab), $BUILDKITE_BUILD_ID,
$CIRCLE_WORKFLOW_ID. Without one the command refuses to run (exit 2).

Exit codes: 0 advanced or nothing to do, 1 failure (rerun resumes),
2 bad input (nothing changed), 3 waiting on a gate (rerun at a later deploy),
4 another planner is running (after --wait), 5 configuration a rerun
cannot fix (see planner --help).

One planner runs at a time per state schema: it holds a lease (a row in
the state schema, renewed while it works; a killed planner's lease expires
after --lease-ttl). Connect directly or through a pooler in session mode:
a transaction-mode pooler is refused (exit 5) before anything changes.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			deploy, source := deployID(id)
			if deploy == "" {
				return noDeployIDError()
			}
			specs, err := src.load(cmd, "")
			if err != nil {
				return err
			}
			e, closePool, err := opts.engine(cmd)
			if err != nil {
				return err
			}
			defer closePool()
			e.Only = args
			switch {
			case !dryRun && e.Logger != nil:
				e.Logger.Info(planner.EventDeployStart, "deploy_id", deploy, "deploy_id_source", source, "specs", len(specs), "dir", src.dir)
			case !dryRun && g.output == "text":
				fmt.Fprintf(cmd.ErrOrStderr(), "planner next: deploy %s (from %s), %d spec(s) in %s\n", deploy, source, len(specs), src.dir)
			}
			report, err := e.Next(cmd.Context(), specs, deploy, dryRun)
			if report != nil {
				if g.output == "json" {
					emit(report)
				} else {
					printReport(cmd.OutOrStdout(), report)
				}
			}
			if err != nil {
				return err
			}
			if report.Waiting() {
				return &waitingError{}
			}
			return nil
		},
	}
	f := cmd.Flags()
	src.register(cmd)
	f.StringVar(&id, "deploy-id", "", "id of this deploy (default $PLANNER_DEPLOY_ID, then the CI's run id)")
	f.BoolVar(&dryRun, "dry-run", false, "print what would run against the live database, without running it")
	opts.registerNext(cmd)
	return cmd
}

// printReport writes a human summary of a Next report.
func printReport(w io.Writer, r *planner.Report) {
	counts := map[planner.Action]int{}
	for _, c := range r.Changes {
		counts[c.Action]++
	}
	if r.DryRun {
		fmt.Fprintf(w, "dry run for deploy %s: nothing was changed\n", r.DeployID)
	} else {
		fmt.Fprintf(w, "deploy %s: %d advanced, %d waiting, %d failed, %d done\n", r.DeployID,
			counts[planner.Advanced], counts[planner.Waiting], counts[planner.Failed], counts[planner.Done])
		if counts[planner.Advanced] == 0 && counts[planner.Failed] == 0 && counts[planner.Waiting] == 0 && len(r.Changes) > 0 {
			fmt.Fprintln(w, "nothing advanced")
		}
	}
	if len(r.Changes) == 0 {
		fmt.Fprintln(w, "no changes")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range r.Changes {
		phase := ""
		if c.Phase != "" {
			phase = fmt.Sprintf("phase %d/%d %s", c.PhaseIndex+1, c.Total, c.Phase)
		} else {
			phase = fmt.Sprintf("%d/%d applied", c.Applied, c.Total)
		}
		detail := c.Reason
		switch c.Action {
		case planner.Advanced:
			detail = "in " + c.Duration.Round(time.Millisecond).String()
		case planner.Failed:
			detail = c.Error
		}
		if c.Registered && !r.DryRun {
			detail = strings.TrimSpace("registered; " + detail)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.ID, c.Table, c.Action, phase, detail)
	}
	tw.Flush()
	for _, c := range r.Changes {
		// A contract applied while statements still name the old column:
		// their callers fail from now on.
		if s := c.OldColumnStatements; c.Action == planner.Advanced && s != nil && (len(s.Statements) > 0 || s.Problem != "") {
			fmt.Fprintf(w, "  %s: %s\n", c.ID, s.Summary())
		}
	}
	if !r.DryRun {
		return
	}
	for _, c := range r.Changes {
		if c.Action != planner.WouldApply {
			continue
		}
		fmt.Fprintf(w, "\n%s: phase %d/%d %s\n", c.ID, c.PhaseIndex+1, c.Total, c.Phase)
		if c.Gate != "" {
			fmt.Fprintf(w, "  gate %s: met\n", c.Gate)
		}
		for i, s := range c.Statements {
			lock := ""
			if s.Lock != "" {
				lock = fmt.Sprintf("  -- %s lock (blocks %s)", s.Lock, s.Lock.Blocks())
				if s.Held != "" {
					lock += ", held " + s.Held
				}
			}
			if s.NoTransaction {
				lock += " [outside a transaction]"
			}
			sql := strings.ReplaceAll(strings.TrimSpace(s.SQL), "\n", "\n     ")
			fmt.Fprintf(w, "  %d. %s;%s\n", i+1, sql, lock)
		}
		if b := c.BackfillWork; b != nil {
			fmt.Fprintf(w, "  backfill %s.%s: SET %s = %s, in batches\n", b.Schema, b.Table, b.Column, b.Expr)
		}
		keys := make([]string, 0, len(c.Flags))
		for k := range c.Flags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  flag %s = %s\n", k, c.Flags[k])
		}
		if c.Reason != "" {
			fmt.Fprintf(w, "  %s\n", c.Reason)
		}
	}
}

package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/planner"
)

func init() { commands = append(commands, planCmd) }

func planCmd() *cobra.Command {
	var pgVersion int
	var forceOffline bool
	var src specSource
	var format string
	var guards engineOptions
	cmd := &cobra.Command{
		Use:   "plan [PATH]",
		Short: "Print each change's phases: SQL, locks, gates, flags and rollback",
		Long: `Print each change's phases with their SQL, the lock every statement takes and
for how long, the gate before each phase, the flags it publishes and how it is
rolled back. Works offline (no database); with --database-url or DATABASE_URL
the live catalog makes the SQL exact (column types, NOT NULL, indexes and
constraints to copy) and the server's version is used; --offline ignores them.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "sql" {
				return usageErrorf("--format must be text (Markdown) or sql (a psql script per phase), not %q", format)
			}
			if pgVersion < 12 {
				// SET NOT NULL proved by a validated CHECK needs 12+.
				return usageErrorf("--pg-version %d: PostgreSQL 12 or later is required", pgVersion)
			}
			specs, err := src.load(cmd, firstArg(args))
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			offline := forceOffline || databaseURL() == ""
			var plans []planner.Plan
			if offline {
				plans, err = compileOffline(specs, pgVersion)
			} else {
				plans, err = compileLive(ctx, specs, pgVersion, cmd.Flags().Changed("pg-version"))
			}
			if err != nil {
				return err
			}
			switch {
			case g.output == "json":
				return emitRaw(func(w io.Writer) error { return planner.RenderJSON(w, plans, offline) })
			case format == "sql":
				return planner.RenderSQL(cmd.OutOrStdout(), plans, planner.SQLScriptOptions{
					LockTimeout: guards.lockTimeout, StatementTimeout: guards.statementTimeout, LongStatementTimeout: noneIfZero(guards.longStatementTimeout), Offline: offline})
			}
			return planner.RenderText(cmd.OutOrStdout(), plans, offline)
		},
	}
	src.register(cmd)
	guards.registerTimeouts(cmd)
	cmd.Flags().StringVar(&format, "format", "text", "text (Markdown, for a PR) or sql (a psql script per phase, with the same lock_timeout guards as planner next)")
	cmd.Flags().BoolVar(&forceOffline, "offline", false, "plan from the specs alone, even when a database URL is set")
	cmd.Flags().IntVar(&pgVersion, "pg-version", planner.DefaultVersion, "PostgreSQL major version to plan for (default: the server's when connected)")
	return cmd
}

func compileOffline(specs []planner.Spec, version int) ([]planner.Plan, error) {
	return planner.PlanOffline(specs, version)
}

func compileLive(ctx context.Context, specs []planner.Spec, version int, versionSet bool) ([]planner.Plan, error) {
	pool, err := sessionPool(ctx, "planner", 0)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if !versionSet {
		if version, err = planner.ServerVersion(ctx, pool); err != nil {
			return nil, err
		}
	}
	// What validate and next refuse (a backfill on a table without a key,
	// an invalid expression, changes that contradict each other), plan
	// refuses too.
	e := &planner.Engine{Pool: pool, Schema: g.stateSchema}
	return e.PlanLive(ctx, specs, version)
}

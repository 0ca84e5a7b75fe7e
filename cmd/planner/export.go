package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/planner"
)

func init() { commands = append(commands, exportCmd) }

func exportCmd() *cobra.Command {
	var pgVersion int
	var forceOffline bool
	var src specSource
	var guards engineOptions
	var opts planner.ExportOptions
	cmd := &cobra.Command{
		Use:   "export --format goose|alembic|sql DIR",
		Short: "Write one migration revision per phase for goose, Alembic or plain SQL",
		Long: `Write one revision per phase of every change in the specs into DIR, numbered
in spec order, for teams that keep their migration runner: each revision runs
its phase (up) and undoes it (down) under the same lock_timeout and
statement_timeout guards as planner next, with the gate and flags as comments.

  goose    NNNNN_<change>_<phase>.sql, -- +goose NO TRANSACTION, each
           transaction one statement
  alembic  versions/NNNNN_<change>_<phase>.py chained by down_revision, using
           autocommit_block(); env.py and alembic.ini when DIR has no env.py
  sql      NNNNN_<change>_<phase>.up.sql and .down.sql

With --database-url or DATABASE_URL the SQL is exact (from the live catalog,
as a connected plan); offline it has placeholders and each file says so.
The runner checks no gate and publishes no flags: deploy one revision per
deploy, once its gate holds.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch opts.Format {
			case planner.ExportGoose, planner.ExportAlembic, planner.ExportSQL:
			case "":
				return usageErrorf("--format is required: goose, alembic or sql")
			default:
				return usageErrorf("--format must be goose, alembic or sql, not %q", opts.Format)
			}
			if pgVersion < 12 {
				return usageErrorf("--pg-version %d: PostgreSQL 12 or later is required", pgVersion)
			}
			if opts.Start < 1 {
				return usageErrorf("--start must be 1 or more, not %d", opts.Start)
			}
			specs, err := src.load(cmd, "")
			if err != nil {
				return err
			}
			offline := forceOffline || databaseURL() == ""
			var plans []planner.Plan
			if offline {
				plans, err = compileOffline(specs, pgVersion)
			} else {
				plans, err = compileLive(cmd.Context(), specs, pgVersion, cmd.Flags().Changed("pg-version"))
			}
			if err != nil {
				return err
			}
			opts.SQLScriptOptions = planner.SQLScriptOptions{LockTimeout: guards.lockTimeout, StatementTimeout: guards.statementTimeout,
				LongStatementTimeout: noneIfZero(guards.longStatementTimeout), Offline: offline}
			files, err := planner.Export(args[0], plans, opts)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return emit(map[string]any{"format": opts.Format, "dir": args[0], "offline": offline, "files": files})
			}
			out := cmd.OutOrStdout()
			if offline {
				fmt.Fprintf(out, "%s\n", planner.OfflineNote)
			}
			fmt.Fprintf(out, "wrote %d %s revision file(s) to %s\n", len(files), opts.Format, args[0])
			for _, f := range files {
				fmt.Fprintf(out, "  %s\n", f)
			}
			return nil
		},
	}
	src.register(cmd)
	guards.registerTimeouts(cmd)
	f := cmd.Flags()
	f.StringVar(&opts.Format, "format", "", "goose, alembic or sql")
	f.IntVar(&opts.Start, "start", 1, "number of the first revision, to follow the revisions already in DIR")
	f.StringVar(&opts.AlembicDownRevision, "alembic-down-revision", "", "Alembic: the existing revision the first exported one follows")
	f.BoolVar(&forceOffline, "offline", false, "export from the specs alone, even when a database URL is set")
	f.IntVar(&pgVersion, "pg-version", planner.DefaultVersion, "PostgreSQL major version to plan for (default: the server's when connected)")
	return cmd
}

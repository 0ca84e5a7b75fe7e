package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pgplanner/planner/planner"
)

// version is set by the linker: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// globals are the flags every command shares.
type globals struct {
	databaseURL string
	stateSchema string
	output      string
	verbose     bool
}

var g globals

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "planner",
		Short: "Zero-downtime PostgreSQL schema changes, one phase per deploy",
		Long: `Zero-downtime PostgreSQL schema changes, one phase per deploy.

Exit codes:
  0  done, or nothing to do
  1  transient failure (statement error, lock not granted, lost connection): a rerun resumes
  2  bad input (spec, flag, edited in-flight spec): nothing of it ran; fix the input
  3  waiting on a gate (backfill, soak, purge delay): a later deploy advances
  4  another planner holds the lease for longer than --wait: rerun
  5  configuration a rerun cannot fix (authentication, missing database or
     privilege, no database configured, a transaction-mode pooler, a
     planner version compiling a change in flight to other SQL)

Every flag can also be set as PLANNER_<FLAG> (e.g. PLANNER_LEASE_TTL=30s).
With --output json every command prints one JSON document (docs/schema).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := flagsFromEnv(cmd); err != nil {
				return err
			}
			if g.output != "text" && g.output != "json" {
				return usageErrorf("--output must be text or json, not %q", g.output)
			}
			if planner.MaxSpecSize <= 0 {
				return usageErrorf("--max-spec-size must be positive")
			}
			if err := planner.CheckStateSchemaName(g.stateSchema); err != nil {
				return usageErrorf("--state-schema: %v", strings.TrimSuffix(err.Error(), ": "+planner.ErrInput.Error()))
			}
			return nil
		},
	}
	f := root.PersistentFlags()
	f.StringVar(&g.databaseURL, "database-url", "", "PostgreSQL URL (default $DATABASE_URL, then the PG* variables)")
	f.StringVar(&g.stateSchema, "state-schema", "planner", "schema holding the planner's state and flags")
	f.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	f.BoolVarP(&g.verbose, "verbose", "v", false, "print every statement as it runs")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErrorf("%v", err) })
	root.AddCommand(versionCmd())
	for _, add := range commands {
		root.AddCommand(add())
	}
	return root
}

// flagsFromEnv sets every flag not given on the command line from
// PLANNER_<FLAG> (upper case, dashes as underscores), e.g. PLANNER_LEASE_TTL.
func flagsFromEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		name := envName(f.Name)
		v, ok := os.LookupEnv(name)
		if f.Changed || !ok || err != nil {
			return
		}
		if e := f.Value.Set(v); e != nil {
			err = usageErrorf("%s=%q: %v (it sets --%s)", name, v, e, f.Name)
		}
	})
	return err
}

func envName(flag string) string {
	return "PLANNER_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// commands are added by the files that define them (init in each file).
var commands []func() *cobra.Command

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the planner's version and state-schema version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.output == "json" {
				return emit(map[string]any{"version": version, "state_version": planner.StateVersion})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "planner %s (state schema version %d)\n", version, planner.StateVersion)
			return nil
		},
	}
}

// databaseURL resolves --database-url, then DATABASE_URL; an empty string
// lets pgx read the PG* variables (PGHOST, PGDATABASE, ...).
func databaseURL() string {
	if g.databaseURL != "" {
		return g.databaseURL
	}
	return os.Getenv("DATABASE_URL")
}

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

func isUsageError(err error) bool {
	var u *usageError
	if errors.As(err, &u) {
		return true
	}
	// cobra's own argument errors
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.Contains(msg, "arg(s)")
}

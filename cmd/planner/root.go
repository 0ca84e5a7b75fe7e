package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

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
		Use:           "planner",
		Short:         "Zero-downtime PostgreSQL schema changes, one phase per deploy",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" {
				return usageErrorf("--output must be text or json, not %q", g.output)
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

// commands are added by the files that define them (init in each file).
var commands []func() *cobra.Command

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the planner's version and state-schema version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "planner %s (state schema version %d)\n", version, planner.StateVersion)
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

package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/planner"
)

func init() { commands = append(commands, validateCmd) }

func validateCmd() *cobra.Command {
	var src specSource
	var full bool
	cmd := &cobra.Command{
		Use:   "validate [PATH]",
		Short: "Check specs against the live schema without changing anything",
		Long: `Checks every spec against the live database: the table and columns exist, the
table has a key to paginate backfills on, types are known, expressions are
valid for the table (planned, never run, in a transaction rolled back), and
each kind's own checks. The changes are applied in order to a model of the
schema first: each is checked against its table as the earlier changes leave
it, and contradictions (a column renamed or dropped and then used, two
changes adding one name) are refused naming both changes. Also reported:
specs edited after their change started, a state written by a newer planner,
and missing privileges (ownership of each table a change alters, CREATE for
the state schema). Expressions that run on existing rows (backfill, up,
conversions, checks, index predicates) are evaluated on a sample of 1,000 rows
in read-only transactions that are rolled back: one that fails on a row is
refused, naming the row's key; a backfill whose measured cost would exceed an
hour on the table's estimated rows, or a check sampled rows violate, is
warned about. --full evaluates every row, in batches. Problems come with a
safe alternative. Exit 2 when any
spec has a problem.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			specs, err := src.load(cmd, firstArg(args))
			if err != nil {
				return err
			}
			pool, err := sessionPool(cmd.Context(), "planner", 0)
			if err != nil {
				return err
			}
			defer pool.Close()
			e := &planner.Engine{Pool: pool, Schema: g.stateSchema}
			results, err := e.ValidateWith(cmd.Context(), specs, planner.ValidateOptions{Full: full})
			var preflight *planner.PreflightError
			if err != nil && !errors.As(err, &preflight) {
				return err
			}
			bad := 0
			for _, v := range results {
				if !v.OK() {
					bad++
				}
			}
			if g.output == "json" {
				if results == nil {
					results = []planner.Validation{}
				}
				emit(results)
			} else {
				for _, v := range results {
					fmt.Fprintln(cmd.OutOrStdout(), v.String())
				}
			}
			if preflight != nil {
				return preflight
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d spec(s) do not fit the live schema: %w", bad, len(results), planner.ErrInput)
			}
			if g.output == "text" {
				fmt.Fprintf(cmd.OutOrStdout(), "%d spec(s) fit the live schema\n", len(results))
			}
			return nil
		},
	}
	src.register(cmd)
	cmd.Flags().BoolVar(&full, "full", false, "evaluate expressions on every existing row (batched, read-only) instead of a sample")
	return cmd
}

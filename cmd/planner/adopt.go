package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/planner"
)

func init() { commands = append(commands, adoptCmd) }

// adoptCmd records a state reached by hand (Alembic's stamp).
func adoptCmd() *cobra.Command {
	var opts engineOptions
	var src specSource
	var id, phase string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "adopt CHANGE --phase PHASE",
		Short: "Record that a change's phases up to PHASE were applied by hand, once the catalogs agree",
		Long: `Records CHANGE as having every phase up to PHASE applied, without running
them, after checking that the database is in the state those phases leave:
every statement's done-probe (or, for statements idempotent by themselves,
its effect in the catalogs) holds, the change's flags are not ahead of PHASE,
and an adopted backfill has every row already filled (a read-only pass over
the rows). Then, in one transaction under the planner lease: the change is
registered as planner next would (when it is not yet), marked at PHASE, a
history row per adopted phase says "adopted" (who, when, deploy id), the
flags of PHASE are published and an adopted backfill is recorded verified.
planner next continues from the phase after PHASE.

A check that fails refuses (exit 2), naming the phase and the statement
whose effect is missing, and records nothing. A registered change adopts
forward only: going back is planner rollback --to. --dry-run checks and
prints what would be recorded.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if phase == "" {
				return usageErrorf("--phase is required: the last phase done by hand (see planner plan for the change's phases)")
			}
			deploy, _ := deployID(id)
			specs, err := src.load(cmd, "")
			if err != nil {
				return err
			}
			e, closePool, err := opts.engine(cmd)
			if err != nil {
				return err
			}
			defer closePool()
			res, err := e.Adopt(cmd.Context(), specs, args[0], phase, deploy, dryRun)
			if g.output == "json" {
				if res != nil {
					emit(res)
				}
				return err
			}
			if err != nil {
				return err
			}
			printAdopt(cmd.OutOrStdout(), res)
			return nil
		},
	}
	f := cmd.Flags()
	src.register(cmd)
	f.StringVar(&phase, "phase", "", "the last phase done by hand")
	f.StringVar(&id, "deploy-id", "", "id of this deploy, recorded in the history (default $PLANNER_DEPLOY_ID, then the CI's run id; none: \"manual\")")
	f.BoolVar(&dryRun, "dry-run", false, "check and print what would be recorded, without recording it")
	opts.register(cmd)
	return cmd
}

func printAdopt(w io.Writer, res *planner.AdoptResult) {
	if res.NothingToDo {
		fmt.Fprintf(w, "%s: nothing adopted: %s\n", res.ID, res.Reason)
		return
	}
	verb := "adopted"
	if res.DryRun {
		verb = "dry run: would adopt"
	}
	fmt.Fprintf(w, "%s: %s phases %d to %d (last %s); %d of %d phases applied, status %s\n",
		res.ID, verb, res.From+1, res.Applied, res.Phase, res.Applied, res.Total, res.Status)
	counts := map[string]int{}
	for _, c := range res.Checks {
		counts[c.Result]++
	}
	fmt.Fprintf(w, "  statements: %d in place, %d superseded by a later statement\n", counts[planner.CheckInPlace], counts[planner.CheckSuperseded])
	for _, b := range res.Backfills {
		fmt.Fprintf(w, "  backfill %s: %d rows of %s checked, %s filled\n", b.Phase, b.Rows, b.Table, b.Column)
	}
	for _, k := range res.Published {
		fmt.Fprintf(w, "  flag %s = %s\n", k, res.Flags[k])
	}
	if res.Registered {
		fmt.Fprintln(w, "  registered the change")
	}
}

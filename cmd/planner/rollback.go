package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/planner"
)

func init() { commands = append(commands, rollbackCmd) }

func rollbackCmd() *cobra.Command {
	var opts engineOptions
	var id, to string
	cmd := &cobra.Command{
		Use:   "rollback CHANGE [--to PHASE]",
		Short: "Reverse the last applied phase of a change (irreversible phases, such as purge, are refused)",
		Long: `Reverses the change's last applied phase: its rollback statements run under
the same lock timeout and retries as planner next, its flags go back to the
previous phase's values, and a backfill phase forgets its job. A phase that
failed or was killed midway is the one rolled back. Repeat to roll back
further; rolling back every phase restores the original schema and data.

With a deploy id (--deploy-id, or the same variables as planner next) a
retried rollback does not roll back a second phase.

--to PHASE rolls back phase by phase until PHASE is the last one applied
(--to none: every phase); rerun, it rolls back only what is still past it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			deploy, _ := deployID(id)
			e, closePool, err := opts.engine(cmd)
			if err != nil {
				return err
			}
			defer closePool()
			if cmd.Flags().Changed("to") {
				target := to
				if target == "none" {
					target = ""
				}
				results, err := e.RollbackTo(cmd.Context(), args[0], target, deploy)
				if g.output == "json" {
					emit(results)
				} else {
					for _, res := range results {
						printRollback(cmd.OutOrStdout(), &res)
					}
					if err == nil && len(results) == 0 {
						fmt.Fprintf(cmd.OutOrStdout(), "%s: nothing rolled back: already at %s\n", args[0], to)
					}
				}
				return err
			}
			res, err := e.Rollback(cmd.Context(), args[0], deploy)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return emit(res)
			}
			printRollback(cmd.OutOrStdout(), res)
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "deploy-id", "", "id of this deploy (default $PLANNER_DEPLOY_ID, then the CI's run id; none: \"manual\")")
	cmd.Flags().StringVar(&to, "to", "", "roll back until this phase is the last applied (none: every phase)")
	opts.register(cmd)
	return cmd
}

func printRollback(w io.Writer, res *planner.RollbackResult) {
	switch {
	case res.NothingToDo:
		fmt.Fprintf(w, "%s: nothing rolled back: %s\n", res.ID, res.Reason)
	case res.Partial:
		fmt.Fprintf(w, "%s: rolled back the unfinished phase %d %s; %d of %d phases applied\n", res.ID, res.PhaseIndex+1, res.Phase, res.Applied, res.Total)
	default:
		fmt.Fprintf(w, "%s: rolled back phase %d %s; %d of %d phases applied\n", res.ID, res.PhaseIndex+1, res.Phase, res.Applied, res.Total)
	}
}

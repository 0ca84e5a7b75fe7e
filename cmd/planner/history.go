package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/planner"
)

func init() { commands = append(commands, historyCmd) }

func historyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "history [CHANGE]",
		Short: "List every phase applied, rolled back or failed, with deploy ids, times and errors",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			change := ""
			if len(args) == 1 {
				change = args[0]
			}
			pool, err := connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			e := &planner.Engine{Pool: pool, Schema: g.stateSchema}
			list, err := e.History(cmd.Context(), change)
			if err != nil {
				return err
			}
			if g.output == "json" {
				if list == nil {
					list = []planner.HistoryEntry{}
				}
				return emit(list)
			}
			w := cmd.OutOrStdout()
			if len(list) == 0 {
				fmt.Fprintln(w, "no history")
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STARTED\tCHANGE\tPHASE\tDIRECTION\tDEPLOY\tTOOK\tRESULT")
			for _, h := range list {
				took, result := "", "ok"
				if h.Finished != nil {
					took = h.Finished.Sub(h.Started).Round(time.Millisecond).String()
				} else if h.Error == "" {
					result = "started, goes on in the background"
				}
				if h.Error != "" {
					result = "FAILED: " + h.Error
				} else if h.Note != "" {
					result = h.Note
				}
				fmt.Fprintf(tw, "%s\t%s\t%d %s\t%s\t%s\t%s\t%s\n", h.Started.UTC().Format(time.RFC3339), h.Change,
					h.PhaseIndex+1, h.Phase, h.Direction, h.DeployID, took, result)
			}
			return tw.Flush()
		},
	}
}

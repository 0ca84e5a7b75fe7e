package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/planner"
)

func init() { commands = append(commands, runCmd) }

// runCmd runs changes to their end at once, for development databases.
func runCmd() *cobra.Command {
	var opts engineOptions
	var src specSource
	cmd := &cobra.Command{
		Use:   "run CHANGE...",
		Short: "Run changes through every phase at once, contract and purge included (development only)",
		Long: `Advances the named changes phase after phase until they are done, each step
as its own deploy and with no soak time nor purge delay: what a pipeline does
over many deploys, at once. For development and test databases only:
applications get no deploy between phases to switch columns, and the purge
at the end cannot be rolled back.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			specs, err := src.load(cmd, "")
			if err != nil {
				return err
			}
			e, closePool, err := opts.engine(cmd)
			if err != nil {
				return err
			}
			defer closePool()
			e.Only, e.MinSoak, e.PurgeAfter = args, 0, -1 // no purge delay
			prefix := "run:" + time.Now().UTC().Format("20060102T150405.000")
			var reports []*planner.Report
			defer func() {
				if g.output == "json" {
					emit(reports)
				}
			}()
			for step := 1; ; step++ {
				report, err := e.Next(cmd.Context(), specs, fmt.Sprintf("%s:%d", prefix, step), false)
				if report != nil {
					reports = append(reports, report)
					if g.output == "text" {
						printReport(cmd.OutOrStdout(), report)
					}
				}
				if err != nil {
					return err
				}
				if report.AdvancedCount() == 0 {
					if report.Waiting() {
						return &waitingError{}
					}
					return nil
				}
			}
		},
	}
	src.register(cmd)
	opts.registerNext(cmd)
	return cmd
}

package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/planner"
)

func init() { commands = append(commands, statusCmd) }

func statusCmd() *cobra.Command {
	src := specSource{optional: true}
	var gates engineOptions
	cmd := &cobra.Command{
		Use:   "status [PATH]",
		Short: "Show every change: phase k of N, the next phase and its gate, backfill progress, flags",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if gates.purgeAfter < 0 {
				return usageErrorf("--purge-after must not be negative")
			}
			specs, err := src.load(cmd, firstArg(args))
			if err != nil {
				return err
			}
			pool, err := connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			e := &planner.Engine{Pool: pool, Schema: g.stateSchema, MinSoak: gates.minSoak, FleetExpiry: gates.fleetExpiry, PurgeAfter: noneIfZero(gates.purgeAfter), GateStatements: gates.gateStatements}
			// A change this planner refuses comes with the others, and
			// its refusal (exit 5) after them: the whole picture first.
			list, refused := e.Status(cmd.Context(), specs)
			if refused != nil && list == nil {
				return refused
			}
			if g.output == "json" {
				if list == nil {
					list = []planner.ChangeStatus{}
				}
				if err := emit(list); err != nil {
					return err
				}
				return refused
			}
			printStatus(cmd.OutOrStdout(), list)
			if fleet, err := flags.Fleet(cmd.Context(), pool, g.stateSchema, e.FleetExpiry); err == nil && len(fleet) > 0 {
				live := 0
				for _, in := range fleet {
					if in.Live {
						live++
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "\nfleet: %d live application instance(s), %d stale (planner fleet lists them)\n", live, len(fleet)-live)
			}
			return refused
		},
	}
	src.register(cmd)
	cmd.Flags().DurationVar(&gates.minSoak, "min-soak", planner.Defaults.MinSoak, "minimum soak time to evaluate gates on flags with (as given to planner next)")
	cmd.Flags().DurationVar(&gates.fleetExpiry, "fleet-expiry", planner.Defaults.FleetExpiry, "as given to planner next")
	registerPurgeAfter(cmd, &gates.purgeAfter)
	registerGateStatements(cmd, &gates.gateStatements)
	return cmd
}

func printStatus(w io.Writer, list []planner.ChangeStatus) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no changes")
		return
	}
	for i, s := range list {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s (%s on %s): %s, phase %d of %d applied\n", s.ID, s.Kind, s.Table, s.Status, s.Applied, s.Total)
		if len(s.Phases) > 0 {
			marks := make([]string, len(s.Phases))
			for j, p := range s.Phases {
				switch {
				case j < s.Applied:
					marks[j] = "[x] " + p
				case j == s.Applied:
					marks[j] = "[>] " + p
				default:
					marks[j] = "[ ] " + p
				}
			}
			fmt.Fprintf(w, "  phases: %s\n", strings.Join(marks, "  "))
		}
		if s.Next != "" {
			gate := "no gate"
			if s.Gate != "" {
				gate = "gate " + s.Gate
			}
			line := fmt.Sprintf("  next: %s (%s)", s.Next, gate)
			if s.NextAction != "" {
				// The words of planner next --dry-run.
				line += ": " + strings.ReplaceAll(string(s.NextAction), "_", " ")
			}
			if s.NextReason != "" {
				line += ", " + s.NextReason
			}
			fmt.Fprintln(w, line)
		}
		if b := s.Backfill; b != nil {
			// The same figures as planner backfill status.
			fmt.Fprintf(w, "  backfill: %s\n", b.Summary())
		}
		// Unless the reason (planner next's) already carries it.
		if st := s.OldColumnStatements; st != nil && !strings.Contains(s.NextReason, "pg_stat_statements") {
			fmt.Fprintf(w, "  statements: %s\n", strings.TrimPrefix(st.Summary(), "pg_stat_statements: "))
		}
		if len(s.Flags) > 0 {
			keys := make([]string, 0, len(s.Flags))
			for k := range s.Flags {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, k+"="+s.Flags[k])
			}
			fmt.Fprintf(w, "  flags: %s\n", strings.Join(parts, " "))
		}
		if s.Error != "" {
			fmt.Fprintf(w, "  REFUSED: %s\n", s.Error)
		}
		if s.Edited {
			fmt.Fprintln(w, "  EDITED: the spec file differs from the spec this change started with; planner next refuses until the edit is reverted or the change rolled back")
		}
		if !s.InFiles && s.Status != planner.StatusDone {
			fmt.Fprintln(w, "  its spec is not in the spec files")
		}
		if s.LastError != "" {
			fmt.Fprintf(w, "  last error: %s\n", s.LastError)
		}
	}
}

package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/planner"
)

func init() { commands = append(commands, fleetCmd) }

func fleetCmd() *cobra.Command {
	var expiry time.Duration
	var purge bool
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "List the application instances that report which flags they run (heartbeats)",
		Long: `Lists every application instance whose flags provider records heartbeats: its
service, host and pid, the newest flag change it has loaded (its revision),
when it was last seen, and whether it is live (seen within --fleet-expiry) or
stale. The enforce and contract gates wait for every live instance to load
the flags they depend on. --purge deletes instances stale for longer than
ten times the expiry.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := connect(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			if purge {
				if err := flags.PurgeFleet(cmd.Context(), pool, g.stateSchema, 10*expiry); err != nil {
					return err
				}
			}
			list, err := flags.Fleet(cmd.Context(), pool, g.stateSchema, expiry)
			if err != nil {
				return err
			}
			if g.output == "json" {
				if list == nil {
					list = []flags.Instance{}
				}
				return emit(list)
			}
			w := cmd.OutOrStdout()
			if len(list) == 0 {
				fmt.Fprintln(w, "no application instance reports heartbeats: the gates count deploys (see README, Fleet)")
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "INSTANCE\tSERVICE\tHOST\tPID\tREVISION\tLAST SEEN\tSTATE\tFLAGS")
			for _, in := range list {
				state, rev := "live", "-"
				if !in.Live {
					state = "stale"
				}
				if in.Revision != nil {
					rev = in.Revision.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s ago\t%s\t%s\n", in.ID, in.Service, in.Host, in.PID, rev,
					time.Since(in.LastSeen).Round(time.Second), state, loadedFlags(in))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().DurationVar(&expiry, "fleet-expiry", planner.Defaults.FleetExpiry, "an instance not seen for this long is stale")
	cmd.Flags().BoolVar(&purge, "purge", false, "delete instances stale for longer than ten times --fleet-expiry")
	return cmd
}

func loadedFlags(in flags.Instance) string {
	keys := make([]string, 0, len(in.Flags))
	for k := range in.Flags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + in.Flags[k].Variant
	}
	return strings.Join(parts, " ")
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/flags"
)

func init() { commands = append(commands, flagsCmd) }

func flagsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "flags",
		Short: "List the flags the planner publishes for applications (key, variant, change, phase, updated)",
		Long: `List the flags the planner publishes for applications.

Keys derive from the change id: <change>.read (old|new) and <change>.write
(old|both|new), plus the boolean views <change>.read_new, <change>.write_old
and <change>.write_new that the OpenFeature provider and the flagd export
derive from them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := loadFlags(cmd)
			if err != nil {
				return err
			}
			if g.output == "json" {
				if list == nil {
					list = []flags.Flag{}
				}
				return emit(list)
			}
			w := cmd.OutOrStdout()
			if len(list) == 0 {
				fmt.Fprintln(w, "no flags")
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tVARIANT\tCHANGE\tPHASE\tUPDATED")
			for _, f := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Key, f.Variant, f.ChangeID, f.Phase, f.UpdatedAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(flagsExportCmd())
	return cmd
}

func flagsExportCmd() *cobra.Command {
	var format, file string
	var watch bool
	var poll time.Duration
	cmd := &cobra.Command{
		Use:   "export --format flagd [-f FILE [--watch]]",
		Short: "Write the flags as a flagd flag-definition file, for services in other languages",
		Long: `Write the flags as a flagd flag-definition file, for services in other languages.

With --watch (and --file) it keeps running and rewrites the file atomically
whenever the flags change: at once on the planner's notification, and every
--poll-interval in any case (through a transaction-mode pooler, where
notifications cannot arrive). SIGINT or SIGTERM stops it cleanly (exit 0).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "flagd" {
				return usageErrorf("--format must be flagd, not %q", format)
			}
			if watch {
				if file == "" || file == "-" {
					return usageErrorf("--watch needs --file: the file to keep current")
				}
				if poll <= 0 {
					return usageErrorf("--poll-interval must be positive, not %s", poll)
				}
				return watchFlags(cmd.Context(), cmd.ErrOrStderr(), file, poll)
			}
			list, err := loadFlags(cmd)
			if err != nil {
				return err
			}
			data, err := flags.ExportFlagd(list)
			if err != nil {
				return err
			}
			switch {
			case file != "" && file != "-":
				if err := writeAtomically(file, data); err != nil {
					return err
				}
				if g.output == "json" {
					return emit(map[string]any{"file": file, "flags": len(list)})
				}
				return nil
			case g.output == "json":
				return emit(json.RawMessage(data))
			}
			if _, err := cmd.OutOrStdout().Write(data); err != nil {
				return fmt.Errorf("write the flags to standard output: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "flagd", "export format (flagd)")
	cmd.Flags().StringVarP(&file, "file", "f", "", "file to write, replaced atomically (default standard output)")
	cmd.Flags().BoolVar(&watch, "watch", false, "keep running and rewrite --file whenever the flags change")
	cmd.Flags().DurationVar(&poll, "poll-interval", flags.DefaultPollInterval, "with --watch, how often to reload without a notification")
	return cmd
}

func loadFlags(cmd *cobra.Command) ([]flags.Flag, error) {
	pool, err := connect(cmd.Context())
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	return flags.List(cmd.Context(), pool, g.stateSchema)
}

// writeAtomically replaces path in one rename, so a flagd file watcher never
// reads a half-written file.
func writeAtomically(path string, data []byte) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

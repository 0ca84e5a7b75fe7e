package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/planner"
)

func init() { commands = append(commands, backfillCmd) }

func backfillCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "Run, pause, resume and watch backfills",
		Long: `A backfill computes a new column for every existing row, in short batches.
'planner next' starts it; 'planner backfill run' works on it as a process of its own,
and may run on several machines at once: workers share the work through the state tables.`,
	}
	cmd.AddCommand(backfillRunCmd(), backfillPauseCmd(true), backfillPauseCmd(false), backfillStatusCmd())
	return cmd
}

func backfillRunCmd() *cobra.Command {
	var opts backfill.Options
	var logs logFormat
	cmd := &cobra.Command{
		Use:   "run [CHANGE]",
		Short: "Run or resume a backfill (every unfinished one without CHANGE) until verified",
		Long: `Run or resume a backfill (every unfinished one without CHANGE) until verified.

Workers share a job through key ranges in the state tables, each batch
locking one range (FOR UPDATE SKIP LOCKED): run as many processes, on as
many machines, as you like. A job starts with about 16 ranges; a worker
that finds every unfinished range busy splits the one with the most work
left at a key past its cursor, so more workers than ranges, and the last
range of a job, still share the work. A range with fewer than 4 batches
left is not split.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkBackfillFlags(&opts, ""); err != nil {
				return err
			}
			logger, err := logs.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			pool, err := backfillPool(ctx, opts.MostWorkers())
			if err != nil {
				return err
			}
			defer pool.Close()
			var ids []string
			if len(args) == 1 {
				ids = args
			} else {
				all, err := backfill.List(ctx, pool, g.stateSchema)
				if err != nil {
					return err
				}
				for _, p := range all {
					if !p.Verified {
						ids = append(ids, p.ChangeID)
					}
				}
				if len(ids) == 0 && g.output == "text" {
					fmt.Fprintln(cmd.OutOrStdout(), "no unfinished backfill")
				}
			}
			var results []backfill.Progress
			for _, id := range ids {
				p, err := runOne(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), logger, pool, id, opts)
				results = append(results, p)
				if err != nil {
					return err
				}
			}
			if g.output == "json" {
				return emit(results)
			}
			return nil
		},
	}
	registerBackfillFlags(cmd, &opts, "")
	logs.register(cmd)
	cmd.Flags().BoolVar(&opts.StopWhenPaused, "stop-when-paused", false, "exit when the backfill is paused instead of waiting for resume")
	return cmd
}

// registerBackfillFlags registers the backfill's tuning flags: as they are
// for 'backfill run' (prefix ""), and for the inline backfill of 'next'
// (prefix "backfill-").
func registerBackfillFlags(cmd *cobra.Command, o *backfill.Options, prefix string) {
	f := cmd.Flags()
	d := planner.Defaults.Backfill
	f.IntVar(&o.Workers, prefix+"workers", d.Workers, "goroutines working on the backfill (0: one, and one more while the one added last raises the rate by 15%, up to --"+prefix+"max-workers; one with --"+prefix+"sleep); other processes may run too, and a worker that finds every key range busy splits one")
	f.IntVar(&o.MaxWorkers, prefix+"max-workers", d.MaxWorkers, "most goroutines --"+prefix+"workers 0 runs")
	f.DurationVar(&o.TargetBatch, prefix+"batch-time", d.TargetBatch, "target duration of one batch, the batch size adapting to it (0: 75% of --"+prefix+"max-app-wait, the most it may be)")
	f.IntVar(&o.MinBatch, prefix+"min-batch", d.MinBatch, "smallest batch, in rows")
	f.IntVar(&o.MaxBatch, prefix+"max-batch", d.MaxBatch, "largest batch, in rows")
	f.DurationVar(&o.Sleep, prefix+"sleep", d.Sleep, "pause between two batches of a worker")
	f.DurationVar(&o.MaxReplicaLag, prefix+"max-replica-lag", d.MaxReplicaLag, "wait while a replica replays more than this far behind the primary, in time (negative: no time limit)")
	o.MaxReplicaLagBytes = d.MaxReplicaLagBytes
	f.Var(byteSize{&o.MaxReplicaLagBytes}, prefix+"max-replica-lag-bytes", "wait while a replica has more than this much WAL left to replay, e.g. 64kB, 1GB (negative: no size limit)")
	f.DurationVar(&o.MaxAppWait, prefix+"max-app-wait", d.MaxAppWait, "longest an application statement may wait for a batch's row locks: batches skip rows the application holds (and come back for them), and the server cancels a batch running past its cap (80% of it, less the slack recent batches showed), retried smaller; --"+prefix+"batch-time is at most 75% of it")
}

// checkBackfillFlags rejects values of the flags registerBackfillFlags
// registered with prefix that the backfill would silently replace.
func checkBackfillFlags(o *backfill.Options, prefix string) error {
	switch {
	case o.Workers < 0:
		return usageErrorf("--%sworkers must not be negative (0: as many as pay off)", prefix)
	case o.MaxWorkers < 1:
		return usageErrorf("--%smax-workers must be at least 1", prefix)
	case o.TargetBatch < 0:
		return usageErrorf("--%sbatch-time must not be negative (0: 75%% of --%smax-app-wait)", prefix, prefix)
	case o.MaxAppWait < 10*time.Millisecond:
		return usageErrorf("--%smax-app-wait must be at least 10ms (a batch must fit in it)", prefix)
	case o.MinBatch < 1:
		return usageErrorf("--%smin-batch must be at least 1", prefix)
	case o.MaxBatch < o.MinBatch:
		return usageErrorf("--%smax-batch (%d) must be at least --%smin-batch (%d)", prefix, o.MaxBatch, prefix, o.MinBatch)
	case o.Sleep < 0:
		return usageErrorf("--%ssleep must not be negative", prefix)
	case o.MaxReplicaLag == 0:
		return usageErrorf("--%smax-replica-lag must not be 0 (negative: no time limit)", prefix)
	case o.MaxReplicaLagBytes == 0:
		return usageErrorf("--%smax-replica-lag-bytes must not be 0 (negative: no size limit)", prefix)
	}
	return nil
}

// backfillPool is a pool with a connection per worker, plus one for
// progress.
func backfillPool(ctx context.Context, workers int) (*pgxpool.Pool, error) {
	return sessionPool(ctx, "planner backfill", int32(workers+2))
}

// runOne runs one job to its end; logger, when set, gets its progress and
// notes as structured events instead of lines.
func runOne(ctx context.Context, out, errOut io.Writer, logger *slog.Logger, pool *pgxpool.Pool, id string, opts backfill.Options) (backfill.Progress, error) {
	opts.Log = func(msg string) { fmt.Fprintf(errOut, "%s: %s\n", id, msg) }
	show := g.output == "text" && logger == nil
	if logger != nil {
		opts.Log = func(msg string) { logger.Info(planner.EventBackfillNote, "change", id, "reason", msg) }
		opts.ProgressEvery = 10 * time.Second
		opts.Progress = func(p backfill.Progress) {
			logger.LogAttrs(ctx, slog.LevelInfo, planner.EventBackfillProgress, planner.ProgressAttrs(p)...)
		}
	}
	tty := show && isTerminal(out)
	if show {
		if tty {
			opts.ProgressEvery = 200 * time.Millisecond
			opts.Progress = func(p backfill.Progress) { fmt.Fprint(out, "\r"+progressBar(p, 30)+"\033[K") }
		} else {
			// CI logs: a line every ten seconds, not a redrawn bar.
			opts.ProgressEvery = 10 * time.Second
			opts.Progress = func(p backfill.Progress) { fmt.Fprintln(out, progressLine(p)) }
		}
	}
	p, err := backfill.Run(ctx, pool, g.stateSchema, id, opts)
	if tty {
		fmt.Fprintln(out)
	}
	switch {
	case errors.Is(err, backfill.ErrNoJob):
		return p, fmt.Errorf("%w: %w (is the change in its backfill phase?)", planner.ErrInput, err)
	case errors.Is(err, context.Canceled):
		return p, fmt.Errorf("backfill %s interrupted; run it again to resume", id)
	case err != nil:
		return p, err
	}
	if show {
		fmt.Fprintf(out, "%s: %d rows backfilled (%d changed), verified", id, p.Rows, p.Updated)
		if p.Fixed > 0 {
			fmt.Fprintf(out, " (%d rows fixed by verification)", p.Fixed)
		}
		fmt.Fprintln(out)
	}
	return p, nil
}

// isTerminal tells a terminal from a pipe or file (no x/term dependency).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func progressBar(p backfill.Progress, width int) string {
	frac := p.Fraction()
	filled := int(frac * float64(width))
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	return fmt.Sprintf("%s %s %s", p.ChangeID, bar, p.Summary())
}

func progressLine(p backfill.Progress) string {
	return p.ChangeID + ": " + p.Summary()
}

func backfillPauseCmd(pause bool) *cobra.Command {
	use, short := "resume CHANGE", "Let a paused backfill continue"
	if pause {
		use, short = "pause CHANGE", "Pause a backfill: its workers stop after their current batch"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			pool, err := connect(ctx)
			if err != nil {
				return err
			}
			defer pool.Close()
			set := backfill.Resume
			if pause {
				set = backfill.Pause
			}
			if err := set(ctx, pool, g.stateSchema, args[0]); err != nil {
				if errors.Is(err, backfill.ErrNoJob) {
					return fmt.Errorf("%w: %w", planner.ErrInput, err)
				}
				return err
			}
			if g.output == "json" {
				return emit(map[string]any{"change_id": args[0], "paused": pause})
			}
			state := "resumed"
			if pause {
				state = "paused"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backfill %s %s\n", args[0], state)
			return nil
		},
	}
}

func backfillStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show every backfill: rows done, rate, ETA, verification",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			pool, err := connect(ctx)
			if err != nil {
				return err
			}
			defer pool.Close()
			all, err := backfill.List(ctx, pool, g.stateSchema)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.output == "json" {
				if all == nil {
					all = []backfill.Progress{}
				}
				return emit(all)
			}
			if len(all) == 0 {
				fmt.Fprintln(out, "no backfills")
				return nil
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "CHANGE\tCOLUMN\tPROGRESS")
			for _, p := range all {
				fmt.Fprintf(w, "%s\t%s.%s\t%s\n", p.ChangeID, p.Table, pgx.Identifier{p.Column}.Sanitize(), p.Summary())
			}
			return w.Flush()
		},
	}
}

package main

import (
	"io"
	"log/slog"

	"github.com/spf13/cobra"
)

// logFormat is --log-format of the commands that run phases: text lines
// (the default) or one JSON object per event (log/slog), on standard error.
type logFormat struct{ format string }

func (l *logFormat) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&l.format, "log-format", "text", "progress on standard error: text lines, or json (one event per line: phase_start, phase_end, gate_not_met, backfill_progress, ...)")
}

// logger is the JSON logger for --log-format json, nil for text.
func (l *logFormat) logger(w io.Writer) (*slog.Logger, error) {
	switch l.format {
	case "text":
		return nil, nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, usageErrorf("--log-format must be text or json, not %q", l.format)
}

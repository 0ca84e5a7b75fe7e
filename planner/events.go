package planner

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/pgplanner/planner/backfill"
)

// Structured log events: the message of each record Engine.Logger gets.
// Their attributes have stable names: change, phase, phase_index (0-based),
// phases, deploy_id, duration_ms, gate, reason, and for a backfill stage,
// rows, total, updated, verified_rows, done, verified.
const (
	EventDeployStart      = "deploy_start"
	EventPhaseStart       = "phase_start"
	EventPhaseEnd         = "phase_end"
	EventGateNotMet       = "gate_not_met"
	EventRollbackStart    = "rollback_start"
	EventRollbackEnd      = "rollback_end"
	EventBackfillProgress = "backfill_progress"
	EventBackfillNote     = "backfill_note"
	EventBackfillRestored = "backfill_restored"
	// EventNote is any other progress line (waiting for another planner).
	EventNote = "note"
)

// event logs one event: as a structured record on Logger when it is set,
// else as its text line (which may be empty: no line) on Log.
func (e *Engine) event(text, msg string, attrs ...slog.Attr) {
	if e.Logger != nil {
		e.Logger.LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
		return
	}
	if e.Log != nil && text != "" {
		io.WriteString(e.Log, text)
	}
}

// logging reports whether events go anywhere.
func (e *Engine) logging() bool { return e.Logger != nil || e.Log != nil }

func phaseAttrs(change, phase string, idx, total int, deployID string) []slog.Attr {
	return []slog.Attr{slog.String("change", change), slog.String("phase", phase), slog.Int("phase_index", idx),
		slog.Int("phases", total), slog.String("deploy_id", deployID)}
}

func durationAttr(d time.Duration) slog.Attr {
	return slog.Float64("duration_ms", float64(d)/float64(time.Millisecond))
}

// ProgressAttrs are a backfill's progress as event attributes.
func ProgressAttrs(p backfill.Progress) []slog.Attr {
	return []slog.Attr{slog.String("change", p.ChangeID), slog.String("stage", p.Phase), slog.Int64("rows", p.Rows),
		slog.Int64("total", p.Total), slog.Int64("updated", p.Updated), slog.Int64("verified_rows", p.VerifiedRows),
		slog.Bool("done", p.Done), slog.Bool("verified", p.Verified), slog.String("summary", p.Summary())}
}

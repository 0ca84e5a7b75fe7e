// Status and History: what `planner status` and `planner history` show.

package planner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/flags"
)

// ChangeStatus is one change as `planner status` shows it.
type ChangeStatus struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"`
	Table   string   `json:"table"`
	File    string   `json:"file"`
	Status  string   `json:"status"` // a Status* value, or "unregistered"
	Applied int      `json:"applied"`
	Total   int      `json:"total"`
	Phases  []string `json:"phases"`
	Next    string   `json:"next_phase"`
	Gate    string   `json:"gate"`
	GateMet *bool    `json:"gate_met"`
	// GateReason says why the gate is not met.
	GateReason string `json:"gate_reason"`
	// NextAction and NextReason are what `planner next --dry-run` would do
	// with the change now, computed by the same code.
	NextAction Action             `json:"next_action"`
	NextReason string             `json:"next_reason"`
	Backfill   *backfill.Progress `json:"backfill"`
	Flags      map[string]string  `json:"flags"`
	// OldColumnStatements: as in planner next's report.
	OldColumnStatements *StatementsReport `json:"old_column_statements"`
	LastError           string            `json:"last_error"`
	InFiles             bool              `json:"in_files"`
	// Edited: the spec file no longer matches the spec the change started
	// with (planner next refuses to run until that is resolved).
	Edited bool `json:"edited"`
	// Error says why this planner refuses the change: it compiles it to
	// other phases than the planner that registered it ("" when it does
	// not). Status then returns an ErrConfig error as well.
	Error   string     `json:"error"`
	Updated *time.Time `json:"updated"`
}

// Status describes every registered change and every spec not registered
// yet. It changes nothing and takes no lock. A change this planner
// compiles to other phases than those registered is listed with its Error,
// and the list comes back with an error wrapping ErrConfig, as Next refuses.
func (e *Engine) Status(ctx context.Context, specs []Spec) ([]ChangeStatus, error) {
	st := e.state()
	version, err := ServerVersion(ctx, e.Pool)
	if err != nil {
		return nil, err
	}
	if _, err := st.version(ctx, e.Pool); err != nil {
		return nil, err
	}
	entries, err := e.load(ctx, specs, version, true, true)
	if err != nil {
		return nil, err
	}
	flagValues, err := e.flagValues(ctx)
	if err != nil {
		return nil, err
	}
	var out []ChangeStatus
	var refusals []error
	for _, group := range byTable(entries) {
		// What `planner next --dry-run` would say; its errors are the
		// changes' own and are shown with them.
		reports, _ := e.advanceTable(ctx, group, "", nil, version, true, nil)
		byID := map[string]ChangeReport{}
		for _, r := range reports {
			byID[r.ID] = r
		}
		for _, en := range group {
			c := en.state
			s := ChangeStatus{ID: c.ID, Kind: c.Kind, Table: c.Table.String(), File: c.File, Status: c.Status,
				Applied: c.Applied, Total: len(en.plan.Phases), LastError: c.LastError, InFiles: en.inFiles, Edited: en.edited}
			if en.refused != nil {
				s.Error = en.refused.Error()
				refusals = append(refusals, en.refused)
			}
			if en.registered {
				s.Status = "unregistered"
			} else {
				u := c.Updated
				s.Updated = &u
			}
			for _, p := range en.plan.Phases {
				s.Phases = append(s.Phases, p.Name)
			}
			if c.Applied < len(en.plan.Phases) {
				p := en.plan.Phases[c.Applied]
				s.Next, s.Gate = p.Name, string(p.Gate)
			}
			if r, ok := byID[c.ID]; ok {
				s.NextAction, s.NextReason, s.Backfill = r.Action, r.Reason, r.Backfill
				s.OldColumnStatements = r.OldColumnStatements
				if r.Error != "" {
					s.NextReason = r.Error
				}
				met := r.Action != Waiting
				s.GateMet = &met
				if !met {
					s.GateReason = r.Reason
				}
			}
			if s.Backfill == nil && !en.registered {
				if prog, err := backfill.Get(ctx, e.Pool, e.schema(), c.ID); err == nil {
					s.Backfill = &prog
				}
			}
			s.Flags = flagValues[c.ID]
			out = append(out, s)
		}
	}
	return out, errors.Join(refusals...)
}

// flagValues reads the published flags per change id.
func (e *Engine) flagValues(ctx context.Context) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	if ok, err := e.state().exists(ctx, e.Pool); err != nil || !ok {
		return out, err
	}
	list, err := flags.List(ctx, e.Pool, e.schema())
	if err != nil {
		return nil, err
	}
	for _, f := range list {
		if out[f.ChangeID] == nil {
			out[f.ChangeID] = map[string]string{}
		}
		out[f.ChangeID][f.Key] = f.Variant
	}
	return out, nil
}

// History lists the phases applied, rolled back and failed, oldest first;
// change "" means every change.
func (e *Engine) History(ctx context.Context, change string) ([]HistoryEntry, error) {
	st := e.state()
	ok, err := st.exists(ctx, e.Pool)
	if err != nil {
		return nil, err
	}
	if ok {
		if _, err := st.version(ctx, e.Pool); err != nil {
			return nil, err
		}
	}
	if change != "" {
		var c *ChangeState
		if ok {
			if c, err = st.change(ctx, e.Pool, change); err != nil {
				return nil, err
			}
		}
		if c == nil {
			return nil, fmt.Errorf("no change %q in the planner's state (schema %q): see planner status: %w", change, e.schema(), ErrInput)
		}
	}
	if !ok {
		return nil, nil
	}
	return st.history(ctx, e.Pool, change)
}

// What Next reports: the action taken on each change and why.

package planner

import (
	"encoding/json"
	"time"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/phases"
)

// Action says what Next did (or would do) with a change.
type Action string

const (
	Advanced    Action = "advanced"      // applied one phase
	Waiting     Action = "waiting"       // the next phase's gate is not met
	NothingToDo Action = "nothing_to_do" // already advanced in this deploy, or queued behind another change
	Done        Action = "done"          // every phase applied
	Failed      Action = "failed"        // the phase failed; rerun resumes it
	WouldApply  Action = "would_apply"   // dry run: this phase would run
	Missing     Action = "missing"       // in flight, but its spec is no longer in the files
)

// Report is what Next did, per change.
type Report struct {
	DeployID string         `json:"deploy_id"`
	DryRun   bool           `json:"dry_run"`
	Changes  []ChangeReport `json:"changes"`
}

// ChangeReport is what happened to one change.
type ChangeReport struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Table  string `json:"table"`
	Action Action `json:"action"`
	// Phase is the phase concerned (applied, waiting, failed, would apply),
	// PhaseIndex its 0-based position, Total the number of phases.
	Phase      string `json:"phase"`
	PhaseIndex int    `json:"phase_index"`
	Applied    int    `json:"applied"`
	Total      int    `json:"total"`
	Gate       string `json:"gate"`
	// Reason explains waiting and nothing-to-do; Error a failure.
	Reason   string             `json:"reason"`
	Error    string             `json:"error"`
	Backfill *backfill.Progress `json:"backfill"`
	// Registered is set when this run registered the change.
	Registered bool `json:"registered"`
	// Statements are the phase's statements (dry run).
	Statements   []phases.Statement `json:"statements"`
	BackfillWork *phases.Backfill   `json:"backfill_work"`
	Flags        phases.Flags       `json:"flags"`
	// OldColumnStatements, at the contract of a change that removes a
	// column (or a table name: rename_table, drop_table), are the
	// statements naming it called since the phase before, when
	// pg_stat_statements is installed (nil otherwise).
	OldColumnStatements *StatementsReport `json:"old_column_statements"`
	// Duration is how long the phase took (JSON: duration_ms).
	Duration time.Duration `json:"-"`
}

// MarshalJSON writes Duration in milliseconds, its unit in its key.
func (r ChangeReport) MarshalJSON() ([]byte, error) {
	type plain ChangeReport
	return json.Marshal(struct {
		plain
		DurationMS float64 `json:"duration_ms"`
	}{plain(r), float64(r.Duration) / float64(time.Millisecond)})
}

// Waiting reports whether any change waits on a gate.
func (r *Report) Waiting() bool {
	for _, c := range r.Changes {
		if c.Action == Waiting {
			return true
		}
	}
	return false
}

// AdvancedCount is the number of phases applied.
func (r *Report) AdvancedCount() int {
	n := 0
	for _, c := range r.Changes {
		if c.Action == Advanced {
			n++
		}
	}
	return n
}

func baseReport(en *entry) ChangeReport {
	c := en.state
	return ChangeReport{ID: c.ID, Kind: c.Kind, Table: c.Table.String(), Applied: c.Applied, Total: c.Total,
		PhaseIndex: c.Applied, Registered: en.registered}
}

func failedReport(en *entry, err error) ChangeReport {
	r := baseReport(en)
	r.Action, r.Error = Failed, err.Error()
	if en.state.Applied < len(en.plan.Phases) {
		r.Phase = en.plan.Phases[en.state.Applied].Name
	}
	return r
}

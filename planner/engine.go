package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/phases"
)

// Engine advances changes against one database, one phase per change per
// deploy, and keeps its state in the database (schema Schema).
//
// Next and Rollback hold the planner lease (lease.go) for their whole run.
// They need a direct connection (or a pooler in session mode): they refuse
// a pooler in transaction mode before they change anything (CheckSessions).
type Engine struct {
	Pool *pgxpool.Pool
	// Schema holds the planner's state and flags; default "planner".
	Schema string
	// LockTimeout bounds each wait for a lock that blocks traffic (default
	// 500ms); StatementTimeout bounds ordinary DDL (default 30s);
	// LongStatementTimeout bounds VALIDATE and CREATE INDEX CONCURRENTLY
	// (0: no limit).
	LockTimeout, StatementTimeout, LongStatementTimeout time.Duration
	// Retries is the number of tries per phase on lock timeouts (default
	// 8), with escalating, jittered pauses in between.
	Retries int
	// Wait is how long Next and Rollback wait for another planner to finish
	// before failing with ErrBusy (0: fail at once).
	Wait time.Duration
	// LeaseTTL is how long the planner lease outlives its holder's last
	// renewal (default DefaultLeaseTTL): a planner killed with kill -9 holds
	// up the next one for at most this long.
	LeaseTTL time.Duration
	// MinSoak is the minimum time the previous phase's flags must have been
	// live before a FlagsSoaked gate opens (and, for the application
	// instances that report heartbeats, loaded by every live one).
	MinSoak time.Duration
	// FleetExpiry is how long an instance that stopped heartbeating still
	// counts as live for the gates (default DefaultFleetExpiry).
	FleetExpiry time.Duration
	// PurgeAfter is how long a reversible contract stays reversible: the
	// purge that drops its tombstone runs at a later deploy, at least this
	// long after the contract (the command line defaults to 24h).
	PurgeAfter time.Duration
	// Only, when set, limits Next to the changes with these ids: the others
	// are neither advanced nor reported.
	Only []string
	// Async starts backfills and lets their gate wait instead of running
	// them inside `planner next`.
	Async bool
	// Backfill configures inline backfills.
	Backfill backfill.Options
	// Log receives progress lines (nil: silent); Verbose adds every statement.
	Log     io.Writer
	Verbose bool
	// Logger, when set, receives the progress as structured events
	// (events.go) instead of Log's lines.
	Logger *slog.Logger
}

// lockClass is the first key of the planner's transaction advisory locks ("plnr").
const lockClass = 0x706c6e72

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

func (e *Engine) schema() string {
	if e.Schema == "" {
		return "planner"
	}
	return e.Schema
}

func (e *Engine) state() state { return state{schema: e.schema()} }

func (e *Engine) runner() *Runner {
	r := &Runner{
		Pool:                 e.Pool,
		LockTimeout:          e.LockTimeout,
		StatementTimeout:     e.StatementTimeout,
		LongStatementTimeout: e.LongStatementTimeout,
		Tries:                e.Retries,
	}
	if r.LockTimeout <= 0 {
		r.LockTimeout = 500 * time.Millisecond
	}
	if r.StatementTimeout <= 0 {
		r.StatementTimeout = 30 * time.Second
	}
	if r.Tries <= 0 {
		r.Tries = 8
	}
	if e.Verbose {
		r.Log = e.Log
	}
	return r
}

func (e *Engine) logf(format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	e.event(text, EventNote, slog.String("reason", strings.TrimSpace(text)))
}

func serverVersion(ctx context.Context, q dbtx) (int, error) {
	var num int
	err := q.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&num)
	return num / 10000, err
}

// entry is a change with its decoded spec and compiled phases.
type entry struct {
	state   *ChangeState
	spec    Spec
	plan    Plan
	inFiles bool
	// registered: this run registered it (or, dry run, would).
	registered bool
	// edited: the spec file differs from the stored spec (Status only).
	edited bool
}

func (en *entry) tableKey() string { return en.state.Table.String() }

// Next registers new specs and advances every active change by one phase.
// Changes on one table advance one at a time, in spec order; changes on
// different tables advance in the same call. A deploy id advances each change
// (and each table) at most once, so a retried deploy advances nothing more.
// dryRun reports what would run without changing anything (nor taking the
// lock).
func (e *Engine) Next(ctx context.Context, specs []Spec, deployID string, dryRun bool) (_ *Report, err error) {
	deployID = strings.TrimSpace(deployID)
	if deployID == "" {
		return nil, fmt.Errorf("no deploy id: pass --deploy-id or set PLANNER_DEPLOY_ID, so a retried deploy cannot advance twice: %w", ErrInput)
	}
	if err := checkUniqueIDs(specs); err != nil {
		return nil, err
	}
	// Refuse before anything is created or registered: a newer state,
	// missing privileges, contradictions between the changes.
	if pf, err := e.preflight(ctx, specs); err != nil {
		return nil, err
	} else if err := pf.err(specs); err != nil {
		return nil, err
	}
	report := &Report{DeployID: deployID, DryRun: dryRun}
	st := e.state()
	var lease *lease
	if !dryRun {
		if lease, err = e.begin(ctx, deployID, "planner next"); err != nil {
			return nil, err
		}
		defer func() { err = lease.finish(err) }()
		ctx = lease.ctx
	} else if _, err := st.version(ctx, e.Pool); err != nil {
		return nil, err
	}
	version, err := serverVersion(ctx, e.Pool)
	if err != nil {
		return nil, err
	}
	entries, err := e.load(ctx, specs, version, dryRun, false)
	if err != nil {
		return nil, err
	}
	var advanced map[string]HistoryEntry
	if ok, err := st.exists(ctx, e.Pool); err != nil {
		return nil, err
	} else if ok {
		if advanced, err = st.advancedIn(ctx, e.Pool, deployID); err != nil {
			return nil, err
		}
	}
	selected, err := e.selected(entries)
	if err != nil {
		return report, err
	}
	var failures []error
	for _, group := range byTable(entries) {
		if !selected.anyOf(group) {
			continue
		}
		if lease != nil {
			if err := lease.lost(); err != nil {
				return report, err
			}
		}
		reports, err := e.advanceTable(ctx, group, deployID, advanced, version, dryRun, selected)
		report.Changes = append(report.Changes, reports...)
		if err != nil {
			failures = append(failures, err)
		}
	}
	if lease != nil {
		if err := lease.lost(); err != nil {
			return report, err
		}
	}
	if len(failures) > 0 {
		return report, failed(failures)
	}
	return report, nil
}

// selection is the set of change ids Next works on; nil means all.
type selection map[string]bool

func (s selection) has(en *entry) bool { return s == nil || s[en.state.ID] }

func (s selection) anyOf(group []*entry) bool {
	for _, en := range group {
		if s.has(en) {
			return true
		}
	}
	return false
}

// selected checks Only against the changes known (specs and state).
func (e *Engine) selected(entries []*entry) (selection, error) {
	if len(e.Only) == 0 {
		return nil, nil
	}
	known := map[string]bool{}
	for _, en := range entries {
		known[en.state.ID] = true
	}
	s := selection{}
	for _, id := range e.Only {
		if !known[id] {
			return nil, fmt.Errorf("no change %q in the specs or the planner's state: see planner status: %w", id, ErrInput)
		}
		s[id] = true
	}
	return s, nil
}

// failed summarizes per-change failures. It is an ErrInput only when every
// failure is one: a pipeline must see a real failure (exit 1) first.
func failed(failures []error) error {
	allInput := true
	for _, err := range failures {
		allInput = allInput && errors.Is(err, ErrInput)
	}
	joined := errors.Join(failures...)
	if allInput || len(failures) == 1 {
		return fmt.Errorf("%d change(s) failed: %w", len(failures), joined)
	}
	return fmt.Errorf("%d change(s) failed: %s", len(failures), joined)
}

func checkUniqueIDs(specs []Spec) error {
	seen := map[string]string{}
	for _, s := range specs {
		if prev, dup := seen[s.ID]; dup {
			return fmt.Errorf("change id %q is declared twice (%s and %s:%d): ids must be unique: %w", s.ID, prev, s.File, s.Line, ErrInput)
		}
		seen[s.ID] = fmt.Sprintf("%s:%d", s.File, s.Line)
	}
	return nil
}

// load reads the state, refuses edited in-flight specs, and registers new
// ones (in dry run: pretends to).
//
// Status passes lenient: edited specs are then shown as stored, marked edited.
func (e *Engine) load(ctx context.Context, specs []Spec, version int, dryRun, lenient bool) ([]*entry, error) {
	st := e.state()
	var stored []*ChangeState
	if ok, err := st.exists(ctx, e.Pool); err != nil {
		return nil, err
	} else if ok {
		if stored, err = st.changes(ctx, e.Pool); err != nil {
			return nil, err
		}
	}
	byID := map[string]*ChangeState{}
	for _, c := range stored {
		byID[c.ID] = c
	}
	// Refuse edits first, all of them at once, before anything changes.
	var edited []string
	isEdited := map[string]bool{}
	for _, s := range specs {
		c := byID[s.ID]
		if c == nil || c.Checksum == s.Checksum || c.Status == StatusPending && c.Applied == 0 {
			continue
		}
		isEdited[s.ID] = true
		edited = append(edited, editedMessage(s, c))
	}
	if len(edited) > 0 && !lenient {
		return nil, fmt.Errorf("%s: %w", strings.Join(edited, "; "), ErrInput)
	}
	var entries []*entry
	var fresh []Spec
	inFiles := map[string]bool{}
	for _, s := range specs {
		inFiles[s.ID] = true
		c := byID[s.ID]
		if isEdited[s.ID] {
			en, err := e.compileStored(c)
			if err != nil {
				return nil, err
			}
			en.inFiles, en.edited = true, true
			entries = append(entries, en)
			continue
		}
		if c != nil && c.Checksum == s.Checksum {
			if !dryRun && (c.File != s.File || c.Order != s.Order) {
				if err := st.setPosition(ctx, e.Pool, c.ID, s.File, s.Order); err != nil {
					return nil, err
				}
			}
			c.File, c.Order = s.File, s.Order
			en, err := e.compileStored(c)
			if err != nil {
				return nil, err
			}
			en.inFiles = true
			entries = append(entries, en)
			continue
		}
		fresh = append(fresh, s)
	}
	// New specs, or pending ones edited: (re-)register with a snapshot of
	// the table as it is now.
	var registered []*entry
	for _, s := range fresh {
		en, err := e.register(ctx, s, version, entries)
		if err != nil && lenient {
			// Status shows what it can of a spec that would be refused.
			en, err = unregistered(s, err), nil
		}
		if err != nil {
			return nil, err
		}
		entries = append(entries, en)
		registered = append(registered, en)
	}
	// All or none: a refused spec leaves nothing registered.
	if !dryRun && len(registered) > 0 {
		err := pgx.BeginFunc(ctx, e.Pool, func(tx pgx.Tx) error {
			for _, en := range registered {
				if err := st.register(ctx, tx, en.state); err != nil {
					return fmt.Errorf("register change %q: %w", en.state.ID, err)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, c := range stored {
		if inFiles[c.ID] {
			continue
		}
		en, err := e.compileStored(c)
		if err != nil {
			return nil, err
		}
		entries = append(entries, en)
	}
	return entries, nil
}

// register prepares the state row of a new spec. A spec that does not fit the live schema is
// refused (ErrInput), unless an earlier change on the same table is still to
// finish (it may add the column this one needs): then the spec is checked
// when it starts.
func (e *Engine) register(ctx context.Context, s Spec, version int, earlier []*entry) (*entry, error) {
	c, err := e.newChangeState(ctx, e.Pool, s, version)
	if err != nil {
		return nil, err
	}
	plan, err := Compile(s, Target{Version: c.ServerVersion, Table: c.Catalog})
	if err != nil {
		var pending *entry
		for _, en := range earlier {
			if en.state.Table.String() == c.Table.String() && en.state.Status != StatusDone && en.state.Order < s.Order {
				pending = en
			}
		}
		if pending == nil || !errors.Is(err, ErrInput) {
			return nil, err
		}
		// Checked against the live schema when it starts.
		c.Catalog = nil
		if plan, err = Compile(s, Target{Version: c.ServerVersion}); err != nil {
			return nil, err
		}
	}
	c.Total = len(plan.Phases)
	return &entry{state: c, spec: s, plan: plan, inFiles: true, registered: true}, nil
}

// unregistered describes a spec that cannot be registered, for Status.
func unregistered(s Spec, err error) *entry {
	c := &ChangeState{ID: s.ID, File: s.File, Order: s.Order, Kind: s.Kind, Checksum: s.Checksum,
		Status: StatusPending, LastError: err.Error()}
	if s.Change != nil {
		c.Table = s.Change.Table()
	}
	plan, cerr := Compile(s, Target{})
	if cerr != nil {
		plan = Plan{Spec: s}
	}
	c.Total = len(plan.Phases)
	return &entry{state: c, spec: s, plan: plan, inFiles: true, registered: true}
}

// newChangeState builds the state row of a spec, with the table's catalog
// snapshot.
func (e *Engine) newChangeState(ctx context.Context, q dbtx, s Spec, version int) (*ChangeState, error) {
	if s.Change == nil {
		return nil, fmt.Errorf("change %q has no fields: %w", s.ID, ErrInput)
	}
	enc, err := EncodeSpec(s)
	if err != nil {
		return nil, err
	}
	name := s.Change.Table()
	table, err := loadTable(ctx, q, name)
	if err != nil {
		return nil, fmt.Errorf("change %q (%s:%d): %w", s.ID, s.File, s.Line, err)
	}
	if err := ResolveExpressions(ctx, e.Pool, table, s.Change); err != nil {
		return nil, fmt.Errorf("change %q (%s:%d): volatility of its expressions: %w", s.ID, s.File, s.Line, err)
	}
	return &ChangeState{
		ID: s.ID, File: s.File, Order: s.Order, Kind: s.Kind, Table: name, Checksum: s.Checksum,
		Spec: enc, Catalog: table, ServerVersion: version, Status: StatusPending,
	}, nil
}

// loadTable snapshots a table; a missing table is an ErrInput.
func loadTable(ctx context.Context, q dbtx, name TableName) (*Table, error) {
	t, err := LoadTable(ctx, q, name)
	if errors.Is(err, ErrInput) {
		return nil, fmt.Errorf("%w (check the spec's table; schema-qualify it when it is not in public)", err)
	}
	return t, err
}

// compileStored decodes a stored change and compiles it against its
// snapshot, so every deploy runs the phases it was registered with.
func (e *Engine) compileStored(c *ChangeState) (*entry, error) {
	spec, err := DecodeSpec(c.Spec)
	if err != nil {
		return nil, fmt.Errorf("stored change %q: %w", c.ID, err)
	}
	spec.File, spec.Order = c.File, c.Order
	plan, err := compileStoredPlan(spec, c)
	if err != nil {
		return nil, fmt.Errorf("stored change %q: %w", c.ID, err)
	}
	if c.Total != len(plan.Phases) && c.Total != 0 {
		return nil, fmt.Errorf("stored change %q has %d phases but this planner compiles %d: finish it with the planner version that started it", c.ID, c.Total, len(plan.Phases))
	}
	c.Total = len(plan.Phases)
	return &entry{state: c, spec: spec, plan: plan}, nil
}

// byTable groups entries per table, each group in spec order, groups in
// the order of their first change.
func byTable(entries []*entry) [][]*entry {
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i].state, entries[j].state
		if a.Order != b.Order {
			return a.Order < b.Order
		}
		return a.ID < b.ID
	})
	var groups [][]*entry
	index := map[string]int{}
	for _, en := range entries {
		k := en.tableKey()
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], en)
	}
	return groups
}

func baseReport(en *entry) ChangeReport {
	c := en.state
	return ChangeReport{ID: c.ID, Kind: c.Kind, Table: c.Table.String(), Applied: c.Applied, Total: c.Total,
		PhaseIndex: c.Applied, Registered: en.registered}
}

// inFlight: some phase applied or started, not every phase done.
func inFlight(c *ChangeState) bool {
	return c.Status != StatusDone && (c.Applied > 0 || c.Status == StatusApplying || c.Status == StatusFailed)
}

// advanceTable advances at most one change of one table.
func (e *Engine) advanceTable(ctx context.Context, group []*entry, deployID string, advanced map[string]HistoryEntry, version int, dryRun bool, only selection) ([]ChangeReport, error) {
	var reports []ChangeReport
	// The active change: one already in flight, else the first not done.
	var active *entry
	for _, en := range group {
		if inFlight(en.state) {
			active = en
			break
		}
	}
	if active == nil {
		for _, en := range group {
			if en.inFiles && en.state.Status != StatusDone {
				active = en
				break
			}
		}
	}
	var advancedHere *HistoryEntry
	for _, en := range group {
		if h, ok := advanced[en.state.ID]; ok {
			advancedHere = &h
		}
	}
	var err error
	for _, en := range group {
		r := baseReport(en)
		switch {
		case !only.has(en):
			continue
		case en == active && !en.inFiles:
			r.Action, r.Reason = Missing, "in flight, but its spec is no longer in the spec files: restore the file to continue, or roll it back with planner rollback "+en.state.ID
		case en == active && advancedHere != nil:
			r.Action = NothingToDo
			if advancedHere.Change == en.state.ID {
				r.Reason = fmt.Sprintf("already advanced in deploy %s (phase %s); one phase per deploy", deployID, advancedHere.Phase)
			} else {
				r.Reason = fmt.Sprintf("change %s on the same table already advanced in deploy %s; one phase per table per deploy", advancedHere.Change, deployID)
			}
		case en == active:
			r, err = e.advance(ctx, en, deployID, version, dryRun)
		case en.state.Status == StatusDone:
			if !en.inFiles {
				continue
			}
			r.Action, r.Reason = Done, "every phase applied"
		case !en.inFiles:
			continue
		default:
			r.Action = NothingToDo
			r.Reason = fmt.Sprintf("queued behind change %s on the same table", active.state.ID)
		}
		reports = append(reports, r)
	}
	return reports, err
}

// advance runs the next phase of a change, if its gate is met.
func (e *Engine) advance(ctx context.Context, en *entry, deployID string, version int, dryRun bool) (ChangeReport, error) {
	c := en.state
	st := e.state()
	if c.Applied >= len(en.plan.Phases) {
		r := baseReport(en)
		r.Action, r.Reason = Done, "every phase applied"
		if !dryRun && c.Status != StatusDone {
			return r, st.setStatus(ctx, e.Pool, c.ID, c.Applied, StatusDone, "")
		}
		return r, nil
	}
	// A change that has not started compiles against the table as it is now
	// (an earlier change on the same table may have changed it since
	// registration); from then on, against that snapshot.
	if c.Applied == 0 && c.Status == StatusPending && (!en.registered || c.Catalog == nil) {
		fresh, err := e.newChangeState(ctx, e.Pool, en.spec, version)
		if err != nil {
			return failedReport(en, err), err
		}
		plan, err := Compile(en.spec, Target{Version: fresh.ServerVersion, Table: fresh.Catalog})
		if err != nil {
			err = fmt.Errorf("change %q: %w", c.ID, err)
			return failedReport(en, err), err
		}
		fresh.Total, fresh.File, fresh.Order = len(plan.Phases), c.File, c.Order
		if !dryRun {
			if err := st.register(ctx, e.Pool, fresh); err != nil {
				return failedReport(en, err), err
			}
		}
		en.state, en.plan, c = fresh, plan, fresh
	}
	if c.Applied == 0 && c.Status == StatusPending {
		if problems, err := e.liveProblems(ctx, en.spec, en.plan, c.Catalog); err != nil {
			return failedReport(en, err), err
		} else if len(problems) > 0 {
			err := fmt.Errorf("change %q does not fit the live schema: %s: %w", c.ID, describeProblems(problems), ErrInput)
			return failedReport(en, err), err
		}
	}
	idx := c.Applied
	p := en.plan.Phases[idx]
	r := baseReport(en)
	r.Phase, r.PhaseIndex, r.Gate = p.Name, idx, string(p.Gate)
	met, reason, progress, err := e.gateMet(ctx, e.Pool, en, idx, deployID)
	r.Backfill = progress
	if err != nil {
		return failedReport(en, err), err
	}
	if !met {
		r.Action, r.Reason = Waiting, reason
		e.event("", EventGateNotMet, append(phaseAttrs(c.ID, p.Name, idx, len(en.plan.Phases), deployID), slog.String("gate", string(p.Gate)), slog.String("reason", reason))...)
		return r, nil
	}
	if err := CheckPartitions(ctx, e.Pool, c.ID, c.Table, p); err != nil {
		return failedReport(en, err), err
	}
	if dryRun {
		r.Action = WouldApply
		r.Statements, r.BackfillWork, r.Flags = p.Statements, p.Backfill, p.Flags
		if p.Backfill != nil {
			e.dryRunBackfill(ctx, &r)
		}
		return r, nil
	}
	return e.apply(ctx, en, idx, deployID)
}

// dryRunBackfill says what a backfill phase would do: start its job, wait
// for a job running in the background (--async), or run a job started
// earlier to its end.
func (e *Engine) dryRunBackfill(ctx context.Context, r *ChangeReport) {
	prog, err := backfill.Get(ctx, e.Pool, e.schema(), r.ID)
	switch {
	case err != nil && e.Async:
		r.Reason = "the backfill would start in the background (--async); the phase completes at a later deploy once it is verified"
	case err != nil:
		r.Reason = "the backfill would run inline to its end"
	case e.Async && !prog.Verified:
		r.Backfill = &prog
		r.Action = Waiting
		r.Reason = fmt.Sprintf("backfill running in the background (--async): %s; run it with `planner backfill run %s`, and a later planner next completes the phase once it is verified", prog.Summary(), r.ID)
	default:
		r.Backfill = &prog
		r.Reason = "the backfill started earlier would run inline to its end: " + prog.Summary()
	}
}

func failedReport(en *entry, err error) ChangeReport {
	r := baseReport(en)
	r.Action, r.Error = Failed, err.Error()
	if en.state.Applied < len(en.plan.Phases) {
		r.Phase = en.plan.Phases[en.state.Applied].Name
	}
	return r
}

// gateMet checks the gate of phase idx.
func (e *Engine) gateMet(ctx context.Context, q dbtx, en *entry, idx int, deployID string) (bool, string, *backfill.Progress, error) {
	p := en.plan.Phases[idx]
	switch p.Gate {
	case phases.NoGate:
		return true, "", nil, nil
	case phases.BackfillVerified:
		hasBackfill := false
		for _, ph := range en.plan.Phases[:idx] {
			hasBackfill = hasBackfill || ph.Backfill != nil
		}
		if !hasBackfill {
			return true, "", nil, nil
		}
		prog, err := backfill.Get(ctx, q, e.schema(), en.state.ID)
		if errors.Is(err, backfill.ErrNoJob) {
			return false, "no backfill job: the backfill phase has not run", nil, nil
		}
		if err != nil {
			return false, "", nil, err
		}
		if !prog.Verified {
			return false, "backfill not verified yet: " + prog.Summary(), &prog, nil
		}
		return true, "", &prog, nil
	case phases.FlagsLoaded:
		if idx == 0 {
			return true, "", nil, nil
		}
		met, reason, err := e.fleetReady(ctx, q, en, idx, 0)
		return met, reason, nil, err
	case phases.FlagsSoaked:
		if idx == 0 {
			return true, "", nil, nil
		}
		var h HistoryEntry
		var age time.Duration
		err := q.QueryRow(ctx, `SELECT deploy_id, finished, clock_timestamp() - finished
			FROM `+e.state().table("history")+` WHERE change = $1 AND phase_index = $2 AND direction = 'up' AND error = '' AND finished IS NOT NULL
			ORDER BY id DESC LIMIT 1`, en.state.ID, idx-1).Scan(&h.DeployID, &h.Finished, &age)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, "no record of the previous phase being applied", nil, nil
		}
		if err != nil {
			return false, "", nil, err
		}
		prev := en.plan.Phases[idx-1].Name
		if h.DeployID == deployID {
			return false, fmt.Sprintf("phase %s was applied in this deploy (%s); its flags must be live for at least one earlier deploy", prev, deployID), nil, nil
		}
		if age < e.MinSoak {
			return false, fmt.Sprintf("flags of phase %s live for %s; minimum soak %s (%s left)", prev, age.Round(time.Second), e.MinSoak, (e.MinSoak - age).Round(time.Second)), nil, nil
		}
		met, reason, err := e.fleetReady(ctx, q, en, idx, e.MinSoak)
		return met, reason, nil, err
	case phases.PurgeAfter:
		met, reason, err := e.purgeGate(ctx, q, en, idx, deployID)
		return met, reason, nil, err
	}
	return false, "", nil, fmt.Errorf("change %q phase %s: unknown gate %q (a newer planner wrote this plan?)", en.state.ID, p.Name, p.Gate)
}

// apply runs phase idx of a change and records it.
func (e *Engine) apply(ctx context.Context, en *entry, idx int, deployID string) (ChangeReport, error) {
	c := en.state
	st := e.state()
	p := en.plan.Phases[idx]
	r := baseReport(en)
	r.Phase, r.PhaseIndex, r.Gate = p.Name, idx, string(p.Gate)
	var started time.Time
	if err := e.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&started); err != nil {
		return failedReport(en, err), err
	}
	e.event(fmt.Sprintf("%s: phase %d/%d %s (%s)\n", c.ID, idx+1, len(en.plan.Phases), p.Name, p.Purpose),
		EventPhaseStart, phaseAttrs(c.ID, p.Name, idx, len(en.plan.Phases), deployID)...)
	// partial: the phase may be partly in effect (status applying), which
	// rollback must undo before anything else.
	partial := c.Status == StatusApplying
	fail := func(err error) (ChangeReport, error) {
		err = fmt.Errorf("change %q phase %s: %w", c.ID, p.Name, err)
		bg := context.WithoutCancel(ctx)
		status := StatusFailed
		if partial {
			status = StatusApplying
		}
		if serr := st.setStatus(bg, e.Pool, c.ID, c.Applied, status, err.Error()); serr == nil {
			st.addHistory(bg, e.Pool, HistoryEntry{Change: c.ID, PhaseIndex: idx, Phase: p.Name, Direction: Up,
				DeployID: deployID, Started: started, Error: err.Error()})
		}
		r.Action, r.Error = Failed, err.Error()
		return r, err
	}
	// A phase that cannot commit in one transaction is marked first, so a
	// crash midway leaves a record that rollback and status can read.
	units := GroupStatements(p.Statements)
	if len(units) > 1 || (len(units) == 1 && !units[0].Tx) || p.Backfill != nil {
		if !partial {
			if err := st.setStatus(ctx, e.Pool, c.ID, c.Applied, StatusApplying, ""); err != nil {
				return fail(err)
			}
			partial = true
		}
	}
	finish := func(ctx context.Context, tx pgx.Tx) error {
		status := StatusActive
		if idx+1 == len(en.plan.Phases) {
			status = StatusDone
		}
		if err := st.setStatus(ctx, tx, c.ID, idx+1, status, ""); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+st.table("history")+` (change, phase_index, phase, direction, deploy_id, started, finished)
			VALUES ($1, $2, $3, 'up', $4, $5, clock_timestamp())`, c.ID, idx, p.Name, deployID, started); err != nil {
			return err
		}
		if len(p.Flags) > 0 {
			if err := flags.Publish(ctx, tx, e.schema(), c.ID, p.Name, p.Flags, flagMeta(en)); err != nil {
				return fmt.Errorf("publish flags: %w", err)
			}
		}
		return nil
	}
	run := e.runner()
	run.Tables = []string{c.Table.String()}
	if p.Backfill == nil {
		if err := run.Run(ctx, p.Statements, finish); err != nil {
			return fail(err)
		}
	} else {
		if err := run.Run(ctx, p.Statements, nil); err != nil {
			return fail(err)
		}
		prog, complete, err := e.backfill(ctx, en, *p.Backfill)
		r.Backfill = prog
		if err != nil {
			return fail(err)
		}
		if !complete && prog.Paused {
			r.Action = Waiting
			r.Reason = fmt.Sprintf("backfill paused by an operator: %s; resume it with `planner backfill resume %s`", prog.Summary(), c.ID)
			return r, nil
		}
		if !complete {
			if err := st.recordStart(ctx, e.Pool, c.ID, idx, p.Name, deployID, started); err != nil {
				return fail(err)
			}
			r.Action = Waiting
			r.Reason = fmt.Sprintf("backfill started for the background (--async): %s; run it with `planner backfill run %s` (any number of processes), and a later planner next completes the phase once it is verified", prog.Summary(), c.ID)
			return r, nil
		}
		if err := run.Run(ctx, nil, finish); err != nil {
			return fail(err)
		}
	}
	var finished time.Time
	e.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&finished)
	r.Action, r.Applied, r.Duration = Advanced, idx+1, finished.Sub(started)
	e.event(fmt.Sprintf("%s: phase %s applied in %s\n", c.ID, p.Name, r.Duration.Round(time.Millisecond)),
		EventPhaseEnd, append(phaseAttrs(c.ID, p.Name, idx, len(en.plan.Phases), deployID), durationAttr(r.Duration))...)
	return r, nil
}

// backfill starts the change's backfill job (idempotent) and either runs it
// to verified completion here or, with Async, only reports its progress.
func (e *Engine) backfill(ctx context.Context, en *entry, work phases.Backfill) (*backfill.Progress, bool, error) {
	var key []string
	if en.state.Catalog != nil {
		key = en.state.Catalog.Key
	}
	if err := backfill.Start(ctx, e.Pool, e.schema(), en.state.ID, work, key); err != nil {
		return nil, false, fmt.Errorf("start backfill: %w", err)
	}
	if e.Async {
		prog, err := backfill.Get(ctx, e.Pool, e.schema(), en.state.ID)
		if err != nil {
			return nil, false, err
		}
		return &prog, prog.Verified, nil
	}
	opts := e.Backfill
	if opts.Progress == nil && e.logging() {
		opts.Progress = func(p backfill.Progress) {
			e.event(fmt.Sprintf("%s: %s\n", en.state.ID, p.Summary()), EventBackfillProgress, ProgressAttrs(p)...)
		}
		if opts.ProgressEvery == 0 {
			opts.ProgressEvery = 2 * time.Second
		}
	}
	if opts.Log == nil && e.logging() {
		opts.Log = func(msg string) {
			e.event(fmt.Sprintf("%s: %s\n", en.state.ID, msg), EventBackfillNote, slog.String("change", en.state.ID), slog.String("reason", msg))
		}
	}
	// A job an operator paused must not hold the deploy (and the planner's
	// lock) hostage: report it as waiting instead.
	opts.StopWhenPaused = true
	prog, err := backfill.Run(ctx, e.Pool, e.schema(), en.state.ID, opts)
	if errors.Is(err, backfill.ErrPaused) {
		if p, gerr := backfill.Get(ctx, e.Pool, e.schema(), en.state.ID); gerr == nil {
			prog = p
		}
		prog.Paused = true
		return &prog, false, nil
	}
	if err != nil {
		return &prog, false, fmt.Errorf("backfill: %w", err)
	}
	if !prog.Verified {
		return &prog, false, fmt.Errorf("backfill finished but is not verified: %s", prog.Summary())
	}
	return &prog, true, nil
}

// flagMeta is the metadata published with a change's flags.
func flagMeta(en *entry) map[string]string {
	meta := map[string]string{"change_id": en.state.ID, "table": en.state.Table.String()}
	if fm, ok := en.spec.Change.(interface{ FlagMeta() map[string]string }); ok {
		for k, v := range fm.FlagMeta() {
			meta[k] = v
		}
	}
	return meta
}

func describeProblems(ps []Problem) string {
	var parts []string
	for _, p := range ps {
		s := p.Message
		if p.Field != "" {
			s = p.Field + ": " + s
		}
		if p.Hint != "" {
			s += " (" + p.Hint + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// RollbackResult says what Rollback did.
type RollbackResult struct {
	ID         string `json:"id"`
	Phase      string `json:"phase"`
	PhaseIndex int    `json:"phase_index"`
	// Partial: the phase had not finished (failed or killed midway).
	Partial bool `json:"partial"`
	Applied int  `json:"applied"` // phases applied after the rollback
	Total   int  `json:"total"`
	// NothingToDo is set, with Reason, when this deploy already rolled it back.
	NothingToDo bool   `json:"nothing_to_do"`
	Reason      string `json:"reason"`
}

// Rollback reverses the last applied phase of a change (or the phase that
// failed or was killed midway), publishing its rollback flags and forgetting
// its backfill. Irreversible phases are refused with their reason. A
// non-empty deployID makes it idempotent: the same deploy does not roll the
// same change back twice.
func (e *Engine) Rollback(ctx context.Context, changeID, deployID string) (_ *RollbackResult, err error) {
	lease, err := e.begin(ctx, deployID, "planner rollback "+changeID)
	if err != nil {
		return nil, err
	}
	defer func() { err = lease.finish(err) }()
	return e.rollbackOne(lease.ctx, changeID, deployID, true)
}

// RollbackTo rolls a change back phase by phase until phase to is the last
// one applied (to "" rolls every phase back). It is idempotent by its
// target: rerun, it rolls back only what is still past it.
func (e *Engine) RollbackTo(ctx context.Context, changeID, to, deployID string) (_ []RollbackResult, err error) {
	lease, err := e.begin(ctx, deployID, "planner rollback "+changeID+" --to "+to)
	if err != nil {
		return nil, err
	}
	defer func() { err = lease.finish(err) }()
	ctx = lease.ctx
	c, err := e.state().change(ctx, e.Pool, changeID)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("no change %q in the planner's state (schema %q): see planner status: %w", changeID, e.schema(), ErrInput)
	}
	en, err := e.compileStored(c)
	if err != nil {
		return nil, err
	}
	keep := 0 // phases to keep applied
	if to != "" {
		keep = -1
		var names []string
		for i, p := range en.plan.Phases {
			names = append(names, p.Name)
			if p.Name == to {
				keep = i + 1
			}
		}
		if keep < 0 {
			return nil, fmt.Errorf("change %q has no phase %q (its phases: %s): %w", changeID, to, strings.Join(names, ", "), ErrInput)
		}
	}
	var results []RollbackResult
	for c.Applied > keep || (c.Status == StatusApplying && c.Applied >= keep && c.Applied < len(en.plan.Phases)) {
		res, err := e.rollbackOne(ctx, changeID, deployID, false)
		if err != nil {
			return results, err
		}
		results = append(results, *res)
		if c, err = e.state().change(ctx, e.Pool, changeID); err != nil {
			return results, err
		}
	}
	return results, nil
}

// rollbackOne reverses the last applied (or half-applied) phase; with
// oncePerDeploy, not a second one in the same deploy.
func (e *Engine) rollbackOne(ctx context.Context, changeID, deployID string, oncePerDeploy bool) (*RollbackResult, error) {
	st := e.state()
	c, err := st.change(ctx, e.Pool, changeID)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("no change %q in the planner's state (schema %q): see planner status: %w", changeID, e.schema(), ErrInput)
	}
	en, err := e.compileStored(c)
	if err != nil {
		return nil, err
	}
	res := &RollbackResult{ID: c.ID, Total: len(en.plan.Phases), Applied: c.Applied}
	if deployID != "" && oncePerDeploy {
		last, err := st.lastSuccess(ctx, e.Pool, c.ID)
		if err != nil {
			return nil, err
		}
		if last != nil && last.Direction == Down && last.DeployID == deployID {
			res.NothingToDo = true
			res.Phase, res.PhaseIndex = last.Phase, last.PhaseIndex
			res.Reason = fmt.Sprintf("already rolled back phase %s in deploy %s", last.Phase, deployID)
			return res, nil
		}
	}
	if deployID == "" {
		deployID = "manual"
	}
	partial := c.Status == StatusApplying
	idx := c.Applied - 1
	if partial && c.Applied < len(en.plan.Phases) {
		idx = c.Applied
	} else {
		partial = false
	}
	if idx < 0 {
		return nil, fmt.Errorf("change %q has no phase applied: nothing to roll back: %w", c.ID, ErrInput)
	}
	p := en.plan.Phases[idx]
	res.Phase, res.PhaseIndex, res.Partial = p.Name, idx, partial
	if p.Irreversible != "" {
		if partial {
			return nil, fmt.Errorf("change %q: phase %s started but did not finish, and it cannot be rolled back: %s; rerun planner next to finish it: %w", c.ID, p.Name, p.Irreversible, ErrInput)
		}
		return nil, fmt.Errorf("change %q: phase %s cannot be rolled back: %s: %w", c.ID, p.Name, p.Irreversible, ErrInput)
	}
	var started time.Time
	if err := e.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&started); err != nil {
		return nil, err
	}
	e.event(fmt.Sprintf("%s: rolling back phase %d/%d %s\n", c.ID, idx+1, len(en.plan.Phases), p.Name),
		EventRollbackStart, phaseAttrs(c.ID, p.Name, idx, len(en.plan.Phases), deployID)...)
	finish := func(ctx context.Context, tx pgx.Tx) error {
		status := StatusActive
		if idx == 0 {
			status = StatusPending
		}
		if err := st.setStatus(ctx, tx, c.ID, idx, status, ""); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+st.table("history")+` (change, phase_index, phase, direction, deploy_id, started, finished)
			VALUES ($1, $2, $3, 'down', $4, $5, clock_timestamp())`, c.ID, idx, p.Name, deployID, started); err != nil {
			return err
		}
		if p.Backfill != nil {
			if err := backfill.Reset(ctx, tx, e.schema(), c.ID); err != nil && !errors.Is(err, backfill.ErrNoJob) {
				return fmt.Errorf("forget the backfill job: %w", err)
			}
		}
		return e.restoreFlags(ctx, tx, en, idx)
	}
	run := e.runner()
	run.Tables = []string{c.Table.String()}
	if p.Backfill == nil {
		err = run.Run(ctx, p.Rollback, finish)
	} else {
		err = e.rollbackBackfill(ctx, run, en, idx, finish)
	}
	if err != nil {
		err = fmt.Errorf("change %q: roll back phase %s: %w (rerun planner rollback %s to retry; rollback steps are idempotent)", c.ID, p.Name, err, c.ID)
		bg := context.WithoutCancel(ctx)
		st.addHistory(bg, e.Pool, HistoryEntry{Change: c.ID, PhaseIndex: idx, Phase: p.Name, Direction: Down,
			DeployID: deployID, Started: started, Error: err.Error()})
		return nil, err
	}
	res.Applied = idx
	e.event("", EventRollbackEnd, append(phaseAttrs(c.ID, p.Name, idx, len(en.plan.Phases), deployID), durationAttr(time.Since(started)))...)
	return res, nil
}

// rollbackBackfill undoes a backfill phase in steps. First the phase is
// marked partly applied and its job forgotten, so that after a crash at any
// later point both commands find a consistent state: next redoes the phase
// (refilling what was set back), rollback goes on. Then its statements run
// (the fill trigger goes, so that nothing refills the column), then the
// rows it filled are set back to NULL (a backfill with Undo), and last the
// state records the rollback.
func (e *Engine) rollbackBackfill(ctx context.Context, run *Runner, en *entry, idx int, finish func(context.Context, pgx.Tx) error) error {
	id, p := en.state.ID, en.plan.Phases[idx]
	err := pgx.BeginFunc(ctx, e.Pool, func(tx pgx.Tx) error {
		if err := e.state().setStatus(ctx, tx, id, idx, StatusApplying, ""); err != nil {
			return err
		}
		return backfill.Reset(ctx, tx, e.schema(), id)
	})
	if err != nil {
		return err
	}
	if err := run.Run(ctx, p.Rollback, nil); err != nil {
		return err
	}
	var key []string
	if en.state.Catalog != nil {
		key = en.state.Catalog.Key
	}
	n, err := backfill.Restore(ctx, e.Pool, e.schema(), id, *p.Backfill, key, e.Backfill)
	if err != nil {
		return err
	}
	if n > 0 {
		e.event(fmt.Sprintf("%s: %d rows the backfill filled set back to NULL\n", id, n), EventBackfillRestored, slog.String("change", id), slog.Int64("rows", n))
	}
	return run.Run(ctx, nil, finish)
}

// restoreFlags puts the change's flags back to what they were before phase
// idx: none when no earlier phase published flags (applications then get
// their defaults, as before the change started); else the phase's
// RollbackFlags when it declares them, or those of the last earlier phase
// that published flags.
func (e *Engine) restoreFlags(ctx context.Context, tx pgx.Tx, en *entry, idx int) error {
	p := en.plan.Phases[idx]
	if len(p.Flags) == 0 && len(p.RollbackFlags) == 0 {
		return nil
	}
	prev := -1
	for j := idx - 1; j >= 0; j-- {
		if len(en.plan.Phases[j].Flags) > 0 {
			prev = j
			break
		}
	}
	if prev < 0 {
		if err := flags.Forget(ctx, tx, e.schema(), en.state.ID); err != nil {
			return fmt.Errorf("remove flags: %w", err)
		}
		return nil
	}
	values, phase := en.plan.Phases[prev].Flags, en.plan.Phases[prev].Name
	if len(p.RollbackFlags) > 0 {
		values = p.RollbackFlags
	}
	if err := flags.Publish(ctx, tx, e.schema(), en.state.ID, phase, values, flagMeta(en)); err != nil {
		return fmt.Errorf("publish flags: %w", err)
	}
	return nil
}

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
	LastError  string             `json:"last_error"`
	InFiles    bool               `json:"in_files"`
	// Edited: the spec file no longer matches the spec the change started
	// with (planner next refuses to run until that is resolved).
	Edited  bool       `json:"edited"`
	Updated *time.Time `json:"updated"`
}

// Status describes every registered change and every spec not registered
// yet. It changes nothing and takes no lock.
func (e *Engine) Status(ctx context.Context, specs []Spec) ([]ChangeStatus, error) {
	st := e.state()
	version, err := serverVersion(ctx, e.Pool)
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
	return out, nil
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

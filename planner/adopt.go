// Adopting a state reached by hand (like Alembic's stamp): a change is
// recorded as having phases 1..P applied, once the catalogs, the flags and
// the backfilled rows say those phases are in effect. Nothing of the
// change runs; the record is one transaction under the planner lease.

package planner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/phases"
)

// AdoptResult says what Adopt recorded or, in a dry run, would record.
type AdoptResult struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Table      string `json:"table"`
	Phase      string `json:"phase"`       // the last phase recorded as applied
	PhaseIndex int    `json:"phase_index"` // 0-based
	From       int    `json:"from"`        // phases applied before
	Applied    int    `json:"applied"`     // phases applied after
	Total      int    `json:"total"`
	Status     string `json:"status"`
	// Registered: the change was not in the planner's state before.
	Registered bool   `json:"registered"`
	DeployID   string `json:"deploy_id"`
	DryRun     bool   `json:"dry_run"`
	// NothingToDo is set, with Reason, when phase P is already the last applied.
	NothingToDo bool   `json:"nothing_to_do"`
	Reason      string `json:"reason"`
	// Checks are the statements of phases 1..P and what the catalogs say
	// about each; Backfills the row checks of the adopted backfill phases.
	Checks    []AdoptCheck    `json:"checks"`
	Backfills []AdoptBackfill `json:"backfills"`
	// Flags are the change's flags once adopted; Published those of them
	// the adoption publishes (missing, or at an earlier phase's value).
	Flags     phases.Flags `json:"flags"`
	Published []string     `json:"published"`
	// Note is the history rows' note.
	Note string `json:"note"`
}

// AdoptCheck is one statement's effect as the catalogs show it.
type AdoptCheck struct {
	Phase      string `json:"phase"`
	PhaseIndex int    `json:"phase_index"`
	Statement  int    `json:"statement"` // 1-based within the phase
	SQL        string `json:"sql"`
	// Result: in_place; superseded (a later statement of phases 1..P acts
	// on the same object, and is checked instead); missing.
	Result string `json:"result"`
}

// Results of an AdoptCheck.
const (
	CheckInPlace    = "in_place"
	CheckSuperseded = "superseded"
	CheckMissing    = "missing"
)

// AdoptBackfill is the row check of a backfill phase.
type AdoptBackfill struct {
	Phase  string `json:"phase"`
	Table  string `json:"table"`
	Column string `json:"column"`
	Rows   int64  `json:"rows"`
	Differ int64  `json:"differ"`
	// Example is the key of the first row found differing ("" if none).
	Example string `json:"example"`
}

// Adopt records change changeID as having every phase up to phase applied,
// after checking that the database is in the state those phases leave:
// each statement's done-probe (or, for statements idempotent by
// themselves, its effect) holds, the flags stored are not ahead of the
// phase, and every row of an adopted backfill already has its value (a
// read-only pass). A change not registered yet is registered as planner
// next would, from its spec in specs; one registered adopts forward only.
// A failed check refuses (ErrInput) with the phase and statement whose
// effect is missing, and changes nothing. dryRun checks and reports what
// would be recorded, without the lease.
func (e *Engine) Adopt(ctx context.Context, specs []Spec, changeID, phase, deployID string, dryRun bool) (_ *AdoptResult, err error) {
	deployID = strings.TrimSpace(deployID)
	if deployID == "" {
		deployID = "manual"
	}
	if err := checkUniqueIDs(specs); err != nil {
		return nil, err
	}
	if err := RequireSessions(ctx, e.Pool, "planner adopt"); err != nil {
		return nil, err
	}
	st := e.state()
	if !dryRun {
		var l *lease
		if l, err = e.begin(ctx, deployID, "planner adopt "+changeID+" --phase "+phase); err != nil {
			return nil, err
		}
		defer func() { err = l.finish(err) }()
		ctx = l.ctx
	} else if _, err := st.version(ctx, e.Pool); err != nil {
		return nil, err
	}
	var started time.Time
	if err := e.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&started); err != nil {
		return nil, wrapf(err, "reading the database clock")
	}
	version, err := ServerVersion(ctx, e.Pool)
	if err != nil {
		return nil, err
	}
	en, err := e.adoptEntry(ctx, specs, changeID, version)
	if err != nil {
		return nil, err
	}
	c := en.state
	res := &AdoptResult{ID: c.ID, Kind: c.Kind, Table: c.Table.String(), From: c.Applied, Total: len(en.plan.Phases),
		Registered: en.registered, DeployID: deployID, DryRun: dryRun,
		Checks: []AdoptCheck{}, Backfills: []AdoptBackfill{}, Flags: phases.Flags{}, Published: []string{}}
	target, err := adoptTarget(en, phase)
	if err != nil {
		return nil, err
	}
	p := en.plan.Phases[target-1]
	res.Phase, res.PhaseIndex, res.Applied, res.Status = p.Name, target-1, target, StatusActive
	if target == len(en.plan.Phases) {
		res.Status = StatusDone
	}
	switch {
	case target < c.Applied:
		last := en.plan.Phases[c.Applied-1].Name
		return nil, fmt.Errorf("change %q has %d of %d phases applied (the last %s); adopting phase %s would go back: that is a rollback (planner rollback %s --to %s): %w",
			c.ID, c.Applied, len(en.plan.Phases), last, p.Name, c.ID, p.Name, ErrInput)
	case target == c.Applied:
		res.NothingToDo, res.Status = true, c.Status
		res.Reason = fmt.Sprintf("phase %s is already the last applied", p.Name)
		return res, nil
	}
	// The rows first: a long read, outside the transaction that records.
	for i := c.Applied; i < target; i++ {
		ph := en.plan.Phases[i]
		if ph.Backfill == nil {
			continue
		}
		b, err := e.checkBackfill(ctx, en, i)
		if err != nil {
			return nil, err
		}
		res.Backfills = append(res.Backfills, b)
		if b.Differ > 0 {
			return res, fmt.Errorf("change %q phase %d %s: %d of %d rows of %s have %s differing from the backfill's expression (first: %s); nothing was recorded: finish the backfill by hand (UPDATE %s SET %s = <its expression, see planner plan> in batches), then adopt again, or adopt phase %s and let planner next run the backfill: %w",
				c.ID, i+1, ph.Name, b.Differ, b.Rows, b.Table, b.Column, b.Example, b.Table, phases.Ident(b.Column), adoptBefore(en, i), ErrInput)
		}
	}
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	host, _ := os.Hostname()
	var role string
	if err := e.Pool.QueryRow(ctx, `SELECT current_user`).Scan(&role); err != nil {
		return nil, wrapf(err, "reading the database role")
	}
	res.Note = fmt.Sprintf("adopted: recorded by planner adopt, not run (by %s on %s, database role %s)", who, host, role)
	record := func(ctx context.Context, tx pgx.Tx) error {
		if err := e.adoptChecks(ctx, tx, en, target, res); err != nil {
			return err
		}
		if err := adoptFlags(ctx, tx, e.schema(), en, target, res); err != nil {
			return err
		}
		if dryRun {
			return nil
		}
		if en.registered {
			if err := st.register(ctx, tx, c); err != nil {
				return fmt.Errorf("register change %q: %w", c.ID, err)
			}
		}
		if err := st.setStatus(ctx, tx, c.ID, target, res.Status, ""); err != nil {
			return err
		}
		for i := c.Applied; i < target; i++ {
			ph := en.plan.Phases[i]
			if err := st.recordAdopted(ctx, tx, HistoryEntry{Change: c.ID, PhaseIndex: i, Phase: ph.Name,
				DeployID: deployID, Started: started, Note: res.Note}); err != nil {
				return err
			}
			if ph.Backfill != nil {
				b := res.Backfills[0]
				for _, x := range res.Backfills {
					if x.Phase == ph.Name {
						b = x
					}
				}
				if err := backfill.RecordVerified(ctx, tx, e.schema(), c.ID, *ph.Backfill, en.key(),
					backfill.CheckResult{Rows: b.Rows}); err != nil {
					return err
				}
			}
		}
		if len(res.Published) > 0 {
			if err := flags.Publish(ctx, tx, e.schema(), c.ID, p.Name, res.Flags, flagMeta(en)); err != nil {
				return fmt.Errorf("publish flags: %w", err)
			}
		}
		return nil
	}
	// A dry run reads in a transaction it rolls back.
	tx, err := e.Pool.Begin(ctx)
	if err != nil {
		return nil, wrapf(err, "adopting change %q", c.ID)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := record(ctx, tx); err != nil {
		return res, err
	}
	if dryRun {
		return res, nil
	}
	if err := tx.Commit(ctx); err != nil {
		return res, wrapf(err, "committing the adoption of change %q", c.ID)
	}
	e.event(fmt.Sprintf("%s: adopted phases %d to %d (last %s) in deploy %s\n", c.ID, c.Applied+1, target, p.Name, deployID),
		EventNote, phaseAttrs(c.ID, p.Name, target-1, len(en.plan.Phases), deployID)...)
	return res, nil
}

// adoptEntry finds the change: stored (compiled from its stored spec), or
// registered now from its spec against the table as it was before it.
func (e *Engine) adoptEntry(ctx context.Context, specs []Spec, id string, version int) (*entry, error) {
	st := e.state()
	var stored []*ChangeState
	if ok, err := st.exists(ctx, e.Pool); err != nil {
		return nil, err
	} else if ok {
		if stored, err = st.changes(ctx, e.Pool); err != nil {
			return nil, err
		}
	}
	var c *ChangeState
	for _, sc := range stored {
		if sc.ID == id {
			c = sc
		}
	}
	var spec *Spec
	for i := range specs {
		if specs[i].ID == id {
			spec = &specs[i]
		}
	}
	if c == nil && spec == nil {
		return nil, fmt.Errorf("no change %q in the specs or the planner's state: see planner status: %w", id, ErrInput)
	}
	var en *entry
	fresh := c == nil || c.Status == StatusPending && c.Applied == 0 && (c.Catalog == nil || spec != nil && spec.Checksum != c.Checksum)
	switch {
	case !fresh && spec != nil && spec.Checksum != c.Checksum && !(c.Status == StatusPending && c.Applied == 0):
		return nil, fmt.Errorf("%s: %w", editedMessage(*spec, c), ErrInput)
	case !fresh:
		var err error
		if en, err = e.compileStored(c); err != nil {
			return nil, err
		}
		en.inFiles = spec != nil
	case spec == nil:
		return nil, fmt.Errorf("change %q is registered but has no table snapshot yet and no spec in the spec files: restore its spec: %w", id, ErrInput)
	default:
		nc, err := e.newChangeState(ctx, e.Pool, *spec, version)
		if err != nil {
			return nil, err
		}
		if nc.Catalog, err = beforeChange(nc.Catalog, *spec); err != nil {
			return nil, fmt.Errorf("change %q (%s:%d): %w", spec.ID, spec.File, spec.Line, err)
		}
		plan, err := Compile(*spec, Target{Version: nc.ServerVersion, Table: nc.Catalog})
		if err != nil {
			return nil, fmt.Errorf("change %q: its phases do not compile from the table as it was before them (the live table without what the change adds): %w", spec.ID, err)
		}
		nc.Total = len(plan.Phases)
		if nc.Fingerprint, err = storedFingerprints(nc); err != nil {
			return nil, err
		}
		en = &entry{state: nc, spec: *spec, plan: plan, inFiles: true, registered: true}
	}
	// Changes on one table advance one at a time.
	for _, sc := range stored {
		if sc.ID != id && sc.Table.Equal(en.state.Table) && inFlight(sc) {
			return nil, fmt.Errorf("change %s on the same table %s is in flight (%d of %d phases applied): changes on one table advance one at a time; finish or roll it back before adopting %s: %w",
				sc.ID, sc.Table, sc.Applied, sc.Total, id, ErrInput)
		}
	}
	return en, nil
}

// adoptTarget is the number of phases applied once phase is adopted.
func adoptTarget(en *entry, phase string) (int, error) {
	var names []string
	for i, p := range en.plan.Phases {
		if p.Name == phase {
			return i + 1, nil
		}
		names = append(names, p.Name)
	}
	return 0, fmt.Errorf("change %q has no phase %q (its phases: %s): %w", en.state.ID, phase, strings.Join(names, ", "), ErrInput)
}

// adoptBefore names the phase to adopt so that phase idx runs next.
func adoptBefore(en *entry, idx int) string {
	if idx == 0 {
		return "none (leave the change to planner next)"
	}
	return en.plan.Phases[idx-1].Name
}

func (en *entry) key() []string {
	if en.state.Catalog != nil {
		return en.state.Catalog.Key
	}
	return nil
}

// adoptChecks probes every statement of phases 1..target in tx, and
// refuses the first whose effect is missing.
func (e *Engine) adoptChecks(ctx context.Context, tx pgx.Tx, en *entry, target int, res *AdoptResult) error {
	type ref struct {
		phase, idx int
		s          phases.Statement
	}
	var all []ref
	for pi := 0; pi < target; pi++ {
		for si, s := range en.plan.Phases[pi].Statements {
			all = append(all, ref{pi, si, s})
		}
	}
	var missing []string
	for i, r := range all {
		p := en.plan.Phases[r.phase]
		check := AdoptCheck{Phase: p.Name, PhaseIndex: r.phase, Statement: r.idx + 1, SQL: r.s.SQL}
		superseded := false
		for _, later := range all[i+1:] {
			superseded = superseded || r.s.Object != "" && later.s.Object == r.s.Object
		}
		probeSQL := r.s.Done
		if probeSQL == "" {
			probeSQL = r.s.Effect
		}
		switch {
		case superseded:
			check.Result = CheckSuperseded
		case probeSQL == "":
			return fmt.Errorf("change %q phase %d %s statement %d (%s): the planner has no way to read its effect from the catalogs, so it cannot be adopted past this phase: %w",
				en.state.ID, r.phase+1, p.Name, r.idx+1, oneLine(r.s.SQL, 120), ErrInput)
		default:
			done, err := probe(ctx, tx, phases.Statement{Done: probeSQL})
			if err != nil {
				return fmt.Errorf("change %q phase %d %s statement %d: check: %w", en.state.ID, r.phase+1, p.Name, r.idx+1, err)
			}
			check.Result = CheckInPlace
			if !done {
				check.Result = CheckMissing
				missing = append(missing, fmt.Sprintf("phase %d %s, statement %d: %s", r.phase+1, p.Name, r.idx+1, oneLine(r.s.SQL, 160)))
			}
		}
		res.Checks = append(res.Checks, check)
	}
	if len(missing) > 0 {
		return fmt.Errorf("change %q: the database is not in the state its phases up to %s leave; the effect of %d statement(s) is missing: %s; nothing was recorded: run them (planner plan --format sql prints them), or adopt an earlier phase and let planner next run the rest: %w",
			en.state.ID, en.plan.Phases[target-1].Name, len(missing), strings.Join(missing, "; "), ErrInput)
	}
	return nil
}

// adoptFlags works out the change's flags at phase target and which of
// them the adoption publishes; stored flags ahead of the phase (a value
// only a later phase publishes) refuse: applications were told more.
func adoptFlags(ctx context.Context, tx pgx.Tx, schema string, en *entry, target int, res *AdoptResult) error {
	seen := map[string]map[string]bool{}
	for _, p := range en.plan.Phases[:target] {
		for k, v := range p.Flags {
			res.Flags[k] = v
			if seen[k] == nil {
				seen[k] = map[string]bool{}
			}
			seen[k][v] = true
		}
		for k, v := range p.RollbackFlags {
			if seen[k] == nil {
				seen[k] = map[string]bool{}
			}
			seen[k][v] = true
		}
	}
	stored, err := flags.List(ctx, tx, schema)
	if err != nil {
		return err
	}
	have := map[string]string{}
	for _, f := range stored {
		have[f.Key] = f.Variant
		if _, ours := res.Flags[f.Key]; f.ChangeID == en.state.ID && !ours {
			return fmt.Errorf("change %q: flag %s is published (%q, by phase %s) but no phase up to %s publishes it: applications were told the change is further along; nothing was recorded: adopt that phase, or roll the flags back first: %w",
				en.state.ID, f.Key, f.Variant, f.Phase, en.plan.Phases[target-1].Name, ErrInput)
		}
	}
	keys := make([]string, 0, len(res.Flags))
	for k := range res.Flags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cur, ok := have[k]
		switch {
		case ok && cur == res.Flags[k]:
		case !ok || seen[k][cur]:
			res.Published = append(res.Published, k)
		default:
			return fmt.Errorf("change %q: flag %s is %q, a value no phase up to %s publishes: applications were told the change is further along; nothing was recorded: adopt the phase that publishes it, or roll the flags back first: %w",
				en.state.ID, k, cur, en.plan.Phases[target-1].Name, ErrInput)
		}
	}
	return nil
}

// checkBackfill runs the read-only row check of backfill phase idx.
func (e *Engine) checkBackfill(ctx context.Context, en *entry, idx int) (AdoptBackfill, error) {
	work := *en.plan.Phases[idx].Backfill
	schema := work.Schema
	if schema == "" {
		schema = "public"
	}
	b := AdoptBackfill{Phase: en.plan.Phases[idx].Name, Table: schema + "." + work.Table, Column: work.Column}
	r, err := backfill.Check(ctx, e.Pool, work, en.key(), 0)
	if err != nil {
		if errors.Is(err, backfill.ErrNoKey) {
			err = fmt.Errorf("%w: %w", err, ErrInput)
		}
		return b, fmt.Errorf("change %q phase %d %s: %w", en.state.ID, idx+1, b.Phase, err)
	}
	b.Rows, b.Differ, b.Example = r.Rows, r.Differ, r.Describe()
	return b, nil
}

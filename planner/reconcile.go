// Reconciling spec files with stored state: which changes are known, which
// are new (registered with their spec and table snapshot), and which were
// edited after they started (refused). Stored changes compile from their
// stored spec, so a deploy runs what was registered.

package planner

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

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
	// refused: why this planner refuses the change, compiling it to
	// other phases than those registered (Status only; next refuses).
	refused error
}

func (en *entry) tableKey() TableName { return en.state.Table.Key() }

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
			en, err := e.compileStoredLenient(c, lenient)
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
			en, err := e.compileStoredLenient(c, lenient)
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
		en, err := e.compileStoredLenient(c, lenient)
		if err != nil {
			return nil, err
		}
		entries = append(entries, en)
	}
	if !dryRun {
		if err := e.fillFingerprints(ctx, entries); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// register prepares the state row of a new spec. A spec that does not fit the live schema is
// refused (ErrInput), unless an earlier change on the same table is still to
// finish (it may add the column this one needs): then the spec is checked
// when it starts.
func (e *Engine) register(ctx context.Context, s Spec, version int, earlier []*entry) (*entry, error) {
	// An earlier change still to finish on the same table (or on the
	// names a rename links to it) may create the table or the column this
	// one needs.
	pending := func() bool {
		links := linkedTables(earlier)
		links.link(tableKeys(s.Change))
		for _, en := range earlier {
			if links.find(en.tableKey()) == links.find(s.Change.Table().Key()) && en.state.Status != StatusDone && en.state.Order < s.Order {
				return true
			}
		}
		return false
	}
	c, err := e.newChangeState(ctx, e.Pool, s, version)
	if err != nil && errors.Is(err, ErrInput) && s.Change != nil && pending() {
		// Its table does not exist yet: checked when it starts.
		c, err = e.changeState(s, version, nil)
	}
	if err != nil {
		return nil, err
	}
	plan, err := Compile(s, Target{Version: c.ServerVersion, Table: c.Catalog})
	if err != nil {
		if !pending() || !errors.Is(err, ErrInput) {
			return nil, err
		}
		// Checked against the live schema when it starts.
		c.Catalog = nil
		if plan, err = Compile(s, Target{Version: c.ServerVersion}); err != nil {
			return nil, err
		}
	}
	c.Total = len(plan.Phases)
	if c.Fingerprint, err = storedFingerprints(c); err != nil {
		return nil, err
	}
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
func (e *Engine) newChangeState(ctx context.Context, q Querier, s Spec, version int) (*ChangeState, error) {
	if s.Change == nil {
		return nil, fmt.Errorf("change %q has no fields: %w", s.ID, ErrInput)
	}
	name := s.Change.Table()
	if createsTable(s.Change) {
		// The table must not exist; there is nothing to snapshot.
		if _, err := LoadTable(ctx, q, name); err == nil {
			return nil, fmt.Errorf("change %q (%s:%d): table %s already exists: %w", s.ID, s.File, s.Line, name, ErrInput)
		} else if !errors.Is(err, ErrInput) {
			return nil, err
		}
		return e.changeState(s, version, nil)
	}
	table, err := loadTable(ctx, q, name)
	if err != nil {
		return nil, fmt.Errorf("change %q (%s:%d): %w", s.ID, s.File, s.Line, err)
	}
	if err := resolveExpressions(ctx, e.Pool, table, s.Change); err != nil {
		return nil, fmt.Errorf("change %q (%s:%d): volatility of its expressions: %w", s.ID, s.File, s.Line, err)
	}
	return e.changeState(s, version, table)
}

// changeState is the state row of a spec with the given snapshot (nil: the
// table does not exist yet).
func (e *Engine) changeState(s Spec, version int, table *Table) (*ChangeState, error) {
	enc, err := encodeSpec(s)
	if err != nil {
		return nil, err
	}
	return &ChangeState{
		ID: s.ID, File: s.File, Order: s.Order, Kind: s.Kind, Table: s.Change.Table(), Checksum: s.Checksum,
		Spec: enc, Catalog: table, ServerVersion: version, Status: StatusPending,
	}, nil
}

// loadTable snapshots a table; a missing table is an ErrInput.
func loadTable(ctx context.Context, q Querier, name TableName) (*Table, error) {
	t, err := LoadTable(ctx, q, name)
	if errors.Is(err, ErrInput) {
		return nil, fmt.Errorf("%w (check the spec's table; schema-qualify it when it is not in public)", err)
	}
	return t, err
}

// compileStored decodes a stored change and compiles it against its
// snapshot, so every deploy runs the phases it was registered with; it
// refuses (ErrConfig) a change this planner compiles to other phases.
func (e *Engine) compileStored(c *ChangeState) (*entry, error) {
	return e.compileStoredLenient(c, false)
}

// compileStoredLenient is compileStored; with lenient, a change this
// planner compiles to other phases comes back with the refusal in its
// refused field, so that status can show it beside the others.
func (e *Engine) compileStoredLenient(c *ChangeState, lenient bool) (*entry, error) {
	spec, err := decodeSpec(c.Spec)
	if err != nil {
		return nil, fmt.Errorf("stored change %q: %w", c.ID, err)
	}
	spec.File, spec.Order = c.File, c.Order
	plan, err := compileStoredPlan(spec, c)
	if err != nil {
		return nil, fmt.Errorf("stored change %q: %w", c.ID, err)
	}
	en := &entry{state: c, spec: spec, plan: plan}
	if err := compiledDrift(c, plan); err != nil {
		if !lenient {
			return nil, err
		}
		en.refused = err
		return en, nil
	}
	c.Total = len(plan.Phases)
	return en, nil
}

// compiledDrift refuses a stored change whose phases this planner compiles
// differently from the planner that registered it.
func compiledDrift(c *ChangeState, plan Plan) error {
	if c.Total != len(plan.Phases) && c.Total != 0 {
		return fmt.Errorf("stored change %q has %d phases but this planner compiles %d: finish it, or roll it back, with the planner version that started it: %w", c.ID, c.Total, len(plan.Phases), ErrConfig)
	}
	// A change not started yet is compiled afresh when it starts
	// (advance), and a finished one runs nothing more unless rolled back
	// (Rollback checks it then).
	if inFlight(c) {
		return fingerprintDrift(c, plan)
	}
	return nil
}

// fillFingerprints stores the fingerprints of the in-flight changes
// registered before fingerprints were stored: from now on a planner that
// compiles them differently refuses them.
func (e *Engine) fillFingerprints(ctx context.Context, entries []*entry) error {
	for _, en := range entries {
		c := en.state
		if len(c.Fingerprint) > 0 || !inFlight(c) {
			continue
		}
		c.Fingerprint = fingerprints(en.plan)
		if err := e.state().fillFingerprint(ctx, e.Pool, c.ID, c.Fingerprint); err != nil {
			return fmt.Errorf("record the phase fingerprints of change %q: %w", c.ID, err)
		}
	}
	return nil
}

// linkedTables groups the table names that renames link.
func linkedTables(entries []*entry) tableGroups {
	g := tableGroups{}
	for _, en := range entries {
		g.link(append([]TableName{en.tableKey()}, tableKeys(en.spec.Change)...))
	}
	return g
}

// byTable groups entries per table (a renamed table's old and new names
// being one), each group in spec order, groups in
// the order of their first change.
func byTable(entries []*entry) [][]*entry {
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i].state, entries[j].state
		if a.Order != b.Order {
			return a.Order < b.Order
		}
		return a.ID < b.ID
	})
	links := linkedTables(entries)
	var groups [][]*entry
	index := map[TableName]int{}
	for _, en := range entries {
		k := links.find(en.tableKey())
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

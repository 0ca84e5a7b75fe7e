package planner

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pgplanner/planner/phases"
)

// copyColumn is the shared machinery of rename_column, change_column_type
// and alter_column: a new column kept equal to the old one by the sync
// trigger, backfilled, enforced like the old one (plus what alter_column
// adds), then the old one renamed to a tombstone (contract, reversible)
// and dropped a deploy later (purge).
type copyColumn struct {
	table    TableName
	old, new string
	// newField is the spec field naming the new column, for problems.
	newField string
	// newType ("" keeps the old type), up and down convert between the
	// columns (change_column_type, alter_column).
	newType, up, down  string
	upLabel, downLabel phases.FunctionLabel
	// alter is what alter_column gives the new column beyond the old
	// one's; nil for the other kinds.
	alter *alteration
	// version is the server's major version (set by compileCopyColumn).
	version int
}

// alteration is what the new column gets that the old one does not have.
type alteration struct {
	notNull bool
	// dropNotNull: the new column stays nullable where the old one is NOT
	// NULL, and enforce drops the old one's NOT NULL.
	dropNotNull bool
	// defaultExpr replaces the old column's default (set at contract).
	defaultExpr string
	// check is a CHECK on the new column, added NOT VALID then validated.
	check *phases.Constraint
	// unique names a unique constraint on the new column ("": none).
	unique string
}

// flagVariants returns the read/write flags for a change id.
func flagVariants(id, read, write string) phases.Flags {
	return phases.Flags{id + ".read": read, id + ".write": write}
}

// offlineType is the placeholder for a column type that only the live
// catalog knows.
func offlineType(t TableName, column string) string {
	return fmt.Sprintf("/* type of %s.%s */", t, column)
}

// copyColumnProblems lists what makes a copy of old impossible online.
func copyColumnProblems(t *Table, oldField, old, newField, new string) []Problem {
	var ps []Problem
	c := t.Column(old)
	if c == nil {
		return []Problem{{Field: oldField, Message: fmt.Sprintf("column %q does not exist on %s", old, t.Name), Hint: "check the column name" + nearest(old, columnNames(t))}}
	}
	if t.Column(new) != nil {
		ps = append(ps, Problem{Field: newField, Message: fmt.Sprintf("column %q already exists on %s", new, t.Name), Hint: "pick a name that is not taken"})
	}
	if c.Generated {
		ps = append(ps, Problem{Field: oldField, Message: fmt.Sprintf("%s.%s is an identity or generated column; the sync trigger cannot write it", t.Name, old),
			Hint: "keep the column and expose the new name in a view, or add a new plain column (add_column with a backfill), move the application to it, then drop_column the old one"})
	}
	if slices.Contains(t.Key, old) || primaryKeyHas(t, old) {
		ps = append(ps, Problem{Field: oldField, Message: fmt.Sprintf("%s.%s is part of the table's key (%s); dropping it at contract would drop the key", t.Name, old, strings.Join(t.Key, ", ")),
			Hint: "key columns cannot be moved online; keep the name, or add a new column with a unique index first and make it the key in a maintenance window"})
	}
	if strings.Contains(c.Default, "nextval(") {
		ps = append(ps, Problem{Field: oldField, Message: fmt.Sprintf("%s.%s takes its default from a sequence the column owns; dropping the column at contract would drop the sequence", t.Name, old),
			Hint: "run ALTER SEQUENCE ... OWNED BY NONE first, or keep the column"})
	}
	for _, ix := range t.Indexes {
		if slices.Contains(ix.Columns, old) && ix.Constraint != "" && !ix.Primary && constraintByName(t, ix.Constraint) == nil {
			ps = append(ps, Problem{Field: oldField, Message: fmt.Sprintf("%s.%s is used by the exclusion constraint %s, which cannot be copied online", t.Name, old, ix.Constraint),
				Hint: "drop the exclusion constraint first or keep the column"})
		}
	}
	return ps
}

func copyColumnLive(t *Table, oldField, old, newField, new string) []Problem {
	return copyColumnProblems(t, oldField, old, newField, new)
}

func columnNames(t *Table) []string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return names
}

func primaryKeyHas(t *Table, column string) bool {
	for _, ix := range t.Indexes {
		if ix.Primary && slices.Contains(ix.Columns, column) {
			return true
		}
	}
	return false
}

func constraintByName(t *Table, name string) *Constraint {
	for i := range t.Checks {
		if t.Checks[i].Name == name {
			return &t.Checks[i]
		}
	}
	return nil
}

// copyName names the copy of an index or constraint: the old column's name
// replaced by the new one (its last occurrence, so a table named like the
// column keeps its prefix), else "<name>_<new>"; cut to 63 bytes.
func copyName(name, old, new string) string {
	if i := strings.LastIndex(name, old); i >= 0 && old != "" {
		return phases.FitName(name[:i] + new + name[i+len(old):])
	}
	return phases.FitName(name + "_" + new)
}

func compileCopyColumn(id string, target Target, cc copyColumn) ([]phases.Phase, error) {
	t := cc.table
	schema := t.SchemaOrPublic()
	oldType, notNull, def := offlineType(t, cc.old), true, ""
	if target.Table != nil {
		if ps := copyColumnProblems(target.Table, "column", cc.old, cc.newField, cc.new); len(ps) > 0 {
			return nil, problemsError(ps)
		}
		c := target.Table.Column(cc.old)
		oldType, notNull, def = c.Type, c.NotNull, c.Default
	}
	newType := oldType
	if cc.newType != "" {
		newType = cc.newType
	}
	sync := phases.Sync{ID: id, Table: t, Old: cc.old, New: cc.new,
		OldType: oldType, NewType: newType, Up: cc.up, Down: cc.down,
		UpLabel: cc.upLabel, DownLabel: cc.downLabel}
	newCol := phases.Column{Table: t, Name: cc.new}
	oldCol := phases.Column{Table: t, Name: cc.old}

	what := fmt.Sprintf("copy of %s.%s", t, cc.old)
	if cc.newType != "" {
		what = fmt.Sprintf("%s copy of %s.%s", cc.newType, t, cc.old)
	}
	expand := phases.Phase{
		Name: "expand",
		Purpose: fmt.Sprintf("add %s (nullable) as the %s and a trigger that keeps both columns equal whichever one an application writes",
			cc.new, what),
		Statements:    append([]phases.Statement{newCol.Add(newType)}, sync.Install()...),
		Flags:         flagVariants(id, "old", "old"),
		Rollback:      append(sync.Remove(), newCol.Drop()),
		RollbackFlags: nil,
	}
	backfill := phases.Phase{
		Name:    "backfill",
		Purpose: fmt.Sprintf("copy %s into %s for existing rows, in batches (rows written meanwhile are kept equal by the trigger)", cc.old, cc.new),
		Backfill: &phases.Backfill{Schema: schema, Table: t.Name, Column: cc.new, Expr: sync.UpExpr(phases.Ident(cc.old)),
			KeptBy: sync.TriggerName()},
	}
	dual := phases.Phase{
		Name:          "dual_write",
		Purpose:       fmt.Sprintf("applications read %s and write both columns", cc.new),
		Gate:          phases.BackfillVerified,
		Flags:         flagVariants(id, "new", "both"),
		RollbackFlags: flagVariants(id, "old", "old"),
	}
	enforce := phases.Phase{
		Name:          "enforce",
		Gate:          phases.FlagsLoaded,
		Flags:         flagVariants(id, "new", "new"),
		RollbackFlags: flagVariants(id, "new", "both"),
	}
	var forward, back []phases.Statement
	var did []string
	add := func(what string, st []phases.Statement, rb []phases.Statement) {
		did = append(did, what)
		forward = append(forward, st...)
		back = append(rb, back...) // undo in reverse order
	}
	dropNotNull := cc.alter != nil && cc.alter.dropNotNull
	if notNull && !dropNotNull || cc.alter != nil && cc.alter.notNull {
		nn := phases.NotNull{Column: newCol, Version: target.Version}
		add("NOT NULL", nn.Statements(), nn.Rollback())
	}
	if notNull && dropNotNull {
		// From enforce on applications may write NULL to the new column;
		// the trigger copies it into the old one (and, after the contract,
		// its tombstone), which must take it. Rolling back enforces NOT
		// NULL on the old column again, and fails while it holds NULL.
		nn := phases.NotNull{Column: oldCol, Version: target.Version}
		add("NOT NULL dropped from "+cc.old, []phases.Statement{oldCol.DropNotNull()}, nn.Statements())
	}
	var contractFirst []phases.Statement
	var named []dependentCopy // what enforce creates, for name clashes
	if target.Table != nil {
		cc.version = target.Version
		copies, err := copyDependents(target.Table, cc, contractFirst)
		if err != nil {
			return nil, err
		}
		for _, c := range copies.steps {
			add(c.what, c.forward, c.back)
		}
		named = copies.steps
		contractFirst = copies.contractFirst
		if copies.perPartition {
			enforce.Partitions = target.Table.Partitioning.refs()
		}
	}
	if cc.alter != nil {
		steps, err := alterationSteps(target.Table, cc, newCol)
		if err != nil {
			return nil, err
		}
		for _, c := range steps {
			add(c.what, c.forward, c.back)
		}
		if err := distinctNames(append(named, steps...), t); err != nil {
			return nil, err
		}
	}
	enforce.Statements, enforce.Rollback = forward, back
	if len(did) == 0 {
		did = []string{"nothing to copy"}
	}
	gives := "what " + cc.old + " has"
	if cc.alter != nil {
		gives += " and what the change adds"
	}
	enforce.Purpose = fmt.Sprintf("give %s %s (%s); applications stop writing %s (the trigger still fills it for older instances)",
		cc.new, gives, strings.Join(did, ", "), cc.old)

	var newDefault []phases.Statement
	if cc.alter != nil && cc.alter.defaultExpr != "" {
		def = cc.alter.defaultExpr
	} else if def != "" && cc.newType != "" {
		def = fmt.Sprintf("CAST((%s) AS %s)", def, newType)
	}
	if def != "" {
		d := def
		// Set only at contract: while old applications may write the old
		// column, a default on the new one would override what they write.
		newDefault = []phases.Statement{newCol.SetDefault(d)}
	}
	if target.LegacyContract {
		return []phases.Phase{expand, backfill, dual, enforce, legacyCopyContract(id, cc, sync, oldCol, contractFirst, newDefault)}, nil
	}
	// The old column becomes a tombstone. It keeps its NOT NULL, default,
	// indexes and constraints: nothing writes it under its new name but the
	// trigger, which fills it from the new column on every write exactly as
	// during enforce, so it stays current and a rollback needs no scan.
	tomb := phases.TombstoneName(id, cc.old)
	tombCol := phases.Column{Table: t, Name: tomb}
	contract := phases.Phase{
		Name: "contract",
		Purpose: fmt.Sprintf("rename %s to the tombstone %s (instant, keeping its data, which the trigger keeps current); %s is the only column applications see; rollback renames it back",
			cc.old, tomb, cc.new),
		Gate:  phases.FlagsSoaked,
		Flags: flagVariants(id, "new", "new"),
	}
	contract.Statements = append([]phases.Statement{oldCol.Rename(tomb), sync.Retarget(tomb)}, newDefault...)
	if len(newDefault) > 0 {
		contract.Rollback = []phases.Statement{newCol.DropDefault()}
	}
	contract.Rollback = append(contract.Rollback, tombCol.Rename(cc.old), sync.Retarget(cc.old))
	purge := phases.Phase{
		Name:    "purge",
		Purpose: fmt.Sprintf("drop the trigger, its functions and the tombstone %s (the old %s)", tomb, cc.old),
		Gate:    phases.PurgeAfter,
		Irreversible: fmt.Sprintf("drops %s.%s (the old %s) and its data (%s holds all of it); to go back, declare a new change",
			t, tomb, cc.old, cc.new),
	}
	purge.Statements = append(purge.Statements, contractFirst...)
	purge.Statements = append(purge.Statements, sync.Remove()...)
	purge.Statements = append(purge.Statements, tombCol.Drop())
	return []phases.Phase{expand, backfill, dual, enforce, contract, purge}, nil
}

// legacyCopyContract is the irreversible contract of changes registered
// before contracts were reversible.
func legacyCopyContract(id string, cc copyColumn, sync phases.Sync, oldCol phases.Column, contractFirst, newDefault []phases.Statement) phases.Phase {
	contract := phases.Phase{
		Name:    "contract",
		Purpose: fmt.Sprintf("drop the trigger and %s; %s is the only column left", cc.old, cc.new),
		Gate:    phases.FlagsSoaked,
		Flags:   flagVariants(id, "new", "new"),
		Irreversible: fmt.Sprintf("drops %s.%s and its data (%s holds all of it); to go back, declare a new change",
			cc.table, cc.old, cc.new),
	}
	contract.Statements = append(contract.Statements, contractFirst...)
	contract.Statements = append(contract.Statements, sync.Remove()...)
	contract.Statements = append(contract.Statements, newDefault...)
	contract.Statements = append(contract.Statements, oldCol.Drop())
	return contract
}

type dependentCopy struct {
	what, name    string
	forward, back []phases.Statement
}

type dependentCopies struct {
	steps []dependentCopy
	// contractFirst runs before the old column is dropped (purge):
	// foreign keys on other tables that reference the old column depend on
	// its unique index and would block the DROP COLUMN.
	contractFirst []phases.Statement
	// perPartition: some step runs once per partition (kind_partitioned.go).
	perPartition bool
}

// copyDependents builds, from the catalog snapshot, the indexes and
// constraints of old re-created on new: plain indexes concurrently, unique
// constraints through a concurrent unique index, checks and foreign keys
// NOT VALID then validated, foreign keys of other tables re-pointed.
func copyDependents(t *Table, cc copyColumn, _ []phases.Statement) (dependentCopies, error) {
	var out dependentCopies
	schema := t.Name.SchemaOrPublic()
	cantRewrite := func(kind, name, def string) error {
		return problemsError([]Problem{{Field: "column", Message: fmt.Sprintf("cannot rewrite the %s %s (%s) for the new column", kind, name, def),
			Hint: "drop and re-create it yourself around this change"}})
	}
	// Unique constraints first, plain indexes next: foreign keys referencing
	// the new column need one of them to exist.
	for _, c := range t.Checks {
		if c.Type != "u" || !slices.Contains(c.Columns, cc.old) {
			continue
		}
		var backing *Index
		for i := range t.Indexes {
			if t.Indexes[i].Constraint == c.Name {
				backing = &t.Indexes[i]
			}
		}
		if backing == nil {
			return out, cantRewrite("unique constraint", c.Name, c.Definition)
		}
		body, ok := indexBody(backing.Definition, cc.old, cc.new)
		if !ok {
			return out, cantRewrite("unique constraint", c.Name, c.Definition)
		}
		u := phases.Unique{Index: phases.Index{Table: t.Name, Name: copyName(c.Name, cc.old, cc.new), Unique: true, Body: body}}
		if t.Partitioning != nil {
			step, err := partitionedUniqueCopy(t, c, *backing, u.Index, cc)
			if err != nil {
				return out, err
			}
			out.steps, out.perPartition = append(out.steps, step), true
			continue
		}
		attach := u.Attach()
		if i := strings.Index(c.Definition, " DEFERRABLE"); i >= 0 {
			attach.SQL += c.Definition[i:]
		}
		fwd := append(u.Index.Create(), attach)
		out.steps = append(out.steps, dependentCopy{what: "unique " + u.Name, name: u.Name, forward: fwd, back: append([]phases.Statement{u.DropConstraint()}, u.Index.Drop()...)})
	}
	for _, ix := range t.Indexes {
		if ix.Primary || ix.Constraint != "" || !slices.Contains(ix.Columns, cc.old) {
			continue
		}
		body, ok := indexBody(ix.Definition, cc.old, cc.new)
		if !ok {
			return out, cantRewrite("index", ix.Name, ix.Definition)
		}
		n := phases.Index{Table: t.Name, Name: copyName(ix.Name, cc.old, cc.new), Unique: ix.Unique, Body: body}
		if t.Partitioning != nil {
			step, err := partitionedIndexCopy(t, n)
			if err != nil {
				return out, err
			}
			out.steps, out.perPartition = append(out.steps, step), true
			continue
		}
		out.steps = append(out.steps, dependentCopy{what: "index " + n.Name, name: n.Name, forward: n.Create(), back: n.Drop()})
	}
	for _, c := range t.Checks {
		if c.Type == "u" {
			continue
		}
		selfRef := false
		var ref *phases.TableRef
		if c.Type == "f" {
			rt, ok := referencedTable(c.Definition)
			if !ok {
				return out, cantRewrite("foreign key", c.Name, c.Definition)
			}
			selfRef = rt.Equal(t.Name)
			ref = &rt
		}
		def, notValid := strings.CutSuffix(c.Definition, " NOT VALID")
		what := "check "
		if c.Type == "f" {
			what = "foreign key "
			renamed, ok := renameFK(def, cc.old, cc.new, true, selfRef)
			if !ok {
				return out, cantRewrite("foreign key", c.Name, c.Definition)
			}
			if renamed == def {
				continue // old is neither a referencing nor a referenced column
			}
			def = renamed
		} else {
			if !slices.Contains(c.Columns, cc.old) {
				continue
			}
			def = renameInExpr(def, cc.old, cc.new)
		}
		validate := !notValid
		k := phases.Constraint{Table: t.Name, Name: copyName(c.Name, cc.old, cc.new), Definition: def, References: ref}
		if t.Partitioning != nil && c.Type == "f" && !notValidOnParent(cc.version) {
			step, err := partitionedForeignKeyCopy(t, k, validate)
			if err != nil {
				return out, err
			}
			out.steps, out.perPartition = append(out.steps, step), true
			continue
		}
		fwd := []phases.Statement{k.AddNotValid()}
		if validate {
			fwd = append(fwd, k.Validate())
		}
		out.steps = append(out.steps, dependentCopy{what: what + k.Name, name: k.Name, forward: fwd, back: []phases.Statement{k.Drop()}})
	}
	for _, c := range t.Referencing {
		if !slices.Contains(c.Columns, cc.old) {
			continue
		}
		if err := partitionedReferrerProblem(t, c, cc.version); err != nil {
			return out, err
		}
		if taken := constraintOn(c.Table, copyName(c.Name, cc.old, cc.new), t); taken {
			return out, nameTaken(copyName(c.Name, cc.old, cc.new), c.Table)
		}
		def, notValid := strings.CutSuffix(c.Definition, " NOT VALID")
		def, ok := renameFK(def, cc.old, cc.new, false, true)
		if !ok {
			return out, cantRewrite("foreign key", c.Name, c.Definition)
		}
		other := c.Table
		k := phases.Constraint{Table: other, Name: copyName(c.Name, cc.old, cc.new), Definition: def,
			References: &phases.TableRef{Schema: schema, Name: t.Name.Name}}
		fwd := []phases.Statement{k.AddNotValid()}
		if !notValid {
			fwd = append(fwd, k.Validate())
		}
		out.steps = append(out.steps, dependentCopy{what: fmt.Sprintf("foreign key %s on %s", k.Name, c.Table), forward: fwd, back: []phases.Statement{k.Drop()}})
		old := phases.Constraint{Table: other, Name: c.Name, References: k.References}
		out.contractFirst = append(out.contractFirst, old.Drop())
	}
	// A copy must not take a name already in use: the probes would mistake
	// the existing object for the copy.
	taken := map[string]bool{}
	for _, ix := range t.Indexes {
		taken[ix.Name] = true
	}
	for _, c := range t.Checks {
		taken[c.Name] = true
	}
	for _, st := range out.steps {
		if st.name != "" && taken[st.name] {
			return out, nameTaken(st.name, t.Name)
		}
		taken[st.name] = true
	}
	return out, nil
}

func nameTaken(name string, t TableName) error {
	return problemsError([]Problem{{Field: "column", Message: fmt.Sprintf("the copy of an index or constraint would be named %q, which %s already uses", name, t),
		Hint: "rename the existing index or constraint first"}})
}

// constraintOn reports whether the referencing table already has a
// constraint of that name, as far as the snapshot knows (foreign keys to t).
func constraintOn(table TableName, name string, t *Table) bool {
	for _, c := range t.Referencing {
		if c.Table == table && c.Name == name {
			return true
		}
	}
	return false
}

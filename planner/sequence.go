package planner

// This file is the sequence model (described below). It is long because
// for every kind of effect the checks and the application to the model must
// agree, which is easiest to verify side by side.

import (
	"fmt"
	"slices"

	"github.com/pgplanner/planner/phases"
)

// The sequence model applies every declared change, in order, to a model
// of the schema, so that contradictions between changes (a column renamed
// and then dropped, two changes adding one name, a change on a column an
// earlier change removes) are refused before the first deploy rather than
// discovered at the sixth, after an irreversible contract. It also yields
// each change's table as it will be when the change starts, so a change on
// a column an earlier change adds is accepted.
//
// Online the model starts from the catalogs; offline from what the specs
// say: a column no change mentions is assumed to exist.

// effect is what a change needs from, and does to, its table.
type effect struct {
	uses    []colRef // columns that must exist when the change starts
	adds    []colAdd // columns that exist once it is done
	removes []colGone
	notNull string    // column made NOT NULL
	names   []objName // indexes and constraints it creates
	// drops are indexes and constraints it drops or renames away (how:
	// "dropped", `renamed to "x"`).
	drops    []objGone
	nullable string // column made nullable
	// alter, when set, changes the modeled catalog in ways the fields
	// above do not say (a rename, a default).
	alter func(t *Table)
	// exprs are expressions that may name the table's columns.
	exprs []fieldExpr
	// refTable/refCols: a foreign key's referenced columns.
	refTable TableName
	refCols  []colRef
	// creates: the table the change creates; renamesTo: the new name of
	// the table it renames; dropsTable: it drops its table.
	creates    *Table
	renamesTo  *TableName
	dropsTable bool
	// indexes and constraints are what names create in the modeled
	// catalog (their Table is filled in by the model).
	indexes     []Index
	constraints []Constraint
}

type colRef struct{ field, name string }

type colAdd struct {
	field, name, typ string
	notNull          bool
	from             string // copy of this column (rename, type change)
}

type colGone struct {
	name, how string // how: "dropped", `renamed to "x"`, ...
}

type objName struct {
	field, name string
	index       bool // an index (schema-wide name) or only a constraint (per table)
}

type fieldExpr struct{ field, expr string }

type objGone struct {
	objName
	how string
}

// effectOf is the change's effect; none for a kind that is no effecter.
func effectOf(s Spec) effect {
	if k, ok := s.Change.(effecter); ok {
		return k.effect(s.ID)
	}
	return effect{}
}

// modelTable is one table as the sequence has it so far.
type modelTable struct {
	// live is the table's modeled catalog; nil when its columns are
	// unknown (offline, or a table that does not exist).
	live *Table
	// snapshot is a copy of live handed out as a change's starting point;
	// nil once live changed since.
	snapshot *Table
	// cols records what changes did to columns, to name them in problems.
	cols map[string]*modelCol
	// changed: some earlier change of the sequence altered the table.
	changed bool
	// declared is the change that created the table or renamed another
	// to its name; gone the one that dropped it or renamed it away (how
	// says which).
	declared *Spec
	gone     *modelCol
}

// present says whether the table exists at this point; known is false
// offline for a table no change declares.
func (mt *modelTable) present(online bool) (exists, known bool) {
	switch {
	case mt.gone != nil:
		return false, true
	case mt.declared != nil:
		return true, true
	case online:
		return mt.live != nil, true
	}
	return false, false
}

type modelCol struct {
	present bool
	by      *Spec
	how     string // for a removed column
}

// sequence is the model of the whole schema.
type sequence struct {
	tables map[TableName]*modelTable // by TableName.Key()
	// indexNames are schema-wide; constraint names per table.
	indexNames      map[objKey]*Spec
	constraintNames map[objKey]*Spec
	// gone: indexes and constraints an earlier change dropped or renamed
	// away, keyed as constraint names are.
	gone map[objKey]goneBy
}

// objKey keys an index or constraint name: the table's Key, with only the
// schema for an index (index names are schema-wide).
type objKey struct {
	table TableName
	name  string
}

type goneBy struct {
	by  *Spec
	how string
}

// sequenceResult is the model's verdict per change id: the contradictions
// it found and, online, the table each change starts from.
type sequenceResult struct {
	Problems map[string][]Problem
	// Before is the change's table as the earlier changes leave it (online
	// only); Changed says whether an earlier change altered it, i.e.
	// whether Before differs from the catalog.
	Before  map[string]*Table
	Changed map[string]bool
}

// checkSequence applies specs in order to a model of the schema. live maps
// TableName.Key() to the catalog (nil: offline). started lists the ids
// of changes that already started: their effects are applied without
// checks, the catalog already showing part of them.
func checkSequence(specs []Spec, live map[TableName]*Table, started map[string]bool) sequenceResult {
	seq := &sequence{tables: map[TableName]*modelTable{}, indexNames: map[objKey]*Spec{}, constraintNames: map[objKey]*Spec{}, gone: map[objKey]goneBy{}}
	res := sequenceResult{Problems: map[string][]Problem{}, Before: map[string]*Table{}, Changed: map[string]bool{}}
	for i := range specs {
		s := &specs[i]
		if s.Change == nil {
			continue
		}
		mt := seq.table(s.Change.Table(), live)
		e := effectOf(*s)
		var ps []Problem
		if !started[s.ID] {
			ps = seq.check(s, mt, e, live)
		}
		if len(ps) > 0 {
			res.Problems[s.ID] = ps
		}
		if mt.live != nil {
			res.Before[s.ID] = mt.before()
			res.Changed[s.ID] = mt.changed
		}
		// A refused change is still applied, so that the changes after it
		// are judged against what it declares rather than twice.
		if e.renamesTo != nil {
			seq.table(*e.renamesTo, live)
		}
		seq.apply(s, mt, e)
	}
	return res
}

func (seq *sequence) table(name TableName, live map[TableName]*Table) *modelTable {
	key := name.Key()
	if mt := seq.tables[key]; mt != nil {
		return mt
	}
	mt := &modelTable{cols: map[string]*modelCol{}}
	if t := live[key]; t != nil {
		mt.live = copyTable(t)
	}
	seq.tables[key] = mt
	return mt
}

// before is the table as the change finds it.
func (mt *modelTable) before() *Table {
	if mt.snapshot == nil {
		mt.snapshot = copyTable(mt.live)
	}
	return mt.snapshot
}

// exists reports whether column name exists at this point: false with the
// change that removed it, or false with nil when the catalog lacks it.
func (mt *modelTable) exists(name string) (bool, *modelCol) {
	if mc := mt.cols[name]; mc != nil {
		return mc.present, mc
	}
	if mt.live == nil {
		return true, nil // offline: assumed
	}
	return mt.live.Column(name) != nil, nil
}

// changeAt names a change and where it is declared.
func changeAt(s *Spec) string {
	return fmt.Sprintf("change %s (%s:%d)", s.ID, s.File, s.Line)
}

func (seq *sequence) check(s *Spec, mt *modelTable, e effect, live map[TableName]*Table) []Problem {
	var ps []Problem
	name := s.Change.Table()
	if ps := seq.tableProblems(s, mt, e, live); len(ps) > 0 {
		return ps
	}
	for _, u := range e.uses {
		ps = append(ps, usesProblem(mt, name, u)...)
	}
	if len(e.refCols) > 0 {
		rt := seq.table(e.refTable, live)
		for _, u := range e.refCols {
			ps = append(ps, usesProblem(rt, e.refTable, u)...)
		}
	}
	for _, a := range e.adds {
		if mc := mt.cols[a.name]; mc != nil && mc.present && mc.by != nil {
			ps = append(ps, Problem{Field: a.field,
				Message: fmt.Sprintf("column %q is also added to %s by %s, which comes earlier: two changes cannot produce one name", a.name, name, changeAt(mc.by)),
				Hint:    "pick another name for one of them"})
		}
	}
	for _, n := range e.names {
		if prev := seq.names(n)[seq.nameKey(name, n)]; prev != nil {
			what := "a constraint"
			if n.index {
				what = "an index"
			}
			ps = append(ps, Problem{Field: n.field,
				Message: fmt.Sprintf("%s named %q is also created by %s, which comes earlier: two changes cannot produce one name", what, n.name, changeAt(prev)),
				Hint:    "pick another name for one of them"})
		}
	}
	for _, d := range e.drops {
		if g, ok := seq.gone[seq.goneKey(name, d.objName)]; ok {
			ps = append(ps, Problem{Field: d.field,
				Message: fmt.Sprintf("%q of %s is %s by %s, which comes earlier", d.name, name, g.how, changeAt(g.by)),
				Hint:    "use its new name, order the changes the other way, or remove one of them"})
		}
	}
	// Expressions naming a column an earlier change removed.
	for _, x := range e.exprs {
		for _, col := range identifiersOf(x.expr) {
			if ok, mc := mt.exists(col); !ok && mc != nil {
				ps = append(ps, Problem{Field: x.field,
					Message: fmt.Sprintf("%q uses column %q, which is %s by %s, which comes earlier", oneLine(x.expr, 80), col, mc.how, changeAt(mc.by)),
					Hint:    "use the column's new name, or order the changes the other way"})
			}
		}
	}
	return ps
}

// tableProblems: the change's table was dropped or renamed away by an
// earlier change, a table it creates or renames to exists, a table it
// references is gone.
func (seq *sequence) tableProblems(s *Spec, mt *modelTable, e effect, live map[TableName]*Table) []Problem {
	name := s.Change.Table()
	online := live != nil
	if mt.gone != nil {
		return []Problem{{Field: "table", Message: fmt.Sprintf("table %s is %s by %s, which comes earlier", name, mt.gone.how, changeAt(mt.gone.by)),
			Hint: "use the table's new name, order the changes the other way, or remove one of them"}}
	}
	exists := func(mt *modelTable, field string, n TableName) []Problem {
		if ok, _ := mt.present(online); !ok {
			return nil
		}
		msg := fmt.Sprintf("table %s already exists", n)
		if mt.declared != nil {
			msg = fmt.Sprintf("table %s is also created by %s, which comes earlier", n, changeAt(mt.declared))
		}
		return []Problem{{Field: field, Message: msg, Hint: "pick another name, or drop the existing table first (drop_table)"}}
	}
	var ps []Problem
	if e.creates != nil {
		ps = append(ps, exists(mt, "table", name)...)
	}
	if e.renamesTo != nil {
		ps = append(ps, exists(seq.table(*e.renamesTo, live), "to", *e.renamesTo)...)
	}
	if e.refTable.Name != "" {
		if rt := seq.table(e.refTable, live); rt.gone != nil {
			ps = append(ps, Problem{Field: "references.table", Message: fmt.Sprintf("table %s is %s by %s, which comes earlier", e.refTable, rt.gone.how, changeAt(rt.gone.by)),
				Hint: "reference the table's new name, or order the changes the other way"})
		}
	}
	return ps
}

func usesProblem(mt *modelTable, table TableName, u colRef) []Problem {
	ok, mc := mt.exists(u.name)
	switch {
	case ok:
		return nil
	case mc != nil:
		return []Problem{{Field: u.field,
			Message: fmt.Sprintf("column %q of %s is %s by %s, which comes earlier", u.name, table, mc.how, changeAt(mc.by)),
			Hint:    "use the column's new name, order the changes the other way, or remove one of them"}}
	default:
		return []Problem{{Field: u.field, Message: fmt.Sprintf("column %q does not exist on %s", u.name, mt.live.Name),
			Hint: "check the column name" + nearest(u.name, columnNames(mt.live))}}
	}
}

func (seq *sequence) nameKey(t TableName, n objName) objKey {
	if n.index {
		return objKey{table: TableName{Schema: t.SchemaOrPublic()}, name: n.name}
	}
	return objKey{table: t.Key(), name: n.name}
}

// goneKey keys dropped objects; a unique constraint's index goes with it
// under the same name, so one key serves both kinds of name.
func (seq *sequence) goneKey(t TableName, n objName) objKey {
	return objKey{table: t.Key(), name: n.name}
}

func (seq *sequence) names(n objName) map[objKey]*Spec {
	if n.index {
		return seq.indexNames
	}
	return seq.constraintNames
}

// apply records the change's effect on the model.
func (seq *sequence) apply(s *Spec, mt *modelTable, e effect) {
	t := s.Change.Table()
	for _, d := range e.drops {
		delete(seq.names(d.objName), seq.nameKey(t, d.objName))
		seq.gone[seq.goneKey(t, d.objName)] = goneBy{by: s, how: d.how}
	}
	for _, n := range e.names {
		seq.names(n)[seq.nameKey(t, n)] = s
		delete(seq.gone, seq.goneKey(t, n))
	}
	switch {
	case e.creates != nil:
		if mt.live == nil || mt.gone != nil {
			mt.live = copyTable(e.creates) // a change already applied keeps the catalog's
		}
		mt.declared, mt.gone, mt.cols, mt.changed, mt.snapshot = s, nil, map[string]*modelCol{}, true, nil
		return
	case e.renamesTo != nil:
		nt := seq.tables[e.renamesTo.Key()]
		if nt.live == nil && mt.live != nil {
			nt.live = copyTable(mt.live)
			nt.live.Name = *e.renamesTo
		}
		nt.cols = mt.cols
		nt.declared, nt.gone, nt.changed, nt.snapshot = s, nil, true, nil
		mt.gone = &modelCol{by: s, how: fmt.Sprintf("renamed to %s", e.renamesTo)}
		return
	case e.dropsTable:
		mt.gone = &modelCol{by: s, how: "dropped"}
		return
	}
	if len(e.adds)+len(e.removes)+len(e.names)+len(e.drops) == 0 && e.notNull == "" && e.nullable == "" && e.alter == nil {
		return
	}
	mt.changed = true
	mt.snapshot = nil
	for _, a := range e.adds {
		mt.cols[a.name] = &modelCol{present: true, by: s}
		if mt.live != nil {
			mt.live.addColumn(a)
		}
	}
	for _, r := range e.removes {
		mt.cols[r.name] = &modelCol{by: s, how: r.how}
		if mt.live != nil {
			mt.live.removeColumn(r.name)
		}
	}
	if mt.live == nil {
		return
	}
	if c := mt.live.Column(e.notNull); c != nil {
		c.NotNull = true
	}
	if c := mt.live.Column(e.nullable); c != nil {
		c.NotNull = false
	}
	if e.alter != nil {
		e.alter(mt.live)
	}
	mt.live.Indexes = append(mt.live.Indexes, e.indexes...)
	for _, c := range e.constraints {
		c.Table = mt.live.Name
		mt.live.Checks = append(mt.live.Checks, c)
	}
}

func plainColumns(cols []string) []string {
	var out []string
	for _, c := range cols {
		if !phases.IsExpression(c) {
			out = append(out, c)
		}
	}
	return out
}

// addColumn adds a column: a copy of a.from when set (with a.typ as its
// new type, if any), taking over its indexes and constraints as the copy
// kinds re-create them.
func (t *Table) addColumn(a colAdd) {
	if t.Column(a.name) != nil {
		return // a change that already started: the catalog has it
	}
	c := Column{Name: a.name, Type: a.typ, NotNull: a.notNull}
	if src := t.Column(a.from); a.from != "" && src != nil {
		c = Column{Name: a.name, Type: src.Type, NotNull: src.NotNull, Default: src.Default}
		if a.typ != "" {
			c.Type = a.typ
		}
		for i := range t.Indexes {
			ix := &t.Indexes[i]
			if slices.Contains(ix.Columns, a.from) && !ix.Primary {
				t.Indexes = append(t.Indexes, Index{Name: copyName(ix.Name, a.from, a.name), Definition: renameInExpr(ix.Definition, a.from, a.name),
					Columns: replaced(ix.Columns, a.from, a.name), Unique: ix.Unique, Constraint: copyNameIf(ix.Constraint, a.from, a.name)})
			}
		}
		for _, k := range t.Checks {
			if slices.Contains(k.Columns, a.from) {
				t.Checks = append(t.Checks, Constraint{Name: copyName(k.Name, a.from, a.name), Table: k.Table, Type: k.Type,
					Definition: renameInExpr(k.Definition, a.from, a.name), Columns: replaced(k.Columns, a.from, a.name)})
			}
		}
	}
	t.Columns = append(t.Columns, c)
}

func copyNameIf(name, old, new string) string {
	if name == "" {
		return ""
	}
	return copyName(name, old, new)
}

// removeColumn drops a column and what depends on it.
func (t *Table) removeColumn(name string) {
	cols := t.Columns[:0:0]
	for _, c := range t.Columns {
		if c.Name != name {
			cols = append(cols, c)
		}
	}
	t.Columns = cols
	idx := t.Indexes[:0:0]
	for _, ix := range t.Indexes {
		if !slices.Contains(ix.Columns, name) {
			idx = append(idx, ix)
		}
	}
	t.Indexes = idx
	checks := t.Checks[:0:0]
	for _, k := range t.Checks {
		if !slices.Contains(k.Columns, name) {
			checks = append(checks, k)
		}
	}
	t.Checks = checks
	if slices.Contains(t.Key, name) {
		t.Key = []string{}
	}
}

func replaced(list []string, old, new string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		if s == old {
			s = new
		}
		out[i] = s
	}
	return out
}

// copyTable copies a table deeply enough for the model to change the copy.
func copyTable(t *Table) *Table {
	if t == nil {
		return nil
	}
	c := *t
	c.Columns = append([]Column{}, t.Columns...)
	c.Indexes = append([]Index{}, t.Indexes...)
	c.Checks = append([]Constraint{}, t.Checks...)
	c.Key = append([]string{}, t.Key...)
	c.Referencing = append([]Constraint{}, t.Referencing...)
	return &c
}

// identifiersOf lists the plain and quoted identifiers of an expression
// that are not function names: the columns it may read.
func identifiersOf(expr string) []string {
	if expr == "" {
		return nil
	}
	tokens := tokenize(expr)
	var out []string
	for i, tk := range tokens {
		if !tk.isIdent() {
			continue
		}
		prev, next := neighbour(tokens, i, -1), neighbour(tokens, i, +1)
		if next.text == "(" || next.text == "." || prev.text == "::" {
			continue
		}
		if !slices.Contains(out, tk.value()) {
			out = append(out, tk.value())
		}
	}
	return out
}

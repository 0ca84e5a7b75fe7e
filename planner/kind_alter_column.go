package planner

import (
	"fmt"
	"slices"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("alter_column", func() Kind { return &AlterColumn{} }) }

// AlterColumn makes several changes to one column in one change: a new
// column (named To) of the new type, made NOT NULL, with a new default, a
// check and a unique constraint, kept equal to the old one by the sync
// trigger, filled by one backfill and enforced in one phase; the old column
// is then retired as rename_column and change_column_type retire theirs.
type AlterColumn struct {
	TableName string `yaml:"table" json:"table"`
	Column    string `yaml:"column" json:"column"`
	// To names the new column; default "<column>_new".
	To string `yaml:"to,omitempty" json:"to,omitempty"`
	// Type is the new column's type; default the old column's.
	Type string `yaml:"type,omitempty" json:"type,omitempty"`
	// Up computes the new value from the old column (named as Column).
	Up string `yaml:"up,omitempty" json:"up,omitempty"`
	// Down computes the old value from the new column (named as To).
	Down string `yaml:"down,omitempty" json:"down,omitempty"`
	// NotNull true makes the new column NOT NULL; false makes it nullable
	// where the old column is NOT NULL; unset, it is as the old one.
	NotNull *bool `yaml:"not_null,omitempty" json:"not_null,omitempty"`
	// Default is the new column's default, replacing the old one's.
	Default string `yaml:"default,omitempty" json:"default,omitempty"`
	// CheckExpr is a CHECK on the new column, written with its name.
	CheckExpr string `yaml:"check,omitempty" json:"check,omitempty"`
	// CheckName defaults to <table>_<to>_check.
	CheckName string `yaml:"check_name,omitempty" json:"check_name,omitempty"`
	// Unique adds a unique constraint on the new column.
	Unique bool `yaml:"unique,omitempty" json:"unique,omitempty"`
	// UniqueName defaults to <table>_<to>_key.
	UniqueName string `yaml:"unique_name,omitempty" json:"unique_name,omitempty"`
	Allows     `yaml:",inline" json:",inline"`
}

func (k *AlterColumn) Table() TableName { return ParseTableName(k.TableName) }

// setsNotNull and dropsNotNull say what not_null asks for.
func (k *AlterColumn) setsNotNull() bool  { return k.NotNull != nil && *k.NotNull }
func (k *AlterColumn) dropsNotNull() bool { return k.NotNull != nil && !*k.NotNull }

// New is the new column's name.
func (k *AlterColumn) New() string {
	if k.To != "" {
		return k.To
	}
	return k.Column + "_new"
}

func (k *AlterColumn) checkName() string {
	if k.CheckName != "" {
		return k.CheckName
	}
	return phases.DerivedName(k.Table().Name, k.New(), "check")
}

func (k *AlterColumn) uniqueName() string {
	if k.UniqueName != "" {
		return k.UniqueName
	}
	return phases.DerivedName(k.Table().Name, k.New(), "key")
}

func (k *AlterColumn) Expressions() []Expression {
	return []Expression{{Field: "up", SQL: k.Up, Function: true}, {Field: "down", SQL: k.Down, Function: true},
		{Field: "default", SQL: k.Default}, {Field: "check", SQL: k.CheckExpr}}
}

func (k *AlterColumn) Check() []Problem {
	ps := tableProblems(k.TableName)
	ps = append(ps, columnProblems("column", k.Column)...)
	ps = append(ps, identifier("to", k.To)...)
	ps = append(ps, identifier("check_name", k.CheckName)...)
	ps = append(ps, identifier("unique_name", k.UniqueName)...)
	if k.Column != "" && k.To == "" && len(k.Column+"_new") > maxIdentifier {
		ps = append(ps, Problem{Field: "to", Message: fmt.Sprintf("the default new column name %q is longer than 63 bytes", k.Column+"_new"), Hint: "set to"})
	}
	if k.To != "" && k.To == k.Column {
		ps = append(ps, Problem{Field: "to", Message: "is the same as column",
			Hint: "the new column needs a name of its own while both exist; leave to out for " + quoteIfNeeded(k.Column+"_new") + ", and rename it afterwards with a rename_column change"})
	}
	switch {
	case k.Type == "" && k.Up == "" && !k.setsNotNull() && k.Default == "" && k.CheckExpr == "" && !k.Unique && k.dropsNotNull():
		ps = append(ps, Problem{Field: "not_null", Message: "only drops NOT NULL, which needs no new column",
			Hint: "use kind drop_not_null (instant, catalog only), or combine not_null: false with type, up, default, check or unique"})
	case k.Type == "" && k.Up == "" && k.NotNull == nil && k.Default == "" && k.CheckExpr == "" && !k.Unique:
		hint := "set at least one of type (with up and down), up, not_null, default, check, unique"
		if k.To != "" {
			hint = "to only rename the column, use kind rename_column"
		}
		ps = append(ps, Problem{Message: "alters nothing: an alter_column change needs at least one of type, up, not_null, default, check or unique", Hint: hint})
	}
	if k.Type != "" {
		ps = append(ps, typeProblems("type", k.Type)...)
		if k.Up == "" {
			ps = append(ps, Problem{Field: "up", Message: "is required with type: how to compute the new value from the old one",
				Hint: fmt.Sprintf("write it with the old column's name, e.g. up: %q", fmt.Sprintf("%s::%s", quoteIfNeeded(k.Column), k.Type))})
		}
		if k.Down == "" {
			ps = append(ps, Problem{Field: "down", Message: "is required with type: how to compute the old value from the new one, for applications still writing the old column",
				Hint: fmt.Sprintf("write it with the new column's name, e.g. down: %q", fmt.Sprintf("%s::<old type>", quoteIfNeeded(k.New())))})
		}
	} else if k.Down != "" && k.Up == "" {
		ps = append(ps, Problem{Field: "down", Message: "is set without up: down undoes what up computes",
			Hint: "set up too (written with the old column's name), or leave both out to copy values as they are"})
	}
	if k.CheckName != "" && k.CheckExpr == "" {
		ps = append(ps, Problem{Field: "check_name", Message: "is set without check", Hint: "add check: <condition on " + quoteIfNeeded(k.New()) + ">, or remove check_name"})
	}
	if k.UniqueName != "" && !k.Unique {
		ps = append(ps, Problem{Field: "unique_name", Message: "is set without unique: true", Hint: "add unique: true, or remove unique_name"})
	}
	for _, f := range []struct{ field, sql string }{{"up", k.Up}, {"down", k.Down}, {"default", k.Default}, {"check", k.CheckExpr}} {
		ps = append(ps, exprProblems(f.field, f.sql)...)
	}
	ps = append(ps, k.checkExprProblems()...)
	return append(ps, reachProblems(k, k.Table())...)
}

// checkExprProblems: the check is on the new column. Naming the old one
// would tie the constraint to the column the purge drops, and drop it too.
func (k *AlterColumn) checkExprProblems() []Problem {
	if k.CheckExpr == "" || k.Column == "" || exprProblems("check", k.CheckExpr) != nil {
		return nil
	}
	ids := identifiersOf(k.CheckExpr)
	if slices.Contains(ids, k.Column) {
		return []Problem{{Field: "check", Message: fmt.Sprintf("names the old column %q; the check belongs to the new column %q, which replaces it", k.Column, k.New()),
			Hint: fmt.Sprintf("write the condition with %s, e.g. %s", quoteIfNeeded(k.New()), renameInExpr(k.CheckExpr, k.Column, k.New()))}}
	}
	if !slices.Contains(ids, k.New()) {
		return []Problem{{Field: "check", Message: fmt.Sprintf("does not name the new column %q", k.New()),
			Hint: "write a condition on " + quoteIfNeeded(k.New()) + "; for a check on other columns use an add_check change"}}
	}
	return nil
}

func (k *AlterColumn) castTargets(t *Table) map[string]string {
	out := map[string]string{}
	if c := t.Column(k.Column); c != nil {
		out["down"] = c.Type
		out["up"] = c.Type
	}
	if k.Type != "" {
		out["up"] = k.Type
	}
	return out
}

// newType is the new column's type: as the table has it when the change
// already added it, else Type, else the old column's ("" when unknown).
func (k *AlterColumn) newType(t *Table) string {
	if c := t.Column(k.New()); c != nil {
		return c.Type
	}
	if k.Type != "" {
		return k.Type
	}
	if c := t.Column(k.Column); c != nil {
		return c.Type
	}
	return ""
}

func (k *AlterColumn) addedColumns(t *Table) map[string]string {
	if typ := k.newType(t); typ != "" {
		return map[string]string{k.New(): typ}
	}
	return nil
}

func (k *AlterColumn) effect(string) effect {
	e := effect{uses: []colRef{{"column", k.Column}},
		adds:    []colAdd{{field: "to", name: k.New(), typ: k.Type, from: k.Column}},
		removes: []colGone{{k.Column, fmt.Sprintf("replaced by %q", k.New())}},
		exprs:   []fieldExpr{{"up", k.Up}, {"check", k.CheckExpr}}}
	if k.setsNotNull() {
		e.notNull = k.New()
	}
	if k.dropsNotNull() {
		e.nullable = k.New()
	}
	col := []string{k.New()}
	if k.CheckExpr != "" {
		n := k.checkName()
		e.names = append(e.names, objName{"check_name", n, false})
		e.constraints = append(e.constraints, Constraint{Name: n, Type: "c", Columns: col, Definition: "CHECK (" + k.CheckExpr + ")"})
	}
	if k.Unique {
		n := k.uniqueName()
		e.names = append(e.names, objName{"unique_name", n, true})
		e.indexes = append(e.indexes, Index{Name: n, Columns: col, Unique: true, Constraint: n})
		e.constraints = append(e.constraints, Constraint{Name: n, Type: "u", Columns: col})
	}
	return e
}

// liveExpressions: what the backfill assigns to the new column (up, or
// the old column copied as it is), down assigned to the old column, the
// default to the new one, and the check. The check names the new column,
// which existing rows do not have yet: it is planned, not run on them.
func (k *AlterColumn) liveExpressions(t *Table) []expression {
	var out []expression
	typ := k.newType(t)
	if typ == "" {
		return nil
	}
	if k.Up != "" {
		out = append(out, expression{field: "up", expr: k.Up, column: k.New(), typ: typ, hint: hintAssign, onRows: true})
	} else {
		out = append(out, expression{field: "column", expr: phases.Ident(k.Column), column: k.New(), typ: typ, hint: hintAssign, onRows: true})
	}
	if old := t.Column(k.Column); old != nil && k.Down != "" {
		out = append(out, expression{field: "down", expr: k.Down, column: old.Name, typ: old.Type,
			hint: "write the inverse of up using the new column's name, yielding the old column's type"})
	}
	if k.Default != "" {
		out = append(out, expression{field: "default", expr: k.Default, column: k.New(), typ: typ, hint: hintDefault})
	}
	if k.CheckExpr != "" {
		out = append(out, expression{field: "check", expr: k.CheckExpr, hint: hintCondition})
	}
	return out
}

func (k *AlterColumn) TypeNames() map[string]string {
	if k.Type == "" {
		return nil
	}
	return map[string]string{"type": k.Type}
}

func (k *AlterColumn) FlagMeta() map[string]string {
	return map[string]string{"table": k.Table().String(), "old_column": k.Column, "new_column": k.New()}
}

func (k *AlterColumn) CheckLive(t *Table) []Problem {
	ps := copyColumnLive(t, "column", k.Column, "to", k.New())
	c := t.Column(k.Column)
	if c == nil {
		return ps
	}
	if k.dropsNotNull() && !c.NotNull {
		ps = append(ps, Problem{Field: "not_null", Message: fmt.Sprintf("%s.%s is already nullable; the new column is nullable as a copy of it", t.Name, k.Column),
			Hint: "remove not_null"})
	}
	if k.setsNotNull() && c.NotNull {
		ps = append(ps, Problem{Field: "not_null", Message: fmt.Sprintf("%s.%s is already NOT NULL; the new column is made NOT NULL as a copy of it", t.Name, k.Column),
			Hint: "remove not_null"})
	}
	if k.setsNotNull() && !c.NotNull && k.Up == "" {
		ps = append(ps, Problem{Field: "up", Message: fmt.Sprintf("is required with not_null: %s.%s is nullable, and rows (and writes of old instances) where it is NULL need a value in the new column", t.Name, k.Column),
			Hint: fmt.Sprintf("give NULL a value, e.g. up: %q", fmt.Sprintf("COALESCE(%s, <value>)", quoteIfNeeded(k.Column)))})
	}
	if k.CheckExpr != "" {
		for _, p := range constraintNameLive(t, k.checkName()) {
			p.Field = "check_name"
			ps = append(ps, p)
		}
	}
	if k.Unique {
		ps = append(ps, k.uniqueLive(t)...)
	}
	return ps
}

func (k *AlterColumn) uniqueLive(t *Table) []Problem {
	var ps []Problem
	for _, c := range t.Checks {
		if c.Type == "u" && slices.Equal(c.Columns, []string{k.Column}) {
			ps = append(ps, Problem{Field: "unique", Message: fmt.Sprintf("%s.%s is already unique (%s); the new column gets a copy of that constraint", t.Name, k.Column, c.Name),
				Hint: "remove unique"})
		}
	}
	name := k.uniqueName()
	for _, c := range t.Checks {
		if c.Name == name {
			ps = append(ps, Problem{Field: "unique_name", Message: fmt.Sprintf("a constraint named %q already exists on %s", name, t.Name), Hint: "set unique_name to a name not in use"})
		}
	}
	for _, ix := range t.Indexes {
		if ix.Name == name {
			ps = append(ps, Problem{Field: "unique_name", Message: fmt.Sprintf("an index named %q already exists on %s", name, t.Name), Hint: "set unique_name to a name not in use"})
		}
	}
	if t.Partitioning != nil {
		ps = append(ps, t.Partitioning.keyProblems(t.Name, "unique", []string{k.New()})...)
	}
	return ps
}

func (k *AlterColumn) Compile(id string, target Target) ([]phases.Phase, error) {
	t := k.Table()
	alter := &alteration{notNull: k.setsNotNull(), dropNotNull: k.dropsNotNull(), defaultExpr: k.Default}
	if k.CheckExpr != "" {
		// A trailing -- comment in the expression ends at the newline.
		alter.check = &phases.Constraint{Table: t, Name: k.checkName(), Definition: "CHECK (" + k.CheckExpr + "\n)"}
	}
	if k.Unique {
		alter.unique = k.uniqueName()
	}
	return compileCopyColumn(id, target, copyColumn{
		table: t, old: k.Column, new: k.New(), newField: "to", newType: k.Type, up: k.Up, down: k.Down,
		upLabel: functionLabel(target.Table, k.Up), downLabel: functionLabel(target.Table, k.Down),
		alter: alter,
	})
}

// alterationSteps are the enforce steps of what alter_column adds to the
// new column beyond the copy of the old one's (its NOT NULL is with the
// copy's): the check NOT VALID then validated, the unique constraint
// through an index built concurrently. t is nil offline.
func alterationSteps(t *Table, cc copyColumn, newCol phases.Column) ([]dependentCopy, error) {
	var out []dependentCopy
	if c := cc.alter.check; c != nil {
		out = append(out, dependentCopy{what: "check " + c.Name, name: c.Name,
			forward: []phases.Statement{c.AddNotValid(), c.Validate()}, back: []phases.Statement{c.Drop()}})
	}
	if name := cc.alter.unique; name != "" {
		if t != nil && t.Partitioning != nil {
			if ps := t.Partitioning.keyProblems(t.Name, "unique", []string{cc.new}); len(ps) > 0 {
				return nil, problemsError(ps)
			}
		}
		u := phases.Unique{Index: phases.Index{Table: newCol.Table, Name: name, Unique: true, Columns: []string{cc.new}}}
		out = append(out, dependentCopy{what: "unique " + name, name: name,
			forward: append(u.Index.Create(), u.Attach()), back: append([]phases.Statement{u.DropConstraint()}, u.Index.Drop()...)})
	}
	return out, nil
}

// distinctNames refuses two objects of one enforce phase with one name (a
// copy of the old column's check and the new check, say): the second
// one's probe would take the first for itself.
func distinctNames(steps []dependentCopy, t TableName) error {
	seen := map[string]bool{}
	for _, s := range steps {
		if s.name == "" {
			continue
		}
		if seen[s.name] {
			return problemsError([]Problem{{Field: "column", Message: fmt.Sprintf("two objects the change creates on %s would both be named %q (the last one: %s)", t, s.name, s.what),
				Hint: "set check_name or unique_name to another name"}})
		}
		seen[s.name] = true
	}
	return nil
}

package planner

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("create_table", func() Kind { return &CreateTable{} }) }

// CreateTable creates a table with its columns, primary key, constraints
// and indexes in one short transaction. The table is new and empty, so
// nothing is scanned and nothing waits on it; a foreign key locks the
// referenced table for an instant. Rolling it back drops the table, and
// refuses when rows were written to it since.
type CreateTable struct {
	TableName string          `yaml:"table" json:"table"`
	Columns   []NewColumn     `yaml:"columns" json:"columns"`
	Primary   []string        `yaml:"primary_key,omitempty" json:"primary_key,omitempty"`
	Checks    []NewCheck      `yaml:"checks,omitempty" json:"checks,omitempty"`
	Uniques   []NewUnique     `yaml:"unique,omitempty" json:"unique,omitempty"`
	Foreign   []NewForeignKey `yaml:"foreign_keys,omitempty" json:"foreign_keys,omitempty"`
	Indexes   []NewTableIndex `yaml:"indexes,omitempty" json:"indexes,omitempty"`
}

// NewColumn is a column of a new table.
type NewColumn struct {
	Name    string `yaml:"name" json:"name"`
	Type    string `yaml:"type" json:"type"`
	NotNull bool   `yaml:"not_null,omitempty" json:"not_null,omitempty"`
	// Default is an SQL expression; any expression is fine on a new table
	// (no existing row is rewritten).
	Default string `yaml:"default,omitempty" json:"default,omitempty"`
}

// NewCheck is a CHECK constraint of a new table.
type NewCheck struct {
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	Expr string `yaml:"check" json:"check"`
}

// NewUnique is a UNIQUE constraint of a new table.
type NewUnique struct {
	Name    string   `yaml:"name,omitempty" json:"name,omitempty"`
	Columns []string `yaml:"columns" json:"columns"`
}

// NewForeignKey is a foreign key of a new table.
type NewForeignKey struct {
	Name       string     `yaml:"name,omitempty" json:"name,omitempty"`
	Columns    []string   `yaml:"columns" json:"columns"`
	References References `yaml:"references" json:"references"`
	OnDelete   string     `yaml:"on_delete,omitempty" json:"on_delete,omitempty"`
}

// NewTableIndex is an index of a new table.
type NewTableIndex struct {
	Name    string   `yaml:"name,omitempty" json:"name,omitempty"`
	Columns []string `yaml:"columns" json:"columns"`
	Unique  bool     `yaml:"unique,omitempty" json:"unique,omitempty"`
	Where   string   `yaml:"where,omitempty" json:"where,omitempty"`
	Using   string   `yaml:"using,omitempty" json:"using,omitempty"`
}

func (k *CreateTable) Table() TableName { return ParseTableName(k.TableName) }

// createsTable: the table does not exist before this change.
func (k *CreateTable) createsTable() {}

func (k *CreateTable) TypeNames() map[string]string {
	out := map[string]string{}
	for i, c := range k.Columns {
		out[fmt.Sprintf("columns[%d].type", i)] = c.Type
	}
	return out
}

func (k *CreateTable) columnNames() []string {
	names := make([]string, len(k.Columns))
	for i, c := range k.Columns {
		names[i] = c.Name
	}
	return names
}

func (k *CreateTable) Check() []Problem {
	ps := tableProblems(k.TableName)
	if len(k.Columns) == 0 {
		ps = append(ps, Problem{Field: "columns", Message: "needs at least one column", Hint: "list the columns, e.g. columns: [{name: id, type: bigint, not_null: true}]"})
	}
	seen := map[string]bool{}
	for i, c := range k.Columns {
		f := fmt.Sprintf("columns[%d]", i)
		ps = append(ps, columnProblems(f+".name", c.Name)...)
		if seen[c.Name] {
			ps = append(ps, Problem{Field: f + ".name", Message: fmt.Sprintf("column %q is listed twice", c.Name), Hint: "list each column once"})
		}
		seen[c.Name] = true
		ps = append(ps, typeProblems(f+".type", c.Type)...)
		ps = append(ps, exprProblems(f+".default", c.Default)...)
	}
	known := func(field string, cols []string) []Problem {
		var out []Problem
		for i, c := range cols {
			if c != "" && !seen[c] && !phases.IsExpression(c) {
				out = append(out, Problem{Field: fmt.Sprintf("%s[%d]", field, i), Message: fmt.Sprintf("column %q is not among the table's columns", c),
					Hint: "name a column listed under columns" + nearest(c, k.columnNames())})
			}
		}
		return out
	}
	if k.Primary != nil {
		ps = append(ps, requiredList("primary_key", k.Primary)...)
		ps = append(ps, known("primary_key", k.Primary)...)
	}
	names := map[string]string{} // constraint and index names, which share a namespace for unique and primary keys
	name := func(field, n string) {
		ps = append(ps, identifier(field, n)...)
		if prev, dup := names[n]; dup {
			ps = append(ps, Problem{Field: field, Message: fmt.Sprintf("%q is also the name of %s", n, prev), Hint: "give each constraint and index its own name"})
		}
		names[n] = field
	}
	name("primary_key", k.primaryName())
	for i, c := range k.Checks {
		f := fmt.Sprintf("checks[%d]", i)
		ps = append(ps, required(f+".check", c.Expr)...)
		ps = append(ps, exprProblems(f+".check", c.Expr)...)
		name(f+".name", k.checkName(i))
	}
	for i, u := range k.Uniques {
		f := fmt.Sprintf("unique[%d]", i)
		ps = append(ps, requiredList(f+".columns", u.Columns)...)
		ps = append(ps, known(f+".columns", u.Columns)...)
		name(f+".name", k.uniqueName(i))
	}
	for i, fk := range k.Foreign {
		f := fmt.Sprintf("foreign_keys[%d]", i)
		check := AddForeignKey{TableName: k.TableName, Name: fk.Name, Columns: fk.Columns, References: fk.References, OnDelete: fk.OnDelete}
		for _, p := range check.Check() {
			if p.Field != "table" {
				p.Field = f + "." + p.Field
				ps = append(ps, p)
			}
		}
		ps = append(ps, known(f+".columns", fk.Columns)...)
		name(f+".name", k.foreignName(i))
	}
	for i, ix := range k.Indexes {
		f := fmt.Sprintf("indexes[%d]", i)
		check := AddIndex{TableName: k.TableName, Name: ix.Name, Columns: ix.Columns, Unique: ix.Unique, Where: ix.Where, Using: ix.Using}
		for _, p := range check.Check() {
			if p.Field != "table" {
				p.Field = f + "." + p.Field
				ps = append(ps, p)
			}
		}
		ps = append(ps, known(f+".columns", ix.Columns)...)
		name(f+".name", k.indexName(i))
	}
	return ps
}

// The names PostgreSQL would derive, made explicit so that the plan shows
// them and the sequence model knows them.
func (k *CreateTable) primaryName() string {
	if len(k.Primary) == 0 {
		return ""
	}
	return phases.DerivedName(k.Table().Name, "", "pkey")
}

func (k *CreateTable) checkName(i int) string {
	if n := k.Checks[i].Name; n != "" {
		return n
	}
	return phases.DerivedName(k.Table().Name, fmt.Sprint(i+1), "check")
}

func (k *CreateTable) uniqueName(i int) string {
	if n := k.Uniques[i].Name; n != "" {
		return n
	}
	return phases.DerivedName(k.Table().Name, strings.Join(k.Uniques[i].Columns, "_"), "key")
}

func (k *CreateTable) foreignName(i int) string {
	fk := k.Foreign[i]
	return (&AddForeignKey{TableName: k.TableName, Name: fk.Name, Columns: fk.Columns}).constraintName()
}

func (k *CreateTable) indexName(i int) string {
	ix := k.Indexes[i]
	return (&AddIndex{TableName: k.TableName, Name: ix.Name, Columns: ix.Columns, Unique: ix.Unique}).IndexName()
}

// model is the table as the change creates it, for the sequence model.
func (k *CreateTable) model() *Table {
	t := &Table{Name: k.Table(), Key: append([]string{}, k.Primary...)}
	for _, c := range k.Columns {
		t.Columns = append(t.Columns, Column{Name: c.Name, Type: c.Type, NotNull: c.NotNull || slices.Contains(k.Primary, c.Name), Default: c.Default})
	}
	if n := k.primaryName(); n != "" {
		t.Indexes = append(t.Indexes, Index{Name: n, Columns: k.Primary, Unique: true, Primary: true, Constraint: n})
	}
	for i, c := range k.Checks {
		t.Checks = append(t.Checks, Constraint{Name: k.checkName(i), Table: t.Name, Type: "c", Definition: "CHECK (" + c.Expr + ")"})
	}
	for i, u := range k.Uniques {
		n := k.uniqueName(i)
		t.Indexes = append(t.Indexes, Index{Name: n, Columns: u.Columns, Unique: true, Constraint: n})
		t.Checks = append(t.Checks, Constraint{Name: n, Table: t.Name, Type: "u", Columns: u.Columns})
	}
	for i, fk := range k.Foreign {
		t.Checks = append(t.Checks, Constraint{Name: k.foreignName(i), Table: t.Name, Type: "f", Columns: fk.Columns})
	}
	for i, ix := range k.Indexes {
		t.Indexes = append(t.Indexes, Index{Name: k.indexName(i), Columns: plainColumns(ix.Columns), Unique: ix.Unique})
	}
	return t
}

// objectNames are the indexes (schema-wide names) and constraints it
// creates, for the sequence model.
func (k *CreateTable) objectNames() []objName {
	var out []objName
	if n := k.primaryName(); n != "" {
		out = append(out, objName{"primary_key", n, true})
	}
	for i := range k.Checks {
		out = append(out, objName{fmt.Sprintf("checks[%d].name", i), k.checkName(i), false})
	}
	for i := range k.Uniques {
		out = append(out, objName{fmt.Sprintf("unique[%d].name", i), k.uniqueName(i), true})
	}
	for i := range k.Foreign {
		out = append(out, objName{fmt.Sprintf("foreign_keys[%d].name", i), k.foreignName(i), false})
	}
	for i := range k.Indexes {
		out = append(out, objName{fmt.Sprintf("indexes[%d].name", i), k.indexName(i), true})
	}
	return out
}

func (k *CreateTable) Compile(id string, target Target) ([]phases.Phase, error) {
	t := k.Table()
	ref := t
	nt := phases.NewTable{TableRef: ref}
	for _, c := range k.Columns {
		def := phases.Ident(c.Name) + " " + c.Type
		if c.NotNull {
			def += " NOT NULL"
		}
		if c.Default != "" {
			def += " DEFAULT (" + c.Default + "\n)" // a trailing -- comment ends at the newline
		}
		nt.Columns = append(nt.Columns, def)
	}
	constraint := func(name, body string) {
		nt.Constraints = append(nt.Constraints, "CONSTRAINT "+phases.Ident(name)+" "+body)
	}
	if len(k.Primary) > 0 {
		constraint(k.primaryName(), "PRIMARY KEY ("+phases.IdentList(k.Primary)+")")
	}
	for i, c := range k.Checks {
		constraint(k.checkName(i), "CHECK ("+c.Expr+"\n)")
	}
	for i, u := range k.Uniques {
		constraint(k.uniqueName(i), "UNIQUE ("+phases.IdentList(u.Columns)+")")
	}
	for i, fk := range k.Foreign {
		rt := ParseTableName(fk.References.Table)
		body := fmt.Sprintf("FOREIGN KEY (%s) REFERENCES %s (%s)", phases.IdentList(fk.Columns), rt.Quoted(), phases.IdentList(fk.References.Columns))
		if fk.OnDelete != "" {
			body += " ON DELETE " + strings.ToUpper((&AddForeignKey{OnDelete: fk.OnDelete}).onDelete())
		}
		constraint(k.foreignName(i), body)
		r := rt
		if !slices.Contains(nt.References, r) && r != ref {
			nt.References = append(nt.References, r)
		}
	}
	stmts := []phases.Statement{nt.Create()}
	for i, ix := range k.Indexes {
		pi := phases.Index{Table: ref, Name: k.indexName(i), Unique: ix.Unique, Using: ix.Using, Columns: ix.Columns, Where: ix.Where}
		stmts = append(stmts, pi.CreateIndex())
	}
	return []phases.Phase{{
		Name: "create",
		Purpose: fmt.Sprintf("create %s with its columns, constraints and indexes in one transaction (instant: the table is new and empty); rollback drops it, and refuses when rows were written to it since",
			t),
		Statements: stmts,
		Rollback:   nt.DropIfEmpty(),
	}}, nil
}

// effect: the table it creates, its object names, and one referenced
// table checked like add_foreign_key's.
func (k *CreateTable) effect(string) effect {
	e := effect{creates: k.model(), names: k.objectNames()}
	for i, fk := range k.Foreign {
		if rt := ParseTableName(fk.References.Table); !rt.Equal(k.Table()) {
			e.refTable = rt
			for j, c := range fk.References.Columns {
				e.refCols = append(e.refCols, colRef{fmt.Sprintf("foreign_keys[%d].references.columns[%d]", i, j), c})
			}
			break
		}
	}
	return e
}

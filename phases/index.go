package phases

import (
	"fmt"
	"strings"
)

// Index is an index built with CREATE INDEX CONCURRENTLY.
type Index struct {
	Table  TableRef
	Name   string
	Unique bool
	// Using is the access method ("" is btree).
	Using string
	// Columns are column names (quoted here) or, when an entry contains
	// "(", an expression used as written (e.g. "lower(email)"). Ignored
	// when Body is set.
	Columns []string
	// Where is a partial index's predicate (SQL).
	Where string
	// Body, when set, replaces "USING m (cols) WHERE pred": the part of an
	// index definition after the table name, e.g. copied from
	// pg_get_indexdef with a column renamed.
	Body string
}

// qualified is the index's schema-qualified, quoted name.
func (ix Index) qualified() string { return TableRef{Schema: ix.Table.Schema, Name: ix.Name}.Quoted() }

// definition is everything after "ON <table>".
func (ix Index) definition() string {
	if ix.Body != "" {
		return ix.Body
	}
	using := "btree"
	if ix.Using != "" {
		using = strings.ToLower(ix.Using)
	}
	keys := make([]string, len(ix.Columns))
	for i, c := range ix.Columns {
		if IsExpression(c) {
			keys[i] = "(" + c + "\n)" // a trailing -- comment ends at the newline
		} else {
			keys[i] = Ident(c)
		}
	}
	def := fmt.Sprintf("USING %s (%s)", using, strings.Join(keys, ", "))
	if ix.Where != "" {
		def += " WHERE (" + ix.Where + "\n)"
	}
	return def
}

// Create drops an INVALID leftover of an interrupted build (CREATE INDEX
// CONCURRENTLY IF NOT EXISTS would accept it silently), then builds the
// index. Both skip when a valid index of that name exists.
func (ix Index) Create() []Statement {
	t := ix.Table
	valid := probeValidIndex(t.SchemaOrPublic(), ix.Name)
	unique := ""
	if ix.Unique {
		unique = "UNIQUE "
	}
	return []Statement{
		{
			SQL:           "DROP INDEX CONCURRENTLY IF EXISTS " + ix.qualified(),
			Lock:          ShareUpdateExclusive,
			Tables:        TableList{t},
			Held:          "instant when there is no invalid leftover",
			NoTransaction: true,
			Done:          valid,
		},
		{
			SQL:           fmt.Sprintf("CREATE %sINDEX CONCURRENTLY %s ON %s %s", unique, Ident(ix.Name), t.Quoted(), ix.definition()),
			Lock:          ShareUpdateExclusive,
			Tables:        TableList{t},
			Held:          HeldBuild,
			NoTransaction: true,
			Scans:         true,
			Long:          true,
			Done:          valid,
		},
	}
}

// Drop removes the index without blocking reads or writes.
func (ix Index) Drop() []Statement {
	t := ix.Table
	return []Statement{{
		SQL:           "DROP INDEX CONCURRENTLY IF EXISTS " + ix.qualified(),
		Lock:          ShareUpdateExclusive,
		Tables:        TableList{t},
		Held:          "until running transactions on the table finish",
		NoTransaction: true,
		Effect:        not(probeIndexExists(t.SchemaOrPublic(), ix.Name)),
	}}
}

// Unique is a UNIQUE constraint attached to a concurrently built index; the
// constraint takes the index's name.
type Unique struct {
	Index
}

// Attach turns the valid unique index into a constraint.
func (u Unique) Attach() Statement {
	t := u.Table
	return Statement{
		SQL:    fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s UNIQUE USING INDEX %s", t.Quoted(), Ident(u.Name), Ident(u.Name)),
		Lock:   AccessExclusive,
		Tables: TableList{t},
		Held:   "instant (uses the built index, no scan)",
		Done:   probeConstraint(t, u.Name, false),
	}
}

// Detach undoes Attach: dropping the constraint drops its index, so the
// index is built again, leaving the table as it was before Attach.
func (u Unique) Detach() []Statement {
	return append([]Statement{u.DropConstraint()}, u.Index.Create()...)
}

// DropConstraint drops the constraint and, with it, its index.
func (u Unique) DropConstraint() Statement {
	t := u.Table
	return Statement{
		SQL:    fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", t.Quoted(), Ident(u.Name)),
		Lock:   AccessExclusive,
		Tables: TableList{t},
		Held:   HeldInstant,
		Effect: not(probeConstraint(t, u.Name, false)),
	}
}

// IsExpression tells an index expression ("lower(email)") from a column
// name in an index's column list.
func IsExpression(column string) bool { return strings.Contains(column, "(") }

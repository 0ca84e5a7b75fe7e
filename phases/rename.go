package phases

import "fmt"

// Renames of indexes and constraints: catalog only, instant, and undone by
// the rename back.

// IndexRename renames an index of a table (index names are per schema).
type IndexRename struct {
	Table    TableRef
	From, To string
}

// Statement renames the index. Since PostgreSQL 12 ALTER INDEX ... RENAME
// takes SHARE UPDATE EXCLUSIVE on the index alone, which blocks no reads
// or writes of the table.
func (r IndexRename) Statement() Statement {
	t := r.Table
	from := TableRef{Schema: t.Schema, Name: r.From}
	return Statement{
		SQL:    fmt.Sprintf("ALTER INDEX %s RENAME TO %s", from.Quoted(), Ident(r.To)),
		Lock:   ShareUpdateExclusive,
		Tables: TableList{from},
		Held:   HeldInstant + ", on the index only",
		Done:   not(probeIndexOf(t, r.From)) + " AND (" + probeIndexOf(t, r.To) + ")",
	}
}

// Back is the rename undoing Statement.
func (r IndexRename) Back() IndexRename {
	return IndexRename{Table: r.Table, From: r.To, To: r.From}
}

// ConstraintRename renames a constraint of a table. A constraint backed by
// an index (UNIQUE, PRIMARY KEY) renames its index with it.
type ConstraintRename struct {
	Table    TableRef
	From, To string
}

// Statement renames the constraint: ACCESS EXCLUSIVE, catalog only.
func (r ConstraintRename) Statement() Statement {
	t := r.Table
	return Statement{
		SQL:    fmt.Sprintf("ALTER TABLE %s RENAME CONSTRAINT %s TO %s", t.Quoted(), Ident(r.From), Ident(r.To)),
		Lock:   AccessExclusive,
		Tables: TableList{t},
		Held:   HeldInstant,
		Done:   not(probeConstraint(t, r.From, false)) + " AND (" + probeConstraint(t, r.To, false) + ")",
	}
}

// Back is the rename undoing Statement.
func (r ConstraintRename) Back() ConstraintRename {
	return ConstraintRename{Table: r.Table, From: r.To, To: r.From}
}

// probeIndexOf: an index of that name exists on the table.
func probeIndexOf(t TableRef, name string) string {
	return fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s AND c.relname = %s)",
		t.regclass(), literal(name))
}

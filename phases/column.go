package phases

import "fmt"

// Column is a column of a table, for the column-level statements.
type Column struct {
	Table TableRef
	Name  string
}

func (c Column) alter(action string) Statement {
	t := c.Table
	return Statement{
		SQL:    fmt.Sprintf("ALTER TABLE %s %s", t.Quoted(), action),
		Lock:   AccessExclusive,
		Tables: TableList{t},
		Held:   HeldInstant,
	}
}

// Add adds the column nullable and without a default: catalog only, no
// rewrite, whatever the type.
func (c Column) Add(typ string) Statement {
	st := c.alter(fmt.Sprintf("ADD COLUMN IF NOT EXISTS %s %s", Ident(c.Name), typ))
	st.Effect = probeColumnExists(c.Table, c.Name)
	return st
}

// Drop drops the column (catalog only: the space is reclaimed by later
// updates and VACUUM FULL, not now).
func (c Column) Drop() Statement {
	st := c.alter("DROP COLUMN IF EXISTS " + Ident(c.Name))
	st.Effect = not(probeColumnExists(c.Table, c.Name))
	return st
}

// SetDefault applies to rows inserted from now on; existing rows keep
// their values (no rewrite). The expression sits in parentheses, followed
// by a newline, so that nothing in it reaches the rest of the statement.
func (c Column) SetDefault(expr string) Statement {
	st := c.alter(fmt.Sprintf("ALTER COLUMN %s SET DEFAULT (%s\n)", Ident(c.Name), expr))
	st.Effect = probeHasDefault(c.Table, c.Name) // some default: its expression is not compared
	return st
}

// DropDefault removes the default.
func (c Column) DropDefault() Statement {
	st := c.alter(fmt.Sprintf("ALTER COLUMN %s DROP DEFAULT", Ident(c.Name)))
	st.Effect = not(probeHasDefault(c.Table, c.Name))
	return st
}

// DropNotNull makes the column nullable (catalog only).
func (c Column) DropNotNull() Statement {
	st := c.alter(fmt.Sprintf("ALTER COLUMN %s DROP NOT NULL", Ident(c.Name)))
	st.Effect = not(probeNotNull(c.Table, c.Name))
	return st
}

// NotNull enforces NOT NULL on a column without holding ACCESS EXCLUSIVE
// during the scan of existing rows.
type NotNull struct {
	Column
	// Version is the server's major version: 18 and later add a NOT NULL
	// constraint NOT VALID; earlier versions go through a CHECK constraint.
	Version int
}

// ConstraintName is the name of the helper constraint (PG < 18: the CHECK
// dropped at the end; PG 18+: the NOT NULL constraint itself).
func (n NotNull) ConstraintName() string {
	return DerivedName(n.Table.Name, n.Name, "not_null")
}

// Statements enforce NOT NULL, each step probed so that a resumed phase
// skips what is done.
//
// PG 18+: ADD CONSTRAINT c NOT NULL col NOT VALID (instant), commit,
// VALIDATE (scan under SHARE UPDATE EXCLUSIVE).
//
// Earlier: ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID (instant),
// commit, VALIDATE (scan under SHARE UPDATE EXCLUSIVE), commit, SET NOT NULL
// (instant: PostgreSQL 12+ proves it from the validated check instead of
// scanning), DROP CONSTRAINT c.
func (n NotNull) Statements() []Statement {
	t := n.Column.Table
	name := n.ConstraintName()
	nn := probeNotNull(t, n.Name)
	c := Constraint{Table: n.Table, Name: name}
	if n.Version >= 18 {
		c.Definition = "NOT NULL " + Ident(n.Name)
		return []Statement{c.AddNotValid(), c.Validate()}
	}
	c.Definition = fmt.Sprintf("CHECK (%s IS NOT NULL)", Ident(n.Name))
	add := c.AddNotValid()
	add.Done = or(nn, probeConstraint(t, name, false))
	validate := c.Validate()
	validate.Done = or(nn, probeConstraint(t, name, true))
	set := n.alter(fmt.Sprintf("ALTER COLUMN %s SET NOT NULL", Ident(n.Name)))
	set.Held = "instant (proved by the validated check, no scan)"
	set.Effect = nn
	return []Statement{add, validate, set, c.Drop()}
}

// Rollback makes the column nullable again and removes the helper
// constraint.
func (n NotNull) Rollback() []Statement {
	c := Constraint{Table: n.Table, Name: n.ConstraintName()}
	return []Statement{c.Drop(), n.DropNotNull()}
}

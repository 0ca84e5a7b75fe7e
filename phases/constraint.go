package phases

import "fmt"

// Constraint is a CHECK or FOREIGN KEY constraint added NOT VALID (a brief
// lock, no scan) and validated in a later transaction (a scan that blocks
// no reads or writes).
type Constraint struct {
	Table TableRef
	Name  string
	// Definition is the constraint's SQL without NOT VALID, e.g.
	// "CHECK (price > 0)" or "FOREIGN KEY (a) REFERENCES t (b)".
	Definition string
	// References is the referenced table of a foreign key.
	References *TableRef
}

func (c Constraint) tables() TableList {
	ts := TableList{c.Table}
	if c.References != nil && !c.References.Equal(c.Table) {
		ts = append(ts, *c.References)
	}
	return ts
}

// AddNotValid adds the constraint without checking existing rows, then
// commits so that the validation runs in another transaction.
func (c Constraint) AddNotValid() Statement {
	lock := AccessExclusive
	if c.References != nil {
		lock = ShareRowExclusive // on both tables
	}
	return Statement{
		SQL:         fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID", c.Table.Quoted(), Ident(c.Name), c.Definition),
		Lock:        lock,
		Tables:      c.tables(),
		Held:        HeldInstant,
		CommitAfter: true,
		Done:        probeConstraint(c.Table, c.Name, false),
	}
}

// Validate checks the existing rows without blocking reads or writes.
func (c Constraint) Validate() Statement {
	return Statement{
		SQL:         fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", c.Table.Quoted(), Ident(c.Name)),
		Lock:        ShareUpdateExclusive,
		Tables:      c.tables(),
		Held:        HeldScan,
		CommitAfter: true,
		Scans:       true,
		Long:        true,
		Done:        probeConstraint(c.Table, c.Name, true),
	}
}

// Drop removes the constraint.
func (c Constraint) Drop() Statement {
	return Statement{
		SQL:    fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s", c.Table.Quoted(), Ident(c.Name)),
		Lock:   AccessExclusive,
		Tables: c.tables(),
		Held:   HeldInstant,
		Effect: not(probeConstraint(c.Table, c.Name, false)),
	}
}

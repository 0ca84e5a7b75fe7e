package planner

import (
	"fmt"
	"strings"
)

// Lookups shared by the kinds that drop or rename an existing index or
// constraint (drop_index, drop_constraint, rename_index, rename_constraint):
// the object is found in the table's snapshot taken at registration, so the
// rollback recreates exactly what was there.

// indexNamed returns the table's index of that name, or nil.
func (t *Table) indexNamed(name string) *Index {
	for i := range t.Indexes {
		if t.Indexes[i].Name == name {
			return &t.Indexes[i]
		}
	}
	return nil
}

// constraintNamed returns the table's CHECK, UNIQUE or FOREIGN KEY
// constraint of that name, or nil.
func (t *Table) constraintNamed(name string) *Constraint {
	for i := range t.Checks {
		if t.Checks[i].Name == name {
			return &t.Checks[i]
		}
	}
	return nil
}

func indexNames(t *Table) []string {
	var out []string
	for _, ix := range t.Indexes {
		out = append(out, ix.Name)
	}
	return out
}

func constraintNames(t *Table) []string {
	var out []string
	for _, c := range t.Checks {
		out = append(out, c.Name)
	}
	return out
}

// noIndex is the problem for an index the table does not have.
func noIndex(field, name string, t *Table) Problem {
	return Problem{Field: field, Message: fmt.Sprintf("%s has no index named %q", t.Name, name),
		Hint: "check the name (index names are per schema; list them with \\di)" + nearest(name, indexNames(t))}
}

// noConstraint is the problem for a constraint the table does not have,
// saying so when the name is the primary key's.
func noConstraint(field, name string, t *Table) Problem {
	for _, ix := range t.Indexes {
		if ix.Primary && ix.Constraint == name {
			return Problem{Field: field, Message: fmt.Sprintf("%q is the primary key of %s", name, t.Name),
				Hint: "this planner does not drop or replace primary keys: keep it, or do it by hand in a maintenance window"}
		}
	}
	return Problem{Field: field, Message: fmt.Sprintf("%s has no check, unique or foreign key constraint named %q", t.Name, name),
		Hint: "check the name (\\d " + t.Name.Name + " lists them)" + nearest(name, constraintNames(t))}
}

// referencingUnique returns the foreign keys of other tables that
// reference exactly these columns of t: they depend on the unique index
// or constraint over them.
func referencingUnique(t *Table, columns []string) []string {
	var out []string
	for _, r := range t.Referencing {
		if strings.Join(r.Columns, "\x00") == strings.Join(columns, "\x00") {
			out = append(out, fmt.Sprintf("%s on %s", r.Name, r.Table))
		}
	}
	return out
}

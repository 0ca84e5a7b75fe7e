// The table a change adopted before it was registered compiles against:
// the live table with what the change's own phases add taken out again, so
// that it compiles the phases `planner next` would have compiled had it
// registered the change before the work was done by hand.

package planner

import (
	"fmt"
	"slices"

	"github.com/pgplanner/planner/phases"
)

// beforeChange returns a copy of the live table t as it was before change
// s started, as far as the change's effect says (sequence.go): without
// the columns it adds (and the indexes and constraints on them), without
// the indexes and constraints it names, and with the column it makes NOT
// NULL nullable again. A column the change removes must still be there:
// once a contract renamed it away, what the table was cannot be told.
func beforeChange(t *Table, s Spec) (*Table, error) {
	if t == nil {
		return nil, nil
	}
	ef := effectOf(s)
	for _, gone := range ef.removes {
		if t.Column(gone.name) == nil {
			return nil, fmt.Errorf("column %q of %s is gone (the change's contract was done by hand): its phases compile from the table as it was before them, which can no longer be read; adopt it at a phase before its contract, or, when the change is complete, take its spec out of the spec files: %w",
				gone.name, t.Name, ErrInput)
		}
	}
	added := map[string]bool{}
	for _, a := range ef.adds {
		added[a.name] = true
	}
	named := map[string]bool{}
	for _, n := range ef.names {
		named[n.name] = true
	}
	touchesAdded := func(cols []string) bool {
		return slices.ContainsFunc(cols, func(c string) bool { return added[c] })
	}
	out := *t
	out.Columns = nil
	for _, c := range t.Columns {
		if added[c.Name] {
			continue
		}
		if c.Name == ef.notNull {
			c.NotNull = false
		}
		out.Columns = append(out.Columns, c)
	}
	out.Indexes = nil
	for _, ix := range t.Indexes {
		if !touchesAdded(ix.Columns) && !named[ix.Name] && !named[ix.Constraint] {
			out.Indexes = append(out.Indexes, ix)
		}
	}
	// The helper constraint of an enforced NOT NULL (PostgreSQL 18 keeps it
	// as the column's NOT NULL constraint).
	helper := ""
	if ef.notNull != "" {
		helper = phases.NotNull{Column: phases.Column{Table: t.Name, Name: ef.notNull}}.ConstraintName()
	}
	out.Checks = nil
	for _, c := range t.Checks {
		if !touchesAdded(c.Columns) && !named[c.Name] && c.Name != helper {
			out.Checks = append(out.Checks, c)
		}
	}
	return &out, nil
}

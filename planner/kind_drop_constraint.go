package planner

import (
	"fmt"
	"strings"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("drop_constraint", func() Kind { return &DropConstraint{} }) }

// DropConstraint drops a CHECK, UNIQUE or FOREIGN KEY constraint (instant,
// catalog only). Its definition is taken from the table's snapshot at
// registration, so the rollback puts the same constraint back without a
// long lock: a check or foreign key NOT VALID, then VALIDATE; a unique
// constraint through a unique index built concurrently, then USING INDEX.
//
// There is no flag phase: code that stops relying on a constraint (an
// upsert's ON CONFLICT target, a cascade, a check rejecting rows) works
// with and without it, so applications deploy it first and nothing has to
// switch at the moment of the drop.
type DropConstraint struct {
	TableName  string `yaml:"table" json:"table"`
	Constraint string `yaml:"constraint" json:"constraint"`
}

func (k *DropConstraint) Table() TableName { return ParseTableName(k.TableName) }

func (k *DropConstraint) Check() []Problem {
	ps := tableProblems(k.TableName)
	if p := required("constraint", k.Constraint); p != nil {
		return append(ps, p...)
	}
	return append(ps, identifier("constraint", k.Constraint)...)
}

// effect: the constraint, and a unique constraint's index, are gone for
// the changes after this one.
func (k *DropConstraint) effect(string) effect {
	return effect{drops: []objGone{{objName{"constraint", k.Constraint, false}, "dropped"}},
		alter: func(t *Table) {
			t.Checks = without(t.Checks, func(c Constraint) bool { return c.Name == k.Constraint })
			t.Indexes = without(t.Indexes, func(ix Index) bool { return ix.Constraint == k.Constraint })
		}}
}

func (k *DropConstraint) CheckLive(t *Table) []Problem {
	c := t.constraintNamed(k.Constraint)
	if c == nil {
		return []Problem{noConstraint("constraint", k.Constraint, t)}
	}
	switch c.Type {
	case "u":
		if refs := referencingUnique(t, c.Columns); len(refs) > 0 {
			return []Problem{{Field: "constraint", Message: fmt.Sprintf("foreign keys reference the columns of %s: %s", k.Constraint, strings.Join(refs, ", ")),
				Hint: "drop those foreign keys first (kind: drop_constraint on their tables)"}}
		}
		if backingIndex(t, k.Constraint) == nil {
			return []Problem{{Field: "constraint", Message: fmt.Sprintf("the index of the unique constraint %s is not in the catalog", k.Constraint),
				Hint: "drop it by hand, keeping its definition"}}
		}
		if _, ok := indexBody(backingIndex(t, k.Constraint).Definition, "", ""); !ok {
			return []Problem{{Field: "constraint", Message: fmt.Sprintf("cannot read the definition of the index of %s to rebuild it on rollback", k.Constraint),
				Hint: "drop it by hand, keeping its definition"}}
		}
	case "f":
		if _, ok := referencedTable(c.Definition); !ok {
			return []Problem{{Field: "constraint", Message: fmt.Sprintf("cannot read the referenced table of %s (%s)", k.Constraint, c.Definition),
				Hint: "drop it by hand, keeping its definition"}}
		}
	}
	if t.Partitioning != nil && c.Type != "c" {
		what := map[string]string{"u": "a unique constraint (rebuilt through one index per partition)", "f": "a foreign key (added NOT VALID per partition before PostgreSQL 18)"}[c.Type]
		return []Problem{{Field: "table", Message: fmt.Sprintf("%s is partitioned, and the rollback of dropping %s is not built for partitioned tables", t.Name, what),
			Hint: "drop it by hand with ALTER TABLE ... DROP CONSTRAINT under a short lock_timeout (catalog only), keeping its definition to re-create it with add_unique or add_foreign_key"}}
	}
	return nil
}

func backingIndex(t *Table, constraint string) *Index {
	for i := range t.Indexes {
		if t.Indexes[i].Constraint == constraint {
			return &t.Indexes[i]
		}
	}
	return nil
}

func (k *DropConstraint) Compile(id string, target Target) ([]phases.Phase, error) {
	t := k.Table()
	c := phases.Constraint{Table: t, Name: k.Constraint,
		Definition: fmt.Sprintf("/* definition of %s as registered */", k.Constraint)}
	phase := phases.Phase{
		Name:    "drop_constraint",
		Purpose: fmt.Sprintf("drop constraint %s of %s (brief lock, catalog only)", k.Constraint, t),
	}
	if target.Table == nil {
		// Offline the constraint's type is unknown: the plan shows a check's
		// or foreign key's rollback.
		phase.Purpose += "; rollback adds it back NOT VALID and validates it (a unique constraint: rebuilt through a unique index built concurrently)"
		phase.Statements = []phases.Statement{c.Drop()}
		phase.Rollback = []phases.Statement{c.AddNotValid(), c.Validate()}
		return []phases.Phase{phase}, nil
	}
	if ps := k.CheckLive(target.Table); len(ps) > 0 {
		return nil, problemsError(ps)
	}
	live := target.Table.constraintNamed(k.Constraint)
	if live.Type == "u" {
		ix := backingIndex(target.Table, k.Constraint)
		body, _ := indexBody(ix.Definition, "", "")
		u := phases.Unique{Index: phases.Index{Table: t, Name: k.Constraint, Unique: true, Body: body}}
		attach := u.Attach()
		if i := strings.Index(live.Definition, " DEFERRABLE"); i >= 0 {
			attach.SQL += live.Definition[i:]
		}
		phase.Purpose += "; rollback builds its unique index again concurrently, then attaches it as the constraint (fails if duplicates were written meanwhile: remove them and roll back again)"
		phase.Statements = []phases.Statement{u.DropConstraint()}
		phase.Rollback = append(u.Index.Create(), attach)
		return []phases.Phase{phase}, nil
	}
	def, notValid := strings.CutSuffix(live.Definition, " NOT VALID")
	c.Definition = def
	if live.Type == "f" {
		rt, _ := referencedTable(live.Definition)
		c.References = &rt
	}
	phase.Statements = []phases.Statement{c.Drop()}
	phase.Rollback = []phases.Statement{c.AddNotValid()}
	if notValid {
		phase.Purpose += "; rollback adds it back NOT VALID, as it was"
	} else {
		phase.Purpose += "; rollback adds it back NOT VALID, then validates it without blocking writes (fails if rows violating it were written meanwhile: fix them and roll back again)"
		phase.Rollback = append(phase.Rollback, c.Validate())
	}
	return []phases.Phase{phase}, nil
}

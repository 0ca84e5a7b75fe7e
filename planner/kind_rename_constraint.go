package planner

import (
	"fmt"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("rename_constraint", func() Kind { return &RenameConstraint{} }) }

// RenameConstraint renames a CHECK, UNIQUE, FOREIGN KEY or PRIMARY KEY
// constraint: catalog only, instant, rolled back by renaming it back. A
// unique or primary key constraint's index is renamed with it. Statements
// naming the constraint (INSERT ... ON CONFLICT ON CONSTRAINT name) must
// follow the new name.
type RenameConstraint struct {
	TableName  string `yaml:"table" json:"table"`
	Constraint string `yaml:"constraint" json:"constraint"`
	To         string `yaml:"to" json:"to"`
}

func (k *RenameConstraint) Table() TableName { return ParseTableName(k.TableName) }

func (k *RenameConstraint) Check() []Problem {
	ps := tableProblems(k.TableName)
	ps = append(ps, columnProblems("constraint", k.Constraint)...)
	ps = append(ps, columnProblems("to", k.To)...)
	if k.Constraint != "" && k.Constraint == k.To {
		ps = append(ps, Problem{Field: "to", Message: "is the constraint's current name", Hint: "give the new name, or remove this change"})
	}
	return ps
}

// indexBacked says whether the constraint has an index (unique, primary
// key), renamed with it.
func (k *RenameConstraint) indexBacked(t *Table) bool { return backingIndex(t, k.Constraint) != nil }

func (k *RenameConstraint) effect(string) effect {
	return effect{drops: []objGone{{objName{"constraint", k.Constraint, false}, fmt.Sprintf("renamed to %q", k.To)}},
		names: []objName{{"to", k.To, false}},
		alter: func(t *Table) {
			for i := range t.Checks {
				if t.Checks[i].Name == k.Constraint {
					t.Checks[i].Name = k.To
				}
			}
			for i := range t.Indexes {
				if t.Indexes[i].Constraint == k.Constraint {
					t.Indexes[i].Name, t.Indexes[i].Constraint = k.To, k.To
				}
			}
		}}
}

func (k *RenameConstraint) CheckLive(t *Table) []Problem {
	if t.constraintNamed(k.Constraint) == nil && !k.indexBacked(t) {
		return []Problem{noConstraint("constraint", k.Constraint, t)}
	}
	if t.indexNamed(k.To) != nil || t.constraintNamed(k.To) != nil {
		return []Problem{{Field: "to", Message: fmt.Sprintf("%s already has an index or constraint named %q", t.Name, k.To), Hint: "pick another name"}}
	}
	return nil
}

func (k *RenameConstraint) Compile(id string, target Target) ([]phases.Phase, error) {
	t := k.Table()
	purpose := fmt.Sprintf("rename constraint %s of %s to %s (instant, catalog only)", k.Constraint, t, k.To)
	if target.Table != nil {
		if ps := k.CheckLive(target.Table); len(ps) > 0 {
			return nil, problemsError(ps)
		}
		if k.indexBacked(target.Table) {
			purpose += "; its index is renamed with it"
		}
	}
	r := phases.ConstraintRename{Table: t, From: k.Constraint, To: k.To}
	return []phases.Phase{{
		Name:       "rename_constraint",
		Purpose:    purpose,
		Statements: []phases.Statement{r.Statement()},
		Rollback:   []phases.Statement{r.Back().Statement()},
	}}, nil
}

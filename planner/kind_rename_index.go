package planner

import (
	"fmt"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("rename_index", func() Kind { return &RenameIndex{} }) }

// RenameIndex renames an index: catalog only, instant, and rolled back by
// renaming it back. Queries do not name indexes; planner hints and
// monitoring that do must follow the new name.
type RenameIndex struct {
	TableName string `yaml:"table" json:"table"`
	Index     string `yaml:"index" json:"index"`
	To        string `yaml:"to" json:"to"`
}

func (k *RenameIndex) Table() TableName { return ParseTableName(k.TableName) }

func (k *RenameIndex) Check() []Problem {
	ps := tableProblems(k.TableName)
	ps = append(ps, columnProblems("index", k.Index)...)
	ps = append(ps, columnProblems("to", k.To)...)
	if k.Index != "" && k.Index == k.To {
		ps = append(ps, Problem{Field: "to", Message: "is the index's current name", Hint: "give the new name, or remove this change"})
	}
	return ps
}

func (k *RenameIndex) effect(string) effect {
	return effect{drops: []objGone{{objName{"index", k.Index, true}, fmt.Sprintf("renamed to %q", k.To)}},
		names: []objName{{"to", k.To, true}},
		alter: func(t *Table) {
			for i := range t.Indexes {
				if t.Indexes[i].Name == k.Index {
					t.Indexes[i].Name = k.To
				}
			}
		}}
}

func (k *RenameIndex) CheckLive(t *Table) []Problem {
	ix := t.indexNamed(k.Index)
	if ix == nil {
		return []Problem{noIndex("index", k.Index, t)}
	}
	if ix.Constraint != "" {
		return []Problem{{Field: "index", Message: fmt.Sprintf("%s is the index of the constraint %s, and renaming one renames both", k.Index, ix.Constraint),
			Hint: fmt.Sprintf("use kind: rename_constraint with constraint: %s, which says so in the plan", quoteIfNeeded(ix.Constraint))}}
	}
	if t.indexNamed(k.To) != nil || t.constraintNamed(k.To) != nil {
		return []Problem{{Field: "to", Message: fmt.Sprintf("%s already has an index or constraint named %q", t.Name, k.To), Hint: "pick another name"}}
	}
	return nil
}

func (k *RenameIndex) Compile(id string, target Target) ([]phases.Phase, error) {
	if target.Table != nil {
		if ps := k.CheckLive(target.Table); len(ps) > 0 {
			return nil, problemsError(ps)
		}
	}
	t := k.Table()
	r := phases.IndexRename{Table: t, From: k.Index, To: k.To}
	purpose := fmt.Sprintf("rename index %s of %s to %s (instant, catalog only)", k.Index, t, k.To)
	if target.partitioned() != nil {
		purpose += "; on a partitioned table this renames the parent's index, the partitions' indexes keep their names"
	}
	return []phases.Phase{{
		Name:       "rename_index",
		Purpose:    purpose,
		Statements: []phases.Statement{r.Statement()},
		Rollback:   []phases.Statement{r.Back().Statement()},
	}}, nil
}

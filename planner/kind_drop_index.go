package planner

import (
	"fmt"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("drop_index", func() Kind { return &DropIndex{} }) }

// DropIndex drops an index with DROP INDEX CONCURRENTLY. Its definition is
// taken from the table's snapshot at registration, so that the rollback
// builds the same index again, concurrently.
type DropIndex struct {
	TableName string `yaml:"table" json:"table"`
	Index     string `yaml:"index" json:"index"`
}

func (k *DropIndex) Table() TableName { return ParseTableName(k.TableName) }

func (k *DropIndex) Check() []Problem {
	ps := tableProblems(k.TableName)
	if p := required("index", k.Index); p != nil {
		return append(ps, p...)
	}
	return append(ps, identifier("index", k.Index)...)
}

// effect: the index is gone for the changes after this one.
func (k *DropIndex) effect(string) effect {
	return effect{drops: []objGone{{objName{"index", k.Index, true}, "dropped"}},
		alter: func(t *Table) { t.Indexes = without(t.Indexes, func(ix Index) bool { return ix.Name == k.Index }) }}
}

func (k *DropIndex) CheckLive(t *Table) []Problem {
	ix := t.indexNamed(k.Index)
	switch {
	case ix == nil:
		return []Problem{noIndex("index", k.Index, t)}
	case ix.Primary:
		return []Problem{{Field: "index", Message: fmt.Sprintf("%s is the index of the primary key of %s", k.Index, t.Name),
			Hint: "this planner does not drop primary keys: keep it, or do it by hand in a maintenance window"}}
	case ix.Constraint != "":
		return []Problem{{Field: "index", Message: fmt.Sprintf("%s backs the constraint %s of %s; DROP INDEX would fail, and dropping the constraint is a different change", k.Index, ix.Constraint, t.Name),
			Hint: fmt.Sprintf("use kind: drop_constraint with constraint: %s (it drops the index with it, and its rollback rebuilds both without blocking writes)", quoteIfNeeded(ix.Constraint))}}
	case t.Partitioning != nil:
		return []Problem{{Field: "table", Message: fmt.Sprintf("%s is partitioned, and PostgreSQL cannot DROP INDEX CONCURRENTLY an index of a partitioned table", t.Name),
			Hint: "drop it by hand with DROP INDEX under a short lock_timeout (catalog only, but it takes ACCESS EXCLUSIVE on the parent and every partition), or keep it"}}
	}
	if ix.Unique {
		if refs := referencingUnique(t, ix.Columns); len(refs) > 0 {
			return []Problem{{Field: "index", Message: fmt.Sprintf("foreign keys reference the columns of the unique index %s: %v", k.Index, refs),
				Hint: "drop those foreign keys first (kind: drop_constraint on their tables)"}}
		}
	}
	if _, ok := indexBody(ix.Definition, "", ""); !ok {
		return []Problem{{Field: "index", Message: fmt.Sprintf("cannot read the definition of %s (%s) to rebuild it on rollback", k.Index, ix.Definition),
			Hint: "drop it by hand with DROP INDEX CONCURRENTLY, keeping its definition"}}
	}
	return nil
}

func (k *DropIndex) Compile(id string, target Target) ([]phases.Phase, error) {
	t := k.Table()
	ix := phases.Index{Table: t, Name: k.Index,
		Body: fmt.Sprintf("/* definition of %s as registered */", k.Index)}
	if target.Table != nil {
		if ps := k.CheckLive(target.Table); len(ps) > 0 {
			return nil, problemsError(ps)
		}
		live := target.Table.indexNamed(k.Index)
		ix.Unique = live.Unique
		ix.Body, _ = indexBody(live.Definition, "", "")
	}
	return []phases.Phase{{
		Name:       "drop_index",
		Purpose:    fmt.Sprintf("drop index %s of %s without blocking reads or writes; rollback builds it again concurrently from its definition at registration", k.Index, t),
		Statements: ix.Drop(),
		Rollback:   ix.Create(),
	}}, nil
}

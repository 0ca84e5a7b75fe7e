package planner

import (
	"fmt"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("drop_not_null", func() Kind { return &DropNotNull{} }) }

// DropNotNull makes a NOT NULL column nullable: catalog only, instant. The
// rollback enforces NOT NULL again as set_not_null does, without a long
// lock: a CHECK (col IS NOT NULL) NOT VALID, VALIDATE, SET NOT NULL proved
// by the check (PostgreSQL 18: a NOT NULL constraint NOT VALID, then
// VALIDATE). It fails while rows written meanwhile hold NULL.
type DropNotNull struct {
	TableName string `yaml:"table" json:"table"`
	Column    string `yaml:"column" json:"column"`
}

func (k *DropNotNull) Table() TableName { return ParseTableName(k.TableName) }

func (k *DropNotNull) Check() []Problem {
	return append(tableProblems(k.TableName), columnProblems("column", k.Column)...)
}

func (k *DropNotNull) effect(string) effect {
	return effect{uses: []colRef{{"column", k.Column}}, nullable: k.Column}
}

func (k *DropNotNull) CheckLive(t *Table) []Problem {
	c := t.Column(k.Column)
	switch {
	case c == nil:
		return []Problem{{Field: "column", Message: fmt.Sprintf("column %q does not exist on %s", k.Column, t.Name), Hint: "check the column name" + nearest(k.Column, columnNames(t))}}
	case !c.NotNull:
		return []Problem{{Field: "column", Message: fmt.Sprintf("%s.%s is already nullable", t.Name, k.Column), Hint: "remove this change"}}
	case primaryKeyHas(t, k.Column):
		return []Problem{{Field: "column", Message: fmt.Sprintf("%s.%s is part of the primary key, which PostgreSQL keeps NOT NULL", t.Name, k.Column),
			Hint: "keep it NOT NULL, or move the primary key to other columns first (by hand, in a maintenance window)"}}
	case c.Generated:
		return []Problem{{Field: "column", Message: fmt.Sprintf("%s.%s is an identity or generated column", t.Name, k.Column),
			Hint: "drop the identity or generation by hand first (ALTER COLUMN ... DROP IDENTITY / DROP EXPRESSION)"}}
	}
	return nil
}

func (k *DropNotNull) Compile(id string, target Target) ([]phases.Phase, error) {
	if target.Table != nil {
		if ps := k.CheckLive(target.Table); len(ps) > 0 {
			return nil, problemsError(ps)
		}
	}
	t := k.Table()
	col := phases.Column{Table: t, Name: k.Column}
	nn := phases.NotNull{Column: col, Version: target.Version}
	return []phases.Phase{{
		Name: "drop_not_null",
		Purpose: fmt.Sprintf("make %s.%s nullable (instant, catalog only); rollback enforces NOT NULL again without a long lock, and fails while rows written meanwhile hold NULL (give them a value and roll back again)",
			t, k.Column),
		Statements: []phases.Statement{col.DropNotNull()},
		Rollback:   nn.Statements(),
	}}, nil
}

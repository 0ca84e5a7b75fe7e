package planner

import (
	"fmt"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("drop_default", func() Kind { return &DropDefault{} }) }

// DropDefault removes a column's default: catalog only, instant. The
// rollback sets the default recorded at registration again.
type DropDefault struct {
	TableName string `yaml:"table" json:"table"`
	Column    string `yaml:"column" json:"column"`
}

func (k *DropDefault) Table() TableName { return ParseTableName(k.TableName) }

func (k *DropDefault) Check() []Problem {
	return append(tableProblems(k.TableName), columnProblems("column", k.Column)...)
}

func (k *DropDefault) effect(string) effect {
	return effect{uses: []colRef{{"column", k.Column}},
		alter: func(t *Table) {
			if c := t.Column(k.Column); c != nil {
				c.Default = ""
			}
		}}
}

// CheckLive does not refuse a NOT NULL column: applications may all write
// it already; the purpose says what happens to those that do not.
func (k *DropDefault) CheckLive(t *Table) []Problem { return defaultColumnLive(t, k.Column, true) }

func (k *DropDefault) Compile(id string, target Target) ([]phases.Phase, error) {
	t := k.Table()
	purpose := fmt.Sprintf("remove the default of %s.%s (instant, catalog only); rollback sets the default it had at registration again", t, k.Column)
	if target.Table != nil {
		if ps := k.CheckLive(target.Table); len(ps) > 0 {
			return nil, problemsError(ps)
		}
		if target.Table.Column(k.Column).NotNull {
			purpose += "; the column is NOT NULL: inserts that leave it out fail from now on, so every application must write it before this runs"
		}
	}
	col := phases.Column{Table: t, Name: k.Column}
	return []phases.Phase{{
		Name:       "drop_default",
		Purpose:    purpose,
		Statements: []phases.Statement{col.DropDefault()},
		Rollback:   []phases.Statement{restoreDefault(col, target)},
	}}, nil
}

package planner

import (
	"fmt"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("rename_column", func() Kind { return &RenameColumn{} }) }

// RenameColumn renames TableName.Column to To without breaking running
// applications: a new column kept equal to the old one by a trigger, flags
// to move readers and writers, then the old column is dropped.
type RenameColumn struct {
	TableName string `yaml:"table" json:"table"`
	Column    string `yaml:"column" json:"column"`
	To        string `yaml:"to" json:"to"`
}

func (k *RenameColumn) Table() TableName { return ParseTableName(k.TableName) }

func (k *RenameColumn) Check() []Problem {
	ps := tableProblems(k.TableName)
	ps = append(ps, columnProblems("column", k.Column)...)
	ps = append(ps, columnProblems("to", k.To)...)
	if k.Column != "" && k.Column == k.To {
		ps = append(ps, Problem{Field: "to", Message: "is the same as column", Hint: "name the new column differently"})
	}
	return ps
}

func (k *RenameColumn) CheckLive(t *Table) []Problem {
	return copyColumnLive(t, "column", k.Column, "to", k.To)
}

func (k *RenameColumn) FlagMeta() map[string]string {
	return map[string]string{"table": k.Table().String(), "old_column": k.Column, "new_column": k.To}
}

func (k *RenameColumn) effect(string) effect {
	return effect{uses: []colRef{{"column", k.Column}},
		adds:    []colAdd{{field: "to", name: k.To, from: k.Column}},
		removes: []colGone{{k.Column, fmt.Sprintf("renamed to %q", k.To)}}}
}

// addedColumns: the copy has the old column's type.
func (k *RenameColumn) addedColumns(t *Table) map[string]string {
	if c := t.Column(k.Column); c != nil {
		return map[string]string{k.To: c.Type}
	}
	return nil
}

// liveExpressions: the backfill's copy of the old column into the new one.
func (k *RenameColumn) liveExpressions(t *Table) []expression {
	typ := ""
	if c := t.Column(k.To); c != nil {
		typ = c.Type
	} else if c := t.Column(k.Column); c != nil {
		typ = c.Type
	}
	if typ == "" {
		return nil
	}
	return []expression{{field: "backfill", expr: phases.Ident(k.Column), column: k.To, typ: typ, hint: hintAssign, onRows: true}}
}

func (k *RenameColumn) Compile(id string, target Target) ([]phases.Phase, error) {
	return compileCopyColumn(id, target, copyColumn{
		table: k.Table(), old: k.Column, new: k.To, newField: "to",
	})
}

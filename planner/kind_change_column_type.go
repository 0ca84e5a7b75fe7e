package planner

import (
	"fmt"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("change_column_type", func() Kind { return &ChangeColumnType{} }) }

// ChangeColumnType moves a column's data to a new column of another type,
// converting both ways while old and new application versions run side by
// side, without the table rewrite an ALTER COLUMN TYPE would take.
type ChangeColumnType struct {
	TableName string `yaml:"table" json:"table"`
	Column    string `yaml:"column" json:"column"`
	Type      string `yaml:"type" json:"type"`
	// Up computes the new value from the old column (named as Column).
	Up string `yaml:"up,omitempty" json:"up,omitempty"`
	// Down computes the old value from the new column (named as NewColumn).
	Down string `yaml:"down,omitempty" json:"down,omitempty"`
	// NewColumn names the new column; default "<column>_new".
	NewColumn string `yaml:"new_column,omitempty" json:"new_column,omitempty"`
	Allows    `yaml:",inline" json:",inline"`
}

func (k *ChangeColumnType) Expressions() []Expression {
	return []Expression{{Field: "up", SQL: k.Up, Function: true}, {Field: "down", SQL: k.Down, Function: true}}
}

func (k *ChangeColumnType) Table() TableName { return ParseTableName(k.TableName) }

// New is the new column's name.
func (k *ChangeColumnType) New() string {
	if k.NewColumn != "" {
		return k.NewColumn
	}
	return k.Column + "_new"
}

func (k *ChangeColumnType) Check() []Problem {
	ps := tableProblems(k.TableName)
	ps = append(ps, columnProblems("column", k.Column)...)
	ps = append(ps, typeProblems("type", k.Type)...)
	ps = append(ps, identifier("new_column", k.NewColumn)...)
	if k.Column != "" && len(k.Column+"_new") > maxIdentifier && k.NewColumn == "" {
		ps = append(ps, Problem{Field: "new_column", Message: fmt.Sprintf("the default new column name %q is longer than 63 bytes", k.Column+"_new"), Hint: "set new_column"})
	}
	if k.NewColumn != "" && k.NewColumn == k.Column {
		ps = append(ps, Problem{Field: "new_column", Message: "is the same as column", Hint: "the new column must have a name of its own while both exist; rename it afterwards with a rename_column change"})
	}
	if k.Up == "" {
		ps = append(ps, Problem{Field: "up", Message: "is required: how to compute the new value from the old one",
			Hint: fmt.Sprintf("write it with the old column's name, e.g. up: %q (an ALTER COLUMN TYPE instead would rewrite the table under an ACCESS EXCLUSIVE lock)", fmt.Sprintf("%s::%s", quoteIfNeeded(k.Column), k.Type))})
	}
	if k.Down == "" {
		ps = append(ps, Problem{Field: "down", Message: "is required: how to compute the old value from the new one, for applications still writing the old column",
			Hint: fmt.Sprintf("write it with the new column's name, e.g. down: %q", fmt.Sprintf("%s::<old type>", quoteIfNeeded(k.New())))})
	}
	ps = append(ps, exprProblems("up", k.Up)...)
	ps = append(ps, exprProblems("down", k.Down)...)
	ps = append(ps, reachProblems(k, k.Table())...)
	return ps
}

func (k *ChangeColumnType) castTargets(t *Table) map[string]string {
	out := map[string]string{"up": k.Type}
	if c := t.Column(k.Column); c != nil {
		out["down"] = c.Type
	}
	return out
}

func (k *ChangeColumnType) addedColumns(*Table) map[string]string {
	return map[string]string{k.New(): k.Type}
}

func (k *ChangeColumnType) effect(string) effect {
	return effect{uses: []colRef{{"column", k.Column}},
		adds:    []colAdd{{field: "new_column", name: k.New(), typ: k.Type, from: k.Column}},
		removes: []colGone{{k.Column, fmt.Sprintf("replaced by %q (type %s)", k.New(), k.Type)}},
		exprs:   []fieldExpr{{"up", k.Up}}}
}

// liveExpressions: up, which the backfill runs through the function the
// expand phase makes of it, assigned to the new column; down assigned to
// the old one.
func (k *ChangeColumnType) liveExpressions(t *Table) []expression {
	var out []expression
	typ := k.Type
	if c := t.Column(k.New()); c != nil {
		typ = c.Type
	}
	if k.Up != "" && typ != "" {
		out = append(out, expression{field: "up", expr: k.Up, column: k.New(), typ: typ, hint: hintAssign, onRows: true})
	}
	if old := t.Column(k.Column); old != nil && k.Down != "" {
		out = append(out, expression{field: "down", expr: k.Down, column: old.Name, typ: old.Type,
			hint: "write the inverse of up using the new column's name, yielding the old column's type"})
	}
	return out
}

func (k *ChangeColumnType) CheckLive(t *Table) []Problem {
	return copyColumnLive(t, "column", k.Column, "new_column", k.New())
}

func (k *ChangeColumnType) TypeNames() map[string]string { return map[string]string{"type": k.Type} }

func (k *ChangeColumnType) FlagMeta() map[string]string {
	return map[string]string{"table": k.Table().String(), "old_column": k.Column, "new_column": k.New()}
}

func (k *ChangeColumnType) Compile(id string, target Target) ([]phases.Phase, error) {
	return compileCopyColumn(id, target, copyColumn{
		table: k.Table(), old: k.Column, new: k.New(), newField: "new_column", newType: k.Type, up: k.Up, down: k.Down,
		upLabel: functionLabel(target.Table, k.Up), downLabel: functionLabel(target.Table, k.Down),
	})
}

package planner

import (
	"fmt"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("set_not_null", func() Kind { return &SetNotNull{} }) }

// SetNotNull makes an existing column NOT NULL without holding an ACCESS
// EXCLUSIVE lock during the scan, after filling NULL rows in batches.
type SetNotNull struct {
	TableName string `yaml:"table" json:"table"`
	Column    string `yaml:"column" json:"column"`
	// Backfill is the value given to rows where the column is NULL.
	Backfill string `yaml:"backfill,omitempty" json:"backfill,omitempty"`
	Allows   `yaml:",inline" json:",inline"`
}

func (k *SetNotNull) Expressions() []Expression {
	return []Expression{{Field: "backfill", SQL: k.Backfill}}
}

func (k *SetNotNull) Table() TableName { return ParseTableName(k.TableName) }

func (k *SetNotNull) Check() []Problem {
	ps := tableProblems(k.TableName)
	ps = append(ps, columnProblems("column", k.Column)...)
	ps = append(ps, exprProblems("backfill", k.Backfill)...)
	return append(ps, reachProblems(k, k.Table())...)
}

func (k *SetNotNull) CheckLive(t *Table) []Problem {
	c := t.Column(k.Column)
	if c == nil {
		return nil // the common live check reports missing columns
	}
	if c.NotNull {
		return []Problem{{Field: "column", Message: fmt.Sprintf("%s.%s is already NOT NULL", t.Name, k.Column), Hint: "remove this change"}}
	}
	return nil
}

func (k *SetNotNull) effect(string) effect {
	return effect{uses: []colRef{{"column", k.Column}}, notNull: k.Column, exprs: []fieldExpr{{"backfill", k.Backfill}}}
}

func (k *SetNotNull) liveExpressions(t *Table) []expression {
	c := t.Column(k.Column)
	if k.Backfill == "" || c == nil {
		return nil
	}
	return []expression{{field: "backfill", expr: fillExpr(k.Column, k.Backfill), column: k.Column, typ: c.Type, hint: hintAssign, onRows: true}}
}

func (k *SetNotNull) Compile(id string, target Target) ([]phases.Phase, error) {
	return compileSetNotNull(k, id, target)
}

func compileSetNotNull(k *SetNotNull, id string, target Target) ([]phases.Phase, error) {
	t := k.Table()
	col := phases.Column{Table: t, Name: k.Column}
	nn := phases.NotNull{Column: col, Version: target.Version}
	enforce := phases.Phase{
		Name:       "enforce",
		Purpose:    fmt.Sprintf("make %s.%s NOT NULL without a long lock", t, k.Column),
		Statements: nn.Statements(),
		Rollback:   nn.Rollback(),
	}
	if k.Backfill == "" {
		return []phases.Phase{enforce}, nil
	}
	// From the backfill until NOT NULL holds, writes that leave the column
	// NULL get the fill value, so the verified backfill stays true.
	filler := phases.Fill{ID: id, Column: col, Expr: k.Backfill}
	fill := phases.Phase{
		Name: "backfill",
		Purpose: fmt.Sprintf("give rows where %s IS NULL the value %s: a trigger for rows written from now on, then existing rows in batches, keeping their keys so that rollback can set them back to NULL",
			k.Column, k.Backfill),
		Statements: filler.Install(),
		Backfill: &phases.Backfill{Schema: t.SchemaOrPublic(), Table: t.Name, Column: k.Column,
			Expr: fillExpr(k.Column, k.Backfill), Undo: true, KeptBy: filler.TriggerName()},
		Rollback: filler.Remove(),
	}
	enforce.Purpose += ", then drop the fill trigger"
	enforce.Gate = phases.BackfillVerified
	enforce.Statements = append(enforce.Statements, filler.Remove()...)
	enforce.Rollback = append(filler.Install(), enforce.Rollback...)
	return []phases.Phase{fill, enforce}, nil
}

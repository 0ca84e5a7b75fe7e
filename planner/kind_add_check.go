package planner

import (
	"github.com/pgplanner/planner/phases"
)

func init() { Register("add_check", func() Kind { return &AddCheck{} }) }

// AddCheck adds a CHECK constraint NOT VALID, then validates it in a later
// transaction without blocking writes.
type AddCheck struct {
	TableName string `yaml:"table" json:"table"`
	// Name defaults to <table>_<change id>_check.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Expr is the boolean expression (yaml key `check`).
	Expr   string `yaml:"check" json:"check"`
	Allows `yaml:",inline" json:",inline"`
}

func (k *AddCheck) Expressions() []Expression { return []Expression{{Field: "check", SQL: k.Expr}} }

func (k *AddCheck) Table() TableName { return ParseTableName(k.TableName) }

func (k *AddCheck) constraintName(id string) string {
	if k.Name != "" {
		return k.Name
	}
	return phases.DerivedName(k.Table().Name, id, "check")
}

func (k *AddCheck) Check() []Problem {
	ps := tableProblems(k.TableName)
	ps = append(ps, identifier("name", k.Name)...)
	ps = append(ps, required("check", k.Expr)...)
	ps = append(ps, exprProblems("check", k.Expr)...)
	return append(ps, reachProblems(k, k.Table())...)
}

func (k *AddCheck) effect(id string) effect {
	n := k.constraintName(id)
	return effect{exprs: []fieldExpr{{"check", k.Expr}}, names: []objName{{"name", n, false}},
		constraints: []Constraint{{Name: n, Type: "c", Definition: "CHECK (" + k.Expr + ")"}}}
}

// liveExpressions: the check, which existing rows must satisfy.
func (k *AddCheck) liveExpressions(*Table) []expression {
	if k.Expr == "" {
		return nil
	}
	return []expression{{field: "check", expr: k.Expr, hint: hintCondition, onRows: true, constraint: true}}
}

func (k *AddCheck) CheckLive(t *Table) []Problem { return constraintNameLive(t, k.Name) }

func (k *AddCheck) Compile(id string, target Target) ([]phases.Phase, error) {
	t := k.Table()
	c := phases.Constraint{Table: t, Name: k.constraintName(id),
		Definition: "CHECK (" + k.Expr + "\n)"} // a trailing -- comment in the expression ends at the newline
	return notValidThenValidate(c, "check "+k.Expr), nil
}

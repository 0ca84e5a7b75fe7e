package planner

import (
	"fmt"
	"strings"

	"github.com/pgplanner/planner/internal/sqllex"
	"github.com/pgplanner/planner/phases"
)

func init() { Register("set_default", func() Kind { return &SetDefault{} }) }

// SetDefault sets a column's default: catalog only, instant, for rows
// inserted from then on (existing rows keep their values, nothing is
// rewritten). The rollback restores the default the column had at
// registration, or drops it when it had none.
type SetDefault struct {
	TableName string `yaml:"table" json:"table"`
	Column    string `yaml:"column" json:"column"`
	// Default is the SQL expression (yaml key `default`).
	Default string `yaml:"default" json:"default"`
	Allows  `yaml:",inline" json:",inline"`
}

func (k *SetDefault) Expressions() []Expression {
	return []Expression{{Field: "default", SQL: k.Default}}
}

func (k *SetDefault) Table() TableName { return ParseTableName(k.TableName) }

// volatileDefaultHint is the safe alternative to a volatile default.
const volatileDefaultHint = "use a constant or a stable expression (e.g. 'active', 0, now()); a VOLATILE default (random(), clock_timestamp(), nextval()) runs again for every inserted row and, once copied by a later column change, in its triggers. If a per-row value is intended (a sequence, gen_random_uuid()), add `allow: [volatile]`: SET DEFAULT stays catalog only either way"

func (k *SetDefault) Check() []Problem {
	ps := tableProblems(k.TableName)
	ps = append(ps, columnProblems("column", k.Column)...)
	ps = append(ps, required("default", k.Default)...)
	ps = append(ps, exprProblems("default", k.Default)...)
	if x, err := sqllex.Analyze(k.Default); err == nil && len(x.Subqueries) > 0 {
		ps = append(ps, Problem{Field: "default", offset: x.Subqueries[0] + 1, Message: "contains a subquery, which PostgreSQL refuses in a DEFAULT",
			Hint: "use a constant or an expression of no column, e.g. 0, 'none', now()"})
	}
	for _, p := range reachProblems(k, k.Table()) {
		if strings.Contains(p.Message, "VOLATILE") {
			p.Hint = volatileDefaultHint
		}
		if !strings.Contains(p.Message, "subquery") {
			ps = append(ps, p)
		}
	}
	return ps
}

func (k *SetDefault) effect(string) effect {
	return effect{uses: []colRef{{"column", k.Column}}, exprs: []fieldExpr{{"default", k.Default}},
		alter: func(t *Table) {
			if c := t.Column(k.Column); c != nil {
				c.Default = k.Default
			}
		}}
}

// liveExpressions: the default, assigned to the column's type.
func (k *SetDefault) liveExpressions(t *Table) []expression {
	c := t.Column(k.Column)
	if k.Default == "" || c == nil {
		return nil
	}
	return []expression{{field: "default", expr: k.Default, column: k.Column, typ: c.Type, hint: hintDefault}}
}

func (k *SetDefault) CheckLive(t *Table) []Problem { return defaultColumnLive(t, k.Column, false) }

// defaultColumnLive checks the column whose default changes: it exists and
// is neither an identity nor a generated column; for drop_default
// (mustHave), it has a default.
func defaultColumnLive(t *Table, column string, mustHave bool) []Problem {
	c := t.Column(column)
	switch {
	case c == nil:
		return []Problem{{Field: "column", Message: fmt.Sprintf("column %q does not exist on %s", column, t.Name), Hint: "check the column name" + nearest(column, columnNames(t))}}
	case c.Generated:
		return []Problem{{Field: "column", Message: fmt.Sprintf("%s.%s is an identity or generated column: PostgreSQL computes its value, it has no default to change", t.Name, column),
			Hint: "change the identity or generation by hand (ALTER COLUMN ... SET GENERATED / DROP IDENTITY), or pick another column"}}
	case mustHave && c.Default == "":
		return []Problem{{Field: "column", Message: fmt.Sprintf("%s.%s has no default", t.Name, column), Hint: "remove this change"}}
	}
	return nil
}

// restoreDefault is the statement putting back the default the column had
// at registration; offline a marked placeholder.
func restoreDefault(col phases.Column, target Target) phases.Statement {
	if target.Table == nil {
		return col.SetDefault(fmt.Sprintf("/* default of %s.%s as registered; DROP DEFAULT when it had none */", col.Table, col.Name))
	}
	if prev := target.Table.Column(col.Name).Default; prev != "" {
		return col.SetDefault(prev)
	}
	return col.DropDefault()
}

func (k *SetDefault) Compile(id string, target Target) ([]phases.Phase, error) {
	if target.Table != nil {
		if ps := k.CheckLive(target.Table); len(ps) > 0 {
			return nil, problemsError(ps)
		}
	}
	t := k.Table()
	col := phases.Column{Table: t, Name: k.Column}
	return []phases.Phase{{
		Name:       "set_default",
		Purpose:    fmt.Sprintf("give %s.%s the default %s for rows inserted from now on (instant, catalog only: existing rows keep their values); rollback restores the default it had at registration", t, k.Column, k.Default),
		Statements: []phases.Statement{col.SetDefault(k.Default)},
		Rollback:   []phases.Statement{restoreDefault(col, target)},
	}}, nil
}

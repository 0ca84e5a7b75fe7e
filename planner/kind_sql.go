package planner

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pgplanner/planner/internal/sqllint"
	"github.com/pgplanner/planner/phases"
)

func init() { Register("sql", func() Kind { return &SQL{} }) }

// SQL runs raw statements: up, and down to roll them back. They are linted
// with the rules of `planner lint` (internal/sqllint) and refused when
// unsafe, unless Allow names the rule and Reason says why the risk is
// acceptable. Each side runs in one transaction of the runner, under its
// lock_timeout with retries, so it applies whole or not at all.
type SQL struct {
	// TableName is the table the statements change: changes on it are
	// serialized with this one.
	TableName string `yaml:"table" json:"table"`
	Up        string `yaml:"up" json:"up"`
	// Down undoes Up; without it the phase is irreversible.
	Down string `yaml:"down,omitempty" json:"down,omitempty"`
	// Allow acknowledges lint rules (by name) that the statements break on
	// purpose; Reason, required with it, says why.
	Allow  []string `yaml:"allow,omitempty" json:"allow,omitempty"`
	Reason string   `yaml:"reason,omitempty" json:"reason,omitempty"`
}

func (k *SQL) Table() TableName { return ParseTableName(k.TableName) }

// effect is empty: the sequence model cannot see what raw SQL does, so
// later changes are judged as if these statements changed nothing.
func (k *SQL) effect(string) effect { return effect{} }

func (k *SQL) Check() []Problem {
	ps := tableProblems(k.TableName)
	ps = append(ps, required("up", k.Up)...)
	used := map[string]bool{}
	ps = append(ps, k.lint("up", k.Up, used)...)
	ps = append(ps, k.lint("down", k.Down, used)...)
	for i, a := range k.Allow {
		f := fmt.Sprintf("allow[%d]", i)
		r, ok := sqllint.RuleByName(a)
		switch {
		case !ok:
			ps = append(ps, Problem{Field: f, Message: fmt.Sprintf("%q is not a lint rule", a),
				Hint: didYouMean(a, sqllint.RuleNames(), "name a rule of `planner lint` (README: planner lint)")})
		case r.Severity != sqllint.Unsafe:
			ps = append(ps, Problem{Field: f, Message: fmt.Sprintf("rule %s is advice and refuses nothing", a), Hint: "remove it from allow"})
		case !used[a] && strings.TrimSpace(k.Up) != "":
			ps = append(ps, Problem{Field: f, Message: fmt.Sprintf("no statement breaks rule %s", a), Hint: "remove it from allow: acknowledge only the risks the statements take"})
		}
	}
	switch {
	case len(k.Allow) > 0 && strings.TrimSpace(k.Reason) == "":
		ps = append(ps, Problem{Field: "allow", Message: "acknowledges a risk without a reason", Hint: "add reason: saying why the risk is acceptable here (e.g. the table has 40 rows)"})
	case len(k.Allow) == 0 && k.Reason != "":
		ps = append(ps, Problem{Field: "reason", Message: "gives a reason but allow acknowledges no rule", Hint: "remove reason, or list the rules it is for in allow"})
	}
	return ps
}

// lint checks one side's statements; used collects the allowed rules that
// a statement breaks.
func (k *SQL) lint(field, src string, used map[string]bool) []Problem {
	if strings.TrimSpace(src) == "" {
		return nil
	}
	stmts, err := sqllint.Lint(src, sqllint.Options{Runner: true})
	if le, ok := err.(*sqllint.Error); ok {
		return []Problem{{Field: field, offset: le.Pos + 1, Message: le.Message, Hint: le.Hint}}
	} else if err != nil {
		return []Problem{{Field: field, Message: err.Error()}}
	}
	var ps []Problem
	at := func(s sqllint.Statement) string { return fmt.Sprintf("statement at line %d of %s", s.Line, field) }
	for _, s := range stmts {
		switch {
		case s.Control:
			ps = append(ps, Problem{Field: field, offset: s.Pos + 1, Message: fmt.Sprintf("%s: %s controls the transaction, which is the planner's", at(s), s.Verb),
				Hint: "remove it: each side runs in one transaction the planner opens and commits with the change's state"})
			continue
		case s.NoTransaction:
			ps = append(ps, Problem{Field: field, offset: s.Pos + 1, Message: fmt.Sprintf("%s: %s cannot run inside the transaction the planner runs the statements in", at(s), s.Verb),
				Hint: "use the add_index kind for CREATE INDEX CONCURRENTLY (it also rebuilds an INVALID index a failed build leaves), or run it by hand outside a transaction"})
			continue
		case s.SetsSession:
			ps = append(ps, Problem{Field: field, offset: s.Pos + 1, Message: fmt.Sprintf("%s: %s changes a setting of the session, past the planner's guards (lock_timeout, statement_timeout) and, with SET, past the transaction", at(s), s.Verb),
				Hint: "remove it: set the guards with --lock-timeout and --statement-timeout"})
			continue
		}
		for _, f := range s.Findings {
			if f.Severity != sqllint.Unsafe {
				continue
			}
			if slices.Contains(k.Allow, f.Rule) {
				used[f.Rule] = true
				continue
			}
			ps = append(ps, Problem{Field: field, offset: f.Pos + 1,
				Message: fmt.Sprintf("%s: %s (lint rule %s)", at(s), f.Message, f.Rule),
				Hint:    fmt.Sprintf("%s; or, if the risk is acceptable here, acknowledge it with allow: [%s] and a reason", f.Safe, f.Rule)})
		}
	}
	return ps
}

func (k *SQL) Compile(id string, target Target) ([]phases.Phase, error) {
	up, err := sqlStatements(k.Up, k.Table())
	if err != nil {
		return nil, err
	}
	down, err := sqlStatements(k.Down, k.Table())
	if err != nil {
		return nil, err
	}
	ph := phases.Phase{
		Name:       "run_sql",
		Purpose:    fmt.Sprintf("run the change's %d statement(s) in one transaction under the lock timeout", len(up)),
		Statements: up,
		Rollback:   down,
	}
	if len(down) == 0 {
		ph.Irreversible = "the sql change has no down statements; add `down` to make it reversible"
	}
	return []phases.Phase{ph}, nil
}

// sqlStatements turns linted statements into the runner's statements, with
// the lock each takes (on the change's table when the lint cannot name
// the table a statement locks).
func sqlStatements(src string, table TableName) ([]phases.Statement, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	stmts, err := sqllint.Lint(src, sqllint.Options{Runner: true})
	if err != nil {
		return nil, problemsError([]Problem{{Message: err.Error()}})
	}
	out := make([]phases.Statement, 0, len(stmts))
	for _, s := range stmts {
		held := "instant (catalog only)"
		switch {
		case s.Lock == "":
			held = "no table lock"
		case !sqllint.BlocksTraffic(s.Lock):
			held = "until commit; blocks no reads or writes"
		case s.Rewrites:
			held = "while rewriting the table"
		case s.Scans:
			held = "while scanning the table"
		}
		var tables phases.TableList
		if s.Tables != nil {
			tables = make(phases.TableList, 0, len(s.Tables))
		}
		for _, t := range s.Tables {
			tables = append(tables, TableName{Schema: t.Schema, Name: t.Name})
		}
		if len(tables) == 0 && s.Lock != "" {
			tables = phases.TableList{table}
		}
		out = append(out, phases.Statement{SQL: s.SQL, Lock: phases.Lock(s.Lock), Tables: tables,
			Held: held, Rewrites: s.Rewrites, Scans: s.Scans})
	}
	return out, nil
}

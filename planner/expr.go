package planner

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/pgplanner/planner/internal/sqllex"
	"github.com/pgplanner/planner/phases"
)

// Spec expressions are SQL pasted into generated statements and function
// bodies; they cannot be query parameters. They are lexed as PostgreSQL
// lexes them (internal/sqllex) and refused when they would not stay one
// expression where they are pasted, when they read other tables, or when
// they call volatile functions, unless the change opts in with `allow`.

// Expression is one SQL expression of a spec.
type Expression struct {
	// Field is its spec key, e.g. "up" or "columns[1]".
	Field string
	SQL   string
	// Function: the planner declares a function whose body is this
	// expression (change_column_type's up and down), with the volatility
	// the expression has.
	Function bool
}

// Allows is the `allow` field of the kinds that take expressions.
type Allows struct {
	// Allow opts in to expressions the planner refuses by default:
	// "subquery" (reads other tables) and "volatile" (calls volatile
	// functions, run again on every write while a trigger uses them).
	Allow []string `yaml:"allow,omitempty" json:"allow,omitempty"`
}

// Allowed lists the opt-ins.
func (a Allows) Allowed() []string { return a.Allow }

const (
	allowSubquery = "subquery"
	allowVolatile = "volatile"
)

var allowValues = []string{allowSubquery, allowVolatile}

// Volatility as PostgreSQL declares functions.
const (
	Immutable = "immutable"
	Stable    = "stable"
	Volatile  = "volatile"
)

// ExprFacts is what the live catalog says about one expression; the
// planner stores it with the table's snapshot so every deploy compiles the
// same SQL.
type ExprFacts struct {
	// Volatility is the expression's: immutable only when PostgreSQL
	// accepts it in an index expression (its own, type-resolved check,
	// casts and operators included), else the most volatile of the
	// functions and operators it names (all overloads), at least stable.
	Volatility string `json:"volatility"`
	// Volatile names the functions and operators with a VOLATILE overload.
	Volatile []string `json:"volatile,omitempty"`
	// ParallelSafe: every function and operator it names is PARALLEL SAFE
	// in all overloads.
	ParallelSafe bool `json:"parallel_safe,omitempty"`
}

// exprProblems refuses an expression that would not stay one expression
// where it is pasted: a ';', unbalanced parentheses, a top-level comma, an
// unterminated literal, quoted identifier, dollar quote or comment.
func exprProblems(field, expr string) []Problem {
	if strings.TrimSpace(expr) == "" {
		return nil
	}
	if _, err := sqllex.Analyze(expr); err != nil {
		return []Problem{lexProblem(field, expr, err)}
	}
	return nil
}

// lexProblem turns a lexer error into a Problem pointing at the character.
func lexProblem(field, expr string, err error) Problem {
	e, ok := err.(*sqllex.Error)
	if !ok {
		return Problem{Field: field, Message: err.Error()}
	}
	return Problem{Field: field, offset: e.Pos + 1,
		Message: fmt.Sprintf("%s (at character %d of the expression)", e.Message, utf8.RuneCountInString(expr[:e.Pos])+1),
		Hint:    e.Hint}
}

// reachProblems refuses, without a database, what an expression reaches
// beyond the row: subqueries, other tables' columns and known volatile
// functions, unless allowed.
func reachProblems(k expressioner, table TableName) []Problem {
	var ps []Problem
	allowed := k.Allowed()
	for i, a := range allowed {
		if !slices.Contains(allowValues, a) {
			ps = append(ps, Problem{Field: fmt.Sprintf("allow[%d]", i), Message: fmt.Sprintf("%q is not something to allow", a),
				Hint: didYouMean(a, allowValues, "use "+strings.Join(allowValues, " or "))})
		}
	}
	for _, e := range k.Expressions() {
		if strings.TrimSpace(e.SQL) == "" {
			continue
		}
		x, err := sqllex.Analyze(e.SQL)
		if err != nil {
			continue // exprProblems reports it
		}
		at := func(pos int) string {
			return fmt.Sprintf("at character %d of the expression", utf8.RuneCountInString(e.SQL[:pos])+1)
		}
		if !slices.Contains(allowed, allowSubquery) {
			for _, pos := range x.Subqueries {
				ps = append(ps, Problem{Field: e.Field, offset: pos + 1,
					Message: fmt.Sprintf("reads other tables through a subquery (%s), which runs for every row and, in a trigger, on every write", at(pos)),
					Hint:    "write an expression over the table's own columns; if reading other tables is intended, add `allow: [subquery]` to the change"})
			}
			for _, r := range x.Qualified {
				if ownColumn(r, table) {
					continue
				}
				ps = append(ps, Problem{Field: e.Field, offset: r.Pos + 1,
					Message: fmt.Sprintf("refers to %s, which is not a column of %s (%s)", r, table, at(r.Pos)),
					Hint:    fmt.Sprintf("use the columns of %s, unqualified or qualified with %s; for a field of a composite column write (%s).%s", table.Name, quoteIfNeeded(table.Name), r.Parts[0], r.Parts[1])})
			}
		}
		if !slices.Contains(allowed, allowVolatile) {
			for _, c := range x.Calls {
				if len(c.Parts) <= 2 && (len(c.Parts) == 1 || c.Parts[0] == "pg_catalog") && sqllex.BuiltinVolatile(c.Name()) {
					ps = append(ps, Problem{Field: e.Field, offset: c.Pos + 1,
						Message: fmt.Sprintf("calls %s(), which is VOLATILE: it runs again for every row and, in a trigger, on every write (%s)", c, at(c.Pos)),
						Hint:    "use a stable or immutable expression; if that is intended, add `allow: [volatile]` to the change"})
				}
			}
		}
	}
	return ps
}

// ownColumn reports whether a qualified name is a column of table
// (table.col or schema.table.col).
func ownColumn(r sqllex.Ref, table TableName) bool {
	switch len(r.Parts) {
	case 2:
		return r.Parts[0] == table.Name
	case 3:
		return r.Parts[0] == table.SchemaOrPublic() && r.Parts[1] == table.Name
	}
	return false
}

// liveVolatilityProblems refuses, from the facts the catalog gave, an
// expression calling a volatile function, unless allowed.
func liveVolatilityProblems(k expressioner, t *Table) []Problem {
	if t == nil || slices.Contains(k.Allowed(), allowVolatile) {
		return nil
	}
	var ps []Problem
	for _, e := range k.Expressions() {
		f, ok := t.Expressions[e.SQL]
		if !ok || f.Volatility != Volatile {
			continue
		}
		ps = append(ps, Problem{Field: e.Field,
			Message: fmt.Sprintf("calls %s, VOLATILE in pg_proc: it runs again for every row and, in a trigger, on every write", strings.Join(f.Volatile, ", ")),
			Hint:    "use a stable or immutable expression; if that is intended, add `allow: [volatile]` to the change"})
	}
	return ps
}

// functionLabel is how the planner declares a function made from expr:
// the volatility the catalog found, else VOLATILE (offline nothing proves
// an expression stable: its functions, operators and casts are unknown).
func functionLabel(t *Table, expr string) phases.FunctionLabel {
	if t != nil {
		if f, ok := t.Expressions[expr]; ok {
			return phases.FunctionLabel{Volatility: strings.ToUpper(f.Volatility), ParallelSafe: f.ParallelSafe}
		}
	}
	return phases.FunctionLabel{Volatility: "VOLATILE"}
}

// ExpressionNote is what `plan` says about one expression of a change.
type ExpressionNote struct {
	Field      string `json:"field"`
	Volatility string `json:"volatility"`
	// Assumed: offline, nothing known about the expression's functions.
	Assumed bool `json:"assumed"`
	// ReadsOtherTables and CallsVolatile are set when the change allows them.
	ReadsOtherTables bool `json:"reads_other_tables"`
	CallsVolatile    bool `json:"calls_volatile"`
}

// expressionNotes describes every expression of a spec for the plan.
func expressionNotes(k Kind, t *Table) []ExpressionNote {
	ex, ok := k.(expressioner)
	if !ok {
		return nil
	}
	var out []ExpressionNote
	for _, e := range ex.Expressions() {
		if strings.TrimSpace(e.SQL) == "" {
			continue
		}
		n := ExpressionNote{Field: e.Field, Volatility: Volatile, Assumed: true}
		x, err := sqllex.Analyze(e.SQL)
		if err == nil {
			n.ReadsOtherTables = len(x.Subqueries) > 0
			for _, c := range x.Calls {
				n.CallsVolatile = n.CallsVolatile || sqllex.BuiltinVolatile(c.Name())
			}
		}
		if t != nil {
			if f, ok := t.Expressions[e.SQL]; ok {
				n.Volatility, n.Assumed = f.Volatility, false
				n.CallsVolatile = f.Volatility == Volatile
			}
		}
		out = append(out, n)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// describe is the note as one line of the text plan.
func (n ExpressionNote) describe() string {
	s := fmt.Sprintf("%s: %s", codeSpan(n.Field), strings.ToUpper(n.Volatility))
	if n.Assumed {
		s += " (assumed offline: connect for the volatility pg_proc gives)"
	}
	if n.ReadsOtherTables {
		s += "; reads other tables (allowed by `allow: [subquery]`)"
	}
	if n.CallsVolatile {
		s += "; calls volatile functions (allowed by `allow: [volatile]`)"
	}
	return s
}

package planner

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pgplanner/planner/internal/sqllex"
	"github.com/pgplanner/planner/phases"
)

// FuzzExpression: whatever expression the planner accepts, every statement
// generated from it lexes as exactly one statement, with the expression's
// text intact at each place it is pasted (no token of the statement
// straddles its start or end) and its parentheses balanced to zero there,
// so nothing in it reaches the rest of the statement. Function bodies in
// dollar quotes are checked at both levels. The seeds run as a normal test.
func FuzzExpression(f *testing.F) {
	for _, seed := range exprCorpus {
		f.Add(seed)
	}
	for _, seed := range []string{
		"total >= 0 /* ( */ ) -- ",
		"E'\\'' ; DROP TABLE x; --",
		"$a$ $$ $a$ ; DROP TABLE x; --",
		"E'x'\n'\\' -- ' ; DROP TABLE x",
		"1 $sync$", "'$sync$'", "x -- ) NOT VALID",
		"(a", "a)", "0, b", "\"a", "/* a", "$$", "U&'\\0041'", "U&\"a\"", "1\r--c",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		if strings.TrimSpace(expr) == "" {
			return // an empty field is an absent one
		}
		for _, g := range exprGenerators {
			k := g.kind(placeholderExpr)
			if ps := exprProblems("x", expr); len(ps) > 0 {
				return // refused: nothing generated
			}
			checkGenerated(t, g.name, k, g.kind(expr), expr)
		}
	})
}

const placeholderExpr = "planner_fuzz_placeholder"

// exprGenerators build a change of each kind around one expression.
var exprGenerators = []struct {
	name string
	kind func(expr string) Kind
}{
	{"add_check", func(e string) Kind { return &AddCheck{TableName: "t", Expr: e} }},
	{"add_column default+backfill", func(e string) Kind {
		return &AddColumn{TableName: "t", Column: "c", Type: "text", NotNull: true, Backfill: e, Default: e}
	}},
	{"set_not_null", func(e string) Kind { return &SetNotNull{TableName: "t", Column: "c", Backfill: e} }},
	{"change_column_type", func(e string) Kind {
		return &ChangeColumnType{TableName: "t", Column: "c", Type: "bigint", Up: e, Down: e}
	}},
	{"add_index", func(e string) Kind {
		return &AddIndex{TableName: "t", Name: "ix", Columns: []string{"(" + e + "\n)"}, Where: e}
	}},
}

// generatedSQL is every statement a plan runs: phases' statements and
// rollbacks, and the backfill's UPDATE as the runner builds it.
func generatedSQL(t *testing.T, k Kind) []string {
	t.Helper()
	p, err := Compile(Spec{ID: "fz", Kind: "x", Change: k}, Target{Version: 17})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	var out []string
	for _, ph := range p.Phases {
		for _, st := range append(append([]phases.Statement{}, ph.Statements...), ph.Rollback...) {
			out = append(out, st.SQL)
		}
		if b := ph.Backfill; b != nil {
			col := phases.Ident(b.Column)
			out = append(out, fmt.Sprintf("UPDATE t SET %s = %s WHERE %s IS DISTINCT FROM %s", col, b.Expr, col, b.Expr))
		}
	}
	return out
}

func checkGenerated(t *testing.T, what string, withPlaceholder, withExpr Kind, expr string) {
	t.Helper()
	if len(withExpr.Check()) > 0 {
		return // refused for another reason (e.g. a subquery)
	}
	ps, es := generatedSQL(t, withPlaceholder), generatedSQL(t, withExpr)
	if len(ps) != len(es) {
		t.Fatalf("%s: %d statements with the placeholder, %d with %q", what, len(ps), len(es), expr)
	}
	for i := range ps {
		if !strings.Contains(ps[i], placeholderExpr) {
			continue
		}
		checkOneStatement(t, what, es[i])
		if body, ok := dollarBody(ps[i]); ok && strings.Contains(body, placeholderExpr) {
			got, ok := dollarBody(es[i])
			if !ok {
				t.Fatalf("%s: function body lost its dollar quotes with %q:\n%s", what, expr, es[i])
			}
			checkSpliced(t, what+" (function body)", body, got, expr)
			continue
		}
		checkSpliced(t, what, ps[i], es[i], expr)
	}
}

// checkOneStatement: the statement lexes, with no ';' outside literals and
// comments and parentheses balanced.
func checkOneStatement(t *testing.T, what, stmt string) {
	t.Helper()
	toks, err := sqllex.Lex(stmt)
	if err != nil {
		t.Fatalf("%s: generated statement does not lex: %v\n%s", what, err, stmt)
	}
	depth := 0
	for _, tk := range toks {
		switch {
		case tk.Kind == sqllex.Punct && tk.Text == ";":
			t.Fatalf("%s: generated statement holds a ';' at %d:\n%s", what, tk.Pos, stmt)
		case tk.Kind == sqllex.Punct && (tk.Text == "(" || tk.Text == "["):
			depth++
		case tk.Kind == sqllex.Punct && (tk.Text == ")" || tk.Text == "]"):
			depth--
		}
		if depth < 0 {
			t.Fatalf("%s: generated statement closes more than it opens:\n%s", what, stmt)
		}
	}
	if depth != 0 {
		t.Fatalf("%s: generated statement leaves %d parentheses open:\n%s", what, depth, stmt)
	}
}

// dollarBody is the text inside the first dollar-quoted token of stmt.
func dollarBody(stmt string) (string, bool) {
	toks, err := sqllex.Lex(stmt)
	if err != nil {
		return "", false
	}
	for _, tk := range toks {
		if tk.Kind == sqllex.DollarString {
			tag := tk.Text[:strings.IndexByte(tk.Text[1:], '$')+2]
			return tk.Text[len(tag) : len(tk.Text)-len(tag)], true
		}
	}
	return "", false
}

// checkSpliced: got is tmpl with every placeholder replaced by expr, and
// at each place the expression is whole tokens with balanced parentheses.
func checkSpliced(t *testing.T, what, tmpl, got, expr string) {
	t.Helper()
	parts := strings.Split(tmpl, placeholderExpr)
	if strings.Join(parts, expr) != got {
		t.Fatalf("%s: the expression was not pasted verbatim:\n%s", what, got)
	}
	toks, err := sqllex.Lex(got)
	if err != nil {
		t.Fatalf("%s: does not lex: %v\n%s", what, err, got)
	}
	pos := 0
	for _, p := range parts[:len(parts)-1] {
		start := pos + len(p)
		end := start + len(expr)
		pos = end
		depth := 0
		for _, tk := range toks {
			tEnd := tk.Pos + len(tk.Text)
			straddles := tk.Pos < start && tEnd > start || tk.Pos < end && tEnd > end
			if straddles && tk.Kind != sqllex.Space {
				t.Fatalf("%s: %s %q straddles the expression's edge (%d..%d):\n%s", what, tk.Kind, tk.Text, start, end, got)
			}
			if tk.Pos >= start && tEnd <= end && tk.Kind == sqllex.Punct {
				switch tk.Text {
				case "(", "[":
					depth++
				case ")", "]":
					depth--
				case ";":
					t.Fatalf("%s: the expression holds a ';':\n%s", what, got)
				}
				if depth < 0 {
					t.Fatalf("%s: the expression closes a parenthesis it did not open:\n%s", what, got)
				}
			}
		}
		if depth != 0 {
			t.Fatalf("%s: the expression leaves %d parentheses open:\n%s", what, depth, got)
		}
	}
}

// exprCorpus are odd but valid expressions over a text column c and a
// numeric column n (FuzzExpression seeds, and the real-server corpus).
var exprCorpus = []string{
	"c <> '' -- trailing comment",
	"c <> '' /* nested /* comment */ ) ; */",
	"c <> $$;)$$",
	"c <> $q$ $$ ) -- $q$",
	"c <> E'\\';)' ",
	"c <> E'it''s' -- ; DROP TABLE t",
	"c IS DISTINCT FROM U&'d\\0061t\\+000061'",
	"c <> 'a'\n'b -- not a comment'",
	"length(c) >= 0 AND n >= 0",
	"\"c\" IS NOT NULL",
	"n >= 0 --",
}

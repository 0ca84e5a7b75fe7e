package sqllex

import (
	"strings"
	"testing"
)

// kinds renders the significant tokens as kind:text, for compact cases.
func kinds(t *testing.T, s string) string {
	t.Helper()
	toks, err := Lex(s)
	if err != nil {
		t.Fatalf("Lex(%q): %v", s, err)
	}
	var parts []string
	for _, tk := range toks {
		if tk.Kind == Space {
			continue
		}
		parts = append(parts, tk.Kind.String()+":"+tk.Text)
	}
	return strings.Join(parts, " | ")
}

func TestLexTokens(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a -- c ; d\n;", "identifier:a | comment:-- c ; d | punctuation:;"},
		{"a /* x /* ; */ ; */ b", "identifier:a | comment:/* x /* ; */ ; */ | identifier:b"},
		{"'it''s ;'", "string:'it''s ;'"},
		{`'a\' ;`, `string:'a\' | punctuation:;`}, // standard strings: backslash is plain
		{`E'\'' ; x`, `string:E'\'' | punctuation:; | identifier:x`},
		{`E'a\\' ;`, `string:E'a\\' | punctuation:;`},
		{`e'x''y'`, `string:e'x''y'`},
		{`B'01''10'`, `string:B'01' | string:'10'`}, // '' ends a bit string
		{`X'1F'`, `string:X'1F'`},
		{`N'x'`, `string:N'x'`},
		{`U&'d\0061t'`, `string:U&'d\0061t'`},
		{`U&"d""x" + 1`, `quoted identifier:U&"d""x" | operator:+ | number:1`},
		{`"a;b""c"`, `quoted identifier:"a;b""c"`},
		{"$$ ; $$", "dollar-quoted string:$$ ; $$"},
		{"$t$ $$ ; $t$ x", "dollar-quoted string:$t$ $$ ; $t$ | identifier:x"},
		{"$t$ $tt$ $t$", "dollar-quoted string:$t$ $tt$ $t$"},
		{"a$$ ; b", "identifier:a$$ | punctuation:; | identifier:b"},
		{"$1 + $2", "parameter:$1 | operator:+ | parameter:$2"},
		{"x::text", "identifier:x | operator::: | identifier:text"},
		{"a <-- c\n", "identifier:a | operator:< | comment:-- c"},
		{"a +/* c */b", "identifier:a | operator:+ | comment:/* c */ | identifier:b"},
		{"1.5e-3 .5 0x1F 1_000 0b101 0o17 1e5 2.", "number:1.5e-3 | number:.5 | number:0x1F | number:1_000 | number:0b101 | number:0o17 | number:1e5 | number:2."},
		{"1..2", "number:1 | operator:.. | number:2"},
		{"ke'x'", "identifier:ke | string:'x'"},
		// A literal continues across a newline and keeps E-mode escapes.
		{"E'a'\n'\\' -- ' ; b", "string:E'a'\n'\\' -- ' | punctuation:; | identifier:b"},
		{"'a' -- c\n  'b'", "string:'a' -- c\n  'b'"},
		{"'a' 'b'", "string:'a' | string:'b'"}, // no newline: two literals (a syntax error)
		{"'a' /* c */\n'b'", "string:'a' | comment:/* c */ | string:'b'"},
	} {
		if got := kinds(t, c.in); got != c.want {
			t.Errorf("Lex(%q)\n got: %s\nwant: %s", c.in, got, c.want)
		}
	}
}

func TestLexErrors(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		pos  int
	}{
		{"'abc", "unterminated string", 0},
		{`x = E'\'`, "unterminated string", 4},
		{`'a\''`, "unterminated string", 0}, // standard: the backslash is plain and '' doubles
		{`E'a\''`, "", 0},
		{"/* /* */", "unterminated /* comment", 0},
		{`a = "b`, "unterminated quoted identifier", 4},
		{`""`, "zero-length", 0},
		{"$x$ abc", "unterminated dollar-quoted", 0},
		{"a\x00", "NUL", 1},
		{"/*\x00*/", "NUL", 2},
		{"'a\x00'", "NUL", 2},
		{"'a'\n'b", "unterminated string", 0},
		// PostgreSQL 14 would read 1 then E'a\'' and run the rest as SQL.
		{"1e'a\\'' ; DROP TABLE x --'", "number followed directly by \"e\"", 0},
		{"10days", "number followed directly", 0},
		{"1_", "number followed directly", 0},
		{"1e-x", "number followed directly", 0},
		{"0x1G", "number followed directly", 0},
	} {
		_, err := Lex(c.in)
		if c.want == "" {
			if err != nil {
				t.Errorf("Lex(%q): %v", c.in, err)
			}
			continue
		}
		e, ok := err.(*Error)
		if !ok || !strings.Contains(e.Message, c.want) || e.Pos != c.pos {
			t.Errorf("Lex(%q) = %v, want %q at %d", c.in, err, c.want, c.pos)
		}
	}
}

func TestAnalyzeRefuses(t *testing.T) {
	for _, c := range []struct {
		in, want string
		pos      int
	}{
		{"total >= 0 /* ( */ ) -- ", "closes nothing", 19},
		{"E'\\'' ; DROP TABLE x; --", "';'", 6},
		{"$a$ $$ $a$ ; DROP TABLE x; --", "';'", 11},
		{"E'x'\n'\\' -- ' ; DROP TABLE x", "';'", 14},
		{"(a", "never closed", 0},
		{"a[1", "never closed", 1},
		{"(a]", "closes nothing", 2},
		{"0, secret", "','", 1},
		{"a) NOT VALID, ADD CHECK (b", "closes nothing", 1},
	} {
		_, err := Analyze(c.in)
		e, ok := err.(*Error)
		if !ok || !strings.Contains(e.Message, c.want) || e.Pos != c.pos {
			t.Errorf("Analyze(%q) = %v, want %q at %d", c.in, err, c.want, c.pos)
		}
	}
}

func TestAnalyzeFinds(t *testing.T) {
	x, err := Analyze(`lower(email) || pg_catalog.btrim(x::varchar(10)) || CAST(y AS numeric(1,2)) || coalesce(a, b) IN (1) || current_timestamp || u.name || "My Fn"(1) || (SELECT 1) || (addr).city`)
	if err != nil {
		t.Fatal(err)
	}
	var calls, qual, vf []string
	for _, r := range x.Calls {
		calls = append(calls, r.String())
	}
	for _, r := range x.Qualified {
		qual = append(qual, r.String())
	}
	for _, r := range x.ValueFunctions {
		vf = append(vf, r.String())
	}
	if got := strings.Join(calls, " "); got != "lower pg_catalog.btrim My Fn" {
		t.Errorf("calls: %s", got)
	}
	if got := strings.Join(qual, " "); got != "u.name" {
		t.Errorf("qualified: %s", got)
	}
	if got := strings.Join(vf, " "); got != "current_timestamp" {
		t.Errorf("value functions: %s", got)
	}
	if len(x.Subqueries) != 1 {
		t.Errorf("subqueries: %v", x.Subqueries)
	}
	for _, s := range []string{"(WITH a AS (SELECT 1) TABLE a)", "EXISTS (VALUES (1))", "(TABLE secrets)"} {
		if x, err := Analyze(s); err != nil || len(x.Subqueries) == 0 {
			t.Errorf("Analyze(%q): no subquery found (%v)", s, err)
		}
	}
	for _, s := range []string{"x::timestamp with time zone", "extract(year FROM d)", "a IS DISTINCT FROM b"} {
		if x, err := Analyze(s); err != nil || len(x.Subqueries) != 0 {
			t.Errorf("Analyze(%q): subquery found (%v)", s, err)
		}
	}
}

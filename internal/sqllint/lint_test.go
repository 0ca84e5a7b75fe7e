package sqllint

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestLocksAndPositions(t *testing.T) {
	src := "SET lock_timeout = '1s';\n" +
		"-- a comment; with a semicolon\n" +
		"CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON app.t (a);\n" +
		"ALTER TABLE t ADD COLUMN c text,\n  ALTER COLUMN d SET STATISTICS 100;\n" +
		"ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES users (id) NOT VALID;\n" +
		"  ALTER TABLE t ALTER COLUMN d TYPE bigint;\n" +
		"SELECT 'a;b', $x$;$x$;\n"
	stmts, err := Lint(src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		line, col int
		lock      string
		tables    string
		rules     string
	}
	wants := []want{
		{1, 1, "", "", ""},
		{3, 1, ShareUpdateExclusive, "app.t", ""},
		{4, 1, AccessExclusive, "t", ""},
		{6, 1, ShareRowExclusive, "t,users", ""},
		{7, 3, AccessExclusive, "t", "changing-column-type@7:17"},
		{8, 1, AccessShare, "", ""},
	}
	if len(stmts) != len(wants) {
		t.Fatalf("%d statements, want %d: %+v", len(stmts), len(wants), stmts)
	}
	for i, w := range wants {
		s := stmts[i]
		var rules []string
		for _, f := range s.Findings {
			rules = append(rules, f.Rule+"@"+itoa(f.Line)+":"+itoa(f.Column))
		}
		got := want{s.Line, s.Column, s.Lock, joinNames(s.Tables), strings.Join(rules, ",")}
		if got != w {
			t.Errorf("statement %d (%s): got %+v, want %+v", i, s.SQL, got, w)
		}
	}
	if !stmts[1].NoTransaction || stmts[2].NoTransaction || !stmts[4].Rewrites {
		t.Errorf("flags: %+v", stmts)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func joinNames(ns []Name) string {
	var out []string
	for _, n := range ns {
		out = append(out, n.String())
	}
	return strings.Join(out, ",")
}

func TestRunnerMode(t *testing.T) {
	cases := []struct{ sql, rules string }{
		// Timeouts are the runner's: no require-timeout-settings.
		{"ALTER TABLE t ADD COLUMN c text", ""},
		// Everything runs in one transaction: transaction control is wrong.
		{"BEGIN; ALTER TABLE t ADD COLUMN c text; COMMIT", "transaction-nesting,transaction-nesting"},
		{"SAVEPOINT a", "transaction-nesting"},
		// So is a VALIDATE after its ADD ... NOT VALID.
		{"ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID; ALTER TABLE t VALIDATE CONSTRAINT c", "validate-in-same-transaction"},
		{"ALTER TABLE t VALIDATE CONSTRAINT c", ""},
	}
	for _, c := range cases {
		stmts, err := Lint(c.sql, Options{Runner: true})
		if err != nil {
			t.Fatal(err)
		}
		var rules []string
		for _, s := range stmts {
			for _, f := range s.Findings {
				rules = append(rules, f.Rule)
			}
		}
		if got := strings.Join(rules, ","); got != c.rules {
			t.Errorf("%s: rules %q, want %q", c.sql, got, c.rules)
		}
	}
}

func TestLintErrors(t *testing.T) {
	_, err := Lint("SELECT 1;\nSELECT 'open", Options{})
	e, ok := err.(*Error)
	if !ok || e.Line != 2 || e.Column != 8 {
		t.Fatalf("err = %#v, want an *Error at 2:8", err)
	}
}

func TestTimeoutReportedOnce(t *testing.T) {
	stmts, err := Lint("ALTER TABLE a ADD COLUMN b text; ALTER TABLE a ADD COLUMN c text;", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(stmts[0].Findings) != 1 || len(stmts[1].Findings) != 0 {
		t.Errorf("findings: %+v", stmts)
	}
}

func TestRulesComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules {
		if r.Name == "" || r.Message == "" || r.Safe == "" || r.Severity != Unsafe && r.Severity != Advice {
			t.Errorf("rule %+v lacks a name, message, safe alternative or severity", r)
		}
		if seen[r.Name] {
			t.Errorf("rule %s twice", r.Name)
		}
		seen[r.Name] = true
	}
}

// A dot inside a quoted part stays part of it: "a.b"."c.d" is table c.d of
// schema a.b, and not table d of schema "a.b.c", which the script did not
// create.
func TestQuotedNamesKeepTheirDots(t *testing.T) {
	src := `CREATE TABLE "a.b"."c.d" (id bigint);
ALTER TABLE "a.b"."c.d" ADD COLUMN n text NOT NULL;
ALTER TABLE "a.b.c".d ADD COLUMN n text NOT NULL;
ALTER TABLE "a.b".c ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES "x.y" (id) NOT VALID;
LOCK TABLE app."a.b"."c.d";
`
	stmts, err := Lint(src, Options{Runner: true})
	if err != nil {
		t.Fatal(err)
	}
	wants := []struct {
		tables []Name
		rules  string
	}{
		{[]Name{}, ""},
		{[]Name{{Schema: "a.b", Name: "c.d"}}, ""},
		{[]Name{{Schema: "a.b.c", Name: "d"}}, "adding-required-field"},
		{[]Name{{Schema: "a.b", Name: "c"}, {Name: "x.y"}}, ""},
		{[]Name{{Schema: "a.b", Name: "c.d"}}, ""},
	}
	if len(stmts) != len(wants) {
		t.Fatalf("%d statements, want %d", len(stmts), len(wants))
	}
	for i, w := range wants {
		s := stmts[i]
		var rules []string
		for _, f := range s.Findings {
			rules = append(rules, f.Rule)
		}
		if !slices.Equal(s.Tables, w.tables) || strings.Join(rules, ",") != w.rules {
			t.Errorf("statement %d (%s): tables %+v rules %q, want %+v %q", i, s.SQL, s.Tables, rules, w.tables, w.rules)
		}
	}
}

package planner

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pgplanner/planner/internal/pgtest"
)

// Odd but valid expressions, through every phase of every kind that takes
// expressions, on a real server: each generated statement runs as one
// statement, and a constraint the plan leaves NOT VALID after a phase is
// still NOT VALID in pg_constraint after it (no comment swallowed the NOT
// VALID).
func TestOddExpressionsRunOnServer(t *testing.T) {
	// Values of a text column (backfill, default, up to text).
	texts := []string{
		"'x' -- ) NOT VALID",
		"$$a;)$$ /* ( */",
		"E'\\'' || $q$ $$ ) $q$",
		"U&'d\\0061t'",
		"'a'\n'b -- kept'",
		"\"left\"('abc', 2) --",
	}
	bools := exprCorpus
	cases := map[string][]Kind{}
	for i, e := range bools {
		cases["add_check"] = append(cases["add_check"], &AddCheck{TableName: "t", Name: fmt.Sprintf("t_check_%d", i), Expr: e})
		cases["add_index"] = append(cases["add_index"], &AddIndex{TableName: "t", Name: fmt.Sprintf("t_idx_%d", i), Columns: []string{"id"}, Where: e})
	}
	for i, e := range texts {
		cases["add_column"] = append(cases["add_column"], &AddColumn{TableName: "t", Column: fmt.Sprintf("a%d", i), Type: "text", NotNull: true, Backfill: e, Default: e})
		cases["set_not_null"] = append(cases["set_not_null"], &SetNotNull{TableName: "t", Column: fmt.Sprintf("s%d", i), Backfill: e})
		cases["change_column_type"] = append(cases["change_column_type"], &ChangeColumnType{TableName: "t", Column: fmt.Sprintf("v%d", i), Type: "varchar(200)",
			Up: "coalesce(" + fmt.Sprintf("v%d", i) + ", " + e + "\n)", Down: fmt.Sprintf("v%d_new::text /* ) */ -- ;", i)})
		cases["add_index"] = append(cases["add_index"], &AddIndex{TableName: "t", Name: fmt.Sprintf("t_expr_idx_%d", i), Columns: []string{"(c || " + e + "\n)"}})
	}
	var cols []string
	for i := range texts {
		cols = append(cols, fmt.Sprintf("s%d text, v%d text", i, i))
	}
	setup := `CREATE TABLE t (id bigserial PRIMARY KEY, c text NOT NULL DEFAULT 'c', n numeric NOT NULL DEFAULT 1, ` + strings.Join(cols, ", ") + `);
INSERT INTO t (c, n) SELECT 'row ' || g, g FROM generate_series(1, 200) g;`
	for kind, ks := range cases {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			db := pgtest.NewDB(t)
			db.Exec(t, setup)
			for i, k := range ks {
				runOnServer(t, db, Spec{ID: fmt.Sprintf("odd-%d", i), Kind: kind, Change: k})
			}
		})
	}
}

var addConstraintRe = regexp.MustCompile(`ADD CONSTRAINT ("(?:[^"]|"")+")`)

func runOnServer(t *testing.T, db *pgtest.DB, s Spec) {
	t.Helper()
	ctx := context.Background()
	if ps := s.Change.Check(); len(ps) > 0 {
		t.Fatalf("%s: refused: %v", s.ID, ps)
	}
	table, err := LoadTable(ctx, db.Pool, s.Change.Table())
	if err != nil {
		t.Fatal(err)
	}
	if err := resolveExpressions(ctx, db.Pool, table, s.Change); err != nil {
		t.Fatal(err)
	}
	plan, err := Compile(s, Target{Version: db.ServerVersion(t), Table: table})
	if err != nil {
		t.Fatalf("%s: %v", s.ID, err)
	}
	for _, ph := range plan.Phases {
		applyPhase(t, db.Pool, ph, false)
		// Constraints this phase adds NOT VALID and does not validate.
		for i, st := range ph.Statements {
			m := addConstraintRe.FindStringSubmatch(st.SQL)
			if m == nil || !strings.HasSuffix(st.SQL, " NOT VALID") {
				continue
			}
			validated := false
			for _, later := range ph.Statements[i+1:] {
				validated = validated || strings.Contains(later.SQL, "VALIDATE CONSTRAINT "+m[1])
			}
			if validated {
				continue
			}
			name := strings.ReplaceAll(m[1][1:len(m[1])-1], `""`, `"`)
			var valid bool
			if err := db.Pool.QueryRow(ctx, `SELECT convalidated FROM pg_constraint WHERE conrelid = 't'::regclass AND conname = $1`, name).Scan(&valid); err != nil {
				t.Fatalf("%s: %s: constraint %s: %v", s.ID, ph.Name, name, err)
			}
			if valid {
				t.Fatalf("%s: %s: %s is validated although the plan adds it NOT VALID:\n%s", s.ID, ph.Name, name, st.SQL)
			}
		}
	}
}

// resolveExpressions on a real server: the example expressions are
// immutable (the golden catalog plans assume so), a cast through a
// time zone is stable, random() and a user's VOLATILE function volatile.
func TestResolveExpressions(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDB(t)
	db.Exec(t, `CREATE TABLE orders (id bigserial PRIMARY KEY, total numeric(12,2) NOT NULL, total_cents bigint, status text, created_at timestamptz);
CREATE TABLE users (id bigserial PRIMARY KEY, name text, status text);
CREATE FUNCTION lookup(x bigint) RETURNS text LANGUAGE sql VOLATILE AS 'SELECT ''s''';`)
	specs, err := Load(filepath.Join("..", "plans"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		ex, ok := s.Change.(expressioner)
		if !ok || (s.Change.Table().Name != "orders" && s.Change.Table().Name != "users") {
			continue
		}
		table, err := LoadTable(ctx, db.Pool, s.Change.Table())
		if err != nil {
			continue // the example's table is not in this database
		}
		if err := resolveExpressions(ctx, db.Pool, table, s.Change); err != nil {
			t.Fatal(err)
		}
		for _, e := range ex.Expressions() {
			if e.SQL == "" {
				continue
			}
			if f := table.Expressions[e.SQL]; f.Volatility != Immutable || !f.ParallelSafe {
				t.Errorf("%s %s %q: %+v, want immutable and parallel safe", s.ID, e.Field, e.SQL, f)
			}
		}
	}
	table, err := LoadTable(ctx, db.Pool, TableName{Name: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		up, want, volatile string
	}{
		{"total * 100", Immutable, ""},
		{"length(created_at::text)", Stable, ""},
		{"extract(epoch FROM created_at) + now()::date - now()::date", Stable, ""},
		{"total * random()", Volatile, "random()"},
		{"length(lookup(id))", Volatile, "lookup()"},
	} {
		k := &ChangeColumnType{TableName: "orders", Column: "total", Type: "bigint", Up: c.up, Down: "total_new::numeric", Allows: Allows{Allow: []string{allowVolatile}}}
		if err := resolveExpressions(ctx, db.Pool, table, k); err != nil {
			t.Fatal(err)
		}
		f := table.Expressions[c.up]
		if f.Volatility != c.want || strings.Join(f.Volatile, ",") != c.volatile {
			t.Errorf("%q: %+v, want %s (volatile: %q)", c.up, f, c.want, c.volatile)
		}
		p, err := Compile(Spec{ID: "v", Change: k}, Target{Version: 17, Table: table})
		if err != nil {
			t.Fatal(err)
		}
		up := p.Phases[0].Statements[1].SQL
		if !strings.Contains(up, "LANGUAGE sql "+strings.ToUpper(c.want)) {
			t.Errorf("%q: the up function is not declared %s:\n%s", c.up, c.want, up)
		}
	}
}

// One resolveAll over tables that give a column name different types: the
// same text is immutable over one and stable over the other (timestamptz
// to text depends on the session's settings), and a column the change adds
// counts with the type it is added with.
func TestResolveAllTellsColumnTypesApart(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDB(t)
	db.Exec(t, `CREATE TABLE a (id bigint PRIMARY KEY, at text);
CREATE TABLE b (id bigint PRIMARY KEY, at timestamptz);`)
	ta, err := LoadTable(ctx, db.Pool, TableName{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := LoadTable(ctx, db.Pool, TableName{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	const expr = "length(at::text)"
	check := func(table string) *AddCheck {
		return &AddCheck{TableName: table, Name: "len_" + table, Expr: expr + " > 0"}
	}
	added := &AddColumn{TableName: "a", Column: "seen", Type: "timestamptz", Backfill: "length(seen::text)"}
	if err := resolveAll(ctx, db.Pool, []resolveItem{{Table: ta, Change: check("a")}, {Table: tb, Change: check("b")}, {Table: ta, Change: added}}); err != nil {
		t.Fatal(err)
	}
	if f := ta.Expressions[expr+" > 0"]; f.Volatility != Immutable {
		t.Errorf("over a text column: %+v, want immutable", f)
	}
	if f := tb.Expressions[expr+" > 0"]; f.Volatility != Stable {
		t.Errorf("over a timestamptz column: %+v, want stable", f)
	}
	if f := ta.Expressions["length(seen::text)"]; f.Volatility != Stable {
		t.Errorf("over an added timestamptz column: %+v, want stable", f)
	}
}

package planner

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

func TestCheckRefusesUnsafeSpecs(t *testing.T) {
	tests := []struct {
		name        string
		kind        Kind
		field, want string // want: in the message or hint
	}{
		{"not null without fill", &AddColumn{TableName: "users", Column: "status", Type: "text", NotNull: true}, "not_null", "backfill: <expression>"},
		{"serial column", &AddColumn{TableName: "users", Column: "n", Type: "bigserial"}, "type", "type: bigint"},
		{"not a type", &AddColumn{TableName: "users", Column: "n", Type: "text; drop table users"}, "type", "not a type name"},
		{"type change without up", &ChangeColumnType{TableName: "orders", Column: "total", Type: "bigint", Down: "total_new::numeric"}, "up", `total::bigint`},
		{"type change without down", &ChangeColumnType{TableName: "orders", Column: "total", Type: "bigint", Up: "total::bigint"}, "down", "total_new::<old type>"},
		{"type change same column", &ChangeColumnType{TableName: "orders", Column: "total", NewColumn: "total", Type: "bigint", Up: "1", Down: "1"}, "new_column", "rename_column"},
		{"rename to itself", &RenameColumn{TableName: "users", Column: "email", To: "email"}, "to", "same as column"},
		{"rename without to", &RenameColumn{TableName: "users", Column: "email"}, "to", "required"},
		{"name too long", &RenameColumn{TableName: "users", Column: "email", To: strings.Repeat("x", 64)}, "to", "63"},
		{"three-part table", &DropColumn{TableName: "a.b.c", Column: "x"}, "table", "two dotted parts"},
		{"unknown method", &AddIndex{TableName: "t", Columns: []string{"a"}, Using: "btre"}, "using", `did you mean "btree"`},
		{"unique gin", &AddIndex{TableName: "t", Columns: []string{"a"}, Using: "gin", Unique: true}, "unique", "only btree"},
		{"no index columns", &AddIndex{TableName: "t"}, "columns", "at least one column"},
		{"duplicate index column", &AddIndex{TableName: "t", Columns: []string{"a", "a"}}, "columns[1]", "twice"},
		{"statement in predicate", &AddIndex{TableName: "t", Columns: []string{"a"}, Where: "true; drop table t"}, "where", "one SQL expression"},
		{"fk column count", &AddForeignKey{TableName: "o", Columns: []string{"a", "b"}, References: References{Table: "u", Columns: []string{"id"}}}, "references.columns", "pairs each column"},
		{"fk action", &AddForeignKey{TableName: "o", Columns: []string{"a"}, References: References{Table: "u", Columns: []string{"id"}}, OnDelete: "cascde"}, "on_delete", `did you mean "cascade"`},
		{"check unbalanced", &AddCheck{TableName: "o", Expr: "(total > 0"}, "check", "parentheses"},
		{"unique no columns", &AddUnique{TableName: "o"}, "columns", "at least one column"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(Spec{ID: "c", Kind: "x", File: "f.yaml", Line: 3, Change: tc.kind}, Target{})
			var ce *ChangeError
			if !errors.As(err, &ce) || !errors.Is(err, ErrInput) {
				t.Fatalf("err = %v, want a ChangeError wrapping ErrInput", err)
			}
			for _, p := range ce.Problems {
				if p.Field == tc.field && strings.Contains(p.Message+" "+p.Hint, tc.want) {
					if !strings.HasPrefix(err.Error(), "f.yaml:3: change c "+tc.field) {
						t.Errorf("error text %q does not start with the location", err)
					}
					return
				}
			}
			t.Errorf("no problem on %s mentioning %q in %v", tc.field, tc.want, ce.Problems)
		})
	}
}

// goldenUsers is the demo table, with a unique email, an index on it and a
// foreign key from orders, as LoadTable would describe it.
func goldenUsers() *Table {
	return &Table{
		Name: TableName{Schema: "public", Name: "users"},
		Columns: []Column{
			{Name: "id", Type: "bigint", NotNull: true, Default: "nextval('users_id_seq'::regclass)"},
			{Name: "email", Type: "text", NotNull: true},
			{Name: "name", Type: "text"},
			{Name: "created_at", Type: "timestamp with time zone"},
			{Name: "legacy_flags", Type: "integer", NotNull: true},
			{Name: "gen", Type: "bigint", NotNull: true, Generated: true},
		},
		Key: []string{"id"},
		Indexes: []Index{
			{Name: "users_email_key", Definition: "CREATE UNIQUE INDEX users_email_key ON public.users USING btree (email)", Columns: []string{"email"}, Unique: true, Constraint: "users_email_key"},
			{Name: "users_lower_email_idx", Definition: "CREATE INDEX users_lower_email_idx ON public.users USING btree (lower(email)) WHERE (email <> 'email'::text)", Columns: []string{"email"}},
			{Name: "users_pkey", Definition: "CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)", Columns: []string{"id"}, Unique: true, Primary: true, Constraint: "users_pkey"},
		},
		Checks: []Constraint{
			{Name: "users_email_check", Table: TableName{Schema: "public", Name: "users"}, Type: "c", Definition: "CHECK ((email <> ''::text))", Columns: []string{"email"}},
			{Name: "users_email_key", Table: TableName{Schema: "public", Name: "users"}, Type: "u", Definition: "UNIQUE (email)", Columns: []string{"email"}},
		},
		Referencing: []Constraint{
			{Name: "orders_user_email_fkey", Table: TableName{Schema: "public", Name: "orders"}, Type: "f", Definition: "FOREIGN KEY (user_email) REFERENCES users(email) ON DELETE SET NULL", Columns: []string{"email"}},
		},
		RowEstimate: 1000000,
	}
}

func TestCompileRefusesWithCatalog(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		want string
	}{
		{"rename missing column", &RenameColumn{TableName: "users", Column: "emial", To: "x"}, `did you mean "email"`},
		{"rename onto existing column", &RenameColumn{TableName: "users", Column: "email", To: "name"}, "already exists"},
		{"rename generated column", &RenameColumn{TableName: "users", Column: "gen", To: "g2"}, "add a new plain column"},
		{"rename key column", &RenameColumn{TableName: "users", Column: "id", To: "user_id"}, "part of the table's key"},
		{"drop key column", &DropColumn{TableName: "users", Column: "id"}, "primary key"},
		{"set not null twice", &SetNotNull{TableName: "users", Column: "email"}, "already NOT NULL"},
		{"add existing column", &AddColumn{TableName: "users", Column: "name", Type: "text"}, "already exists"},
		{"index name taken", &AddIndex{TableName: "users", Name: "users_email_key", Columns: []string{"name"}}, "already exists"},
		{"constraint name taken", &AddCheck{TableName: "users", Name: "users_email_check", Expr: "true"}, "already exists"},
	}
	taken := goldenUsers()
	taken.Indexes = append(taken.Indexes, Index{Name: "users_lower_email_address_idx", Definition: "CREATE INDEX users_lower_email_address_idx ON public.users USING btree (name)", Columns: []string{"name"}})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(Spec{ID: "c", Change: tc.kind}, Target{Version: 17, Table: goldenUsers()})
			if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInput mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("copy name taken", func(t *testing.T) {
		_, err := Compile(Spec{ID: "c", Change: &RenameColumn{TableName: "users", Column: "email", To: "email_address"}}, Target{Version: 17, Table: taken})
		if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), `"users_lower_email_address_idx", which public.users already uses`) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestNotNullDependsOnVersion(t *testing.T) {
	k := &SetNotNull{TableName: "users", Column: "name"}
	sqlOf := func(version int) string {
		p, err := Compile(Spec{ID: "n", Change: k}, Target{Version: version})
		if err != nil {
			t.Fatal(err)
		}
		var all []string
		for _, st := range p.Phases[0].Statements {
			all = append(all, st.SQL)
		}
		return strings.Join(all, "\n")
	}
	pg17, pg18 := sqlOf(17), sqlOf(18)
	for _, want := range []string{`CHECK ("name" IS NOT NULL) NOT VALID`, `VALIDATE CONSTRAINT`, `SET NOT NULL`, `DROP CONSTRAINT IF EXISTS`} {
		if !strings.Contains(pg17, want) {
			t.Errorf("PG 17 SQL lacks %q:\n%s", want, pg17)
		}
	}
	for _, want := range []string{`ADD CONSTRAINT "users_name_not_null" NOT NULL "name" NOT VALID`, `VALIDATE CONSTRAINT "users_name_not_null"`} {
		if !strings.Contains(pg18, want) {
			t.Errorf("PG 18 SQL lacks %q:\n%s", want, pg18)
		}
	}
	if strings.Contains(pg18, "CHECK") {
		t.Errorf("PG 18 SQL uses a CHECK:\n%s", pg18)
	}
}

// TestStatementsAreResumable: every statement is idempotent by itself or
// carries a Done probe, in every phase and rollback of every kind. Raw SQL
// (the sql kind) has neither: each side must then be one transaction, the
// one that records the phase, so that it never runs twice.
func TestStatementsAreResumable(t *testing.T) {
	idempotent := []string{"IF EXISTS", "IF NOT EXISTS", "OR REPLACE", "SET NOT NULL", "DROP NOT NULL", "SET DEFAULT", "DROP DEFAULT"}
	for _, p := range compileAll(t) {
		for _, ph := range p.Phases {
			for _, list := range [][]phases.Statement{ph.Statements, ph.Rollback} {
				raw := p.Spec.Kind == "sql"
				if raw && len(unitEnds(list)) > 1 {
					t.Errorf("%s %s: raw statements in %d transactions, want one", p.Spec.ID, ph.Name, len(unitEnds(list)))
				}
				for _, st := range list {
					ok := st.Done != "" || raw
					for _, s := range idempotent {
						ok = ok || strings.Contains(st.SQL, s)
					}
					if !ok {
						t.Errorf("%s %s: neither idempotent nor probed: %s", p.Spec.ID, ph.Name, st.SQL)
					}
					if st.Lock != phases.NoLock && len(st.Tables) == 0 {
						t.Errorf("%s %s: lock without tables: %s", p.Spec.ID, ph.Name, st.SQL)
					}
					if strings.Contains(st.SQL, "CONCURRENTLY") != st.NoTransaction {
						t.Errorf("%s %s: CONCURRENTLY and NoTransaction disagree: %s", p.Spec.ID, ph.Name, st.SQL)
					}
				}
			}
			if ph.Name == "purge" {
				if ph.Irreversible == "" || ph.Gate != phases.PurgeAfter || p.Phases[len(p.Phases)-1].Name != "purge" {
					t.Errorf("%s purge: irreversible %q, gate %q, not last", p.Spec.ID, ph.Irreversible, ph.Gate)
				}
			} else if ph.Name == "contract" && ph.Gate != phases.FlagsSoaked {
				t.Errorf("%s contract: gate %q", p.Spec.ID, ph.Gate)
			} else if ph.Irreversible != "" {
				t.Errorf("%s %s is irreversible", p.Spec.ID, ph.Name)
			}
		}
	}
}

// compileAll compiles one spec of every kind offline, on PG 17 and 18, and
// with the golden catalog.
func compileAll(t *testing.T) []Plan {
	t.Helper()
	var out []Plan
	for _, s := range goldenSpecs(t) {
		for _, target := range []Target{{Version: 17}, {Version: 18}, {Version: 17, Table: goldenTable(s)}, {Version: 18, Table: goldenTable(s)}} {
			p, err := Compile(s, target)
			if err != nil {
				t.Fatalf("%s: %v", s.ID, err)
			}
			out = append(out, p)
		}
	}
	return out
}

func TestRenameInExpr(t *testing.T) {
	tests := []struct{ in, want string }{
		{`CHECK ((email <> ''::text))`, `CHECK (("email_address" <> ''::text))`},
		{`lower(email)`, `lower("email_address")`},
		{`email = 'email' AND t.email IS NULL AND email.x = 1`, `"email_address" = 'email' AND t.email IS NULL AND email.x = 1`},
		{`x::email + email(1) + "email" + "Email"`, `x::email + email(1) + "email_address" + "Email"`},
		{`EMAIL IS NOT NULL`, `"email_address" IS NOT NULL`},
	}
	for _, tc := range tests {
		if got := renameInExpr(tc.in, "email", "email_address"); got != tc.want {
			t.Errorf("renameInExpr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := renameInExpr(`"E-mail" <> ''`, "E-mail", "E-mail 2"); got != `"E-mail 2" <> ''` {
		t.Errorf("quoted rename = %q", got)
	}
	body, ok := indexBody(`CREATE INDEX "using email" ON public.users USING btree (lower(email)) INCLUDE (email) WHERE (email <> ''::text)`, "email", "e2")
	if !ok || body != `USING btree (lower("e2")) INCLUDE ("e2") WHERE ("e2" <> ''::text)` {
		t.Errorf("indexBody = %q, %v", body, ok)
	}
	fk, ok := renameFK(`FOREIGN KEY (email, org) REFERENCES email(email, org) ON DELETE CASCADE`, "email", "e2", false, true)
	if !ok || fk != `FOREIGN KEY (email, org) REFERENCES email("e2", org) ON DELETE CASCADE` {
		t.Errorf("renameFK = %q, %v", fk, ok)
	}
}

func TestGeneratedNamesFit(t *testing.T) {
	long := strings.Repeat("a", 60)
	a := phases.DerivedName(long, "column_one", "not_null")
	b := phases.DerivedName(long, "column_two", "not_null")
	if len(a) > 63 || len(b) > 63 || a == b || !strings.HasSuffix(a, "_not_null") {
		t.Errorf("names %q (%d) and %q (%d)", a, len(a), b, len(b))
	}
	if again := phases.DerivedName(long, "column_one", "not_null"); again != a {
		t.Errorf("not deterministic: %q vs %q", a, again)
	}
	if n := phases.DerivedName("é"+strings.Repeat("é", 40), "x", "idx"); len(n) > 63 || !strings.HasSuffix(n, "_idx") {
		t.Errorf("multibyte name %q", n)
	}
	if got := copyName("users_email_key", "email", "email_address"); got != "users_email_address_key" {
		t.Errorf("copyName = %q", got)
	}
	if got := copyName(strings.Repeat("x", 60)+"_email", "email", "email_address"); len(got) > 63 {
		t.Errorf("copyName too long: %q", got)
	}
}

func TestLoadTable(t *testing.T) {
	db := pgtest.NewDB(t)
	db.Exec(t, `
CREATE SCHEMA "My App";
CREATE TABLE "My App"."Things" (
  code text NOT NULL, region text NOT NULL, note text, seq int GENERATED ALWAYS AS IDENTITY,
  twice int GENERATED ALWAYS AS (seq * 2) STORED, label varchar(40) DEFAULT 'x');
CREATE UNIQUE INDEX things_note_key ON "My App"."Things" (note);
CREATE UNIQUE INDEX things_partial_key ON "My App"."Things" (code) WHERE note IS NULL;
CREATE UNIQUE INDEX things_lower_key ON "My App"."Things" (lower(code));
CREATE UNIQUE INDEX things_region_code_key ON "My App"."Things" (region, code) INCLUDE (note);
INSERT INTO "My App"."Things" (code, region) SELECT 'c' || g, 'r' FROM generate_series(1, 100) g;
ANALYZE "My App"."Things";`)
	ctx := context.Background()
	tb, err := LoadTable(ctx, db.Pool, ParseTableName(`"My App"."Things"`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(tb.Key, ",") != "region,code" {
		t.Errorf("key = %v, want the unique index on NOT NULL plain columns", tb.Key)
	}
	if c := tb.Column("label"); c == nil || c.Type != "character varying(40)" || c.Default != "'x'::character varying" {
		t.Errorf("label = %+v", c)
	}
	if c := tb.Column("seq"); c == nil || !c.Generated || !c.NotNull {
		t.Errorf("seq = %+v", c)
	}
	if c := tb.Column("twice"); c == nil || !c.Generated || c.Default != "" {
		t.Errorf("twice = %+v", c)
	}
	for _, ix := range tb.Indexes {
		if ix.Name == "things_region_code_key" && strings.Join(ix.Columns, ",") != "region,code,note" {
			t.Errorf("index columns = %v, want key columns then INCLUDE", ix.Columns)
		}
		if ix.Name == "things_lower_key" && strings.Join(ix.Columns, ",") != "code" {
			t.Errorf("expression index columns = %v", ix.Columns)
		}
	}
	if tb.RowEstimate != 100 {
		t.Errorf("row estimate = %d", tb.RowEstimate)
	}
	// PostgreSQL 18 sets attnotnull for a NOT NULL constraint NOT VALID;
	// the column is not NOT NULL until it is validated.
	if db.ServerVersion(t) >= 18 {
		db.Exec(t, `ALTER TABLE "My App"."Things" ADD CONSTRAINT label_nn NOT NULL label NOT VALID`)
		tb, err := LoadTable(ctx, db.Pool, ParseTableName(`"My App"."Things"`))
		if err != nil {
			t.Fatal(err)
		}
		if tb.Column("label").NotNull {
			t.Errorf("label counts as NOT NULL before VALIDATE")
		}
		db.Exec(t, `ALTER TABLE "My App"."Things" VALIDATE CONSTRAINT label_nn`)
		if tb, err = LoadTable(ctx, db.Pool, ParseTableName(`"My App"."Things"`)); err != nil || !tb.Column("label").NotNull {
			t.Errorf("label not NOT NULL after VALIDATE (%v)", err)
		}
	}
	_, err = LoadTable(ctx, db.Pool, ParseTableName("nope.missing"))
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "nope.missing") {
		t.Errorf("missing table: %v", err)
	}
}

func TestCheckTypes(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	tests := []struct {
		kind Kind
		want string // "" = no problem
	}{
		{&AddColumn{Type: "varchar(80)"}, ""},
		{&AddColumn{Type: "timestamptz"}, ""},
		{&AddColumn{Type: "no_such_type"}, `type "no_such_type" does not exist`},
		{&AddColumn{Type: "int int"}, `does not exist`},
		{&ChangeColumnType{Type: "numeric(12,2)"}, ""},
		{&AddIndex{Using: "bloom"}, `"bloom" does not exist`},
		{&AddIndex{Using: "gin"}, ""},
	}
	for _, tc := range tests {
		ps, err := checkTypes(ctx, db.Pool, tc.kind)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, p := range ps {
			got += p.Message
		}
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%+v: problems %q, want %q", tc.kind, got, tc.want)
		}
	}
}

func TestAddIndexExpressions(t *testing.T) {
	k := &AddIndex{TableName: `app."User Accounts"`, Columns: []string{"lower(login)", "id"}, Unique: true}
	p, err := Compile(Spec{ID: "i", Change: k}, Target{Version: 17})
	if err != nil {
		t.Fatal(err)
	}
	create := p.Phases[0].Statements[1].SQL
	want := `CREATE UNIQUE INDEX CONCURRENTLY "User Accounts_lower_login_id_key" ON "app"."User Accounts" USING btree ((lower(login)
), "id")`
	if create != want {
		t.Errorf("got  %s\nwant %s", create, want)
	}
	if _, err := Compile(Spec{ID: "i", Change: &AddIndex{TableName: "t", Columns: []string{"lower(x"}}}, Target{}); !errors.Is(err, ErrInput) {
		t.Errorf("unbalanced expression accepted: %v", err)
	}
}

package planner

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgplanner/planner/phases"
)

// yes and no are what not_null: true and not_null: false decode to.
var yes, no = true, false

func TestAlterColumnRefusesBadSpecs(t *testing.T) {
	type ac = AlterColumn
	tests := []struct {
		name        string
		kind        *AlterColumn
		field, want string // want: in the message or hint
	}{
		{"nothing to alter", &ac{TableName: "users", Column: "name"}, "", "at least one of type"},
		{"rename only", &ac{TableName: "users", Column: "name", To: "full_name"}, "", "rename_column"},
		{"type without up", &ac{TableName: "users", Column: "name", Type: "varchar(80)", Down: "name_new::text"}, "up", "name::varchar(80)"},
		{"type without down", &ac{TableName: "users", Column: "name", Type: "varchar(80)", Up: "name::varchar(80)"}, "down", "name_new::<old type>"},
		{"down without up", &ac{TableName: "users", Column: "name", Down: "name_new"}, "down", "set up too"},
		{"to is column", &ac{TableName: "users", Column: "name", To: "name", NotNull: &yes, Up: "COALESCE(name, '')"}, "to", "rename_column"},
		{"not a type", &ac{TableName: "users", Column: "name", Type: "text; drop table users", Up: "name", Down: "name_new"}, "type", "not a type name"},
		{"check names the old column", &ac{TableName: "users", Column: "name", To: "full_name", CheckExpr: "name <> ''"}, "check", `"full_name" <> ''`},
		{"check on other columns", &ac{TableName: "users", Column: "name", CheckExpr: "id > 0"}, "check", "add_check"},
		{"check unbalanced", &ac{TableName: "users", Column: "name", CheckExpr: "(name_new <> ''"}, "check", "parentheses"},
		{"check name without check", &ac{TableName: "users", Column: "name", Unique: true, CheckName: "c"}, "check_name", "without check"},
		{"unique name without unique", &ac{TableName: "users", Column: "name", NotNull: &yes, Up: "COALESCE(name, '')", UniqueName: "u"}, "unique_name", "unique: true"},
		{"volatile up", &ac{TableName: "users", Column: "name", Up: "name || random()::text"}, "up", "VOLATILE"},
		{"subquery default", &ac{TableName: "users", Column: "name", Default: "(SELECT 'x')"}, "default", "subquery"},
		{"default name too long", &ac{TableName: "users", Column: strings.Repeat("c", 60), Unique: true}, "to", "63 bytes"},
		{"only drops not null", &ac{TableName: "users", Column: "email", To: "mail", NotNull: &no}, "not_null", "drop_not_null"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(Spec{ID: "c", Kind: "alter_column", File: "f.yaml", Line: 3, Change: tc.kind}, Target{})
			var ce *ChangeError
			if !errors.As(err, &ce) || !errors.Is(err, ErrInput) {
				t.Fatalf("err = %v, want a ChangeError wrapping ErrInput", err)
			}
			for _, p := range ce.Problems {
				if p.Field == tc.field && strings.Contains(p.Message+" "+p.Hint, tc.want) {
					if p.Hint == "" {
						t.Errorf("problem %q has no hint", p.Message)
					}
					return
				}
			}
			t.Errorf("no problem on %q mentioning %q in %v", tc.field, tc.want, ce.Problems)
		})
	}
}

func TestAlterColumnRefusesWithCatalog(t *testing.T) {
	type ac = AlterColumn
	tests := []struct {
		name string
		kind *AlterColumn
		want string
	}{
		{"missing column", &ac{TableName: "users", Column: "nmae", Unique: true}, `did you mean "name"`},
		{"to taken", &ac{TableName: "users", Column: "name", To: "email", NotNull: &yes, Up: "COALESCE(name, '')"}, "already exists"},
		{"key column", &ac{TableName: "users", Column: "id", Type: "numeric", Up: "id::numeric", Down: "id_new::bigint"}, "part of the table's key"},
		{"already not null", &ac{TableName: "users", Column: "email", NotNull: &yes}, "already NOT NULL"},
		{"not null without up", &ac{TableName: "users", Column: "name", NotNull: &yes}, "COALESCE(name, <value>)"},
		{"already nullable", &ac{TableName: "users", Column: "name", NotNull: &no, Unique: true}, "already nullable"},
		{"already unique", &ac{TableName: "users", Column: "email", Unique: true}, "already unique (users_email_key)"},
		{"unique name taken", &ac{TableName: "users", Column: "name", Unique: true, UniqueName: "users_pkey"}, `named "users_pkey" already exists`},
		{"check name taken", &ac{TableName: "users", Column: "name", CheckExpr: "name_new <> ''", CheckName: "users_email_check"}, "already exists"},
		// The copy of users_email_check and the new check would share a name.
		{"check clashes with a copy", &ac{TableName: "users", Column: "email", To: "mail", CheckExpr: "mail LIKE '%@%'", CheckName: "users_mail_check"}, `both be named "users_mail_check"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(Spec{ID: "c", Change: tc.kind}, Target{Version: 17, Table: goldenUsers()})
			if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInput mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("unique on a partitioned table", func(t *testing.T) {
		k := &ac{TableName: "orders", Column: "status", Unique: true}
		_, err := Compile(Spec{ID: "c", Change: k}, Target{Version: 17, Table: goldenPartitionedOrders()})
		if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "must include every partition key column") {
			t.Fatalf("err = %v", err)
		}
	})
}

// One enforce phase carries the copy of what the old column has and what
// the change adds, each undone by its rollback in reverse order; the new
// default waits for contract.
func TestAlterColumnCompilesOneEnforce(t *testing.T) {
	k := &AlterColumn{TableName: "users", Column: "email", To: "email_address", Up: "lower(email)",
		Default: "'nobody@example.com'", CheckExpr: "email_address LIKE '%@%'", CheckName: "users_email_address_at"}
	p, err := Compile(Spec{ID: "c", Change: k}, Target{Version: 17, Table: goldenUsers()})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var enforce, contract phases.Phase
	for _, ph := range p.Phases {
		names = append(names, ph.Name)
		switch ph.Name {
		case "enforce":
			enforce = ph
		case "contract":
			contract = ph
		}
	}
	if got := strings.Join(names, " "); got != "expand backfill dual_write enforce contract purge" {
		t.Fatalf("phases %s", got)
	}
	sqlOf := func(sts []phases.Statement) string {
		var b strings.Builder
		for _, s := range sts {
			b.WriteString(s.SQL + "\n")
		}
		return b.String()
	}
	fwd, back := sqlOf(enforce.Statements), sqlOf(enforce.Rollback)
	for _, want := range []string{
		`ADD CONSTRAINT "users_email_address_not_null" CHECK ("email_address" IS NOT NULL) NOT VALID`,
		`CREATE UNIQUE INDEX CONCURRENTLY "users_email_address_key"`,
		`ADD CONSTRAINT "users_email_address_check" CHECK (("email_address" <> ''::text)) NOT VALID`,
		`ADD CONSTRAINT "users_email_address_at" CHECK (email_address LIKE '%@%'` + "\n) NOT VALID",
		`VALIDATE CONSTRAINT "users_email_address_at"`,
	} {
		if !strings.Contains(fwd, want) {
			t.Errorf("enforce lacks %s:\n%s", want, fwd)
		}
	}
	if !strings.HasPrefix(back, `ALTER TABLE "public"."users" DROP CONSTRAINT IF EXISTS "users_email_address_at"`) {
		t.Errorf("enforce rollback does not undo the last step first:\n%s", back)
	}
	if strings.Contains(fwd, "DEFAULT") || !strings.Contains(sqlOf(contract.Statements), `SET DEFAULT ('nobody@example.com'`) {
		t.Errorf("the default belongs to contract:\n%s", sqlOf(contract.Statements))
	}
	if b := p.Phases[1].Backfill; b == nil || !strings.Contains(b.Expr, "planner_up_c") {
		t.Errorf("backfill does not convert through up: %+v", b)
	}
}

// Validate against a live table: the example's alterations pass, and each
// wrong one is reported on its field with the file's line.
func TestAlterColumnValidate(t *testing.T) {
	f := newEngineFixture(t)
	specs := f.specs(t, `changes:
  - id: ok-all
    kind: alter_column
    table: users
    column: name
    to: display_name
    type: varchar(80)
    up: "COALESCE(NULLIF(name, ''), '(none)')::varchar(80)"
    down: "display_name::text"
    not_null: true
    default: "'(none)'"
    check: "display_name <> ''"
  - id: ok-up-only
    kind: alter_column
    table: orders
    column: status
    up: "upper(status)"
    check: "status_new IN ('OPEN', 'CLOSED')"
  - id: bad-cast
    kind: alter_column
    table: users
    column: email
    to: email_id
    type: bigint
    up: "email::bigint"
    down: "email_id::text"
  - id: bad-type
    kind: alter_column
    table: users
    column: created_at
    type: no_such_type
    up: "created_at::no_such_type"
    down: "created_at_new::timestamptz"
  - id: bad-check
    kind: alter_column
    table: users
    column: legacy_flags
    check: "legacy_flags_new > 'x'::int"
`)
	vs, err := f.e.Validate(context.Background(), specs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ok-all": "", "ok-up-only": "", "bad-cast": "up", "bad-type": "type", "bad-check": "check"}
	for _, v := range vs {
		field := want[v.ID]
		switch {
		case field == "" && !v.OK():
			t.Errorf("%s: unexpected problems %v", v.ID, v.Problems)
		case field != "" && (v.OK() || v.Problems[0].Field != field):
			t.Errorf("%s: want a problem on %s, got %v", v.ID, field, v.Problems)
		}
	}
}

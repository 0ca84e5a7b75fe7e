package planner

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pgplanner/planner/phases"
)

// want is one expected error, written in a bad spec as
// "# want: LINE:COL fragment" (or "# want: LINE fragment" when yaml gives no
// column). The fragment must occur in "path: message (hint)".
type specWant struct {
	line, col int
	fragment  string
}

var wantRe = regexp.MustCompile(`^# want: (\d+)(?::(\d+))? (.+)$`)

func readSpecWants(t *testing.T, path string) []specWant {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ws []specWant
	for _, l := range strings.Split(string(data), "\n") {
		m := wantRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		w := specWant{fragment: m[3]}
		w.line, _ = strconv.Atoi(m[1])
		if m[2] != "" {
			w.col, _ = strconv.Atoi(m[2])
		}
		ws = append(ws, w)
	}
	if len(ws) == 0 {
		t.Fatalf("%s has no `# want:` lines", path)
	}
	return ws
}

func asSpecErrors(t *testing.T, err error) SpecErrors {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, ErrInput) {
		t.Errorf("errors.Is(err, ErrInput) = false for %v", err)
	}
	var es SpecErrors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T, not SpecErrors: %v", err, err)
	}
	return es
}

func describeSpecError(e SpecError) string {
	s := e.Message
	if e.Path != "" {
		s = e.Path + ": " + s
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

func assertSpecErrors(t *testing.T, file string, err error, wants []specWant) {
	t.Helper()
	es := asSpecErrors(t, err)
	if len(es) != len(wants) {
		t.Errorf("got %d errors, want %d:\n%v", len(es), len(wants), err)
	}
	for i := 0; i < len(es) && i < len(wants); i++ {
		e, w := es[i], wants[i]
		if e.File != file || e.Line != w.line || e.Col != w.col || !strings.Contains(describeSpecError(e), w.fragment) {
			t.Errorf("error %d:\n got  %s:%d:%d %s\n want %s:%d:%d ...%s...", i, e.File, e.Line, e.Col, describeSpecError(e), file, w.line, w.col, w.fragment)
		}
	}
	// The combined message lists every error on a line of its own, each
	// starting with file:line.
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(es) {
		t.Errorf("Error() has %d lines for %d errors", len(lines), len(es))
	}
	for i, l := range lines {
		prefix := file + ": "
		if i < len(es) && es[i].Line > 0 {
			prefix = fmt.Sprintf("%s:%d", file, es[i].Line)
		}
		if !strings.HasPrefix(l, prefix) {
			t.Errorf("line %q does not start with %q", l, prefix)
		}
	}
}

// TestParseBadSpecFiles runs every file in testdata/specs/bad, each of which
// lists the errors it must produce in `# want:` comments.
func TestParseBadSpecFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/specs/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("only %d bad specs", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			specs, err := parseFile(file)
			if specs != nil {
				t.Errorf("got specs %v with errors", specs)
			}
			assertSpecErrors(t, file, err, readSpecWants(t, file))
		})
	}
}

// TestParseBadSpecsInline covers inputs that cannot carry `# want:` lines.
func TestParseBadSpecsInline(t *testing.T) {
	cases := []struct {
		name  string
		data  string
		wants []specWant
	}{
		{"zero bytes", "", []specWant{{1, 1, "empty spec file"}}},
		{"whitespace", "  \n\n   \n", []specWant{{1, 1, "empty spec file"}}},
		{"null document", "~\n", []specWant{{1, 1, "empty spec file"}}},
		{"binary", "\x00\x01\x02\xff", []specWant{{0, 0, "not valid YAML"}}},
		{"invalid utf-8", "changes:\n  - id: \xc3\x28\n", []specWant{{0, 0, "not valid YAML"}}},
		{"empty mapping", "{}", []specWant{{1, 1, "no `changes:` in the file"}}},
		{"json list", `[{"id": "a"}]`, []specWant{{1, 1, "the file is a list"}}},
		{"number", "42", []specWant{{1, 1, "found number 42"}}},
		{"nested list item", "changes: [[]]", []specWant{{1, 11, "changes[0]: expected a change (a mapping with id, kind and fields), found a list"}}},
		{"empty key", "changes:\n  - id: a\n    kind: drop_column\n    table: t\n    column: c\n    \"\": x\n",
			[]specWant{{6, 5, `changes[0]: expected a field name, found ""`}}},
		{"alias to nothing", "changes:\n  - id: a\n    kind: drop_column\n    table: &t users\n    column: *t\n", nil},
		{"byte order mark", "\ufeffchanges:\n  - {id: a, kind: drop_column, table: t, column: c}\n", nil},
		{"windows line endings", "changes:\r\n  - id: a\r\n    kind: drop_column\r\n    table: t\r\n    column: c\r\n", nil},
		{"int out of range for id is still text", "changes:\n  - id: 99999999999999999999999\n    kind: drop_column\n    table: t\n    column: c\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			specs, err := Parse("inline.yaml", []byte(tc.data))
			if tc.wants == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if len(specs) != 1 {
					t.Fatalf("got %d specs", len(specs))
				}
				return
			}
			assertSpecErrors(t, "inline.yaml", err, tc.wants)
		})
	}
}

func TestParseAllKinds(t *testing.T) {
	const file = "testdata/specs/good/all_kinds.yaml"
	specs, err := parseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	wantChanges := []struct {
		id, kind string
		line     int
		change   Kind
		table    TableName
	}{
		{"users-email-rename", "rename_column", 3,
			&RenameColumn{TableName: "users", Column: "email", To: "email_address"}, TableName{Name: "users"}},
		{"accounts.add-plan", "add_column", 9,
			&AddColumn{TableName: `app."User Accounts"`, Column: "Plan Name", Type: "varchar(40)", NotNull: true, Backfill: "'free'", Default: "'free'"},
			TableName{Schema: "app", Name: "User Accounts"}},
		{"orders_amount_numeric", "change_column_type", 18,
			&ChangeColumnType{TableName: `"Sales"."Orders"`, Column: "amount", Type: "numeric(12,2)", Up: "amount::numeric(12,2)", Down: "amount::integer", NewColumn: "amount_v2"},
			TableName{Schema: "Sales", Name: "Orders"}},
		{"users-name-not-null", "set_not_null", 27,
			&SetNotNull{TableName: "public.users", Column: `"quoted" name`, Backfill: "0"}, TableName{Schema: "public", Name: "users"}},
		{"users-drop-legacy", "drop_column", 33,
			&DropColumn{TableName: "users", Column: "LegacyFlag"}, TableName{Name: "users"}},
		{"users-email-idx", "add_index", 38,
			&AddIndex{TableName: "users", Name: "users_email_lower_idx", Columns: []string{"email_address"}, Unique: true, Where: "deleted_at IS NULL", Using: "btree"},
			TableName{Name: "users"}},
		{"orders-user-fk", "add_foreign_key", 47,
			&AddForeignKey{TableName: `"Sales"."Orders"`, Columns: []string{"user_id"},
				References: References{Table: `app."User Accounts"`, Columns: []string{"id"}}, OnDelete: "cascade"},
			TableName{Schema: "Sales", Name: "Orders"}},
		{"orders-amount-positive", "add_check", 57,
			&AddCheck{TableName: `"Sales"."Orders"`, Name: "amount_positive", Expr: "amount > 0"}, TableName{Schema: "Sales", Name: "Orders"}},
		{"users-handle-unique", "add_unique", 63,
			&AddUnique{TableName: "users", Columns: []string{"handle", "Tenant ID"}}, TableName{Name: "users"}},
		{"invoices-create", "create_table", 68,
			&CreateTable{TableName: "app.invoices",
				Columns: []NewColumn{{Name: "id", Type: "bigint", NotNull: true}, {Name: "Total", Type: "numeric(12,2)", NotNull: true, Default: "0"}},
				Primary: []string{"id"}, Checks: []NewCheck{{Expr: `"Total" >= 0`}}, Indexes: []NewTableIndex{{Columns: []string{"Total"}}}},
			TableName{Schema: "app", Name: "invoices"}},
		{"accounts-rename", "rename_table", 83,
			&RenameTable{TableName: "app.accounts", To: "members"}, TableName{Schema: "app", Name: "accounts"}},
		{"audit-log-drop", "drop_table", 88,
			&DropTable{TableName: "audit_log"}, TableName{Name: "audit_log"}},
		{"orders-index-drop", "drop_index", 92,
			&DropIndex{TableName: "orders", Index: "orders_status_idx"}, TableName{Name: "orders"}},
		{"users-check-drop", "drop_constraint", 97,
			&DropConstraint{TableName: "users", Constraint: "users_email_check"}, TableName{Name: "users"}},
		{"users-index-rename", "rename_index", 102,
			&RenameIndex{TableName: "users", Index: "users_lower_email_idx", To: "users_email_lower_idx"}, TableName{Name: "users"}},
		{"orders-check-rename", "rename_constraint", 108,
			&RenameConstraint{TableName: "orders", Constraint: "orders_total_check", To: "orders_total_nonnegative"}, TableName{Name: "orders"}},
		{"users-name-default", "set_default", 114,
			&SetDefault{TableName: "users", Column: "name", Default: "''"}, TableName{Name: "users"}},
		{"orders-status-default-drop", "drop_default", 120,
			&DropDefault{TableName: "orders", Column: "status"}, TableName{Name: "orders"}},
		{"orders-user-nullable", "drop_not_null", 125,
			&DropNotNull{TableName: "orders", Column: "user_id"}, TableName{Name: "orders"}},
		{"users-nickname-sql", "sql", 130,
			&SQL{TableName: "users", Up: "ALTER TABLE users ADD COLUMN nickname text", Down: "ALTER TABLE users DROP COLUMN nickname",
				Allow: []string{"ban-drop-column"}, Reason: "drops only what up added"}, TableName{Name: "users"}},
		{"users-name-alter", "alter_column", 138,
			&AlterColumn{TableName: "users", Column: "name", To: "full_name", NotNull: &yes, Default: "'(none)'"}, TableName{Name: "users"}},
	}
	if len(specs) != len(wantChanges) {
		t.Fatalf("got %d specs, want %d", len(specs), len(wantChanges))
	}
	kindsSeen := map[string]bool{}
	for i, w := range wantChanges {
		s := specs[i]
		kindsSeen[s.Kind] = true
		if s.ID != w.id || s.Kind != w.kind || s.File != file || s.Line != w.line || s.Order != i {
			t.Errorf("spec %d: got id=%s kind=%s at %s:%d order %d; want %s %s at line %d order %d",
				i, s.ID, s.Kind, s.File, s.Line, s.Order, w.id, w.kind, w.line, i)
		}
		if !reflect.DeepEqual(s.Change, w.change) {
			t.Errorf("spec %s: got change %#v\nwant %#v", s.ID, s.Change, w.change)
		}
		if got := s.Change.Table(); got != w.table {
			t.Errorf("spec %s: Table() = %#v, want %#v", s.ID, got, w.table)
		}
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(s.Checksum) {
			t.Errorf("spec %s: checksum %q", s.ID, s.Checksum)
		}
	}
	for _, k := range KindNames() {
		if !kindsSeen[k] {
			t.Errorf("kind %s is missing from %s", k, file)
		}
	}
}

func TestParseAnchorsInExtensionKeys(t *testing.T) {
	specs, err := Parse("anchors.yaml", []byte(`
x-users: &users app."User Accounts"
x-cols: &cols [tenant, email]
changes:
  - id: a
    kind: add_unique
    table: *users
    columns: *cols
  - id: b
    kind: add_index
    table: *users
    columns: *cols
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if got := s.Change.Table(); got != (TableName{Schema: "app", Name: "User Accounts"}) {
			t.Errorf("%s: table %#v", s.ID, got)
		}
	}
	if got := specs[1].Change.(*AddIndex).Columns; !reflect.DeepEqual(got, []string{"tenant", "email"}) {
		t.Errorf("columns %v", got)
	}
}

func TestParseMergeKeys(t *testing.T) {
	specs, err := Parse("merge.yaml", []byte(`
x-users: &users
  table: app."User Accounts"
  column: email
x-type: &type {type: text}
changes:
  - id: a
    kind: drop_column
    <<: *users
  - id: b
    kind: add_column
    <<: [*users, *type, {type: bigint}]
    column: Email   # the change's own key wins over merged ones
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := specs[0].Change; !reflect.DeepEqual(got, &DropColumn{TableName: `app."User Accounts"`, Column: "email"}) {
		t.Errorf("merged drop_column: %#v", got)
	}
	if got := specs[1].Change; !reflect.DeepEqual(got, &AddColumn{TableName: `app."User Accounts"`, Column: "Email", Type: "text"}) {
		t.Errorf("merged add_column: %#v", got)
	}

	bad := "x-s: &s users\nx-m: &m {table: [t], colour: red}\nchanges:\n" +
		"  - id: a\n    kind: drop_column\n    column: c\n    <<: *s\n" +
		"  - id: b\n    kind: drop_column\n    column: c\n    <<: *m\n"
	_, err = Parse("merge.yaml", []byte(bad))
	assertSpecErrors(t, "merge.yaml", err, []specWant{
		{2, 17, "changes[1].table: expected a string, found a list"},
		{2, 22, `changes[1].colour: unknown field "colour" for kind drop_column`},
		{4, 5, `changes[0].table: missing required field "table"`},
		{7, 9, "changes[0].<<: a merge key needs a mapping, found \"users\""},
	})
}

func TestParseJSONSpec(t *testing.T) {
	specs, err := Parse("spec.json", []byte(`{"changes": [{"id": "a", "kind": "rename_column", "table": "users", "column": "email", "to": "email_address"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if specs[0].Line != 1 || specs[0].Change.(*RenameColumn).To != "email_address" {
		t.Errorf("got %+v", specs[0])
	}
}

func TestLoad(t *testing.T) {
	t.Run("dir", func(t *testing.T) {
		for _, load := range []func(string) ([]Spec, error){loadDir, Load} {
			specs, err := load("testdata/specs/dir")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range specs {
				got = append(got, fmt.Sprintf("%s %s:%d #%d", s.ID, filepath.Base(s.File), s.Line, s.Order))
			}
			want := []string{"first 01_first.yaml:2 #0", "second 01_first.yaml:6 #1", "third 02_second.yml:2 #2"}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		}
	})
	t.Run("file", func(t *testing.T) {
		specs, err := Load("testdata/specs/dir/02_second.yml")
		if err != nil || len(specs) != 1 || specs[0].ID != "third" || specs[0].Order != 0 {
			t.Fatalf("got %v, %v", specs, err)
		}
	})
	t.Run("duplicate ids across files", func(t *testing.T) {
		_, err := loadDir("testdata/specs/dupdir")
		assertSpecErrors(t, filepath.Join("testdata/specs/dupdir", "b.yaml"), err, []specWant{{7, 9,
			`changes[1].id: duplicate change id "same" (first defined at testdata/specs/dupdir/a.yaml:2:9)`}})
	})
	t.Run("errors from several files", func(t *testing.T) {
		dir := t.TempDir()
		writeSpecFile(t, dir, "a.yaml", "changes:\n  - id: a\n    kind: drop_column\n    table: t\n    colum: c\n")
		writeSpecFile(t, dir, "b.yml", "changes:\n  - id: a\n    kind: nope\n")
		_, err := loadDir(dir)
		es := asSpecErrors(t, err)
		var got []string
		for _, e := range es {
			got = append(got, fmt.Sprintf("%s:%d:%d %s", filepath.Base(e.File), e.Line, e.Col, e.Path))
		}
		want := []string{"a.yaml:5:5 changes[0].colum", "b.yml:2:9 changes[0].id", "b.yml:3:11 changes[0].kind"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %q, want %q\n%v", got, want, err)
		}
	})
	t.Run("empty dir", func(t *testing.T) {
		dir := t.TempDir()
		writeSpecFile(t, dir, "notes.txt", "hello")
		_, err := loadDir(dir)
		assertSpecErrors(t, dir, err, []specWant{{0, 0, "no spec files"}})
	})
	t.Run("missing path", func(t *testing.T) {
		for _, load := range []func(string) ([]Spec, error){Load, loadDir, parseFile} {
			_, err := load("testdata/specs/does-not-exist")
			assertSpecErrors(t, "testdata/specs/does-not-exist", err, []specWant{{0, 0, "no such file or directory"}})
		}
	})
}

func writeSpecFile(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func parseOneSpec(t *testing.T, data string) Spec {
	t.Helper()
	specs, err := Parse("one.yaml", []byte(data))
	if err != nil {
		t.Fatalf("%v\nin:\n%s", err, data)
	}
	if len(specs) != 1 {
		t.Fatalf("got %d specs", len(specs))
	}
	return specs[0]
}

func TestChecksum(t *testing.T) {
	base := parseOneSpec(t, `
changes:
  - id: add-plan
    kind: add_column
    table: app."User Accounts"
    column: plan
    type: text
    backfill: 0
`)
	same := []string{
		// flow style, other key order, comments, other quoting, other id
		`{changes: [{kind: add_column, id: add-plan, type: text, column: plan, backfill: "0", table: 'app."User Accounts"'}]}`,
		"# comment\nchanges:\n\n  - id: add-plan   # trailing\n    kind: add_column\n    column: \"plan\"\n    table: app.\"User Accounts\"\n    type: text\n    backfill: '0'\n",
		// an explicit false bool is the same as an absent one
		"changes:\n  - id: other-id\n    kind: add_column\n    table: app.\"User Accounts\"\n    column: plan\n    type: text\n    backfill: 0\n    not_null: false\n",
	}
	for _, s := range same {
		if got := parseOneSpec(t, s).Checksum; got != base.Checksum {
			t.Errorf("checksum changed for an equivalent spec:\n%s", s)
		}
	}
	different := []string{
		"changes:\n  - id: add-plan\n    kind: add_column\n    table: app.\"User Accounts\"\n    column: plan\n    type: text\n    backfill: 1\n",
		"changes:\n  - id: add-plan\n    kind: add_column\n    table: app.\"User accounts\"\n    column: plan\n    type: text\n    backfill: 0\n",
		"changes:\n  - id: add-plan\n    kind: add_column\n    table: app.\"User Accounts\"\n    column: plan\n    type: text\n    backfill: 0\n    not_null: true\n",
		"changes:\n  - id: add-plan\n    kind: add_column\n    table: app.\"User Accounts\"\n    column: plan\n    type: text\n    backfill: 0\n    default: 0\n",
		"changes:\n  - id: add-plan\n    kind: add_column\n    table: app.\"User Accounts\"\n    column: plan\n    type: varchar\n    backfill: 0\n",
	}
	seen := map[string]bool{base.Checksum: true}
	for _, s := range different {
		got := parseOneSpec(t, s).Checksum
		if seen[got] {
			t.Errorf("checksum did not change for a different spec:\n%s", s)
		}
		seen[got] = true
	}
	// Same fields under another kind: a different change.
	a := parseOneSpec(t, "changes:\n  - id: a\n    kind: add_index\n    table: t\n    columns: [c]\n")
	b := parseOneSpec(t, "changes:\n  - id: a\n    kind: add_unique\n    table: t\n    columns: [c]\n")
	if a.Checksum == b.Checksum {
		t.Error("add_index and add_unique with the same fields have the same checksum")
	}
	// List order matters.
	c := parseOneSpec(t, "changes:\n  - id: a\n    kind: add_index\n    table: t\n    columns: [c, d]\n")
	d := parseOneSpec(t, "changes:\n  - id: a\n    kind: add_index\n    table: t\n    columns: [d, c]\n")
	if c.Checksum == d.Checksum {
		t.Error("column order does not change the checksum")
	}
}

// TestChecksumPinned pins the canonical form: changing it would make the
// engine see every registered change as edited.
func TestChecksumPinned(t *testing.T) {
	s := parseOneSpec(t, "changes:\n  - id: a\n    kind: rename_column\n    table: users\n    column: email\n    to: email_address\n")
	// sha256 of {"fields":{"column":"email","table":"users","to":"email_address"},"kind":"rename_column"}
	const want = "a541878dfe6d0a49f56b16a4c66420e3b862345a793f80229fe59fbd29e5edf4"
	if s.Checksum != want {
		t.Errorf("checksum %s, want %s", s.Checksum, want)
	}
}

func TestEncodeDecodeSpec(t *testing.T) {
	specs, err := parseFile("testdata/specs/good/all_kinds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		data, err := encodeSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		var shape map[string]any
		if err := json.Unmarshal(data, &shape); err != nil {
			t.Fatal(err)
		}
		if shape["id"] != s.ID || shape["kind"] != s.Kind || shape["fields"] == nil {
			t.Errorf("encoded %s", data)
		}
		got, err := decodeSpec(data)
		if err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("round trip:\n got %#v\nwant %#v", got, s)
		}
	}
	// Expressions stay readable in the stored JSON.
	data, _ := encodeSpec(specs[7])
	if !strings.Contains(string(data), `"check":"amount > 0"`) {
		t.Errorf("encoded %s", data)
	}

	bad := []struct{ name, data, fragment string }{
		{"not json", `{"id":`, "decode spec"},
		{"unknown kind", `{"id":"a","kind":"teleport","fields":{}}`, `unknown change kind "teleport"`},
		{"unknown field", `{"id":"a","kind":"drop_column","fields":{"table":"t","column":"c","colour":"red"}}`, `fields.colour: unknown field "colour"`},
		{"missing field", `{"id":"a","kind":"drop_column","fields":{"table":"t"}}`, `fields.column: missing required field "column"`},
		{"wrong type", `{"id":"a","kind":"add_index","fields":{"table":"t","columns":"c"}}`, "fields.columns: expected a list of strings"},
		{"fields not an object", `{"id":"a","kind":"drop_column","fields":[1]}`, "fields are not a JSON object"},
		{"no fields", `{"id":"a","kind":"drop_column"}`, "fields are not a JSON object"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeSpec([]byte(tc.data))
			if err == nil || !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tc.fragment) {
				t.Errorf("got %v, want an ErrInput containing %q", err, tc.fragment)
			}
		})
	}
	if _, err := encodeSpec(Spec{ID: "x"}); err == nil {
		t.Error("encodeSpec without a change succeeded")
	}
}

func TestSpecErrorFormat(t *testing.T) {
	cases := []struct {
		e    SpecError
		want string
	}{
		{SpecError{File: "plans/x.yaml", Line: 7, Col: 5, Path: "changes[0].colum", Message: `unknown field "colum" for kind rename_column`, Hint: `did you mean "column"?`},
			`plans/x.yaml:7:5: changes[0].colum: unknown field "colum" for kind rename_column (did you mean "column"?)`},
		{SpecError{File: "plans/x.yaml", Line: 3, Message: "YAML syntax error: oops"}, "plans/x.yaml:3: YAML syntax error: oops"},
		{SpecError{File: "plans", Message: "no spec files"}, "plans: no spec files"},
	}
	var es SpecErrors
	for _, tc := range cases {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
		if !errors.Is(tc.e, ErrInput) {
			t.Error("SpecError is not ErrInput")
		}
		es = append(es, tc.e)
	}
	if got := es.Error(); got != cases[0].want+"\n"+cases[1].want+"\n"+cases[2].want {
		t.Errorf("SpecErrors.Error() = %q", got)
	}
	wrapped := fmt.Errorf("plan: %w", es)
	if !errors.Is(wrapped, ErrInput) || errors.Is(wrapped, ErrBusy) {
		t.Error("wrapped SpecErrors: errors.Is is wrong")
	}
}

// TestKindStructsFollowTheContract checks every registered kind against the
// parser's conventions, so a new kind with an untagged or unsupported field
// fails here rather than in a user's spec.
func TestKindStructsFollowTheContract(t *testing.T) {
	if len(KindNames()) == 0 {
		t.Fatal("no kinds registered")
	}
	for _, name := range KindNames() {
		k := kinds[name]()
		v := reflect.ValueOf(k)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			t.Errorf("%s: factory returns %T, not a pointer to a struct", name, k)
			continue
		}
		if reflect.ValueOf(kinds[name]()).Pointer() == v.Pointer() {
			t.Errorf("%s: factory returns the same value twice", name)
		}
		fields, err := specFields(v.Elem().Type())
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(fields) == 0 {
			t.Errorf("%s: no fields", name)
		}
		checkSpecTags(t, name, v.Elem().Type())
	}
}

func checkSpecTags(t *testing.T, kind string, st reflect.Type) {
	for i := 0; i < st.NumField(); i++ {
		f := st.Field(i)
		if !f.IsExported() {
			continue
		}
		y, j := f.Tag.Get("yaml"), f.Tag.Get("json")
		if y == "" || y != j {
			t.Errorf("%s: field %s has yaml tag %q and json tag %q; want equal, non-empty tags", kind, f.Name, y, j)
		}
		if name, _, _ := strings.Cut(y, ","); name == "id" || name == "kind" {
			t.Errorf("%s: field %s uses the reserved key %q", kind, f.Name, name)
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			checkSpecTags(t, kind, ft)
		}
	}
}

// The field types the parser supports beyond what today's kinds use, with
// a kind that exists only in this test (not registered: other tests iterate
// over the registered kinds).

type upperName string

type shoutText struct{ s string }

func (s *shoutText) UnmarshalText(b []byte) error {
	if strings.ToUpper(string(b)) != string(b) {
		return errors.New("must be upper case")
	}
	s.s = string(b)
	return nil
}
func (s shoutText) MarshalText() ([]byte, error) { return []byte(s.s), nil }

type typesBase struct {
	Table string `yaml:"table"`
}

type typesKind struct {
	typesBase
	Count   int        `yaml:"count"`
	Small   int8       `yaml:"small,omitempty"`
	Size    uint       `yaml:"size,omitempty"`
	Label   *string    `yaml:"label,omitempty"`
	Flag    *bool      `yaml:"flag,omitempty"`
	Name    upperName  `yaml:"name,omitempty"`
	Shout   shoutText  `yaml:"shout,omitempty"`
	Target  *typesRef  `yaml:"target,omitempty"`
	Columns []string   `yaml:"columns,omitempty"`
	Plain   string     `yaml:",omitempty"`
	Ignored string     `yaml:"-"`
	hidden  string     //nolint:unused // unexported fields are not spec keys
	Extra   typesExtra `yaml:",inline"`
}

type typesRef struct {
	Table string   `yaml:"table"`
	Keys  []string `yaml:"keys,omitempty"`
}

type typesExtra struct {
	Note string `yaml:"note,omitempty"`
}

func (k *typesKind) Table() TableName { return ParseTableName(k.typesBase.Table) }
func (k *typesKind) Check() []Problem {
	if k.Count == 13 {
		return []Problem{{Field: "count", Message: "is unlucky", Hint: "use 14"}}
	}
	if k.Target != nil && len(k.Target.Keys) > 1 && k.Target.Keys[0] == k.Target.Keys[1] {
		return []Problem{{Field: "target.keys[1]", Message: "repeats keys[0]"}, {Message: "whole change is odd"}}
	}
	if k.Count == 666 {
		panic("boom")
	}
	return nil
}
func (k *typesKind) Compile(string, Target) ([]phases.Phase, error) { return nil, nil }

func parseTypes(data string) ([]parsedSpec, error) {
	p := newSpecParser("types.yaml", map[string]func() Kind{"types": func() Kind { return &typesKind{} }})
	got := p.parse([]byte(data))
	if len(p.errs) > 0 {
		p.errs.sort()
		return nil, p.errs
	}
	return got, nil
}

func TestParseFieldTypes(t *testing.T) {
	got, err := parseTypes(`
changes:
  - id: t
    kind: types
    table: x
    count: 0x10
    small: -3
    size: 1_000
    label: hello
    flag: false
    name: Mixed Case
    shout: LOUD
    target: {table: y, keys: [a]}
    columns: [a, b]
    plain: p
    note: inline works
`)
	if err != nil {
		t.Fatal(err)
	}
	label, flag := "hello", false
	want := &typesKind{typesBase: typesBase{Table: "x"}, Count: 16, Small: -3, Size: 1000, Label: &label, Flag: &flag,
		Name: "Mixed Case", Shout: shoutText{"LOUD"}, Target: &typesRef{Table: "y", Keys: []string{"a"}},
		Columns: []string{"a", "b"}, Plain: "p", Extra: typesExtra{Note: "inline works"}}
	if !reflect.DeepEqual(got[0].Change, want) {
		t.Errorf("got  %#v\nwant %#v", got[0].Change, want)
	}
	// Optional pointers stay nil when absent; the checksum leaves them out.
	minimal, err := parseTypes("changes:\n  - {id: t, kind: types, table: x, count: 1}\n")
	if err != nil {
		t.Fatal(err)
	}
	if k := minimal[0].Change.(*typesKind); k.Label != nil || k.Target != nil {
		t.Errorf("absent pointers set: %#v", k)
	}
	fields, _ := canonicalFields(minimal[0].Change)
	if !reflect.DeepEqual(fields, map[string]any{"table": "x", "count": int64(1)}) {
		t.Errorf("canonical fields %v", fields)
	}
}

func TestParseFieldTypeErrors(t *testing.T) {
	cases := []struct {
		name, fields string
		wants        []specWant
	}{
		{"int from string", "count: many", []specWant{{5, 12, `changes[0].count: expected an integer, found "many"`}}},
		{"int from float", "count: 1.5", []specWant{{5, 12, "expected an integer, found number 1.5"}}},
		{"int8 overflow", "count: 1\n    small: 300", []specWant{{6, 12, "changes[0].small: expected an integer, found number 300"}}},
		{"uint negative", "count: 1\n    size: -1", []specWant{{6, 11, "expected a non-negative integer"}}},
		{"missing int", "label: x", []specWant{{2, 5, `missing required field "count" for kind types: expected an integer (add ` + "`" + `count: <number>` + "`" + `)`}}},
		{"pointer null", "count: 1\n    label: ~", []specWant{{6, 12, "changes[0].label: empty value"}}},
		{"pointer to bool wrong", "count: 1\n    flag: 1", []specWant{{6, 11, "expected true or false, found number 1 (write true)"}}},
		{"text unmarshaler error", "count: 1\n    shout: quiet", []specWant{{6, 12, "changes[0].shout: must be upper case"}}},
		{"nested pointer missing key", "count: 1\n    target: {keys: [a]}", []specWant{{6, 13, `changes[0].target.table: missing required field "table" in target`}}},
		{"nested unknown key", "count: 1\n    target: {table: y, kees: [a]}", []specWant{{6, 24, `changes[0].target.kees: unknown field "kees" in target (did you mean "keys"?)`}}},
		{"inline field typo", "count: 1\n    nte: x", []specWant{{6, 5, `did you mean "note"?`}}},
		{"check problem", "count: 13", []specWant{{5, 12, "changes[0].count: is unlucky (use 14)"}}},
		{"check problems nested and whole", "count: 1\n    target: {table: y, keys: [a, a]}", []specWant{
			{2, 5, "changes[0]: whole change is odd"}, {6, 34, "changes[0].target.keys[1]: repeats keys[0]"}}},
		{"check panic", "count: 666", []specWant{{2, 5, "internal error: types check panicked: boom"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTypes("changes:\n  - id: t\n    kind: types\n    table: x\n    " + tc.fields + "\n")
			assertSpecErrors(t, "types.yaml", err, tc.wants)
		})
	}
}

func TestDidYouMean(t *testing.T) {
	keys := []string{"table", "column", "to", "columns", "references"}
	cases := map[string]string{
		"colum": "column", "Column": "column", "tabel": "table", "tble": "table", "refrences": "references",
		"columnz": "column", "t": "", "x": "", "description": "", "cascade": "",
	}
	for got, want := range cases {
		near, ok := nearestName(got, keys)
		if !ok {
			near = ""
		}
		if near != want {
			t.Errorf("nearestName(%q) = %q, want %q", got, near, want)
		}
	}
}

func TestSuggestSpecID(t *testing.T) {
	cases := map[string]string{
		"Users-Email":           "users-email",
		"drop the email column": "drop-the-email-column",
		"_x":                    "x",
		"Ünïcode!":              "n-code",
		"!!!":                   "my-change",
	}
	for in, want := range cases {
		got := suggestSpecID(in)
		if got != want {
			t.Errorf("suggestSpecID(%q) = %q, want %q", in, got, want)
		}
		if !specIDRe.MatchString(got) {
			t.Errorf("suggestion %q is not a valid id", got)
		}
	}
}

package planner

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Hostile and careless specs: each is refused while the spec is read, with
// file:line:col of the field and the field's path, before any database is
// involved.
func TestExpressionAttacksAreRefused(t *testing.T) {
	for _, c := range []struct {
		name, kind, fields string
		at, path, want     string
	}{
		{"a comment swallowing NOT VALID", "add_check", `check: "total >= 0 /* ( */ ) -- "`,
			":6:32", "changes[0].check", "')' that closes nothing"},
		{"an E-string hiding statements", "add_column", "column: c\n    type: text\n    backfill: \"E'\\\\'' ; DROP TABLE x; --\"",
			":8:15", "changes[0].backfill", "';' outside literals and comments, which would end the statement (at character 7"}, // an escape in the YAML: the column is the value's
		{"a dollar quote hiding statements", "change_column_type", "column: total\n    type: bigint\n    down: total_new::numeric\n    up: \"$a$ $$ $a$ ; DROP TABLE x; --\"",
			":9:21", "changes[0].up", "';' outside literals"},
		{"a continued E-string hiding statements", "set_not_null", "column: name\n    backfill: \"E'x'\\n'\\\\' -- ' ; DROP TABLE x\"",
			":7:15", "changes[0].backfill", "';' outside literals"},
		{"a subquery up with pg_sleep", "change_column_type", "column: total\n    type: bigint\n    down: total_new::numeric\n    up: \"(SELECT total FROM pg_sleep(2))::bigint\"",
			":9:11", "changes[0].up", "reads other tables through a subquery"},
		{"pg_sleep alone", "change_column_type", "column: total\n    type: bigint\n    down: total_new::numeric\n    up: \"total::bigint + 0 * length(pg_sleep(2)::text)\"",
			":9:37", "changes[0].up", "calls pg_sleep(), which is VOLATILE"},
		{"a backfill reading another table", "set_not_null", "column: name\n    backfill: \"(SELECT s FROM secrets LIMIT 1)\"",
			":7:17", "changes[0].backfill", "reads other tables"},
		{"a backfill naming another table's column", "set_not_null", "column: name\n    backfill: \"secrets.s\"",
			":7:16", "changes[0].backfill", "secrets.s, which is not a column of public.users"},
		{"an index predicate with a semicolon", "add_index", "columns: [total]\n    where: \"true; DROP TABLE x\"",
			":7:17", "changes[0].where", "';'"},
		{"a type opening a quoted identifier", "add_column", "column: c\n    type: 'text\"'",
			":7:11", "changes[0].type", "not a type name"},
		{"an unknown opt-in", "set_not_null", "column: name\n    backfill: \"''\"\n    allow: [subqueries]",
			":8:13", "changes[0].allow[0]", `did you mean "subquery"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			table := "orders"
			if c.kind == "set_not_null" {
				table = "users"
			}
			yaml := "# an attack\nchanges:\n  - id: x\n    kind: " + c.kind + "\n    table: " + table + "\n    " + c.fields + "\n"
			path := filepath.Join(t.TempDir(), "attack.yaml")
			if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			var es SpecErrors
			if !errors.As(err, &es) || !errors.Is(err, ErrInput) {
				t.Fatalf("accepted, or not a spec error: %v\n%s", err, yaml)
			}
			for _, e := range es {
				if strings.HasPrefix(e.Error(), path+c.at+": "+c.path+": ") && strings.Contains(e.Error(), c.want) {
					return
				}
			}
			t.Fatalf("no error at %s%s on %s mentioning %q:\n%v", path, c.at, c.path, c.want, err)
		})
	}
}

// The opt-in: allow lets a subquery and a volatile call through, and plan
// says so.
func TestAllowLetsSubqueriesAndVolatileCallsThrough(t *testing.T) {
	specs, err := Parse("allow.yaml", []byte(`changes:
  - id: x
    kind: set_not_null
    table: users
    column: name
    backfill: "(SELECT s FROM secrets WHERE secrets.id = users.id) || random()::text"
    allow: [subquery, volatile]
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(specs[0], Target{Version: 17})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := RenderText(&text, []Plan{p}, true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"`backfill`: VOLATILE (assumed offline", "reads other tables (allowed by `allow: [subquery]`)", "calls volatile functions (allowed by `allow: [volatile]`)"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("plan does not say %q:\n%s", want, text.String())
		}
	}
}

// Spec paths that are not regular files are refused by name without being
// opened in a way that blocks; oversized files are refused.
func TestSpecFilesMustBeRegularAndSmall(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("#\n"), int(defaultMaxSpecSize)), 0o644); err != nil {
		t.Fatal(err)
	}
	withFifo := filepath.Join(dir, "specs")
	if err := os.Mkdir(withFifo, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(withFifo, "a.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{fifo, fifo + ": is a named pipe (FIFO), not a regular file"},
		{zero, zero + ": is a symbolic link to a character device (/dev/zero), not a regular file"},
		{big, big + ": is 8388608 bytes; spec files are limited to 4194304 bytes (split the changes over several files, or raise the limit with --max-spec-size"},
		{withFifo, filepath.Join(withFifo, "a.yaml") + ": is a named pipe (FIFO)"},
	} {
		done := make(chan error, 1)
		go func() { _, err := Load(c.path); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrInput) || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("Load(%s) = %v, want %q", c.path, err, c.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Load(%s) blocked", c.path)
		}
	}
	old := MaxSpecSize
	MaxSpecSize = 16 << 20
	defer func() { MaxSpecSize = old }()
	if _, err := Load(big); err == nil || strings.Contains(err.Error(), "limited to") {
		t.Errorf("a raised limit still refuses the size: %v", err)
	}
}

// A function the catalog knows as VOLATILE (invisible offline) is refused
// by next and validate, naming the file, line and field, and nothing in
// the database changes.
func TestLiveVolatileFunctionIsRefused(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	f.db.Exec(t, `CREATE FUNCTION lookup_secret(id bigint) RETURNS text LANGUAGE sql VOLATILE AS 'SELECT ''s'''`)
	specs := f.specs(t, `changes:
  - id: users-secret
    kind: add_column
    table: users
    column: secret
    type: text
    backfill: lookup_secret(id)
`)
	before := schemaOf(t, f.db, "users")
	_, err := f.e.Next(ctx, specs, "d1", false)
	want := filepath.Join(f.dir, "changes.yaml") + ":2: change users-secret backfill: calls lookup_secret(), VOLATILE in pg_proc"
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), want) {
		t.Fatalf("next: %v, want %q", err, want)
	}
	if schemaOf(t, f.db, "users") != before {
		t.Fatal("next changed the table")
	}
	if engCount(t, f.db, `SELECT count(*) FROM pg_namespace WHERE nspname = 'planner'`) > 0 &&
		engCount(t, f.db, `SELECT count(*) FROM planner.changes`) != 0 {
		t.Fatal("next registered the refused change")
	}
	vs, err := f.e.Validate(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].OK() || vs[0].Problems[0].Field != "backfill" || vs[0].Line != 2 {
		t.Fatalf("validate: %+v", vs)
	}
}

// An expression holding a Markdown fence cannot end the plan's SQL block
// and show the rest of the statement as Markdown in a pull request.
func TestPlanFencesHoldExpressions(t *testing.T) {
	k := &AddCheck{TableName: "orders", Name: "c", Expr: "status <> '```\n<!-- hidden -->' -- ``"}
	p, err := Compile(Spec{ID: "x", Kind: "add_check", Change: k}, Target{Version: 17})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := RenderText(&text, []Plan{p}, true); err != nil {
		t.Fatal(err)
	}
	want := "````sql\nALTER TABLE \"public\".\"orders\" ADD CONSTRAINT \"c\" CHECK (status <> '```\n<!-- hidden -->' -- ``\n) NOT VALID;\n````"
	if !strings.Contains(text.String(), want) {
		t.Fatalf("plan does not fence the statement with ````:\n%s", text.String())
	}
}

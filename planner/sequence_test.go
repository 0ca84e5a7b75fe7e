package planner

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func parseSpecs(t *testing.T, yaml string) []Spec {
	t.Helper()
	specs, err := Parse("plans/changes.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return specs
}

// sequenceCases are sequences of changes on the fixture tables; refused
// names the change refused and words its message must hold (both changes'
// ids and locations), "" when the sequence is sound.
var sequenceCases = []struct {
	name    string
	yaml    string
	refused string
	words   []string
}{
	{"rename then drop the old name", `
changes:
  - {id: a, kind: rename_column, table: users, column: email, to: email_address}
  - {id: b, kind: drop_column, table: users, column: email}
`, "b", []string{`"email"`, `renamed to "email_address"`, "change a (plans/changes.yaml:3)"}},
	{"rename twice from one name", `
changes:
  - {id: a, kind: rename_column, table: users, column: email, to: mail}
  - {id: b, kind: rename_column, table: users, column: email, to: address}
`, "b", []string{`renamed to "mail"`, "change a (plans/changes.yaml:3)"}},
	{"two renames to one name", `
changes:
  - {id: a, kind: rename_column, table: users, column: email, to: contact}
  - {id: b, kind: rename_column, table: users, column: name, to: contact}
`, "b", []string{`"contact"`, "also added", "change a (plans/changes.yaml:3)"}},
	{"add twice", `
changes:
  - {id: a, kind: add_column, table: users, column: nick, type: text}
  - {id: b, kind: add_column, table: users, column: nick, type: text}
`, "b", []string{`"nick"`, "change a"}},
	{"type change then not null on the old column", `
changes:
  - {id: a, kind: change_column_type, table: orders, column: total, type: bigint, up: "round(total * 100)::bigint", down: "total_new / 100.0"}
  - {id: b, kind: set_not_null, table: orders, column: total}
`, "b", []string{`replaced by "total_new"`, "change a"}},
	{"check on a dropped column", `
changes:
  - {id: a, kind: drop_column, table: users, column: legacy_flags}
  - {id: b, kind: add_check, table: users, name: flags_positive, check: "legacy_flags >= 0"}
`, "b", []string{"check", `"legacy_flags"`, "dropped by change a"}},
	{"two indexes of one name", `
changes:
  - {id: a, kind: add_index, table: users, name: users_x_idx, columns: [name]}
  - {id: b, kind: add_index, table: orders, name: users_x_idx, columns: [status]}
`, "b", []string{"an index named", "change a"}},
	{"index on a column an earlier change adds", `
changes:
  - {id: a, kind: add_column, table: users, column: status, type: text, backfill: "'active'"}
  - {id: b, kind: add_index, table: users, columns: [status]}
  - {id: c, kind: set_not_null, table: users, column: status}
`, "", nil},
	{"rename, then work on the new name", `
changes:
  - {id: a, kind: rename_column, table: users, column: email, to: email_address}
  - {id: b, kind: add_index, table: users, columns: [email_address]}
  - {id: c, kind: rename_column, table: users, column: email_address, to: contact}
`, "", nil},
	{"drop, then add the name back", `
changes:
  - {id: a, kind: drop_column, table: users, column: legacy_flags}
  - {id: b, kind: add_column, table: users, column: legacy_flags, type: jsonb}
`, "", nil},
	{"same column name on two tables", `
changes:
  - {id: a, kind: add_column, table: users, column: note, type: text}
  - {id: b, kind: add_column, table: orders, column: note, type: text}
`, "", nil},
}

func checkSequenceCase(t *testing.T, res sequenceResult, refused string, words []string) {
	t.Helper()
	for id, ps := range res.Problems {
		if id != refused {
			t.Errorf("change %s refused: %+v", id, ps)
		}
	}
	if refused == "" {
		return
	}
	ps := res.Problems[refused]
	if len(ps) == 0 {
		t.Fatalf("change %s not refused", refused)
	}
	text := ps[0].Field + ": " + ps[0].Message
	for _, w := range words {
		if !strings.Contains(text, w) {
			t.Errorf("problem %q lacks %q", text, w)
		}
	}
}

// Offline the model knows only what the specs say, which is enough for
// every contradiction between changes.
func TestSequenceOffline(t *testing.T) {
	for _, tc := range sequenceCases {
		t.Run(tc.name, func(t *testing.T) {
			checkSequenceCase(t, checkSequence(parseSpecs(t, tc.yaml), nil, nil), tc.refused, tc.words)
		})
	}
}

// Online the model starts from the catalogs: the same verdicts, plus
// columns that do not exist at all, and each change gets its table as the
// earlier ones leave it.
func TestSequenceOnline(t *testing.T) {
	f := newEngineFixture(t)
	live, err := loadTables(context.Background(), f.db.Pool, []TableName{{Name: "users"}, {Name: "orders"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range sequenceCases {
		t.Run(tc.name, func(t *testing.T) {
			checkSequenceCase(t, checkSequence(parseSpecs(t, tc.yaml), live, nil), tc.refused, tc.words)
		})
	}
	res := checkSequence(parseSpecs(t, `
changes:
  - {id: a, kind: add_index, table: users, columns: [nickname]}
  - {id: b, kind: add_column, table: users, column: nickname, type: text}
  - {id: c, kind: add_index, table: users, name: users_nick2_idx, columns: [nickname]}
`), live, nil)
	checkSequenceCase(t, res, "a", []string{`column "nickname" does not exist on public.users`})
	if res.Before["c"].Column("nickname") == nil || res.Before["a"].Column("nickname") != nil {
		t.Fatal("the model's tables do not follow the sequence")
	}
	if !res.Changed["c"] || res.Changed["a"] {
		t.Fatalf("changed flags: %v", res.Changed)
	}
	// The catalog itself is left alone.
	if live[TableName{Name: "users"}.Key()].Column("nickname") != nil {
		t.Fatal("the model changed the catalog it started from")
	}
	// A change that already started is applied without checks: its
	// effects are partly in the catalog already.
	started := checkSequence(parseSpecs(t, `
changes:
  - {id: a, kind: add_column, table: users, column: email, type: text}
  - {id: b, kind: drop_column, table: users, column: email}
`), live, map[string]bool{"a": true})
	checkSequenceCase(t, started, "", nil)
}

// loadTables reads many tables in a few queries, and each comes out as it
// does when read alone: nothing of one table leaks into another.
func TestLoadTablesMatchesLoadTable(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	f.db.Exec(t, `
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE name IS NOT NULL;
ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
ALTER TABLE orders ADD CONSTRAINT orders_total_check CHECK (total >= 0);
CREATE TABLE nokey (a int, b text)`)
	names := []TableName{{Name: "users"}, {Name: "orders"}, {Schema: "app", Name: "User Accounts"}, {Name: "nokey"}, {Name: "missing"}}
	all, err := loadTables(ctx, f.db.Pool, names)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 || all[TableName{Name: "missing"}.Key()] != nil {
		t.Fatalf("tables: %v", all)
	}
	for _, n := range names[:4] {
		one, err := LoadTable(ctx, f.db.Pool, n)
		if err != nil {
			t.Fatal(err)
		}
		if got := all[n.Key()]; !reflect.DeepEqual(got, one) {
			t.Errorf("%s:\nbatch %+v\none   %+v", n, got, one)
		}
	}
}

// explainAll plans many statements a transaction at a time and still
// reports each failure on its own statement, whatever comes after it.
func TestExplainAllIsolatesFailures(t *testing.T) {
	db := newEngineFixture(t).db
	ctx := context.Background()
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	var sqls []string
	for i := range 700 {
		if i%3 == 0 || i > 650 {
			sqls = append(sqls, "EXPLAIN SELECT nope FROM users")
		} else {
			sqls = append(sqls, "EXPLAIN SELECT email FROM users")
		}
	}
	errs, err := explainAll(ctx, conn.Conn().PgConn(), sqls)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if want := i%3 == 0 || i > 650; (e != nil) != want || e != nil && !strings.Contains(e.Error(), `column "nope" does not exist`) {
			t.Fatalf("statement %d: %v", i, e)
		}
	}
}

// "x.y".z and x."y.z" print alike (x.y.z) but are two tables: each change
// is checked against its own table's catalog, and changes on the two are
// not queued behind each other as changes on one table are.
func TestSequenceTellsDottedTableNamesApart(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	f.db.Exec(t, `
CREATE SCHEMA "x.y";
CREATE TABLE "x.y".z (id int PRIMARY KEY, a int);
CREATE SCHEMA x;
CREATE TABLE x."y.z" (id int PRIMARY KEY, b int);
INSERT INTO "x.y".z VALUES (1, 1);
INSERT INTO x."y.z" VALUES (1, 1)`)
	specs := f.specs(t, `
changes:
  - id: schema-dotted
    kind: add_check
    table: '"x.y".z'
    name: z_a_positive
    check: "a >= 0"
  - id: table-dotted
    kind: add_check
    table: 'x."y.z"'
    name: yz_b_positive
    check: "b >= 0"
`)
	vs, err := f.e.Validate(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if !v.OK() {
			t.Errorf("validate %s: %+v", v.ID, v.Problems)
		}
	}
	r := f.next(t, specs, "d1")
	for _, id := range []string{"schema-dotted", "table-dotted"} {
		if c := reportOf(t, r, id); c.Action != Advanced {
			t.Errorf("d1 %s: %s (%s %s), want %s", id, c.Action, c.Reason, c.Error, Advanced)
		}
	}
	var got []string
	rows, err := f.db.Pool.Query(ctx, `SELECT conrelid::regclass::text || ' ' || conname FROM pg_constraint WHERE conname LIKE '%_positive' ORDER BY conname`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{`x."y.z" yz_b_positive`, `"x.y".z z_a_positive`}; !reflect.DeepEqual(got, want) {
		t.Errorf("check constraints: %q, want %q", got, want)
	}
}

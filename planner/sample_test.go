package planner

import (
	"context"
	"strings"
	"testing"
)

// validate evaluates expressions on existing rows before anything runs: a
// backfill that fails on one row is refused naming the row's key, a check
// that rows violate and a backfill too slow for the table's size are
// warned about; --full finds a failure past the sample. Nothing changes.
func TestValidateEvaluatesExpressionsOnRows(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	f.db.Exec(t, `
CREATE TABLE big (id bigserial PRIMARY KEY, payload text);
INSERT INTO big (payload) SELECT 'p' || g FROM generate_series(1, 300) g;
ANALYZE big;
UPDATE pg_class SET reltuples = 1e9 WHERE oid = 'big'::regclass`)
	specs := f.specs(t, `
changes:
  - id: users-n
    kind: add_column
    table: users
    column: n
    type: int
    backfill: "(CASE WHEN id = 567 THEN 'x' ELSE '1' END)::int"
  - id: users-m
    kind: add_column
    table: users
    column: m
    type: int
    backfill: "(CASE WHEN id = 1567 THEN 'x' ELSE '1' END)::int"
  - id: users-flags-check
    kind: add_check
    table: users
    name: users_flags_small
    check: "legacy_flags < 2"
  - id: big-slow
    kind: add_column
    table: big
    column: size
    type: int
    backfill: "length(repeat(payload, 100000))"
  - id: orders-total-type
    kind: change_column_type
    table: orders
    column: total
    type: bigint
    up: "round(total * 100)::bigint"
    down: "total_new / 100.0"
`)
	before := schemaOf(t, f.db, "users", "orders")
	vs, err := f.e.Validate(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Validation{}
	for _, v := range vs {
		byID[v.ID] = v
	}
	if v := byID["users-n"]; v.OK() || !strings.Contains(v.String(), "fails on existing rows of public.users, e.g. the row with (id)=(567)") ||
		!strings.Contains(v.String(), "invalid input syntax for type integer") {
		t.Errorf("failing backfill: %s", v)
	}
	if v := byID["users-m"]; !v.OK() {
		t.Errorf("a failure past the sample refused without --full: %s", v)
	}
	if v := byID["users-flags-check"]; !v.OK() || len(v.Warnings) != 1 || !strings.Contains(v.String(), "do not satisfy") {
		t.Errorf("violated check: %s", v)
	}
	if v := byID["big-slow"]; !v.OK() || len(v.Warnings) != 1 || !strings.Contains(v.String(), "the backfill would take") {
		t.Errorf("slow backfill: %s", v)
	}
	if v := byID["orders-total-type"]; !v.OK() || len(v.Warnings) != 0 {
		t.Errorf("sound change: %s", v)
	}
	vs, err = f.e.ValidateWith(ctx, specs, ValidateOptions{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if v := vs[1]; v.OK() || !strings.Contains(v.String(), "(id)=(1567)") {
		t.Errorf("--full: %s", v)
	}
	if after := schemaOf(t, f.db, "users", "orders"); after != before {
		t.Fatalf("validate changed the schema:\n%s\n%s", before, after)
	}
	// next refuses the failing backfill before its first phase.
	_, err = f.e.Next(ctx, specs[:1], "d1", false)
	if err == nil || !strings.Contains(err.Error(), "(id)=(567)") {
		t.Fatalf("next: %v", err)
	}
	if engCount(t, f.db, `SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'n'`) != 0 {
		t.Fatal("next added the column of a backfill that fails")
	}
}

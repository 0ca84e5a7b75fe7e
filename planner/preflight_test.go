package planner

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Contradictions between changes are refused by next before anything is
// created or registered, naming both changes, with exit 2 (ErrInput).
func TestNextRefusesContradictorySequenceBeforeRegistering(t *testing.T) {
	f := newEngineFixture(t)
	specs := f.specs(t, `
changes:
  - id: users-email-rename
    kind: rename_column
    table: users
    column: email
    to: email_address
  - id: users-email-drop
    kind: drop_column
    table: users
    column: email
`)
	_, err := f.e.Next(context.Background(), specs, "d1", false)
	if !errors.Is(err, ErrInput) {
		t.Fatalf("err = %v, want ErrInput", err)
	}
	for _, w := range []string{"users-email-drop", "users-email-rename", "changes.yaml:3", "changes.yaml:8", `renamed to "email_address"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("refusal lacks %q:\n%v", w, err)
		}
	}
	if engCount(t, f.db, `SELECT count(*) FROM pg_namespace WHERE nspname = 'planner'`) != 0 {
		t.Fatal("the state schema was created for a refused sequence")
	}
	vs, err := f.e.Validate(context.Background(), specs)
	if err != nil {
		t.Fatal(err)
	}
	if !vs[0].OK() || vs[1].OK() || !strings.Contains(vs[1].String(), "users-email-rename") {
		t.Fatalf("validate: %v", vs)
	}
}

// A change on a column an earlier change adds is accepted by validate
// (checked against the table as the earlier change leaves it, its
// expressions included) and runs to the end.
func TestValidateAcceptsChangeOnColumnAddedEarlier(t *testing.T) {
	f := newEngineFixture(t)
	specs := f.specs(t, `
changes:
  - id: status-add
    kind: add_column
    table: users
    column: status
    type: text
    backfill: "'active'"
  - id: status-check
    kind: add_check
    table: users
    name: users_status_known
    check: "status IN ('active', 'gone')"
  - id: status-index
    kind: add_index
    table: users
    columns: [status]
  - id: status-bad
    kind: add_check
    table: users
    name: users_status_bad
    check: "statuss = 'x'"
`)
	vs, err := f.e.Validate(context.Background(), specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs[:3] {
		if !v.OK() {
			t.Errorf("%s refused: %s", v.ID, v)
		}
	}
	if vs[3].OK() || !strings.Contains(vs[3].String(), "statuss") {
		t.Fatalf("a misspelt column passed: %s", vs[3])
	}
}

// validate reports a spec edited after its change started, and a state
// written by a newer planner; it changes nothing.
func TestValidateReportsEditedSpecAndNewerState(t *testing.T) {
	f := newEngineFixture(t)
	f.next(t, f.specs(t, renameSpec), "d1")
	edited := f.specs(t, strings.Replace(renameSpec, "to: email_address", "to: mail", 1))
	vs, err := f.e.Validate(context.Background(), edited)
	if err != nil {
		t.Fatal(err)
	}
	if vs[0].OK() || !strings.Contains(vs[0].String(), "was edited after it started (phase 1 of 6 applied)") {
		t.Fatalf("edited spec: %s", vs[0])
	}
	// Unedited, the change in flight is shown as such, not checked again
	// against a catalog it already changed.
	vs, err = f.e.Validate(context.Background(), f.specs(t, renameSpec))
	if err != nil || !vs[0].OK() || !strings.Contains(vs[0].String(), "in flight, phase 1 of 6 applied") {
		t.Fatalf("in flight: %v %v", vs, err)
	}
	f.db.Exec(t, `UPDATE planner.meta SET version = version + 1`)
	before := engCount(t, f.db, `SELECT count(*) FROM planner.history`)
	vs, err = f.e.Validate(context.Background(), f.specs(t, renameSpec))
	var pe *PreflightError
	if !errors.As(err, &pe) || !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "newer planner") || len(vs) != 1 {
		t.Fatalf("newer state: %v %v", vs, err)
	}
	if engCount(t, f.db, `SELECT count(*) FROM planner.history`) != before {
		t.Fatal("validate changed the state")
	}
}

// A role that does not own a table may not alter it: validate says so for
// each change, and next refuses (exit 2) before it creates the state
// schema or registers anything.
func TestPrivilegesCheckedBeforeAnything(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	role := "planner_guest_" + f.db.Name
	f.db.Exec(t, `CREATE ROLE `+role+` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE`)
	t.Cleanup(func() {
		f.db.Pool.Exec(context.Background(), `REASSIGN OWNED BY `+role+` TO CURRENT_USER; DROP OWNED BY `+role)
		f.db.Pool.Exec(context.Background(), `DROP ROLE IF EXISTS `+role)
	})
	f.db.Exec(t, `REVOKE CREATE ON DATABASE "`+f.db.Name+`" FROM PUBLIC; GRANT SELECT ON ALL TABLES IN SCHEMA public TO `+role)
	f.db.Exec(t, `ALTER TABLE orders OWNER TO `+role)
	cfg, err := pgxpool.ParseConfig(f.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.User = role
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	e := testEngine(pool)
	specs := f.specs(t, renameSpec+`
  - id: orders-idx
    kind: add_index
    table: orders
    columns: [created_at]
`)
	vs, err := e.Validate(ctx, specs)
	if err == nil || !strings.Contains(err.Error(), "no CREATE privilege on the database") {
		t.Fatalf("validate: want the missing CREATE for the state schema, got %v", err)
	}
	if vs[0].OK() || !strings.Contains(vs[0].String(), "may not alter public.users: the table is owned by") {
		t.Fatalf("users: %s", vs[0])
	}
	if !vs[1].OK() {
		t.Fatalf("orders, owned by the role: %s", vs[1])
	}
	_, err = e.Next(ctx, specs, "d1", false)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "may not alter public.users") {
		t.Fatalf("next: %v, want ErrConfig (missing privileges: exit 5)", err)
	}
	if engCount(t, f.db, `SELECT count(*) FROM pg_namespace WHERE nspname = 'planner'`) != 0 {
		t.Fatal("next created the state schema although it could not run")
	}
	// Membership in the owning role is enough.
	f.db.Exec(t, `GRANT CREATE ON DATABASE "`+f.db.Name+`" TO `+role)
	var owner string
	if err := f.db.Pool.QueryRow(ctx, `SELECT current_user`).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	f.db.Exec(t, `CREATE ROLE users_owner_`+f.db.Name+` NOLOGIN; ALTER TABLE users OWNER TO users_owner_`+f.db.Name+`; GRANT users_owner_`+f.db.Name+` TO `+role)
	t.Cleanup(func() {
		f.db.Pool.Exec(context.Background(), `ALTER TABLE users OWNER TO `+owner+`; DROP ROLE IF EXISTS users_owner_`+f.db.Name)
	})
	if vs, err := e.Validate(ctx, specs); err != nil || !vs[0].OK() || !vs[1].OK() {
		t.Fatalf("as a member of the owning role: %v %v", vs, err)
	}
}

// The state goes to a schema of its own: one holding application tables
// is refused, and so is a name PostgreSQL would cut.
func TestStateSchemaMustBeThePlannersOwn(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, renameSpec)
	f.e.Schema = "public"
	_, err := f.e.Next(ctx, specs, "d1", false)
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), `schema "public" holds tables that are not the planner's (orders, users)`) {
		t.Fatalf("next --state-schema public: %v", err)
	}
	if engCount(t, f.db, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'changes'`) != 0 {
		t.Fatal("state tables created among the application's")
	}
	f.e.Schema = strings.Repeat("s", 64)
	if _, err := f.e.Validate(ctx, specs); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "64 bytes") {
		t.Fatalf("long name: %v", err)
	}
	if err := CheckStateSchemaName(strings.Repeat("s", 63)); err != nil {
		t.Fatal(err)
	}
}

package planner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/internal/pgtest"
)

func TestStatementsNameColumn(t *testing.T) {
	cases := []struct {
		sql  string
		want bool
	}{
		{`SELECT email FROM users WHERE id = $1`, true},
		{`SELECT u.EMAIL FROM public.users u`, true},
		{`UPDATE "users" SET "email" = $1 WHERE id = $2`, true},
		{`(SELECT email FROM users) UNION (SELECT 'x')`, true},
		{`WITH x AS (SELECT email FROM users) SELECT * FROM x`, true},
		{`SELECT email_address FROM users WHERE id = $1`, false},      // a longer name
		{`SELECT email_address /* email */ FROM users`, false},        // a comment
		{`SELECT email_address, 'email' FROM users`, false},           // a literal
		{`SELECT "Email" FROM users`, false},                          // quoted: case kept
		{`SELECT email FROM accounts`, false},                         // another table
		{`ALTER TABLE users RENAME COLUMN email TO email_old`, false}, // DDL
		{`CREATE INDEX ON users (email)`, false},
		{`SELECT email FROM users WHERE note = 'unterminated`, true}, // judged by the tokens before
	}
	for _, c := range cases {
		if got := namesColumn(c.sql, "users", "email"); got != c.want {
			t.Errorf("namesColumn(%q) = %v, want %v", c.sql, got, c.want)
		}
	}
	if !namesColumn(`SELECT "login" FROM app."User Accounts"`, "User Accounts", "login") {
		t.Error("quoted table name not matched")
	}
	if namesColumn(`SELECT login FROM app.user_accounts`, "User Accounts", "login") {
		t.Error("unquoted user_accounts matched the quoted name User Accounts")
	}
}

// statementsCluster is a throwaway server with pg_stat_statements loaded.
func statementsCluster(t *testing.T) *pgtest.Cluster {
	t.Helper()
	c, err := pgtest.Start(pgtest.Options{Settings: []string{"shared_preload_libraries = 'pg_stat_statements'"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// clusterFixture is an engine fixture on a new database of c, with the
// extension installed or not.
func clusterFixture(t *testing.T, c *pgtest.Cluster, extension bool) *engineFixture {
	t.Helper()
	db := c.NewDB(t)
	db.Exec(t, fixtureTables)
	if extension {
		db.Exec(t, `CREATE EXTENSION pg_stat_statements`)
	}
	return &engineFixture{db: db, e: testEngine(db.Pool), dir: t.TempDir()}
}

// appPool is a separate client, as an application instance would be.
func appPool(t *testing.T, f *engineFixture) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), f.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func call(t *testing.T, p *pgxpool.Pool, n int, sql string, args ...any) {
	t.Helper()
	for range n {
		if _, err := p.Exec(context.Background(), sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// toEnforce advances the rename through enforce (deploys d1..d4).
func toEnforce(t *testing.T, f *engineFixture, specs []Spec) {
	t.Helper()
	for i, want := range []string{"expand", "backfill", "dual_write", "enforce"} {
		c := reportOf(t, f.next(t, specs, fmt.Sprintf("d%d", i+1)), "users-email-rename")
		if c.Action != Advanced || c.Phase != want {
			t.Fatalf("deploy d%d: %+v, want %s advanced", i+1, c, want)
		}
	}
}

const (
	oldSelect = `SELECT email FROM users WHERE id = $1`
	oldUpdate = `UPDATE "users" SET "email" = $1 WHERE id = $2`
	newSelect = `SELECT email_address /* not email */ FROM users WHERE id = $1`
)

// With pg_stat_statements, the contract of a rename reports the statements
// that still name the old column since enforce; --gate-statements makes it
// wait while they keep being called.
func TestStatementGate(t *testing.T) {
	c := statementsCluster(t)
	id := "users-email-rename"

	t.Run("gated: a client on the old column holds the contract", func(t *testing.T) {
		f := clusterFixture(t, c, true)
		f.e.GateStatements = true
		specs := f.specs(t, renameSpec)
		app := appPool(t, f)
		call(t, app, 2, oldSelect, 1) // before enforce: in the baseline
		toEnforce(t, f, specs)
		call(t, app, 3, oldSelect, 1)
		call(t, app, 1, oldUpdate, "x@example.com", 2)
		call(t, app, 4, newSelect, 1)

		r := reportOf(t, f.next(t, specs, "d5"), id)
		s := r.OldColumnStatements
		if r.Action != Waiting || r.Phase != "contract" || s == nil || !s.Available || !s.Gating {
			t.Fatalf("contract with old-column statements: %+v %+v", r, s)
		}
		if len(s.Statements) != 2 || s.Since == nil || s.Table != "public.users" || s.Column != "email" {
			t.Fatalf("want the select and the update on email: %+v", s)
		}
		sel := s.Statements[0]
		if sel.Query != oldSelect || sel.Calls != 3 || sel.TotalCalls != 5 || sel.CallsSinceCheck != 3 {
			t.Fatalf("select on the old column: %+v", sel)
		}
		if upd := s.Statements[1]; upd.Query != oldUpdate || upd.Calls != 1 {
			t.Fatalf("update of the old column: %+v", upd)
		}
		if !strings.Contains(r.Reason, oldSelect) || !strings.Contains(r.Reason, fmt.Sprintf("queryid %d", sel.QueryID)) ||
			strings.Contains(r.Reason, "email_address /*") {
			t.Fatalf("reason does not name the old-column statements only: %s", r.Reason)
		}

		call(t, app, 1, oldSelect, 1) // still called
		r = reportOf(t, f.next(t, specs, "d6"), id)
		s = r.OldColumnStatements
		if r.Action != Waiting || len(s.Statements) != 2 || s.LastCheck == nil ||
			!strings.Contains(r.Reason, oldSelect) || strings.Contains(r.Reason, oldUpdate) {
			t.Fatalf("contract while the select keeps being called (the update no longer): %+v %+v", r, s)
		}
		if o := s.Statements[0]; o.Query != oldSelect || o.CallsSinceCheck != 1 || o.Calls != 4 {
			t.Fatalf("calls since the previous check: %+v", o)
		}
		if o := s.Statements[1]; o.Query != oldUpdate || o.CallsSinceCheck != 0 || o.Calls != 1 {
			t.Fatalf("the update, not called since the previous check: %+v", o)
		}

		// The client stopped: status (a dry run, which stores nothing)
		// says the contract would run, and the next deploy runs it.
		call(t, app, 5, newSelect, 1)
		list, err := f.e.Status(context.Background(), specs)
		if err != nil {
			t.Fatal(err)
		}
		if list[0].NextAction != WouldApply || list[0].OldColumnStatements == nil || len(list[0].OldColumnStatements.Statements) != 2 {
			t.Fatalf("status once the client stopped: %+v", list[0])
		}
		if r := reportOf(t, f.next(t, specs, "d7"), id); r.Action != Advanced || r.Phase != "contract" {
			t.Fatalf("contract once no statement names the old column: %+v", r)
		}
	})

	t.Run("gated: clients on the new column only, old column used in another database", func(t *testing.T) {
		f := clusterFixture(t, c, true)
		other := clusterFixture(t, c, true)
		f.e.GateStatements = true
		specs := f.specs(t, renameSpec)
		toEnforce(t, f, specs)
		call(t, appPool(t, f), 3, newSelect, 1)
		call(t, appPool(t, f), 2, `SELECT email_address, 'email' FROM users WHERE id = $1`, 1)
		call(t, appPool(t, other), 3, oldSelect, 1)
		r := reportOf(t, f.next(t, specs, "d5"), id)
		if r.Action != Advanced || r.Phase != "contract" || r.OldColumnStatements == nil || len(r.OldColumnStatements.Statements) != 0 {
			t.Fatalf("contract with new-column statements only: %+v %+v", r, r.OldColumnStatements)
		}
	})

	t.Run("not gated: reported, not waited for", func(t *testing.T) {
		f := clusterFixture(t, c, true)
		specs := f.specs(t, renameSpec)
		toEnforce(t, f, specs)
		call(t, appPool(t, f), 3, oldSelect, 1)
		r := reportOf(t, f.next(t, specs, "d5"), id)
		s := r.OldColumnStatements
		if r.Action != Advanced || r.Phase != "contract" || s == nil || s.Gating || len(s.Statements) != 1 || s.Statements[0].Calls != 3 {
			t.Fatalf("ungated contract: %+v %+v", r, s)
		}
	})

	t.Run("no extension: as without pg_stat_statements; the gate flag refused", func(t *testing.T) {
		f := clusterFixture(t, c, false)
		specs := f.specs(t, renameSpec)
		toEnforce(t, f, specs)
		call(t, appPool(t, f), 3, oldSelect, 1)
		f.e.GateStatements = true
		_, err := f.e.Next(context.Background(), specs, "d5", false)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "pg_stat_statements extension is not installed") {
			t.Fatalf("--gate-statements without the extension: %v", err)
		}
		f.e.GateStatements = false
		r := reportOf(t, f.next(t, specs, "d6"), id)
		if r.Action != Advanced || r.Phase != "contract" || r.OldColumnStatements != nil || r.Reason != "" {
			t.Fatalf("contract without the extension: %+v", r)
		}
	})

	t.Run("extension installed after enforce: the first check takes the baseline", func(t *testing.T) {
		f := clusterFixture(t, c, false)
		f.e.GateStatements = true
		specs := f.specs(t, renameSpec)
		toEnforce(t, f, specs)
		f.db.Exec(t, `CREATE EXTENSION pg_stat_statements`)
		app := appPool(t, f)
		call(t, app, 2, oldSelect, 1)
		r := reportOf(t, f.next(t, specs, "d5"), id)
		if r.Action != Waiting || !strings.Contains(r.Reason, "one is taken now") {
			t.Fatalf("first check without a baseline: %+v", r)
		}
		call(t, app, 1, oldSelect, 1)
		if r := reportOf(t, f.next(t, specs, "d6"), id); r.Action != Waiting || !strings.Contains(r.Reason, oldSelect) {
			t.Fatalf("a call after the late baseline: %+v", r)
		}
		if r := reportOf(t, f.next(t, specs, "d7"), id); r.Action != Advanced {
			t.Fatalf("no call since the previous check: %+v", r)
		}
	})

	t.Run("pg_stat_statements reset after enforce: counts from the reset", func(t *testing.T) {
		f := clusterFixture(t, c, true)
		f.e.GateStatements = true
		specs := f.specs(t, renameSpec)
		app := appPool(t, f)
		call(t, app, 2, oldSelect, 1)
		toEnforce(t, f, specs)
		f.db.Exec(t, `SELECT pg_stat_statements_reset()`)
		call(t, app, 2, oldSelect, 1) // as many calls as the baseline holds
		r := reportOf(t, f.next(t, specs, "d5"), id)
		if r.Action != Waiting || len(r.OldColumnStatements.Statements) != 1 || r.OldColumnStatements.Statements[0].Calls != 2 {
			t.Fatalf("calls after a reset: %+v %+v", r, r.OldColumnStatements)
		}
		call(t, app, 1, oldSelect, 1)
		r = reportOf(t, f.next(t, specs, "d6"), id)
		if o := r.OldColumnStatements.Statements; r.Action != Waiting || len(o) != 1 || o[0].Calls != 3 || o[0].CallsSinceCheck != 1 {
			t.Fatalf("calls after a reset, second check: %+v %+v", r, o)
		}
	})

	t.Run("drop_column: a client still reading the column holds the contract", func(t *testing.T) {
		f := clusterFixture(t, c, true)
		f.e.GateStatements = true
		specs := f.specs(t, `
changes:
  - id: users-legacy-drop
    kind: drop_column
    table: users
    column: legacy_flags
`)
		if r := reportOf(t, f.next(t, specs, "d1"), "users-legacy-drop"); r.Action != Advanced || r.Phase != "stop_using" {
			t.Fatalf("stop_using: %+v", r)
		}
		const read = `SELECT legacy_flags FROM users WHERE id = $1`
		call(t, appPool(t, f), 2, read, 1)
		r := reportOf(t, f.next(t, specs, "d2"), "users-legacy-drop")
		if r.Action != Waiting || r.Phase != "contract" || !strings.Contains(r.Reason, read) {
			t.Fatalf("contract of drop_column with the column still read: %+v", r)
		}
		if r := reportOf(t, f.next(t, specs, "d3"), "users-legacy-drop"); r.Action != Advanced || r.Phase != "contract" {
			t.Fatalf("contract once the column is no longer read: %+v", r)
		}
	})

	t.Run("a role without pg_read_all_stats: other roles' statements hidden, said so", func(t *testing.T) {
		f := clusterFixture(t, c, true)
		specs := f.specs(t, renameSpec)
		toEnforce(t, f, specs)
		call(t, appPool(t, f), 3, oldSelect, 1) // run by the superuser
		role := "viewer_" + f.db.Name
		f.db.Exec(t, `CREATE ROLE `+role+` LOGIN`)
		f.db.Exec(t, `GRANT USAGE ON SCHEMA planner TO `+role)
		f.db.Exec(t, `GRANT SELECT ON ALL TABLES IN SCHEMA planner TO `+role)
		u, err := pgxpool.ParseConfig(f.db.URL)
		if err != nil {
			t.Fatal(err)
		}
		u.ConnConfig.User = role
		viewer, err := pgxpool.NewWithConfig(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(viewer.Close)
		e := testEngine(viewer)
		status := func() ChangeStatus {
			t.Helper()
			list, err := e.Status(context.Background(), specs)
			if err != nil {
				t.Fatal(err)
			}
			return list[0]
		}
		s := status().OldColumnStatements
		if s == nil || !s.Available || s.Hidden == 0 || len(s.Statements) != 0 || !strings.Contains(s.Problem, `GRANT pg_read_all_stats TO "`+role+`"`) {
			t.Fatalf("report for a role that sees only its own statements: %+v", s)
		}
		e.GateStatements = true
		if st := status(); st.NextAction != Failed || !strings.Contains(st.NextReason, "hidden") {
			t.Fatalf("--gate-statements with hidden statements: %+v", st)
		}
		e.GateStatements = false
		f.db.Exec(t, `GRANT pg_read_all_stats TO `+role)
		s = status().OldColumnStatements
		if s.Hidden != 0 || s.Problem != "" || len(s.Statements) != 1 || s.Statements[0].Query != oldSelect {
			t.Fatalf("report once the role has pg_read_all_stats: %+v", s)
		}
	})
}

// Installed but not loaded (no shared_preload_libraries), or counting
// nothing: the report says so and why; the gate flag is refused.
func TestStatementsUnavailable(t *testing.T) {
	c, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	f := clusterFixture(t, c, true)
	specs := f.specs(t, renameSpec)
	toEnforce(t, f, specs)
	list, err := f.e.Status(context.Background(), specs)
	if err != nil {
		t.Fatal(err)
	}
	if s := list[0].OldColumnStatements; list[0].NextAction != WouldApply || s == nil || s.Available || !strings.Contains(s.Problem, "shared_preload_libraries") ||
		!strings.Contains(list[0].NextReason, "installed but not loaded") {
		t.Fatalf("status with the extension not loaded: %+v %+v", list[0], s)
	}
	f.e.GateStatements = true
	if _, err := f.e.Next(context.Background(), specs, "d5", false); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "shared_preload_libraries") {
		t.Fatalf("--gate-statements with the extension not loaded: %v", err)
	}

	loaded := clusterFixture(t, statementsCluster(t), true)
	loaded.db.Exec(t, `ALTER DATABASE `+pgx.Identifier{loaded.db.Name}.Sanitize()+` SET pg_stat_statements.track = 'none'`)
	loaded.db.Pool.Reset() // new sessions, with the setting
	loaded.e.GateStatements = true
	specs = loaded.specs(t, renameSpec)
	toEnforce(t, loaded, specs)
	if _, err := loaded.e.Next(context.Background(), specs, "d5", false); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "track is none") {
		t.Fatalf("--gate-statements with pg_stat_statements.track = none: %v", err)
	}
}

func TestStatementsNameTable(t *testing.T) {
	orders := TableName{Schema: "public", Name: "orders"}
	cases := []struct {
		sql  string
		want bool
	}{
		{`SELECT total FROM orders WHERE id = $1`, true},
		{`SELECT total FROM public.orders WHERE id = $1`, true},
		{`INSERT INTO "public"."orders" (user_id) VALUES ($1)`, true},
		{`SELECT orders.total FROM purchases orders`, true}, // an alias named so: judged by the name
		{`WITH o AS (SELECT * FROM ORDERS) SELECT count(*) FROM o`, true},
		{`SELECT total FROM app.orders WHERE id = $1`, false}, // another schema's table
		{`SELECT total FROM purchases WHERE id = $1`, false},  // the new name
		{`SELECT total FROM orders_archive`, false},           // a longer name
		{`SELECT 'orders', total /* orders */ FROM purchases`, false},
		{`SELECT total FROM "Orders"`, false}, // quoted: case kept
		// The planner's own statements: the view, the rename, the purge,
		// its probes (names as parameters).
		{`CREATE VIEW "public"."orders" WITH (security_invoker = true) AS SELECT * FROM "public"."purchases"`, false},
		{`DROP VIEW IF EXISTS "public"."orders"`, false},
		{`ALTER TABLE "public"."orders" RENAME TO "purchases"`, false},
		{`DROP TABLE IF EXISTS "public"."orders"`, false},
		{`SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = to_regclass($1) AND relkind = ANY($2))`, false},
	}
	for _, c := range cases {
		if got := namesTable(c.sql, orders); got != c.want {
			t.Errorf("namesTable(%q) = %v, want %v", c.sql, got, c.want)
		}
	}
	if !namesTable(`SELECT login FROM app."User Accounts"`, TableName{Schema: "app", Name: "User Accounts"}) {
		t.Error("quoted, schema-qualified table name not matched")
	}
	if namesTable(`SELECT login FROM app.user_accounts`, TableName{Schema: "app", Name: "User Accounts"}) {
		t.Error("unquoted user_accounts matched the quoted name User Accounts")
	}
}

// The contracts of rename_table (which drops the view under the old name)
// and drop_table (which moves the table aside) report, and with
// --gate-statements wait for, the statements that still name the old
// table name.
func TestStatementGateTables(t *testing.T) {
	c := statementsCluster(t)
	const (
		viaView  = `SELECT total FROM orders WHERE id = $1`
		viaQual  = `UPDATE public.orders SET status = $1 WHERE id = $2`
		newName  = `SELECT total FROM purchases WHERE id = $1`
		elsewise = `SELECT total FROM app.orders WHERE id = $1`
	)

	t.Run("rename_table: a client on the old name holds the contract; the planner's DDL does not", func(t *testing.T) {
		f := clusterFixture(t, c, true)
		f.db.Exec(t, `CREATE TABLE app.orders (id bigint PRIMARY KEY, total numeric); INSERT INTO app.orders VALUES (1, 1)`)
		f.e.GateStatements = true
		const id = "orders-rename"
		specs := f.specs(t, `
changes:
  - id: orders-rename
    kind: rename_table
    table: orders
    to: purchases
`)
		app := appPool(t, f)
		for i, want := range []string{"rename", "switch"} {
			call(t, app, 2, viaView, 1) // on the table, then the view: before the baseline
			if r := reportOf(t, f.next(t, specs, fmt.Sprintf("d%d", i+1)), id); r.Action != Advanced || r.Phase != want {
				t.Fatalf("deploy d%d: %+v, want %s advanced", i+1, r, want)
			}
		}
		call(t, app, 3, viaView, 1)
		call(t, app, 1, viaQual, "open", 2)
		// Before PostgreSQL 18 the new name shares the entry the old name
		// had before the rename (same table oid, so same queryid) and its
		// old text: ignored. From 18 it has an entry of its own.
		call(t, app, 4, newName, 1)
		call(t, app, 4, elsewise, 1)

		r := reportOf(t, f.next(t, specs, "d3"), id)
		s := r.OldColumnStatements
		if r.Action != Waiting || r.Phase != "contract" || s == nil || !s.Available || !s.Gating {
			t.Fatalf("contract with statements on the old name: %+v %+v", r, s)
		}
		if s.Table != "public.orders" || s.Column != "" || s.SincePhase != "switch" || len(s.Statements) != 2 {
			t.Fatalf("want the select and the update through the view: %+v", s)
		}
		// Its calls through the view since the baseline, and in all: from
		// PostgreSQL 18 the entry is the table's name, so it also holds the
		// calls on the table before the rename.
		total := int64(5)
		if f.db.ServerVersion(t) >= 18 {
			total = 7
		}
		if o := s.Statements[0]; o.Query != viaView || o.Calls != 3 || o.TotalCalls != total {
			t.Fatalf("select through the view: %+v", o)
		}
		if o := s.Statements[1]; o.Query != viaQual || o.Calls != 1 {
			t.Fatalf("update through the view, schema-qualified: %+v", o)
		}
		if !strings.Contains(r.Reason, "naming the table public.orders called since switch") || !strings.Contains(r.Reason, viaView) ||
			strings.Contains(r.Reason, newName) || strings.Contains(r.Reason, elsewise) {
			t.Fatalf("reason does not name the old-name statements only: %s", r.Reason)
		}

		// The client moved to the new name: the contract drops the view.
		call(t, app, 3, newName, 1)
		if r := reportOf(t, f.next(t, specs, "d4"), id); r.Action != Advanced || r.Phase != "contract" {
			t.Fatalf("contract once no statement names the old name: %+v", r)
		}
		// Rollback creates the view again (DDL naming the old name), and
		// the contract runs again: the planner's statements do not hold it.
		if _, err := f.e.Rollback(context.Background(), id, "r1"); err != nil {
			t.Fatal(err)
		}
		r = reportOf(t, f.next(t, specs, "d5"), id)
		if r.Action != Advanced || r.Phase != "contract" || r.OldColumnStatements == nil {
			t.Fatalf("contract after a rollback that re-created the view: %+v %+v", r, r.OldColumnStatements)
		}
		for _, o := range r.OldColumnStatements.Statements {
			if o.CallsSinceCheck != 0 || !strings.HasPrefix(o.Query, "SELECT total") && !strings.HasPrefix(o.Query, "UPDATE") {
				t.Fatalf("after the rollback, a statement other than the client's: %+v", o)
			}
		}
	})

	t.Run("drop_table: a client still reading the table holds the contract", func(t *testing.T) {
		f := clusterFixture(t, c, true)
		f.e.GateStatements = true
		const id = "orders-drop"
		specs := f.specs(t, `
changes:
  - id: orders-drop
    kind: drop_table
    table: public.orders
`)
		if r := reportOf(t, f.next(t, specs, "d1"), id); r.Action != Advanced || r.Phase != "stop_using" {
			t.Fatalf("stop_using: %+v", r)
		}
		app := appPool(t, f)
		call(t, app, 2, viaView, 1)
		call(t, app, 2, `SELECT email FROM users WHERE id = $1`, 1)
		r := reportOf(t, f.next(t, specs, "d2"), id)
		if s := r.OldColumnStatements; r.Action != Waiting || r.Phase != "contract" || s == nil || len(s.Statements) != 1 ||
			s.SincePhase != "stop_using" || !strings.Contains(r.Reason, viaView) || strings.Contains(r.Reason, "users") {
			t.Fatalf("contract of drop_table with the table still read: %+v %+v", r, s)
		}
		if r := reportOf(t, f.next(t, specs, "d3"), id); r.Action != Advanced || r.Phase != "contract" {
			t.Fatalf("contract once the table is no longer read: %+v", r)
		}
	})

	t.Run("not gated: reported, not waited for", func(t *testing.T) {
		f := clusterFixture(t, c, true)
		specs := f.specs(t, `
changes:
  - id: orders-drop
    kind: drop_table
    table: orders
`)
		f.next(t, specs, "d1")
		call(t, appPool(t, f), 3, viaView, 1)
		r := reportOf(t, f.next(t, specs, "d2"), "orders-drop")
		if s := r.OldColumnStatements; r.Action != Advanced || r.Phase != "contract" || s == nil || s.Gating || len(s.Statements) != 1 ||
			!strings.Contains(s.Summary(), "1 statement(s) naming the table public.orders called since stop_using") {
			t.Fatalf("ungated contract of drop_table: %+v %+v", r, s)
		}
	})
}

package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

// The apply tests execute, phase by phase on a populated table, exactly
// the statements `planner plan` prints, with a small runner of their own
// that follows the Statement rules (transactions split at CommitAfter and
// around NoTransaction, Done probes skip work already done). Each phase is
// run twice to prove it resumes cleanly. Then every phase but purge is
// rolled back in reverse, and after each rollback the catalog must match
// what it was before that phase; finally all phases run forward again,
// purge included, and the final schema and data are checked.

type applyCase struct {
	name string
	// setup creates and fills the tables.
	setup string
	// tables whose catalog snapshots must be restored by rollbacks; the
	// change's own table comes first.
	tables []TableName
	spec   Spec
	// data is a query whose result must be the same before the change and
	// after purge (e.g. the old column's values, read from the new one).
	dataBefore, dataAfter string
	// final checks the schema after all phases; each query returns true.
	final []string
	// phases expected, in order.
	phaseNames []string
	// once: the phases are one transaction each, committed with the
	// phase's state record (raw SQL has no done-probes), so the engine
	// never runs them again after they commit; applying twice is not a
	// case to test.
	once bool
}

const rows = 3000

func usersSetup(table, email string) string {
	return fmt.Sprintf(`
CREATE SCHEMA IF NOT EXISTS app;
CREATE TABLE allowed_emails (address text PRIMARY KEY);
INSERT INTO allowed_emails SELECT 'user' || g || '@example.com' FROM generate_series(1, %[3]d) g;
INSERT INTO allowed_emails VALUES ('nobody@example.com');
CREATE TABLE %[1]s (
  id bigserial PRIMARY KEY,
  %[2]s text NOT NULL DEFAULT 'nobody@example.com' CONSTRAINT users_email_check CHECK (%[2]s <> ''),
  name text,
  created_at timestamptz,
  legacy_flags int NOT NULL,
  CONSTRAINT users_email_key UNIQUE (%[2]s),
  CONSTRAINT users_email_fkey FOREIGN KEY (%[2]s) REFERENCES allowed_emails (address)
);
CREATE INDEX users_lower_email_idx ON %[1]s (lower(%[2]s));
CREATE INDEX users_created_at_email_idx ON %[1]s (created_at) WHERE %[2]s IS NOT NULL;
CREATE INDEX users_legacy_flags_idx ON %[1]s (legacy_flags);
INSERT INTO %[1]s (%[2]s, name, created_at, legacy_flags)
  SELECT 'user' || g || '@example.com', CASE WHEN g %% 7 = 0 THEN NULL ELSE 'name ' || g END,
         now() - g * interval '1 minute', g %% 3
  FROM generate_series(1, %[3]d) g;
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  user_id bigint NOT NULL,
  user_email text CONSTRAINT orders_user_email_fkey REFERENCES %[1]s (%[2]s),
  total numeric(12,2) NOT NULL CONSTRAINT orders_total_check CHECK (total >= 0),
  status text NOT NULL DEFAULT 'open',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_total_idx ON orders (total);
INSERT INTO orders (user_id, user_email, total, status, created_at)
  SELECT 1 + g %% %[3]d, 'user' || (1 + g %% %[3]d) || '@example.com', (g %% 500) + 0.25,
         CASE WHEN g %% 4 = 0 THEN 'open' ELSE 'closed' END, now() - g * interval '1 second'
  FROM generate_series(1, %[3]d) g;
CREATE TABLE app."User Accounts" (id int PRIMARY KEY, login text NOT NULL);
INSERT INTO app."User Accounts" SELECT g, 'login' || g FROM generate_series(1, %[3]d) g;
ANALYZE;
`, table, pgx.Identifier{email}.Sanitize(), rows)
}

// catalogCase is an apply case of a one-phase catalog kind on a small
// table, with extra setup for the object it drops or renames.
func catalogCase(name, kind, extra string, k Kind, final string) applyCase {
	return applyCase{
		name: name,
		setup: `CREATE TABLE things (id bigserial PRIMARY KEY, name text, qty int NOT NULL DEFAULT 1);
INSERT INTO things (name, qty) SELECT 'thing ' || g, g FROM generate_series(1, 500) g;` + extra,
		tables:     []TableName{{Name: "things"}},
		spec:       Spec{ID: "c", Kind: kind, Change: k},
		dataBefore: `SELECT string_agg(name || qty, ',' ORDER BY id) FROM things`,
		dataAfter:  `SELECT string_agg(name || qty, ',' ORDER BY id) FROM things`,
		final:      []string{final},
		phaseNames: []string{kind},
	}
}

func applyCases() []applyCase {
	users := TableName{Name: "users"}
	orders := TableName{Name: "orders"}
	odd := TableName{Schema: "app", Name: `Odd "Users"`}
	accounts := TableName{Schema: "app", Name: "User Accounts"}
	allowed := TableName{Name: "allowed_emails"}
	full := []string{"expand", "backfill", "dual_write", "enforce", "contract", "purge"}
	renameFinal := func(t TableName, oldCol, newCol string) []string {
		reg := literal(t.Quoted())
		col := literal(newCol)
		return []string{
			// old column gone, new one NOT NULL with the default
			fmt.Sprintf(`SELECT count(*) = 0 FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s AND NOT attisdropped`, reg, literal(oldCol)),
			fmt.Sprintf(`SELECT attnotnull FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s`, reg, col),
			fmt.Sprintf(`SELECT pg_get_expr(adbin, adrelid) = '''nobody@example.com''::text' FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = %s::regclass AND a.attname = %s`, reg, col),
			// copies of the two indexes, the unique, the check, the FK and the referencing FK, all valid
			fmt.Sprintf(`SELECT count(*) = 3 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid WHERE i.indrelid = %s::regclass AND i.indisvalid AND a.attname = %s AND (a.attnum = ANY(i.indkey) OR pg_get_indexdef(i.indexrelid) LIKE '%%' || quote_ident(a.attname) || '%%')`, reg, col),
			fmt.Sprintf(`SELECT count(*) = 3 FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('u', 'c', 'f') AND convalidated AND conname LIKE '%%' || %s || '%%'`, reg, col),
			fmt.Sprintf(`SELECT count(*) = 1 FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'f' AND confrelid = %s::regclass AND convalidated`, reg),
			`SELECT count(*) = 0 FROM pg_trigger WHERE tgname LIKE 'planner%'`,
			`SELECT count(*) = 0 FROM pg_proc WHERE proname LIKE 'planner%'`,
			// the copies enforce: a duplicate and an unknown address are refused
			fmt.Sprintf(`SELECT NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c' AND NOT convalidated)`, reg),
		}
	}
	renameCase := func(name string, t TableName, oldCol, newCol string) applyCase {
		return applyCase{
			name:   name,
			setup:  usersSetup(t.Quoted(), oldCol),
			tables: []TableName{t, orders, allowed},
			spec: Spec{ID: "users-email-rename", Kind: "rename_column",
				Change: &RenameColumn{TableName: quotedSpecName(t), Column: oldCol, To: newCol}},
			dataBefore: fmt.Sprintf(`SELECT string_agg(%s, ',' ORDER BY id) FROM %s`, pgx.Identifier{oldCol}.Sanitize(), t.Quoted()),
			dataAfter:  fmt.Sprintf(`SELECT string_agg(%s, ',' ORDER BY id) FROM %s`, pgx.Identifier{newCol}.Sanitize(), t.Quoted()),
			final:      renameFinal(t, oldCol, newCol),
			phaseNames: full,
		}
	}
	return []applyCase{
		renameCase("rename_column", users, "email", "email_address"),
		catalogCase("drop_index", "drop_index", `CREATE INDEX things_name_idx ON things (name) WHERE name <> ''`,
			&DropIndex{TableName: "things", Index: "things_name_idx"}, `SELECT to_regclass('things_name_idx') IS NULL`),
		catalogCase("drop_constraint_unique", "drop_constraint", `ALTER TABLE things ADD CONSTRAINT things_name_key UNIQUE (name)`,
			&DropConstraint{TableName: "things", Constraint: "things_name_key"}, `SELECT to_regclass('things_name_key') IS NULL`),
		catalogCase("drop_constraint_check", "drop_constraint", `ALTER TABLE things ADD CONSTRAINT things_qty_check CHECK (qty >= 0)`,
			&DropConstraint{TableName: "things", Constraint: "things_qty_check"}, `SELECT NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'things_qty_check')`),
		catalogCase("rename_index", "rename_index", `CREATE INDEX things_name_idx ON things (name)`,
			&RenameIndex{TableName: "things", Index: "things_name_idx", To: "things_by_name"}, `SELECT to_regclass('things_by_name') IS NOT NULL`),
		catalogCase("rename_constraint", "rename_constraint", `ALTER TABLE things ADD CONSTRAINT things_qty_check CHECK (qty >= 0)`,
			&RenameConstraint{TableName: "things", Constraint: "things_qty_check", To: "things_qty_ok"}, `SELECT EXISTS (SELECT FROM pg_constraint WHERE conname = 'things_qty_ok')`),
		catalogCase("set_default", "set_default", ``,
			&SetDefault{TableName: "things", Column: "qty", Default: "7"}, `SELECT pg_get_expr(adbin, adrelid) = '7' FROM pg_attrdef WHERE adrelid = 'things'::regclass AND adnum = 3`),
		catalogCase("drop_default", "drop_default", ``,
			&DropDefault{TableName: "things", Column: "qty"}, `SELECT NOT EXISTS (SELECT FROM pg_attrdef WHERE adrelid = 'things'::regclass AND adnum = 3)`),
		catalogCase("drop_not_null", "drop_not_null", ``,
			&DropNotNull{TableName: "things", Column: "qty"}, `SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = 'things'::regclass AND attname = 'qty'`),
		renameCase("rename_column_quoted_names", odd, "E-Mail", `E-Mail "Address"`),
		{
			name:   "sql",
			setup:  usersSetup("users", "email"),
			tables: []TableName{users},
			spec: Spec{ID: "users-nickname-sql", Kind: "sql",
				Change: &SQL{TableName: "users", Up: "ALTER TABLE users ADD COLUMN nickname text;\nALTER TABLE users ALTER COLUMN nickname SET DEFAULT 'anon'",
					Down: "ALTER TABLE users DROP COLUMN nickname", Allow: []string{"ban-drop-column"}, Reason: "drops only what up added"}},
			dataBefore: `SELECT count(*)::text FROM users`,
			dataAfter:  `SELECT count(*)::text FROM users WHERE nickname IS NULL`,
			final: []string{
				`SELECT pg_get_expr(adbin, adrelid) = '''anon''::text' FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = 'users'::regclass AND a.attname = 'nickname'`,
			},
			phaseNames: []string{"run_sql"},
			once:       true,
		},
		{
			name:   "add_column",
			setup:  usersSetup("users", "email"),
			tables: []TableName{users},
			spec: Spec{ID: "users-status-add", Kind: "add_column",
				Change: &AddColumn{TableName: "users", Column: "status", Type: "text", NotNull: true, Backfill: "'active'", Default: "'active'"}},
			dataBefore: `SELECT count(*)::text FROM users`,
			dataAfter:  `SELECT count(*)::text FROM users WHERE status = 'active'`,
			final: []string{
				`SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'status'`,
				`SELECT pg_get_expr(adbin, adrelid) = '''active''::text' FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = 'users'::regclass AND a.attname = 'status'`,
				`SELECT count(*) = 0 FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype = 'c' AND conname LIKE '%status%'`,
			},
			phaseNames: []string{"expand", "backfill", "dual_write", "enforce"},
		},
		{
			name:   "change_column_type",
			setup:  usersSetup("users", "email"),
			tables: []TableName{orders, users},
			spec: Spec{ID: "orders-total-cents", Kind: "change_column_type",
				Change: &ChangeColumnType{TableName: "orders", Column: "total", Type: "bigint",
					Up: "round(total * 100)::bigint", Down: "(total_cents / 100.0)::numeric(12,2)", NewColumn: "total_cents"}},
			dataBefore: `SELECT string_agg((total * 100)::bigint::text, ',' ORDER BY id) FROM orders`,
			dataAfter:  `SELECT string_agg(total_cents::text, ',' ORDER BY id) FROM orders`,
			final: []string{
				`SELECT format_type(atttypid, atttypmod) = 'bigint' AND attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'total_cents'`,
				`SELECT count(*) = 0 FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'total' AND NOT attisdropped`,
				`SELECT count(*) = 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'orders_total_cents_idx' AND i.indisvalid`,
				`SELECT count(*) = 1 FROM pg_constraint WHERE conname = 'orders_total_cents_check' AND convalidated`,
				`SELECT count(*) = 0 FROM pg_proc WHERE proname LIKE 'planner%'`,
			},
			phaseNames: full,
		},
		{
			name:   "alter_column",
			setup:  usersSetup("users", "email"),
			tables: []TableName{orders, users},
			spec: Spec{ID: "orders-total-alter", Kind: "alter_column",
				Change: &AlterColumn{TableName: "orders", Column: "total", To: "total_cents", Type: "bigint",
					Up: "round(total * 100)::bigint", Down: "(total_cents / 100.0)::numeric(12,2)",
					Default: "0", CheckExpr: "total_cents >= 0", CheckName: "orders_total_cents_nonnegative"}},
			dataBefore: `SELECT string_agg((total * 100)::bigint::text, ',' ORDER BY id) FROM orders`,
			dataAfter:  `SELECT string_agg(total_cents::text, ',' ORDER BY id) FROM orders`,
			final: []string{
				`SELECT format_type(atttypid, atttypmod) = 'bigint' AND attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'total_cents'`,
				`SELECT count(*) = 0 FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'total' AND NOT attisdropped`,
				`SELECT convalidated FROM pg_constraint WHERE conname = 'orders_total_cents_nonnegative'`,
				`SELECT count(*) = 0 FROM pg_proc WHERE proname LIKE 'planner%'`,
			},
			phaseNames: full,
		},
		{
			name:   "set_not_null",
			setup:  usersSetup("users", "email"),
			tables: []TableName{users},
			spec: Spec{ID: "users-name-not-null", Kind: "set_not_null",
				Change: &SetNotNull{TableName: "users", Column: "name", Backfill: "''"}},
			dataBefore: `SELECT count(*)::text FROM users WHERE name IS NULL`,
			dataAfter:  `SELECT count(*)::text FROM users WHERE name = ''`,
			final: []string{
				`SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'name'`,
				`SELECT NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'users'::regclass AND NOT convalidated)`,
			},
			phaseNames: []string{"backfill", "enforce"},
		},
		{
			name:   "drop_column",
			setup:  usersSetup("users", "email"),
			tables: []TableName{users},
			spec: Spec{ID: "users-legacy-flags-drop", Kind: "drop_column",
				Change: &DropColumn{TableName: "users", Column: "legacy_flags"}},
			dataBefore: `SELECT count(*)::text FROM users`,
			dataAfter:  `SELECT count(*)::text FROM users`,
			final: []string{
				`SELECT count(*) = 0 FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'legacy_flags' AND NOT attisdropped`,
				`SELECT to_regclass('users_legacy_flags_idx') IS NULL`,
			},
			phaseNames: []string{"stop_using", "contract", "purge"},
		},
		{
			name:   "add_index",
			setup:  usersSetup("users", "email") + `CREATE INDEX orders_open_created_at_idx ON orders (created_at) WHERE false; UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'orders_open_created_at_idx'::regclass;`,
			tables: []TableName{orders},
			spec: Spec{ID: "orders-created-at-index", Kind: "add_index",
				Change: &AddIndex{TableName: "orders", Name: "orders_open_created_at_idx", Columns: []string{"created_at"}, Where: "status = 'open'"}},
			final: []string{
				`SELECT indisvalid AND pg_get_expr(indpred, indrelid) = '(status = ''open''::text)' FROM pg_index WHERE indexrelid = 'orders_open_created_at_idx'::regclass`,
			},
			phaseNames: []string{"build_index"},
		},
		{
			name:   "add_index_expression_quoted_table",
			setup:  usersSetup("users", "email"),
			tables: []TableName{accounts},
			spec: Spec{ID: "accounts-lower-login", Kind: "add_index",
				Change: &AddIndex{TableName: `app."User Accounts"`, Columns: []string{"lower(login)"}, Unique: true}},
			final: []string{
				`SELECT indisvalid AND indisunique FROM pg_index WHERE indexrelid = to_regclass('app."User Accounts_lower_login_key"')`,
			},
			phaseNames: []string{"build_index"},
		},
		{
			name:   "add_foreign_key",
			setup:  usersSetup("users", "email"),
			tables: []TableName{orders, users},
			spec: Spec{ID: "orders-user-fk", Kind: "add_foreign_key",
				Change: &AddForeignKey{TableName: "orders", Name: "orders_user_id_fkey", Columns: []string{"user_id"},
					References: References{Table: "users", Columns: []string{"id"}}, OnDelete: "cascade"}},
			final: []string{
				`SELECT convalidated AND confdeltype = 'c' FROM pg_constraint WHERE conname = 'orders_user_id_fkey'`,
			},
			phaseNames: []string{"add_not_valid", "validate"},
		},
		{
			name:   "add_check",
			setup:  usersSetup("users", "email"),
			tables: []TableName{orders},
			spec: Spec{ID: "orders-total-positive", Kind: "add_check",
				Change: &AddCheck{TableName: "orders", Name: "orders_total_positive", Expr: "total >= 0"}},
			final: []string{
				`SELECT convalidated FROM pg_constraint WHERE conname = 'orders_total_positive'`,
			},
			phaseNames: []string{"add_not_valid", "validate"},
		},
		{
			name:   "add_unique",
			setup:  usersSetup("users", "email"),
			tables: []TableName{accounts},
			spec: Spec{ID: "accounts-login-unique", Kind: "add_unique",
				Change: &AddUnique{TableName: `app."User Accounts"`, Name: "user_accounts_login_key", Columns: []string{"login"}}},
			final: []string{
				`SELECT contype = 'u' AND convalidated FROM pg_constraint WHERE conname = 'user_accounts_login_key'`,
			},
			phaseNames: []string{"build_index", "attach"},
		},
		{
			name:   "create_table",
			setup:  usersSetup("users", "email"),
			tables: []TableName{{Name: "invoices"}, users},
			spec: Spec{ID: "invoices-create", Kind: "create_table",
				Change: &CreateTable{TableName: "invoices",
					Columns: []NewColumn{{Name: "id", Type: "bigint", NotNull: true}, {Name: "user_id", Type: "bigint", NotNull: true},
						{Name: "total", Type: "numeric(12,2)", NotNull: true, Default: "0"}},
					Primary: []string{"id"}, Checks: []NewCheck{{Expr: "total >= 0"}},
					Foreign: []NewForeignKey{{Columns: []string{"user_id"}, References: References{Table: "users", Columns: []string{"id"}}}},
					Indexes: []NewTableIndex{{Columns: []string{"user_id"}}}}},
			final: []string{
				`SELECT count(*) = 3 FROM pg_constraint WHERE conrelid = 'invoices'::regclass AND contype <> 'n' AND convalidated`,
				`SELECT count(*) = 2 FROM pg_index WHERE indrelid = 'invoices'::regclass AND indisvalid`,
			},
			phaseNames: []string{"create"},
		},
		{
			name:   "rename_table",
			setup:  usersSetup("users", "email"),
			tables: []TableName{orders, {Name: "purchases"}},
			spec: Spec{ID: "orders-rename", Kind: "rename_table",
				Change: &RenameTable{TableName: "orders", To: "purchases"}},
			dataBefore: `SELECT count(*)::text FROM orders`,
			dataAfter:  `SELECT count(*)::text FROM purchases`,
			final: []string{
				`SELECT to_regclass('orders') IS NULL`,
				`SELECT relkind = 'r' FROM pg_class WHERE oid = 'purchases'::regclass`,
			},
			phaseNames: []string{"rename", "switch", "contract"},
		},
		{
			name:   "drop_table",
			setup:  usersSetup("users", "email"),
			tables: []TableName{orders, {Name: phases.TombstoneName("orders-drop", "orders")}},
			spec: Spec{ID: "orders-drop", Kind: "drop_table",
				Change: &DropTable{TableName: "orders"}},
			final: []string{
				`SELECT to_regclass('orders') IS NULL`,
				`SELECT NOT EXISTS (SELECT FROM pg_class WHERE relname LIKE 'planner_tomb_%')`,
			},
			phaseNames: []string{"stop_using", "contract", "purge"},
		},
	}
}

// quotedSpecName writes a table name the way a spec would.
func quotedSpecName(t TableName) string {
	if t.Schema == "" {
		return pgx.Identifier{t.Name}.Sanitize()
	}
	return pgx.Identifier{t.Schema, t.Name}.Sanitize()
}

func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func TestApplyEveryKind(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range applyCases() {
		covered[tc.spec.Kind] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testApply(t, tc)
		})
	}
	for _, k := range KindNames() {
		if !covered[k] {
			t.Errorf("kind %s has no apply test", k)
		}
	}
}

func testApply(t *testing.T, tc applyCase) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db := pgtest.NewDB(t)
	db.Exec(t, tc.setup)
	version := db.ServerVersion(t)
	table, err := LoadTable(ctx, db.Pool, tc.spec.Change.Table())
	if errors.Is(err, ErrInput) && createsTable(tc.spec.Change) {
		table, err = nil, nil // its table does not exist yet
	}
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Compile(tc.spec, Target{Version: version, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ph := range plan.Phases {
		names = append(names, ph.Name)
	}
	if strings.Join(names, ",") != strings.Join(tc.phaseNames, ",") {
		t.Fatalf("phases = %v, want %v", names, tc.phaseNames)
	}
	var before string
	if tc.dataBefore != "" {
		before = queryString(t, db.Pool, tc.dataBefore)
	}

	// Forward through every reversible phase, remembering the schema
	// before each one.
	reversible := plan.Phases
	if last := plan.Phases[len(plan.Phases)-1]; last.Irreversible != "" {
		reversible = plan.Phases[:len(plan.Phases)-1]
	}
	snapshots := []string{snapshot(t, db.Pool, tc.tables)}
	for _, ph := range reversible {
		// A phase killed after any of its transactions rolls back to the
		// schema it started from.
		t.Logf("%s: %d interruption points", ph.Name, len(unitEnds(ph.Statements)))
		for _, cut := range unitEnds(ph.Statements) {
			run(t, db.Pool, ph.Name+" (interrupted)", ph.Statements[:cut])
			run(t, db.Pool, ph.Name+" rollback after interruption", ph.Rollback)
			if got := snapshot(t, db.Pool, tc.tables); got != snapshots[len(snapshots)-1] {
				t.Fatalf("rollback of %s interrupted after statement %d did not restore the schema:\n got: %s\nwant: %s", ph.Name, cut, got, snapshots[len(snapshots)-1])
			}
		}
		applyPhase(t, db.Pool, ph, tc.once)
		snapshots = append(snapshots, snapshot(t, db.Pool, tc.tables))
	}
	// Roll back in reverse: each rollback restores the schema as it was
	// before its phase, and running it twice changes nothing.
	for i := len(reversible) - 1; i >= 0; i-- {
		ph := reversible[i]
		if ph.Irreversible != "" {
			t.Fatalf("phase %s is irreversible: %s", ph.Name, ph.Irreversible)
		}
		times := 2
		if tc.once {
			times = 1
		}
		for range times {
			run(t, db.Pool, ph.Name+" rollback", ph.Rollback)
		}
		if got := snapshot(t, db.Pool, tc.tables); got != snapshots[i] {
			t.Fatalf("rollback of %s did not restore the schema:\n got: %s\nwant: %s", ph.Name, got, snapshots[i])
		}
	}
	// Forward again, purge included.
	for _, ph := range plan.Phases {
		applyPhase(t, db.Pool, ph, tc.once)
	}
	for _, q := range tc.final {
		var ok bool
		if err := db.Pool.QueryRow(ctx, q).Scan(&ok); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if !ok {
			t.Errorf("after all phases, false: %s", q)
		}
	}
	if tc.dataAfter != "" {
		if after := queryString(t, db.Pool, tc.dataAfter); after != before {
			t.Errorf("data changed:\nbefore: %.200s\n after: %.200s", before, after)
		}
	}
}

// unitEnds lists where a phase can stop: after each transaction or
// NoTransaction statement but the last.
func unitEnds(sts []phases.Statement) []int {
	var ends []int
	for i, st := range sts {
		last := i == len(sts)-1
		switch {
		case last:
		case st.NoTransaction, st.CommitAfter, sts[i+1].NoTransaction:
			ends = append(ends, i+1)
		}
	}
	return ends
}

// applyPhase runs a phase's statements and backfill twice: a resumed or
// repeated phase must skip or repeat harmlessly.
func applyPhase(t *testing.T, pool *pgxpool.Pool, ph phases.Phase, once bool) {
	t.Helper()
	times := 2
	if once {
		times = 1
	}
	for range times {
		run(t, pool, ph.Name, ph.Statements)
		if b := ph.Backfill; b != nil {
			col := pgx.Identifier{b.Column}.Sanitize()
			sql := fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s IS DISTINCT FROM %s",
				pgx.Identifier{b.Schema, b.Table}.Sanitize(), col, b.Expr, col, b.Expr)
			if _, err := pool.Exec(context.Background(), sql); err != nil {
				t.Fatalf("%s: backfill %s: %v", ph.Name, sql, err)
			}
		}
	}
}

// run executes statements by the Statement rules: consecutive
// transactional statements share a transaction, ended after CommitAfter or
// before a NoTransaction statement, which runs alone; a statement whose
// Done probe answers true is skipped.
func run(t *testing.T, pool *pgxpool.Pool, what string, sts []phases.Statement) {
	t.Helper()
	ctx := context.Background()
	var tx pgx.Tx
	commit := func() {
		if tx != nil {
			if err := tx.Commit(ctx); err != nil {
				t.Fatalf("%s: commit: %v", what, err)
			}
			tx = nil
		}
	}
	defer func() {
		if tx != nil {
			tx.Rollback(ctx)
		}
	}()
	for i, st := range sts {
		if st.NoTransaction {
			commit()
			if done(t, ctx, pool, st) {
				continue
			}
			if _, err := pool.Exec(ctx, st.SQL); err != nil {
				t.Fatalf("%s: statement %d: %s: %v", what, i+1, st.SQL, err)
			}
			continue
		}
		if tx == nil {
			var err error
			if tx, err = pool.Begin(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
				t.Fatal(err)
			}
		}
		if !done(t, ctx, tx, st) {
			if _, err := tx.Exec(ctx, st.SQL); err != nil {
				t.Fatalf("%s: statement %d: %s: %v", what, i+1, st.SQL, err)
			}
		}
		if st.CommitAfter {
			commit()
		}
	}
	commit()
}

func done(t *testing.T, ctx context.Context, q Querier, st phases.Statement) bool {
	t.Helper()
	if st.Done == "" {
		return false
	}
	var ok bool
	if err := q.QueryRow(ctx, st.Done).Scan(&ok); err != nil {
		t.Fatalf("probe %s: %v", st.Done, err)
	}
	return ok
}

func queryString(t *testing.T, pool *pgxpool.Pool, q string) string {
	t.Helper()
	var s *string
	if err := pool.QueryRow(context.Background(), q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if s == nil {
		return "<null>"
	}
	return *s
}

// snapshot is the catalog view of tables (without the row estimate, which
// index builds refresh) plus the planner's triggers and functions.
func snapshot(t *testing.T, pool *pgxpool.Pool, tables []TableName) string {
	t.Helper()
	ctx := context.Background()
	var parts []string
	for _, name := range tables {
		tb, err := LoadTable(ctx, pool, name)
		if errors.Is(err, ErrInput) {
			// The table kinds: a table absent at some phases.
			parts = append(parts, "absent "+name.String())
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		tb.RowEstimate = 0
		data, _ := json.Marshal(tb)
		parts = append(parts, string(data))
	}
	parts = append(parts, queryString(t, pool, `SELECT coalesce(string_agg(tgname || ':' || tgenabled::text, ',' ORDER BY tgname), '') FROM pg_trigger WHERE NOT tgisinternal`))
	parts = append(parts, queryString(t, pool, `SELECT coalesce(string_agg(proname, ',' ORDER BY proname), '') FROM pg_proc WHERE pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)`))
	return strings.Join(parts, "\n")
}

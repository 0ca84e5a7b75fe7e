package planner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/pgplanner/planner/phases"
)

// The stairway test, for every change kind on a populated table: for each
// phase, next → check schema, data and flags → rollback → check that schema
// (from the catalogs) and data (checksums) are exactly as before the phase
// → next again → check that the phase's result is the same as the first
// time. Irreversible phases must refuse the rollback with their reason.
// At the end each kind's final result is checked.
func TestStairway(t *testing.T) {
	cases := []struct {
		kind string
		// setup is SQL run on the fixture first (the object a drop or
		// rename works on).
		setup  string
		spec   string
		tables []string
		// after[phase] queries must each return true once that phase is
		// applied; final ones once every phase is.
		after map[string][]string
		final []string
		// tomb writes through the application's column while the contract's
		// tombstone is in place; after rolling the contract back its checks
		// must hold (the old column has the values written meanwhile), and
		// its cleanup must bring the rows back to what they were.
		tomb *tombWrites
	}{
		{
			kind: "rename_column", tables: []string{"users"},
			spec: `kind: rename_column
    table: users
    column: email
    to: email_address`,
			after: map[string][]string{
				"expand": {
					`SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email_address'`,
					`SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'users'::regclass AND tgname = 'planner_sync_stair')`,
				},
				"enforce": {
					`SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email_address'`,
					`SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email' AND NOT attisdropped)`,
				},
				"contract": {
					`SELECT NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email' AND NOT attisdropped)`,
					`SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = '` + phases.TombstoneName("stair", "email") + `'`,
					`SELECT count(*) = 2000 FROM users WHERE ` + phases.TombstoneName("stair", "email") + ` = email_address`,
					`SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'users'::regclass AND tgname = 'planner_sync_stair')`,
				},
			},
			tomb: &tombWrites{
				write: `UPDATE users SET email_address = 'moved' || id || '@example.com' WHERE id <= 50;
					INSERT INTO users (id, email_address, name) VALUES (100001, 'new@example.com', 'new')`,
				checks: []string{
					`SELECT count(*) = 50 FROM users WHERE id <= 50 AND email = 'moved' || id || '@example.com'`,
					`SELECT email = 'new@example.com' FROM users WHERE id = 100001`,
					`SELECT count(*) = 0 FROM users WHERE email IS DISTINCT FROM email_address`,
				},
				// Through the old column: the restored trigger syncs the new one.
				cleanup: `UPDATE users SET email = 'user' || id || '@example.com' WHERE id <= 50; DELETE FROM users WHERE id = 100001`,
			},
			final: []string{
				`SELECT NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email' AND NOT attisdropped)`,
				`SELECT NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname LIKE 'planner_tomb_%' AND NOT attisdropped)`,
				`SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email_address'`,
				`SELECT count(*) = 2000 FROM users WHERE email_address = 'user' || id || '@example.com'`,
				`SELECT NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'users'::regclass AND NOT tgisinternal)`,
			},
		},
		{
			kind: "add_column", tables: []string{"users"},
			spec: `kind: add_column
    table: users
    column: status
    type: text
    not_null: true
    backfill: "'active'"
    default: "'active'"`,
			after: map[string][]string{
				"expand": {
					`SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'status'`,
					`SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'users'::regclass AND tgname = 'planner_fill_stair')`,
				},
				"enforce": {
					`SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'status'`,
					`SELECT NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'users'::regclass AND NOT tgisinternal)`,
				},
			},
			final: []string{
				`SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'status'`,
				`SELECT count(*) = 2000 FROM users WHERE status = 'active'`,
				`SELECT pg_get_expr(adbin, adrelid) = '''active''::text' FROM pg_attrdef WHERE adrelid = 'users'::regclass AND adnum = (SELECT attnum FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'status')`,
			},
		},
		{
			kind: "change_column_type", tables: []string{"orders"},
			spec: `kind: change_column_type
    table: orders
    column: total
    type: bigint
    up: "round(total * 100)::bigint"
    down: "(total_cents / 100.0)::numeric(12,2)"
    new_column: total_cents`,
			tomb: &tombWrites{
				// The insert takes total_cents' default, set at contract.
				write: `UPDATE orders SET total_cents = 12345 WHERE id <= 50;
					INSERT INTO orders (id, user_id, status) VALUES (100001, 1, 'open');
					INSERT INTO orders (id, user_id, status, total_cents) VALUES (100002, 1, 'open', 999)`,
				checks: []string{
					`SELECT count(*) = 50 FROM orders WHERE id <= 50 AND total = 123.45`,
					`SELECT total = 0 AND total_cents = 0 FROM orders WHERE id = 100001`,
					`SELECT total = 9.99 FROM orders WHERE id = 100002`,
					`SELECT count(*) = 0 FROM orders WHERE total IS DISTINCT FROM (total_cents / 100.0)::numeric(12,2)`,
				},
				cleanup: `UPDATE orders SET total = (id % 500) * 1.25 WHERE id <= 50; DELETE FROM orders WHERE id > 100000`,
			},
			final: []string{
				`SELECT format_type(atttypid, atttypmod) = 'bigint' AND attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'total_cents'`,
				`SELECT NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'total' AND NOT attisdropped)`,
				`SELECT count(*) = 2000 FROM orders WHERE total_cents = (id % 500) * 125`,
			},
		},
		{
			kind: "alter_column", tables: []string{`app."User Accounts"`},
			spec: `kind: alter_column
    table: app."User Accounts"
    column: login
    to: login_name
    type: varchar(64)
    up: "COALESCE(login, 'anonymous')::varchar(64)"
    down: "login_name::text"
    not_null: true
    default: "'anonymous'"
    check: "login_name <> ''"
    unique: true
    unique_name: user_accounts_login_name_key`,
			after: map[string][]string{
				"expand": {
					`SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = 'app."User Accounts"'::regclass AND attname = 'login_name'`,
					`SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'app."User Accounts"'::regclass AND tgname = 'planner_sync_stair')`,
				},
				"enforce": {
					`SELECT attnotnull FROM pg_attribute WHERE attrelid = 'app."User Accounts"'::regclass AND attname = 'login_name'`,
					`SELECT convalidated FROM pg_constraint WHERE conname = 'User Accounts_login_name_check' AND contype = 'c'`,
					`SELECT EXISTS (SELECT FROM pg_constraint WHERE conname = 'user_accounts_login_name_key' AND contype = 'u')`,
					`SELECT NOT EXISTS (SELECT FROM pg_attrdef WHERE adrelid = 'app."User Accounts"'::regclass AND adnum = (SELECT attnum FROM pg_attribute WHERE attrelid = 'app."User Accounts"'::regclass AND attname = 'login_name'))`,
				},
			},
			tomb: &tombWrites{
				// The insert takes login_name's default, set at contract.
				write: `UPDATE app."User Accounts" SET login_name = 'moved' || id WHERE id <= 50;
					INSERT INTO app."User Accounts" (id) VALUES (100001)`,
				checks: []string{
					`SELECT count(*) = 50 FROM app."User Accounts" WHERE id <= 50 AND login = 'moved' || id`,
					// up maps NULL to 'anonymous': the trigger finds the
					// columns in agreement and leaves login NULL.
					`SELECT login IS NULL AND login_name = 'anonymous' FROM app."User Accounts" WHERE id = 100001`,
					`SELECT count(*) = 0 FROM app."User Accounts" WHERE COALESCE(login, 'anonymous') IS DISTINCT FROM login_name::text`,
				},
				cleanup: `UPDATE app."User Accounts" SET login = 'login' || id WHERE id <= 50; DELETE FROM app."User Accounts" WHERE id = 100001`,
			},
			final: []string{
				`SELECT format_type(atttypid, atttypmod) = 'character varying(64)' AND attnotnull FROM pg_attribute WHERE attrelid = 'app."User Accounts"'::regclass AND attname = 'login_name'`,
				`SELECT NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'app."User Accounts"'::regclass AND attname = 'login' AND NOT attisdropped)`,
				`SELECT NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'app."User Accounts"'::regclass AND attname LIKE 'planner_tomb_%' AND NOT attisdropped)`,
				`SELECT count(*) = 2000 FROM app."User Accounts" WHERE login_name = 'login' || id`,
				`SELECT pg_get_expr(adbin, adrelid) = '''anonymous''::character varying' FROM pg_attrdef WHERE adrelid = 'app."User Accounts"'::regclass AND adnum = (SELECT attnum FROM pg_attribute WHERE attrelid = 'app."User Accounts"'::regclass AND attname = 'login_name')`,
				`SELECT convalidated FROM pg_constraint WHERE conname = 'User Accounts_login_name_check' AND contype = 'c'`,
				`SELECT EXISTS (SELECT FROM pg_constraint WHERE conname = 'user_accounts_login_name_key' AND contype = 'u')`,
				`SELECT NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'app."User Accounts"'::regclass AND NOT tgisinternal)`,
				`SELECT NOT EXISTS (SELECT FROM pg_proc WHERE proname LIKE 'planner_%_stair')`,
			},
		},
		{
			// not_null: false: the new column is nullable where the old one
			// is NOT NULL; enforce drops the old one's NOT NULL, so the
			// trigger can copy a NULL written to the new column into it.
			kind: "alter_column", tables: []string{"orders"},
			spec: `kind: alter_column
    table: orders
    column: status
    to: state
    type: varchar(20)
    up: "status::varchar(20)"
    down: "state::text"
    not_null: false
    check: "state IN ('open', 'closed')"`,
			after: map[string][]string{
				"dual_write": {
					`SELECT attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'status'`,
				},
				"enforce": {
					`SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'state'`,
					`SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'status'`,
					`SELECT convalidated FROM pg_constraint WHERE conname = 'orders_state_check'`,
				},
			},
			tomb: &tombWrites{
				write: `UPDATE orders SET state = NULL WHERE id <= 10;
					INSERT INTO orders (id, state) VALUES (100001, 'closed')`,
				checks: []string{
					`SELECT count(*) = 10 FROM orders WHERE id <= 10 AND status IS NULL AND state IS NULL`,
					`SELECT status = 'closed' FROM orders WHERE id = 100001`,
					`SELECT count(*) = 0 FROM orders WHERE status IS DISTINCT FROM state::text`,
				},
				cleanup: `UPDATE orders SET status = CASE WHEN id % 4 = 0 THEN 'open' ELSE 'closed' END WHERE id <= 10; DELETE FROM orders WHERE id = 100001`,
			},
			final: []string{
				`SELECT format_type(atttypid, atttypmod) = 'character varying(20)' AND NOT attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'state'`,
				`SELECT NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'status' AND NOT attisdropped)`,
				`SELECT count(*) = 2000 FROM orders WHERE state = CASE WHEN id % 4 = 0 THEN 'open' ELSE 'closed' END`,
				// The old default, set on the new column at contract.
				`SELECT pg_get_expr(adbin, adrelid) LIKE '%open%' FROM pg_attrdef WHERE adrelid = 'orders'::regclass AND adnum = (SELECT attnum FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'state')`,
			},
		},
		{
			kind: "set_not_null", tables: []string{"users"},
			spec: `kind: set_not_null
    table: users
    column: name
    backfill: "'(none)'"`,
			after: map[string][]string{
				"backfill": {
					`SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'name'`,
					`SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'users'::regclass AND tgname = 'planner_fill_stair')`,
				},
				"enforce": {
					`SELECT NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'users'::regclass AND NOT tgisinternal)`,
				},
			},
			final: []string{
				`SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'name'`,
				`SELECT count(*) = 2000 / 7 FROM users WHERE name = '(none)'`,
			},
		},
		{
			kind: "drop_column", tables: []string{"users"},
			spec: `kind: drop_column
    table: users
    column: legacy_flags`,
			tomb: &tombWrites{
				// Nothing writes the tombstone: rows keep their values as at
				// contract, a new row gets NULL, as during stop_using.
				write: `UPDATE users SET name = 'renamed' WHERE id = 1; INSERT INTO users (id, email) VALUES (100001, 'new@example.com')`,
				checks: []string{
					`SELECT count(*) = 2000 FROM users WHERE legacy_flags = id % 3`,
					`SELECT legacy_flags IS NULL FROM users WHERE id = 100001`,
				},
				cleanup: `UPDATE users SET name = 'name 1' WHERE id = 1; DELETE FROM users WHERE id = 100001`,
			},
			final: []string{
				`SELECT NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'legacy_flags' AND NOT attisdropped)`,
				`SELECT NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname LIKE 'planner_tomb_%' AND NOT attisdropped)`,
			},
		},
		{
			kind: "add_index", tables: []string{"orders"},
			spec: `kind: add_index
    table: orders
    name: orders_open_created_at_idx
    columns: [created_at]
    where: "status = 'open'"`,
			final: []string{
				`SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_open_created_at_idx'::regclass`,
			},
		},
		{
			kind: "add_foreign_key", tables: []string{"orders", "users"},
			spec: `kind: add_foreign_key
    table: orders
    name: orders_user_id_fkey
    columns: [user_id]
    references:
      table: users
      columns: [id]
    on_delete: cascade`,
			final: []string{
				`SELECT convalidated FROM pg_constraint WHERE conname = 'orders_user_id_fkey' AND contype = 'f'`,
			},
		},
		{
			kind: "create_table", tables: []string{"invoices", "users"},
			spec: `kind: create_table
    table: invoices
    columns:
      - {name: id, type: bigint, not_null: true}
      - {name: user_id, type: bigint, not_null: true}
      - {name: number, type: text, not_null: true}
      - {name: total, type: "numeric(12,2)", not_null: true, default: "0"}
      - {name: issued_at, type: timestamptz, default: "now()"}
    primary_key: [id]
    checks:
      - {name: invoices_total_positive, check: "total >= 0"}
    unique:
      - {columns: [number]}
    foreign_keys:
      - {columns: [user_id], references: {table: users, columns: [id]}, on_delete: cascade}
    indexes:
      - {columns: [user_id, issued_at]}
      - {name: invoices_open_idx, columns: [issued_at], where: "total > 0"}`,
			final: []string{
				`SELECT count(*) = 5 FROM pg_attribute WHERE attrelid = 'invoices'::regclass AND attnum > 0`,
				`SELECT count(*) = 4 FROM pg_constraint WHERE conrelid = 'invoices'::regclass AND contype <> 'n'`,
				`SELECT EXISTS (SELECT FROM pg_constraint WHERE conname = 'invoices_user_id_fkey' AND convalidated)`,
				`SELECT count(*) = 4 FROM pg_index WHERE indrelid = 'invoices'::regclass AND indisvalid`,
				`SELECT pg_get_expr(adbin, adrelid) = '0' FROM pg_attrdef WHERE adrelid = 'invoices'::regclass AND adnum = 4`,
			},
		},
		{
			kind: "rename_table", tables: []string{"orders", "purchases"},
			spec: `kind: rename_table
    table: orders
    to: purchases`,
			after: map[string][]string{
				"rename": {
					`SELECT relkind = 'v' FROM pg_class WHERE oid = 'orders'::regclass`,
					`SELECT relkind = 'r' FROM pg_class WHERE oid = 'purchases'::regclass`,
					// Through the old name: inserts get the table's defaults and return their key.
					`WITH i AS (INSERT INTO orders (user_id, total) VALUES (1, 9.99) RETURNING id, status) SELECT status = 'open' FROM i`,
					`SELECT count(*) = 1 FROM purchases WHERE total = 9.99`,
					`WITH d AS (DELETE FROM orders WHERE total = 9.99 RETURNING id) SELECT count(*) = 1 FROM d`,
					`SELECT setval('orders_id_seq', 2000)::int = 2000`,
				},
				"contract": {`SELECT to_regclass('orders') IS NULL`},
			},
			tomb: &tombWrites{
				write:   `UPDATE purchases SET status = 'moved' WHERE id <= 10`,
				checks:  []string{`SELECT count(*) = 10 FROM orders WHERE status = 'moved'`},
				cleanup: `UPDATE purchases SET status = CASE WHEN id % 4 = 0 THEN 'open' ELSE 'closed' END WHERE id <= 10`,
			},
			final: []string{
				`SELECT to_regclass('orders') IS NULL`,
				`SELECT count(*) = 2000 FROM purchases`,
			},
		},
		{
			kind: "drop_table", tables: []string{"orders", phases.TombstoneName("stair", "orders")},
			spec: `kind: drop_table
    table: orders`,
			after: map[string][]string{
				"contract": {
					`SELECT to_regclass('orders') IS NULL`,
					`SELECT count(*) = 2000 FROM ` + phases.TombstoneName("stair", "orders"),
				},
			},
			tomb: &tombWrites{
				write:   `UPDATE ` + phases.TombstoneName("stair", "orders") + ` SET status = 'late' WHERE id <= 10`,
				checks:  []string{`SELECT count(*) = 10 FROM orders WHERE status = 'late'`},
				cleanup: `UPDATE orders SET status = CASE WHEN id % 4 = 0 THEN 'open' ELSE 'closed' END WHERE id <= 10`,
			},
			final: []string{
				`SELECT to_regclass('orders') IS NULL`,
				`SELECT NOT EXISTS (SELECT FROM pg_class WHERE relname LIKE 'planner_tomb_%')`,
			},
		},
		{
			kind: "add_check", tables: []string{"orders"},
			spec: `kind: add_check
    table: orders
    name: orders_total_positive
    check: "total >= 0"`,
			final: []string{
				`SELECT convalidated FROM pg_constraint WHERE conname = 'orders_total_positive' AND contype = 'c'`,
			},
		},
		{
			kind: "sql", tables: []string{"orders"},
			spec: `kind: sql
    table: orders
    up: |
      ALTER TABLE orders ADD COLUMN note text;
      ALTER TABLE orders ALTER COLUMN note SET DEFAULT 'none';
      COMMENT ON COLUMN orders.note IS 'free text';
    down: |
      ALTER TABLE orders DROP COLUMN note;
    allow: [ban-drop-column]
    reason: the down drops only the column the up added`,
			final: []string{
				`SELECT count(*) = 0 FROM orders WHERE note IS NOT NULL`,
				`SELECT col_description('orders'::regclass, (SELECT attnum FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'note')) = 'free text'`,
			},
		},
		{
			kind: "add_unique", tables: []string{`app."User Accounts"`},
			spec: `kind: add_unique
    table: app."User Accounts"
    name: user_accounts_login_key
    columns: [login]`,
			final: []string{
				`SELECT convalidated FROM pg_constraint WHERE conname = 'user_accounts_login_key' AND contype = 'u'`,
			},
		},
		{
			kind: "drop_index", tables: []string{"orders"},
			setup: `CREATE INDEX orders_status_total_idx ON orders (status, total DESC) WHERE total > 0`,
			spec: `kind: drop_index
    table: orders
    index: orders_status_total_idx`,
			final: []string{`SELECT to_regclass('orders_status_total_idx') IS NULL`},
		},
		{
			kind: "drop_index", tables: []string{"users"},
			setup: `CREATE UNIQUE INDEX users_lower_email_idx ON users (lower(email))`,
			spec: `kind: drop_index
    table: users
    index: users_lower_email_idx`,
			final: []string{`SELECT to_regclass('users_lower_email_idx') IS NULL`},
		},
		{
			kind: "drop_constraint", tables: []string{"orders"},
			setup: `ALTER TABLE orders ADD CONSTRAINT orders_total_check CHECK (total >= 0)`,
			spec: `kind: drop_constraint
    table: orders
    constraint: orders_total_check`,
			final: []string{`SELECT NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'orders_total_check')`},
		},
		{
			kind: "drop_constraint", tables: []string{"orders"},
			setup: `ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status <> '') NOT VALID`,
			spec: `kind: drop_constraint
    table: orders
    constraint: orders_status_check`,
			final: []string{`SELECT NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'orders_status_check')`},
		},
		{
			kind: "drop_constraint", tables: []string{"orders", "users"},
			setup: `ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE`,
			spec: `kind: drop_constraint
    table: orders
    constraint: orders_user_fk`,
			final: []string{`SELECT NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'orders_user_fk')`},
		},
		{
			kind: "drop_constraint", tables: []string{"users"},
			setup: `ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email) DEFERRABLE INITIALLY DEFERRED`,
			spec: `kind: drop_constraint
    table: users
    constraint: users_email_key`,
			final: []string{`SELECT NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'users_email_key') AND to_regclass('users_email_key') IS NULL`},
		},
		{
			kind: "rename_index", tables: []string{"orders"},
			setup: `CREATE INDEX orders_status_idx ON orders (status)`,
			spec: `kind: rename_index
    table: orders
    index: orders_status_idx
    to: orders_by_status_idx`,
			final: []string{`SELECT to_regclass('orders_status_idx') IS NULL AND to_regclass('orders_by_status_idx') IS NOT NULL`},
		},
		{
			kind: "rename_constraint", tables: []string{"users"},
			setup: `ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email)`,
			spec: `kind: rename_constraint
    table: users
    constraint: users_email_key
    to: users_email_unique`,
			final: []string{`SELECT EXISTS (SELECT FROM pg_constraint WHERE conname = 'users_email_unique') AND to_regclass('users_email_unique') IS NOT NULL AND to_regclass('users_email_key') IS NULL`},
		},
		{
			kind: "set_default", tables: []string{"orders"},
			spec: `kind: set_default
    table: orders
    column: status
    default: "'pending'"`,
			final: []string{`SELECT pg_get_expr(adbin, adrelid) = '''pending''::text' FROM pg_attrdef WHERE adrelid = 'orders'::regclass AND adnum = 4`},
		},
		{
			// No default before: the rollback drops it.
			kind: "set_default", tables: []string{"users"},
			spec: `kind: set_default
    table: users
    column: name
    default: "'(none)'"`,
			final: []string{`SELECT count(*) = 1 FROM pg_attrdef WHERE adrelid = 'users'::regclass AND adnum = 3`},
		},
		{
			kind: "drop_default", tables: []string{"orders"},
			spec: `kind: drop_default
    table: orders
    column: total`,
			final: []string{`SELECT NOT EXISTS (SELECT FROM pg_attrdef WHERE adrelid = 'orders'::regclass AND adnum = 3)`},
		},
		{
			kind: "drop_not_null", tables: []string{"orders"},
			spec: `kind: drop_not_null
    table: orders
    column: status`,
			final: []string{`SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'status'`},
		},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.kind] = true
	}
	for _, k := range KindNames() {
		if !covered[k] {
			t.Errorf("kind %s has no stairway case", k)
		}
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			t.Parallel()
			stairway(t, c.setup, c.spec, c.tables, c.after, c.final, c.tomb)
		})
	}
}

// tombWrites are an application's writes while a contract's tombstone is in
// place (see TestStairway).
type tombWrites struct {
	write   string
	checks  []string
	cleanup string
}

// stairway runs the stairway for one spec; setup, when set, is SQL run on
// the fixture first (e.g. partitioned tables); tomb, when set, writes while
// the contract's tombstone is in place.
func stairway(t *testing.T, setup, spec string, tables []string, after map[string][]string, final []string, tomb *tombWrites) {
	ctx := context.Background()
	f := newEngineFixture(t)
	if setup != "" {
		f.db.Exec(t, setup)
	}
	id := "stair"
	specs := f.specs(t, "changes:\n  - id: "+id+"\n    "+spec+"\n")
	type snapshot struct{ schema, data string }
	snap := func() snapshot {
		var s snapshot
		s.schema = schemaOf(t, f.db, tables...)
		for _, table := range tables {
			s.data += dataOf(t, f.db, table) + " "
		}
		return s
	}
	// dataFilled checksums the rows with the backfilled column replaced by
	// its expression: what the column holds once the backfill is done, with
	// every other column as it is.
	dataFilled := func(table string, b *phases.Backfill) string {
		var cols []string
		rows, err := f.db.Pool.Query(ctx, `SELECT attname, quote_ident(attname) FROM pg_attribute WHERE attrelid = $1::regclass
			AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name, quoted string
			rows.Scan(&name, &quoted)
			if name == b.Column {
				quoted = "(" + b.Expr + ")"
			}
			cols = append(cols, quoted)
		}
		return dataOf(t, f.db, table, cols...)
	}
	// The plan the engine will run: compiled here against the same live
	// table it snapshots at registration.
	table, err := LoadTable(ctx, f.db.Pool, specs[0].Change.Table())
	if errors.Is(err, ErrInput) && createsTable(specs[0].Change) {
		table, err = nil, nil // create_table: its table does not exist yet
	}
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Compile(specs[0], Target{Version: f.db.ServerVersion(t), Table: table})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range plan.Phases {
		step := fmt.Sprintf("phase %d/%d %s", i+1, len(plan.Phases), p.Name)
		before := snap()
		// A backfill into a column of its change's own keeps its values
		// when rolled back; one with Undo (filling an existing column)
		// sets them back, and the data must be exactly as before.
		keeps := p.Backfill != nil && !p.Backfill.Undo
		var beforeFilled []string
		if keeps {
			for _, tb := range tables {
				beforeFilled = append(beforeFilled, dataFilled(tb, p.Backfill))
			}
		}
		r := f.next(t, specs, fmt.Sprintf("up-%d", i))
		if cr := reportOf(t, r, id); cr.Action != Advanced || cr.PhaseIndex != i || cr.Total != len(plan.Phases) {
			t.Fatalf("%s: %+v", step, cr)
		}
		applied := snap()
		checkPhaseResult(t, f, step, plan, i)
		checkQueries(t, f, step, after[p.Name])
		if p.Irreversible != "" {
			_, err := f.e.Rollback(ctx, id, fmt.Sprintf("down-%d", i))
			if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), p.Irreversible) {
				t.Fatalf("%s: rollback of an irreversible phase: %v", step, err)
			}
			continue
		}
		res, err := f.e.Rollback(ctx, id, fmt.Sprintf("down-%d", i))
		if err != nil || res.Applied != i {
			t.Fatalf("%s: rollback: %+v %v", step, res, err)
		}
		got := snap()
		if keeps {
			// A rolled-back backfill keeps the values it computed in its
			// target column (undoing them would take a second backfill;
			// redoing them is idempotent): the column holds exactly its
			// expression, and every other column of every row is as before.
			for k, tb := range tables {
				if filled := dataFilled(tb, p.Backfill); filled != beforeFilled[k] || dataOf(t, f.db, tb) != filled {
					t.Fatalf("%s: after rollback the rows of %s are not the rows before the backfill with the column filled", step, tb)
				}
			}
		}
		if got.schema != before.schema {
			t.Fatalf("%s: rollback did not restore the schema:\n%s", step, diffLines(before.schema, got.schema))
		}
		if !keeps && got.data != before.data {
			t.Fatalf("%s: rollback did not restore the data", step)
		}
		wantFlags := flagsAfter(plan.Phases[:i])
		if got := flagsOf(t, f.db, id); !maps.Equal(got, wantFlags) {
			t.Fatalf("%s: flags after rollback %v, want %v", step, got, wantFlags)
		}
		r = f.next(t, specs, fmt.Sprintf("up-%d-again", i))
		if cr := reportOf(t, r, id); cr.Action != Advanced || cr.PhaseIndex != i {
			t.Fatalf("%s: next after rollback: %+v", step, cr)
		}
		if again := snap(); again.schema != applied.schema {
			t.Fatalf("%s: applying again gave a different schema:\n%s", step, diffLines(applied.schema, again.schema))
		} else if again.data != applied.data {
			t.Fatalf("%s: applying again gave different data", step)
		}
		checkPhaseResult(t, f, step+" (again)", plan, i)
		checkQueries(t, f, step+" (again)", after[p.Name])
		if p.Name == "contract" {
			if tomb == nil {
				t.Fatalf("%s: reversible contract without tombstone writes to test", step)
			}
			tombstoned(t, f, step, specs, i, tomb, before.schema, before.data, func() (string, string) { s := snap(); return s.schema, s.data })
		}
	}
	if c := f.change(t, id); plan.Phases[len(plan.Phases)-1].Name == "purge" && c.Applied == len(plan.Phases) {
		// After the purge the change is done: rollback refuses, saying why.
		_, err := f.e.Rollback(ctx, id, "after-purge")
		if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "phase purge cannot be rolled back") {
			t.Fatalf("rollback after purge: %v", err)
		}
	}
	if c := f.change(t, id); c.Status != StatusDone {
		t.Fatalf("status %s after every phase", c.Status)
	}
	checkQueries(t, f, "final", final)
	r := f.next(t, specs, "after")
	if cr := reportOf(t, r, id); cr.Action != Done {
		t.Fatalf("after the last phase: %+v", cr)
	}
}

// checkPhaseResult checks what every phase must leave behind: flags as
// declared, and for a backfill no row where the column differs from its
// expression.
func checkPhaseResult(t *testing.T, f *engineFixture, step string, plan Plan, i int) {
	t.Helper()
	if got, want := flagsOf(t, f.db, plan.Spec.ID), flagsAfter(plan.Phases[:min(i+1, len(plan.Phases))]); !maps.Equal(got, want) {
		t.Fatalf("%s: flags %v, want %v", step, got, want)
	}
	if b := plan.Phases[i].Backfill; b != nil {
		table := TableName{Schema: b.Schema, Name: b.Table}.Quoted()
		col := `"` + strings.ReplaceAll(b.Column, `"`, `""`) + `"`
		if n := engCount(t, f.db, `SELECT count(*) FROM `+table+` WHERE `+col+` IS DISTINCT FROM (`+b.Expr+`)`); n != 0 {
			t.Fatalf("%s: %d rows differ from the backfill expression", step, n)
		}
	}
}

// checkQueries runs queries that must each return true.
func checkQueries(t *testing.T, f *engineFixture, step string, queries []string) {
	t.Helper()
	for _, q := range queries {
		var ok bool
		if err := f.db.Pool.QueryRow(context.Background(), q).Scan(&ok); err != nil || !ok {
			t.Errorf("%s: check failed (%v): %s", step, err, q)
		}
	}
}

func diffLines(a, b string) string {
	in := func(s, line string) bool {
		for _, l := range strings.Split(s, "\n") {
			if l == line {
				return true
			}
		}
		return false
	}
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !in(b, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !in(a, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// tombstoned writes through the application's column while contract (phase
// i) is applied, rolls the contract back, checks that the schema is as
// before the contract and the old column holds what was written meanwhile,
// undoes the writes (the rows must then be as before the contract), and
// applies the contract again.
func tombstoned(t *testing.T, f *engineFixture, step string, specs []Spec, i int, tomb *tombWrites, beforeSchema, beforeData string, snap func() (schema, data string)) {
	t.Helper()
	f.db.Exec(t, tomb.write)
	if res, err := f.e.Rollback(context.Background(), "stair", fmt.Sprintf("down-%d-tomb", i)); err != nil || res.Applied != i {
		t.Fatalf("%s: rollback after writes to the tombstoned table: %+v %v", step, res, err)
	}
	if schema, _ := snap(); schema != beforeSchema {
		t.Fatalf("%s: rollback after writes did not restore the schema:\n%s", step, diffLines(beforeSchema, schema))
	}
	checkQueries(t, f, step+" (rolled back after writes)", tomb.checks)
	f.db.Exec(t, tomb.cleanup)
	if _, data := snap(); data != beforeData {
		t.Fatalf("%s: rows not as before the contract after undoing the writes", step)
	}
	r := f.next(t, specs, fmt.Sprintf("up-%d-tomb", i))
	if cr := reportOf(t, r, "stair"); cr.Action != Advanced || cr.PhaseIndex != i {
		t.Fatalf("%s: next after rollback: %+v", step, cr)
	}
}

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/internal/workload"
	"github.com/pgplanner/planner/planner"
)

const (
	rows        = 10_000
	stateSchema = "planner"
	// flagsTimeout bounds how long new instances may take to see flags the
	// planner published (NOTIFY normally delivers them in milliseconds).
	flagsTimeout = 10 * time.Second
)

// scenario is one change kind exercised end to end.
type scenario struct {
	name   string
	setup  string // table DDL and rows (with $1 = rows)
	spec   string // YAML
	change string // change id
	fleet  workload.Config
	// follows says which of the change's flags the fleet follows.
	follows follows
	// after checks the schema once the change is done.
	after func(t *testing.T, db *pgtest.DB)
}

func scenarios() []scenario {
	users := `CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, name text, created_at timestamptz DEFAULT now());
		INSERT INTO users (email, name) SELECT 'user' || g || '@example.com', 'name ' || g FROM generate_series(1, $1::int) g`
	return []scenario{
		{
			name:  "rename_column",
			setup: users,
			spec: `changes:
  - id: users-email-rename
    kind: rename_column
    table: users
    column: email
    to: email_address
`,
			change: "users-email-rename",
			fleet:  workload.Config{Table: "users", Old: "email", New: "email_address", Kind: workload.Synced},
			after: func(t *testing.T, db *pgtest.DB) {
				requireColumns(t, db, "users", map[string]string{"email": "", "email_address": "NOT NULL"})
			},
		},
		{
			name:  "add_column",
			setup: users,
			spec: `changes:
  - id: users-status-add
    kind: add_column
    table: users
    column: status
    type: text
    not_null: true
    backfill: "'active'"
    default: "'active'"
`,
			change: "users-status-add",
			// Old instances never learn of status: they keep running through
			// enforce, their inserts filled by the column's default.
			fleet: workload.Config{Table: "users", Old: "email", New: "status", Kind: workload.Added, Fill: "active",
				Up: func(v string) string { return "status of " + v }, KeepOld: true},
			after: func(t *testing.T, db *pgtest.DB) {
				requireColumns(t, db, "users", map[string]string{"email": "NOT NULL", "status": "NOT NULL"})
			},
		},
		{
			name: "change_column_type",
			setup: `CREATE TABLE orders (id bigserial PRIMARY KEY, total numeric(12,2) NOT NULL, note text);
				INSERT INTO orders (total) SELECT (g % 100000) / 100.0 FROM generate_series(1, $1::int) g`,
			spec: `changes:
  - id: orders-total-cents
    kind: change_column_type
    table: orders
    column: total
    type: bigint
    up: "round(total * 100)::bigint"
    down: "(total_cents / 100.0)::numeric(12,2)"
    new_column: total_cents
`,
			change: "orders-total-cents",
			fleet: workload.Config{Table: "orders", Old: "total", New: "total_cents", Kind: workload.Synced,
				// Dollars with cents, as numeric(12,2) prints them; the new
				// column holds the same amount in cents.
				Value: func(r *rand.Rand) string {
					c := r.Int64N(10_000_000)
					return fmt.Sprintf("%d.%02d", c/100, c%100)
				},
				Up: func(v string) string {
					dollars, cents, _ := strings.Cut(v, ".")
					d, _ := strconv.ParseInt(dollars, 10, 64)
					c, _ := strconv.ParseInt(cents, 10, 64)
					return strconv.FormatInt(d*100+c, 10)
				}},
			after: func(t *testing.T, db *pgtest.DB) {
				requireColumns(t, db, "orders", map[string]string{"total": "", "total_cents": "NOT NULL"})
			},
		},
		{
			name: "alter_column",
			setup: `CREATE TABLE people (id bigserial PRIMARY KEY, name text, note text);
				INSERT INTO people (name) SELECT 'name ' || g FROM generate_series(1, $1::int) g`,
			spec: `changes:
  - id: people-display-name
    kind: alter_column
    table: people
    column: name
    to: display_name
    type: varchar(64)
    up: "COALESCE(name, '(none)')::varchar(64)"
    down: "display_name::text"
    not_null: true
    default: "'(none)'"
    check: "display_name <> ''"
    unique: true
`,
			change: "people-display-name",
			// The fleet writes distinct values of 17 characters: up keeps
			// them as they are, and they satisfy the check and the unique
			// constraint the change adds.
			fleet: workload.Config{Table: "people", Old: "name", New: "display_name", Kind: workload.Synced},
			after: func(t *testing.T, db *pgtest.DB) {
				requireColumns(t, db, "people", map[string]string{"name": "", "display_name": "NOT NULL"})
				var ok bool
				if err := db.Pool.QueryRow(context.Background(), `SELECT
					EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'people'::regclass AND conname = 'people_display_name_key' AND contype = 'u')
					AND EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'people'::regclass AND conname = 'people_display_name_check' AND convalidated)
					AND (SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'people'::regclass AND attname = 'display_name') = 'character varying(64)'`).Scan(&ok); err != nil || !ok {
					t.Errorf("display_name lacks its type, check or unique constraint (%v)", err)
				}
			},
		},
		{
			name:  "add_column without a default",
			setup: users,
			spec: `changes:
  - id: users-plan-add
    kind: add_column
    table: users
    column: plan
    type: text
    not_null: true
    backfill: "'free'"
`,
			change: "users-plan-add",
			// Old instances insert without plan until the deploy that rolls
			// them over: the fill trigger gives those rows 'free', so
			// enforce finds no NULL.
			fleet: workload.Config{Table: "users", Old: "email", New: "plan", Kind: workload.Added, Fill: "free",
				Up: func(v string) string { return "plan of " + v }},
			after: func(t *testing.T, db *pgtest.DB) {
				requireColumns(t, db, "users", map[string]string{"email": "NOT NULL", "plan": "NOT NULL"})
			},
		},
		{
			// The catalog kinds, one after another after a rename the fleet
			// follows, on the table it reads and writes throughout: none of
			// them may fail a request or lose a write.
			name: "catalog kinds",
			setup: `CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, name text, note text NOT NULL DEFAULT 'n',
					created_at timestamptz DEFAULT now(), CONSTRAINT users_name_check CHECK (name <> ''));
				CREATE INDEX users_name_idx ON users (name);
				CREATE INDEX users_created_at_idx ON users (created_at);
				INSERT INTO users (email, name) SELECT 'user' || g || '@example.com', 'name ' || g FROM generate_series(1, $1::int) g`,
			spec: `changes:
  - id: users-email-rename
    kind: rename_column
    table: users
    column: email
    to: email_address
  - id: users-name-index-rename
    kind: rename_index
    table: users
    index: users_name_idx
    to: users_by_name_idx
  - id: users-created-at-index-drop
    kind: drop_index
    table: users
    index: users_created_at_idx
  - id: users-name-check-rename
    kind: rename_constraint
    table: users
    constraint: users_name_check
    to: users_name_not_empty
  - id: users-name-check-drop
    kind: drop_constraint
    table: users
    constraint: users_name_not_empty
  - id: users-name-default
    kind: set_default
    table: users
    column: name
    default: "'anonymous'"
  - id: users-created-at-default-drop
    kind: drop_default
    table: users
    column: created_at
  - id: users-note-nullable
    kind: drop_not_null
    table: users
    column: note
`,
			change: "users-email-rename",
			fleet:  workload.Config{Table: "users", Old: "email", New: "email_address", Kind: workload.Synced},
			after: func(t *testing.T, db *pgtest.DB) {
				requireColumns(t, db, "users", map[string]string{"email": "", "email_address": "NOT NULL", "note": "NULL"})
				for _, q := range []string{
					`SELECT to_regclass('users_by_name_idx') IS NOT NULL AND to_regclass('users_name_idx') IS NULL AND to_regclass('users_created_at_idx') IS NULL`,
					`SELECT NOT EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype = 'c')`,
					`SELECT pg_get_expr(adbin, adrelid) = '''anonymous''::text' FROM pg_attrdef WHERE adrelid = 'users'::regclass AND adnum = 3`,
					`SELECT NOT EXISTS (SELECT FROM pg_attrdef WHERE adrelid = 'users'::regclass AND adnum = 5)`,
				} {
					var ok bool
					if err := db.Pool.QueryRow(context.Background(), q).Scan(&ok); err != nil || !ok {
						t.Errorf("check failed (%v): %s", err, q)
					}
				}
			},
		},
		{
			// Old instances keep the old name, which the view under it serves
			// until the contract drops it; by then the deploy that follows
			// the switch has retired them and new ones use the new name.
			name:  "rename_table",
			setup: users,
			spec: `changes:
  - id: users-to-members
    kind: rename_table
    table: users
    to: members
`,
			change:  "users-to-members",
			follows: followTable,
			fleet:   workload.Config{Table: "users", NewTable: "members", Old: "email"},
			after: func(t *testing.T, db *pgtest.DB) {
				requireTrue(t, db, `SELECT to_regclass('users') IS NULL AND (SELECT relkind FROM pg_class WHERE oid = to_regclass('members')) = 'r'`)
			},
		},
		{
			// A new table with a foreign key to the table the fleet writes:
			// the key locks users for an instant, which must fail no request;
			// then a fleet starts on the new table and finds it usable.
			name:  "create_table",
			setup: users + `; CREATE SEQUENCE invoice_ids`,
			spec: `changes:
  - id: invoices-create
    kind: create_table
    table: invoices
    columns:
      - {name: id, type: bigint, not_null: true, default: "nextval('invoice_ids')"}
      - {name: user_id, type: bigint}
      - {name: number, type: text, not_null: true}
      - {name: issued_at, type: timestamptz, not_null: true, default: "now()"}
    primary_key: [id]
    unique:
      - {columns: [number]}
    foreign_keys:
      - {columns: [user_id], references: {table: users, columns: [id]}, on_delete: cascade}
    indexes:
      - {columns: [user_id, issued_at]}
`,
			change:  "invoices-create",
			follows: followNone,
			fleet:   workload.Config{Table: "users", Old: "email"},
			after: func(t *testing.T, db *pgtest.DB) {
				requireTrue(t, db, `SELECT count(*) = 3 FROM pg_constraint WHERE conrelid = 'invoices'::regclass AND contype IN ('p', 'u', 'f') AND convalidated`)
				// The fleet's values are distinct, as the unique number needs.
				w, err := workload.Start(context.Background(), workload.Config{Pool: db.Pool, Table: "invoices", Old: "number",
					Workers: 2, Rate: 300, Duration: time.Second, Seed: 7, Trace: true})
				if err != nil {
					t.Fatal(err)
				}
				r := w.Wait()
				v, err := w.Verify(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("fleet on the new table: %s\nverification: %s", r, v)
				if r.Failed != 0 || r.ReadMismatches != 0 || r.Unknown != 0 || !v.OK() || v.RowsChecked == 0 || r.ByOp["update"] == 0 {
					t.Errorf("the new table: %d failed requests, %d wrong reads, %d unknown outcomes, %d rows checked, %d updates; verification ok: %v",
						r.Failed, r.ReadMismatches, r.Unknown, v.RowsChecked, r.ByOp["update"], v.OK())
				}
			},
		},
		{
			// Raw SQL under load: a nullable column, a check NOT VALID and a
			// comment, in one short transaction on the table the fleet writes.
			name:  "sql",
			setup: users,
			spec: `changes:
  - id: users-nickname-sql
    kind: sql
    table: users
    up: |
      ALTER TABLE users ADD COLUMN nickname text;
      ALTER TABLE users ADD CONSTRAINT users_nickname_length CHECK (length(nickname) <= 40) NOT VALID;
      COMMENT ON COLUMN users.nickname IS 'shown instead of the name when set';
    down: |
      ALTER TABLE users DROP CONSTRAINT users_nickname_length;
      ALTER TABLE users DROP COLUMN nickname;
    allow: [ban-drop-column]
    reason: the down only drops the column its up added, which no application uses before this change
`,
			change:  "users-nickname-sql",
			follows: followNone,
			fleet:   workload.Config{Table: "users", Old: "email"},
			after: func(t *testing.T, db *pgtest.DB) {
				requireColumns(t, db, "users", map[string]string{"email": "NOT NULL", "nickname": "NULL"})
				requireTrue(t, db, `SELECT NOT convalidated FROM pg_constraint WHERE conrelid = 'users'::regclass AND conname = 'users_nickname_length'`)
			},
		},
	}
}

// follows is the kind of flag a scenario's fleet follows.
type follows int

const (
	// followColumns: <change>.read and <change>.write (the column kinds).
	followColumns follows = iota
	// followTable: <change>.table (rename_table, drop_table): new
	// instances use the name it gives, or none once dropped.
	followTable
	// followNone: the change publishes no flag; the fleet uses its table
	// as it is throughout.
	followNone
)

// env is a database with a populated table, a provider-backed flags client
// and a fleet pool. The planner's engine always connects directly.
type env struct {
	db     *pgtest.DB
	specs  []planner.Spec
	client *openfeature.Client
	pool   *pgxpool.Pool // the fleet's own pool, sized for its workers
}

// newEnv: the fleet and its flags provider connect directly.
func newEnv(t *testing.T, sc scenario) *env { return setupEnv(t, sc, false) }

// newPooledEnv: the fleet and its flags provider connect through PgBouncer
// in transaction mode with fewer server connections than clients, with the
// settings the README gives applications: none for the provider, an exec
// mode that prepares nothing for the fleet's pool.
func newPooledEnv(t *testing.T, sc scenario) *env { return setupEnv(t, sc, true) }

func setupEnv(t *testing.T, sc scenario, pooled bool) *env {
	t.Helper()
	return setupEnvOn(t, sc, pgtest.NewDB(t), pooled)
}

// setupEnvOn sets the scenario up on db (of a cluster of the test's own).
func setupEnvOn(t *testing.T, sc scenario, db *pgtest.DB, pooled bool) *env {
	t.Helper()
	ctx := context.Background()
	for _, stmt := range strings.Split(sc.setup, ";") {
		var args []any
		if strings.Contains(stmt, "$1") {
			args = append(args, rows)
		}
		if _, err := db.Pool.Exec(ctx, stmt, args...); err != nil {
			t.Fatalf("setup %q: %v", stmt, err)
		}
	}
	db.Exec(t, "ANALYZE")
	specs, err := planner.Parse(sc.name+".yaml", []byte(sc.spec))
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	appURL := db.URL
	if pooled {
		appURL = pgtest.NewPgBouncer(t, db, "transaction", 3)
	}
	cfg, err := pgxpool.ParseConfig(appURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	cfg.ConnConfig.RuntimeParams["application_name"] = "fleet"
	if pooled {
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &env{db: db, specs: specs, client: flagsClient(t, appURL), pool: pool}
}

// flagsClient registers the planner's OpenFeature provider for the test's
// database under a domain of the test's own: the new instances' flags.
func flagsClient(t *testing.T, url string) *openfeature.Client {
	t.Helper()
	domain := "e2e/" + t.Name()
	p := flags.NewProvider(url, flags.WithPollInterval(time.Second))
	t.Cleanup(func() {
		_ = openfeature.SetNamedProviderAndWait(domain, openfeature.NoopProvider{})
		p.Shutdown()
	})
	if err := openfeature.SetNamedProviderAndWait(domain, p); err != nil {
		t.Fatal(err)
	}
	return openfeature.NewClient(domain)
}

// startFleet starts old and new application instances against the table.
func (e *env) startFleet(t *testing.T, sc scenario, seed uint64) *workload.Workload {
	t.Helper()
	cfg := sc.fleet
	cfg.Pool = e.pool
	switch sc.follows {
	case followColumns:
		cfg.Chooser = workload.FlagsChooser{Client: e.client, ChangeID: sc.change, Old: cfg.Old, New: cfg.New}
	case followTable:
		cfg.Tables = workload.FlagsTable{Client: e.client, ChangeID: sc.change, Old: cfg.Table, New: cfg.NewTable}
	}
	cfg.OldShare = 0.5
	cfg.Workers = 4
	cfg.Rate = 300
	cfg.Seed = seed
	cfg.Trace = true
	w, err := workload.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
	return w
}

// deploy rolls the fleet forward to the flags the planner has published.
func (e *env) deploy(t *testing.T, w *workload.Workload, change string) workload.Choice {
	t.Helper()
	c, err := w.Deploy(context.Background(), e.db.Pool, stateSchema, change, flagsTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// engine is a planner engine with a short lock timeout, logging to t.
func (e *env) engine(t *testing.T, lockTimeout time.Duration) *planner.Engine {
	return &planner.Engine{
		Pool: e.db.Pool, Schema: stateSchema, LockTimeout: lockTimeout,
		Wait: 30 * time.Second, PurgeAfter: -1, Log: testLog{t},
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// finish stops the fleet and requires zero failed requests and zero lost
// or divergent writes.
func finish(t *testing.T, ctx context.Context, w *workload.Workload) (workload.Report, workload.Verification) {
	t.Helper()
	r := w.Stop()
	v, err := w.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	requireClean(t, r, v)
	return r, v
}

// requireClean requires zero failed requests and zero lost or divergent
// writes of a finished fleet, which old and new instances both served.
func requireClean(t *testing.T, r workload.Report, v workload.Verification) {
	t.Helper()
	t.Logf("fleet: %s", r)
	t.Logf("verification: %s", v)
	if r.Failed != 0 || r.ReadMismatches != 0 || r.Unknown != 0 {
		t.Errorf("application: %d failed requests, %d wrong reads, %d unknown outcomes; want none", r.Failed, r.ReadMismatches, r.Unknown)
	}
	if !v.OK() {
		t.Errorf("rows: %d divergent, %d missing, %d resurrected, %d unexpected; want none", v.Divergent, v.Missing, v.Resurrected, v.Unexpected)
	}
	if v.RowsChecked < rows {
		t.Errorf("checked %d rows, want at least %d", v.RowsChecked, rows)
	}
	if r.OldOps == 0 || r.NewOps == 0 {
		t.Errorf("old instances served %d requests, new ones %d: want both", r.OldOps, r.NewOps)
	}
}

// requireTrue runs a query that must answer true.
func requireTrue(t *testing.T, db *pgtest.DB, query string) {
	t.Helper()
	var ok bool
	if err := db.Pool.QueryRow(context.Background(), query).Scan(&ok); err != nil || !ok {
		t.Errorf("check failed (%v): %s", err, query)
	}
}

// requireColumns checks which columns exist and their nullability: want
// maps a column to "NOT NULL", "NULL", or "" for "must not exist".
func requireColumns(t *testing.T, db *pgtest.DB, table string, want map[string]string) {
	t.Helper()
	for col, w := range want {
		var notNull *bool
		err := db.Pool.QueryRow(context.Background(), `
			SELECT (SELECT attnotnull FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped)`,
			table, col).Scan(&notNull)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if notNull != nil {
			got = map[bool]string{true: "NOT NULL", false: "NULL"}[*notNull]
		}
		if got != w {
			t.Errorf("%s.%s: %q, want %q", table, col, got, w)
		}
	}
}

// requireFinal checks the flags a scenario's change ends with: new/new
// for the column kinds, table=want for the table kinds, none otherwise.
func requireFinal(t *testing.T, db *pgtest.DB, sc scenario, wantTable string) {
	t.Helper()
	switch sc.follows {
	case followColumns:
		requireFinalFlags(t, db, sc.change)
	case followTable:
		got, err := workload.PublishedTable(context.Background(), db.Pool, stateSchema, sc.change)
		if err != nil {
			t.Fatal(err)
		}
		if got != wantTable {
			t.Errorf("final flag %s.table=%s, want %s", sc.change, got, wantTable)
		}
	case followNone:
		list, err := flags.List(context.Background(), db.Pool, stateSchema)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range list {
			if f.ChangeID == sc.change {
				t.Errorf("change %s published the flag %s=%s, want none", sc.change, f.Key, f.Variant)
			}
		}
	}
}

// requireFinalFlags checks the application ends reading and writing the new column.
func requireFinalFlags(t *testing.T, db *pgtest.DB, change string) {
	t.Helper()
	c, err := workload.Published(context.Background(), db.Pool, stateSchema, change)
	if err != nil {
		t.Fatal(err)
	}
	if c != (workload.Choice{Read: workload.New, Write: workload.New}) {
		t.Errorf("final flags read=%s write=%s, want new/new", c.Read, c.Write)
	}
}

func changeStatus(t *testing.T, ctx context.Context, e *planner.Engine, specs []planner.Spec, id string) planner.ChangeStatus {
	t.Helper()
	st, err := e.Status(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("change %s not in status", id)
	return planner.ChangeStatus{}
}

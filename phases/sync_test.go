package phases_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// syncCase is a table with an old column and the Sync that pairs it with a
// new one.
type syncCase struct {
	name   string
	create string // CREATE TABLE (and schema), with the old column
	sync   phases.Sync
}

var renameCases = []syncCase{
	{
		name:   "plain",
		create: `CREATE TABLE users (id int PRIMARY KEY, email text DEFAULT 'dflt', other int)`,
		sync:   phases.Sync{ID: "users-email", Table: phases.TableRef{Name: "users"}, Old: "email", New: "email_address", OldType: "text", NewType: "text"},
	},
	{
		name:   "quoted identifiers",
		create: `CREATE SCHEMA "App ""Data"""; CREATE TABLE "App ""Data"""."User Accounts" (id int PRIMARY KEY, "E-mail ""Addr""" text DEFAULT 'dflt', other int)`,
		sync: phases.Sync{ID: "user-accounts.email", Table: phases.TableRef{Schema: `App "Data"`, Name: "User Accounts"},
			Old: `E-mail "Addr"`, New: `Email $sync$ "New"`, OldType: "text", NewType: "text"},
	},
}

func (c syncCase) table() string { return c.sync.Table.Quoted() }

// setup creates the table and runs the expand: ADD COLUMN new + Install,
// in one transaction as the engine does. seed runs before the expand (rows
// that exist before the new column).
func setup(t *testing.T, c syncCase, seed string) *pgtest.DB {
	t.Helper()
	db := pgtest.NewDB(t)
	db.Exec(t, c.create)
	if seed != "" {
		db.Exec(t, strings.ReplaceAll(seed, "$T", c.table()))
	}
	apply(t, db, append([]phases.Statement{{SQL: fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", c.table(),
		pgx.Identifier{c.sync.New}.Sanitize(), c.sync.NewType)}}, c.sync.Install()...))
	return db
}

// apply runs statements in one transaction, skipping those whose Done probe
// says they already ran (as the engine does).
func apply(t *testing.T, db *pgtest.DB, stmts []phases.Statement) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		for _, s := range stmts {
			if s.Done != "" {
				var done bool
				if err := tx.QueryRow(ctx, s.Done).Scan(&done); err != nil {
					return fmt.Errorf("probe %q: %w", s.Done, err)
				}
				if done {
					continue
				}
			}
			if _, err := tx.Exec(ctx, s.SQL); err != nil {
				return fmt.Errorf("%s: %w", s.SQL, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func probe(t *testing.T, db *pgtest.DB, sql string) bool {
	t.Helper()
	var b bool
	if err := db.Pool.QueryRow(context.Background(), sql).Scan(&b); err != nil {
		t.Fatalf("probe %q: %v", sql, err)
	}
	return b
}

// pair reads (old, new) of row id as text; NULL is "<nil>".
func pair(t *testing.T, db *pgtest.DB, c syncCase, id int) (string, string) {
	t.Helper()
	var o, n *string
	q := fmt.Sprintf("SELECT %s::text, %s::text FROM %s WHERE id = $1", pgx.Identifier{c.sync.Old}.Sanitize(),
		pgx.Identifier{c.sync.New}.Sanitize(), c.table())
	if err := db.Pool.QueryRow(context.Background(), q, id).Scan(&o, &n); err != nil {
		t.Fatalf("row %d: %v", id, err)
	}
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	return str(o), str(n)
}

// expand replaces $T, $O, $N in a writer's SQL with the quoted table, old
// and new column.
func expand(c syncCase, sql string) string {
	return strings.NewReplacer("$T", c.table(), "$O", pgx.Identifier{c.sync.Old}.Sanitize(),
		"$N", pgx.Identifier{c.sync.New}.Sanitize()).Replace(sql)
}

func TestSyncRenameWriterPatterns(t *testing.T) {
	writes := []struct {
		name     string
		sql      string // $T table, $O old column, $N new column
		id       int
		old, new string
	}{
		{"old app insert", `INSERT INTO $T (id, $O) VALUES (1, 'a')`, 1, "a", "a"},
		{"old app insert default", `INSERT INTO $T (id) VALUES (2)`, 2, "dflt", "dflt"},
		{"old app insert null", `INSERT INTO $T (id, $O) VALUES (3, NULL)`, 3, "<nil>", "<nil>"},
		{"new app insert write=both", `INSERT INTO $T (id, $O, $N) VALUES (4, 'b', 'b')`, 4, "b", "b"},
		{"new app insert write=new over old default", `INSERT INTO $T (id, $N) VALUES (5, 'c')`, 5, "c", "c"},
		{"new app insert write=new null takes old default", `INSERT INTO $T (id, $N) VALUES (6, NULL)`, 6, "dflt", "dflt"},
		{"insert both disagree: new wins", `INSERT INTO $T (id, $O, $N) VALUES (7, 'x', 'y')`, 7, "y", "y"},
		{"insert old null new set", `INSERT INTO $T (id, $O, $N) VALUES (8, NULL, 'z')`, 8, "z", "z"},
		{"old app update", `UPDATE $T SET $O = 'u1' WHERE id = 10`, 10, "u1", "u1"},
		{"new app update write=both", `UPDATE $T SET $O = 'u2', $N = 'u2' WHERE id = 11`, 11, "u2", "u2"},
		{"new app update write=new", `UPDATE $T SET $N = 'u3' WHERE id = 12`, 12, "u3", "u3"},
		{"old app update to null", `UPDATE $T SET $O = NULL WHERE id = 13`, 13, "<nil>", "<nil>"},
		{"new app update to null", `UPDATE $T SET $N = NULL WHERE id = 14`, 14, "<nil>", "<nil>"},
		{"update both disagree: new wins", `UPDATE $T SET $O = 'lose', $N = 'win' WHERE id = 15`, 15, "win", "win"},
		{"neither changed but differ: new from old", `UPDATE $T SET $O = $O WHERE id = 16`, 16, "s16", "s16"},
		{"old app update of a pre-existing row", `UPDATE $T SET $O = 'p' WHERE id = 17`, 17, "p", "p"},
		{"new app write=new on a pre-existing row", `UPDATE $T SET $N = 'q' WHERE id = 18`, 18, "q", "q"},
		{"unrelated update fills a not-backfilled row", `UPDATE $T SET other = 1 WHERE id = 19`, 19, "s19", "s19"},
		{"key update fills a not-backfilled row", `UPDATE $T SET id = 120 WHERE id = 20`, 120, "s20", "s20"},
		{"upsert conflict from old app", `INSERT INTO $T (id, $O) VALUES (10, 'up') ON CONFLICT (id) DO UPDATE SET $O = EXCLUDED.$O`, 10, "up", "up"},
	}
	for _, c := range renameCases {
		t.Run(c.name, func(t *testing.T) {
			// rows 16..20 exist before the expand (new column NULL)
			db := setup(t, c, `INSERT INTO $T (id, `+pgx.Identifier{c.sync.Old}.Sanitize()+`) SELECT i, 's' || i FROM generate_series(16, 20) i`)
			// rows 10..15 written after the expand by an old app
			db.Exec(t, expand(c, `INSERT INTO $T (id, $O) SELECT i, 's' || i FROM generate_series(10, 15) i`))
			for _, w := range writes {
				db.Exec(t, expand(c, w.sql))
				if o, n := pair(t, db, c, w.id); o != w.old || n != w.new {
					t.Errorf("%s: got old=%s new=%s, want old=%s new=%s", w.name, o, n, w.old, w.new)
				}
			}
		})
	}
}

func TestSyncTypeChange(t *testing.T) {
	cases := []struct {
		name   string
		c      syncCase
		writes []struct {
			sql      string
			id       int
			old, new string
		}
	}{
		{
			name: "int dollars to bigint cents",
			c: syncCase{
				create: `CREATE TABLE items (id int PRIMARY KEY, price integer DEFAULT 1)`,
				sync: phases.Sync{ID: "items-price", Table: phases.TableRef{Name: "items"}, Old: "price", New: "price_cents",
					OldType: "integer", NewType: "bigint", Up: "price::bigint * 100", Down: "price_cents / 100"},
			},
			writes: []struct {
				sql      string
				id       int
				old, new string
			}{
				{`INSERT INTO $T (id, $O) VALUES (1, 5)`, 1, "5", "500"},
				{`INSERT INTO $T (id) VALUES (2)`, 2, "1", "100"},
				{`INSERT INTO $T (id, $N) VALUES (3, 700)`, 3, "7", "700"},
				{`INSERT INTO $T (id, $O, $N) VALUES (4, 8, 800)`, 4, "8", "800"},
				{`INSERT INTO $T (id, $O) VALUES (5, NULL)`, 5, "<nil>", "<nil>"},
				{`UPDATE $T SET $N = 900 WHERE id = 1`, 1, "9", "900"},
				{`UPDATE $T SET $O = 3 WHERE id = 1`, 1, "3", "300"},
				{`UPDATE $T SET $N = NULL WHERE id = 1`, 1, "<nil>", "<nil>"},
				{`UPDATE $T SET $O = 2147483647 WHERE id = 2`, 2, "2147483647", "214748364700"},
				// Lossy: 150 cents read back as 1 dollar. An old application's
				// full-row UPDATE rewrites old unchanged; the cents stay.
				{`UPDATE $T SET $N = 150 WHERE id = 3`, 3, "1", "150"},
				{`UPDATE $T SET $O = $O WHERE id = 3`, 3, "1", "150"},
				{`UPDATE $T SET $O = $O, $N = $N WHERE id = 3`, 3, "1", "150"},
				{`UPDATE $T SET $O = 2 WHERE id = 3`, 3, "2", "200"},
			},
		},
		{
			name: "text to int with a parse expression",
			c: syncCase{
				create: `CREATE TABLE "Stock" ("Qty" text)`,
				sync: phases.Sync{ID: "stock-qty", Table: phases.TableRef{Name: "Stock"}, Old: "Qty", New: "Qty Num",
					OldType: "text", NewType: "integer", Up: `NULLIF(trim("Qty"), '')::int`, Down: `"Qty Num"::text`},
			},
			writes: []struct {
				sql      string
				id       int
				old, new string
			}{
				{`INSERT INTO $T (id, $O) VALUES (1, ' 42 ')`, 1, " 42 ", "42"},
				{`INSERT INTO $T (id, $O) VALUES (2, '')`, 2, "", "<nil>"},
				{`INSERT INTO $T (id, $N) VALUES (3, 7)`, 3, "7", "7"},
				{`UPDATE $T SET $N = 8 WHERE id = 1`, 1, "8", "8"},
				{`UPDATE $T SET $O = '10' WHERE id = 1`, 1, "10", "10"},
				{`UPDATE $T SET $O = ' 10' WHERE id = 1`, 1, " 10", "10"}, // agrees after parsing: left as written
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			db := pgtest.NewDB(t)
			db.Exec(t, c.create)
			if !strings.Contains(c.create, "PRIMARY KEY") {
				db.Exec(t, "ALTER TABLE "+c.table()+" ADD COLUMN id int PRIMARY KEY")
			}
			apply(t, db, append([]phases.Statement{{SQL: fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", c.table(),
				pgx.Identifier{c.sync.New}.Sanitize(), c.sync.NewType)}}, c.sync.Install()...))
			for _, w := range tc.writes {
				db.Exec(t, expand(c, w.sql))
				if o, n := pair(t, db, c, w.id); o != w.old || n != w.new {
					t.Errorf("%s: got old=%q new=%q, want old=%q new=%q", w.sql, o, n, w.old, w.new)
				}
			}
			// A failing conversion fails the writer's statement rather than
			// writing diverging values.
			if c.sync.ID == "stock-qty" {
				_, err := db.Pool.Exec(context.Background(), expand(c, `UPDATE $T SET $O = 'many' WHERE id = 1`))
				if err == nil {
					t.Error("unparseable old value: want an error")
				}
				if o, n := pair(t, db, c, 1); o != " 10" || n != "10" {
					t.Errorf("after failed write: old=%q new=%q", o, n)
				}
			}
		})
	}
}

// TestSyncConcurrentWriters runs old-app and new-app writers on the same rows;
// at the end every row's old and new agree and hold the last write.
func TestSyncConcurrentWriters(t *testing.T) {
	cases := []struct {
		name       string
		c          syncCase
		oldV, newV func(v int) string // the value v as each column stores it
	}{
		{"rename", renameCases[1], func(v int) string { return fmt.Sprintf("v%d", v) }, func(v int) string { return fmt.Sprintf("v%d", v) }},
		{"int to bigint cents", syncCase{
			create: `CREATE TABLE items (id int PRIMARY KEY, price integer, other int)`,
			sync: phases.Sync{ID: "items-price", Table: phases.TableRef{Name: "items"}, Old: "price", New: "price_cents",
				OldType: "integer", NewType: "bigint", Up: "price::bigint * 100", Down: "price_cents / 100"},
		}, func(v int) string { return fmt.Sprint(v) }, func(v int) string { return fmt.Sprint(v * 100) }},
	}
	const rows, writers, perWriter = 8, 6, 120
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			db := setup(t, c, "")
			db.Exec(t, `CREATE TABLE write_log (seq bigserial PRIMARY KEY, id int, v int)`)
			db.Exec(t, expand(c, fmt.Sprintf(`INSERT INTO $T (id, $O) SELECT i, %s FROM generate_series(1, %d) i`,
				map[bool]string{true: "'v0'", false: "0"}[tc.name == "rename"], rows)))
			// writer kinds: 0 old app (old only), 1 new app write=both, 2 new app write=new
			ot, nt := "::text::"+c.sync.OldType, "::text::"+c.sync.NewType
			stmts := []string{
				expand(c, `UPDATE $T SET $O = $2`+ot+` WHERE id = $1`),
				expand(c, `UPDATE $T SET $O = $2`+ot+`, $N = $3`+nt+` WHERE id = $1`),
				expand(c, `UPDATE $T SET $N = $2`+nt+` WHERE id = $1`),
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(w), 1))
					for i := range perWriter {
						id := 1 + r.IntN(rows)
						v := w*10000 + i + 1
						// The log insert runs while the UPDATE holds the row
						// lock, so log order per row is write order.
						err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
							args := []any{id, tc.oldV(v), tc.newV(v)}
							switch w % 3 {
							case 0:
								args = args[:2]
							case 2:
								args = []any{id, tc.newV(v)}
							}
							if _, err := tx.Exec(ctx, stmts[w%3], args...); err != nil {
								return err
							}
							_, err := tx.Exec(ctx, `INSERT INTO write_log (id, v) VALUES ($1, $2)`, id, v)
							return err
						})
						if err != nil {
							errs <- fmt.Errorf("writer %d: %w", w, err)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for id := 1; id <= rows; id++ {
				var last int
				if err := db.Pool.QueryRow(ctx, `SELECT v FROM write_log WHERE id = $1 ORDER BY seq DESC LIMIT 1`, id).Scan(&last); err != nil {
					if errors.Is(err, pgx.ErrNoRows) {
						continue
					}
					t.Fatal(err)
				}
				if o, n := pair(t, db, c, id); o != tc.oldV(last) || n != tc.newV(last) {
					t.Errorf("row %d: old=%s new=%s, want the last write %d: old=%s new=%s", id, o, n, last, tc.oldV(last), tc.newV(last))
				}
			}
		})
	}
}

// TestSyncWhenSkipsAgreeingRows counts trigger function calls: rows already
// in agreement (writes of both columns, the backfill's own updates, updates
// of other columns) must not call it.
func TestSyncWhenSkipsAgreeingRows(t *testing.T) {
	c := renameCases[1]
	db := setup(t, c, `INSERT INTO $T (id) SELECT generate_series(1000, 1099)`)
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["track_functions"] = "all"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`INSERT INTO $T (id, $O, $N) SELECT i, 'x' || i, 'x' || i FROM generate_series(1, 50) i`, // new app write=both: skipped
		`UPDATE $T SET $N = $O WHERE $N IS DISTINCT FROM $O`,                                     // a backfill batch: skipped
		`UPDATE $T SET other = 1`,                                              // other columns, rows in agreement: skipped
		`UPDATE $T SET $O = 'y' || id, $N = 'y' || id WHERE id <= 50`,          // write=both: skipped
		`INSERT INTO $T (id, $O) SELECT i, 'z' FROM generate_series(51, 60) i`, // old app: 10 calls
		`UPDATE $T SET $N = 'w' WHERE id BETWEEN 1 AND 5`,                      // new app write=new: 5 calls
	} {
		if _, err := conn.Exec(ctx, expand(c, sql)); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx) // a backend flushes its function statistics as it exits
	const want = 15
	deadline := time.Now().Add(30 * time.Second)
	for {
		var calls int64
		err := db.Pool.QueryRow(ctx, `SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = $1`,
			c.sync.TriggerName()).Scan(&calls)
		if err != nil {
			t.Fatal(err)
		}
		if calls != 0 {
			if calls != want {
				t.Fatalf("trigger function called %d times, want %d (only for rows that disagree)", calls, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no function statistics after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var diverging int
	if err := db.Pool.QueryRow(ctx, expand(c, `SELECT count(*) FROM $T WHERE $O IS DISTINCT FROM $N`)).Scan(&diverging); err != nil {
		t.Fatal(err)
	}
	if diverging != 0 {
		t.Errorf("%d rows diverge", diverging)
	}
}

func TestSyncInstallRemove(t *testing.T) {
	conv := phases.Sync{ID: "items-price", Table: phases.TableRef{Name: "items"}, Old: "price", New: "price_cents",
		OldType: "integer", NewType: "bigint", Up: "price * 100", Down: "price_cents / 100"}
	for _, c := range append(renameCases, syncCase{name: "conversion", create: `CREATE TABLE items (id int PRIMARY KEY, price int)`, sync: conv}) {
		t.Run(c.name, func(t *testing.T) {
			s := c.sync
			db := pgtest.NewDB(t)
			db.Exec(t, c.create)
			install := s.Install()
			trigger := install[len(install)-1]
			if trigger.Lock != phases.ShareRowExclusive || len(trigger.Tables) != 1 || trigger.Done == "" {
				t.Errorf("CREATE TRIGGER statement: lock %q tables %v probe %q", trigger.Lock, trigger.Tables, trigger.Done)
			}
			if probe(t, db, trigger.Done) {
				t.Error("trigger probe true before install")
			}
			addColumn := phases.Statement{SQL: fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", c.table(),
				pgx.Identifier{s.New}.Sanitize(), s.NewType)}
			apply(t, db, append([]phases.Statement{addColumn}, install...))
			// idempotent: a resumed phase runs it again
			apply(t, db, append([]phases.Statement{addColumn}, install...))
			for _, st := range install {
				if st.Lock != phases.NoLock && st.Lock != phases.ShareRowExclusive {
					t.Errorf("install takes %s: %s", st.Lock, st.SQL)
				}
			}
			if !probe(t, db, trigger.Done) {
				t.Error("trigger probe false after install")
			}
			remove := s.Remove()
			if !probe(t, db, `SELECT NOT (`+remove[0].Done+`)`) {
				t.Error("remove probe says done while the trigger exists")
			}
			apply(t, db, remove)
			apply(t, db, remove) // idempotent
			var left int
			if err := db.Pool.QueryRow(context.Background(), `SELECT
				(SELECT count(*) FROM pg_trigger WHERE tgname = $1) +
				(SELECT count(*) FROM pg_proc WHERE proname IN ($1, $2, $3))`,
				s.TriggerName(), s.UpFunction(), s.DownFunction()).Scan(&left); err != nil {
				t.Fatal(err)
			}
			if left != 0 {
				t.Errorf("%d trigger objects left after Remove", left)
			}
			// the old column can now be dropped (the trigger depended on it)
			db.Exec(t, fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", c.table(), pgx.Identifier{s.Old}.Sanitize()))
		})
	}
}

func TestSyncNames(t *testing.T) {
	long := strings.Repeat("a", 70)
	cases := []struct {
		id   string
		want string
	}{
		{"users-email", "planner_sync_users-email"},
		{"x.y_z", "planner_sync_x.y_z"},
		{strings.Repeat("b", 50), "planner_sync_" + strings.Repeat("b", 50)},
	}
	for _, c := range cases {
		if got := (phases.Sync{ID: c.id}).TriggerName(); got != c.want {
			t.Errorf("TriggerName(%q) = %q, want %q", c.id, got, c.want)
		}
	}
	a := phases.Sync{ID: long + "-1"}
	b := phases.Sync{ID: long + "-2"}
	for _, n := range []string{a.TriggerName(), a.UpFunction(), a.DownFunction(), b.TriggerName()} {
		if len(n) > 63 {
			t.Errorf("%q is %d bytes, over PostgreSQL's 63", n, len(n))
		}
	}
	if a.TriggerName() == b.TriggerName() || a.TriggerName() != (phases.Sync{ID: long + "-1"}).TriggerName() {
		t.Error("long names must be distinct per id and deterministic")
	}
	// a long id works in the database
	db := pgtest.NewDB(t)
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, a text)`)
	s := phases.Sync{ID: long + "-1", Table: phases.TableRef{Name: "t"}, Old: "a", New: "b", OldType: "text", NewType: "varchar(20)", Up: "upper(a)"}
	apply(t, db, append([]phases.Statement{{SQL: `ALTER TABLE t ADD COLUMN b varchar(20)`}}, s.Install()...))
	db.Exec(t, `INSERT INTO t VALUES (1, 'abc')`)
	var got string
	if err := db.Pool.QueryRow(context.Background(), `SELECT b FROM t`).Scan(&got); err != nil || got != "ABC" {
		t.Errorf("long id: b = %q, %v", got, err)
	}
}

// TestSyncNotNullColumns: with NOT NULL on both columns (after enforce) each
// application version can still insert through the column it knows: the
// trigger fills the other before the constraint is checked.
func TestSyncNotNullColumns(t *testing.T) {
	c := syncCase{
		create: `CREATE TABLE accounts (id int PRIMARY KEY, code text NOT NULL)`,
		sync:   phases.Sync{ID: "accounts-code", Table: phases.TableRef{Name: "accounts"}, Old: "code", New: "Code 2", OldType: "text", NewType: "text"},
	}
	db := setup(t, c, "")
	db.Exec(t, expand(c, `ALTER TABLE $T ALTER COLUMN $N SET NOT NULL`))
	db.Exec(t, expand(c, `INSERT INTO $T (id, $O) VALUES (1, 'old app')`))
	db.Exec(t, expand(c, `INSERT INTO $T (id, $N) VALUES (2, 'new app')`))
	for id, want := range map[int]string{1: "old app", 2: "new app"} {
		if o, n := pair(t, db, c, id); o != want || n != want {
			t.Errorf("row %d: old=%s new=%s, want %s", id, o, n, want)
		}
	}
	if _, err := db.Pool.Exec(context.Background(), expand(c, `INSERT INTO $T (id) VALUES (3)`)); err == nil {
		t.Error("insert without a value: want the NOT NULL violation it had before the change")
	}
}

package workload

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const seedRows = 2000

// newTable creates items(id bigserial, email text NOT NULL, extra) with
// seedRows rows; extra is the new column's definition, "" for none.
func newTable(t *testing.T, extra string) *pgtest.DB {
	t.Helper()
	db := pgtest.NewDB(t)
	cols := "id bigserial PRIMARY KEY, email text NOT NULL, name text"
	if extra != "" {
		cols += ", " + extra
	}
	db.Exec(t, "CREATE TABLE items ("+cols+")")
	db.Exec(t, "INSERT INTO items (email, name) SELECT g::text, 'n' || g FROM generate_series(1, $1::int) g", seedRows)
	return db
}

// syncTrigger installs a minimal two-way sync between email and the new
// column, standing in for the planner's trigger: the value that changed wins.
func syncTrigger(t *testing.T, db *pgtest.DB, newCol, up, down string) {
	t.Helper()
	body := strings.NewReplacer("NEWCOL", newCol, "UP", up, "DOWN", down).Replace(`
		CREATE FUNCTION items_sync() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF TG_OP = 'INSERT' THEN
				IF NEW.NEWCOL IS NULL THEN NEW.NEWCOL := UP;
				ELSIF NEW.email IS NULL THEN NEW.email := DOWN;
				END IF;
			ELSIF NEW.NEWCOL IS DISTINCT FROM OLD.NEWCOL THEN NEW.email := DOWN;
			ELSE NEW.NEWCOL := UP;
			END IF;
			RETURN NEW;
		END $$`)
	db.Exec(t, body)
	db.Exec(t, "UPDATE items SET "+newCol+" = "+strings.ReplaceAll(up, "NEW.", ""))
	db.Exec(t, "CREATE TRIGGER items_sync BEFORE INSERT OR UPDATE ON items FOR EACH ROW EXECUTE FUNCTION items_sync()")
}

// flagsStub is a ColumnChooser whose answer the test changes, like flags
// published by successive phases.
type flagsStub struct{ cur atomic.Pointer[Choice] }

func newFlagsStub(read, write string) *flagsStub {
	f := &flagsStub{}
	f.set(read, write)
	return f
}

func (f *flagsStub) set(read, write string) { f.cur.Store(&Choice{Read: read, Write: write}) }
func (f *flagsStub) Choose(context.Context) (Choice, error) {
	return *f.cur.Load(), nil
}

func start(t *testing.T, cfg Config) *Workload {
	t.Helper()
	if cfg.Rate == 0 {
		cfg.Rate = 400
	}
	w, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
	return w
}

func verify(t *testing.T, w *Workload) Verification {
	t.Helper()
	v, err := w.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Log(v)
	return v
}

func requireClean(t *testing.T, r Report, v Verification) {
	t.Helper()
	t.Log(r)
	if r.Failed != 0 || r.ReadMismatches != 0 || r.Unknown != 0 {
		t.Errorf("failed=%d mismatches=%d unknown=%d, want 0:\n%s", r.Failed, r.ReadMismatches, r.Unknown, r)
	}
	if !v.OK() {
		t.Errorf("verification failed:\n%s", v)
	}
	if v.RowsChecked < seedRows {
		t.Errorf("checked %d rows, want at least %d", v.RowsChecked, seedRows)
	}
	for _, op := range []string{"insert", "update", "delete", "read"} {
		if r.ByOp[op] == 0 {
			t.Errorf("no %s requests ran", op)
		}
	}
}

func TestOldFleetVerifies(t *testing.T) {
	db := newTable(t, "")
	w := start(t, Config{Pool: db.Pool, Table: "items", Old: "email", OldShare: 1, Duration: time.Second, Seed: 1})
	r := w.Wait()
	v := verify(t, w)
	requireClean(t, r, v)
	if r.NewOps != 0 {
		t.Errorf("%d requests went to new instances with OldShare 1", r.NewOps)
	}
}

func TestMaxOpsBoundsTheRun(t *testing.T) {
	db := newTable(t, "")
	w := start(t, Config{Pool: db.Pool, Table: "items", Old: "email", OldShare: 1, MaxOps: 150, Rate: 2000, Seed: 2})
	r := w.Wait()
	if r.Ops != 150 {
		t.Errorf("ran %d requests, want 150", r.Ops)
	}
	requireClean(t, r, verify(t, w))
}

// TestSyncedChangeThroughFlagStates walks a fleet through the flag states of
// a rename and of a type change (old/old, new/both, new/new), retires the old
// instances and drops the old column as the purge phase would, all while the
// fleet runs; nothing may fail or diverge.
func TestSyncedChangeThroughFlagStates(t *testing.T) {
	tests := []struct {
		name     string
		newCol   string
		up, down string
		value    func(r *rand.Rand) string
	}{
		{name: "rename", newCol: "email_address text", up: "NEW.email", down: "NEW.email_address"},
		{name: "change_type", newCol: "email_address bigint", up: "NEW.email::bigint", down: "NEW.email_address::text",
			value: func(r *rand.Rand) string { return strconv.FormatInt(r.Int64N(1e12)-5e11, 10) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newTable(t, tt.newCol)
			syncTrigger(t, db, "email_address", tt.up, tt.down)
			flags := newFlagsStub(Old, Old)
			w := start(t, Config{Pool: db.Pool, Table: "items", Old: "email", New: "email_address",
				Chooser: flags, OldShare: 0.5, Value: tt.value, Seed: 3})
			for _, state := range []Choice{{New, Both}, {New, New}} {
				time.Sleep(300 * time.Millisecond)
				flags.set(state.Read, state.Write)
			}
			time.Sleep(300 * time.Millisecond)
			w.RetireOld()
			oldOps := w.Stats().OldOps
			// Like the purge phase: trigger and column go in one transaction.
			db.Exec(t, "BEGIN; DROP TRIGGER items_sync ON items; ALTER TABLE items DROP COLUMN email; COMMIT")
			time.Sleep(300 * time.Millisecond)
			r := w.Stop()
			v := verify(t, w)
			requireClean(t, r, v)
			if r.OldOps != oldOps {
				t.Errorf("old instances served %d requests after RetireOld", r.OldOps-oldOps)
			}
			if r.OldOps == 0 || r.NewOps == 0 {
				t.Errorf("old ops %d, new ops %d: want both", r.OldOps, r.NewOps)
			}
			if strings.Join(v.Columns, ",") != "email_address" {
				t.Errorf("verified columns %v, want the new column only", v.Columns)
			}
		})
	}
}

// TestAddedColumn: new instances start writing a new column; rows they never
// wrote it on hold the fill value.
func TestAddedColumn(t *testing.T) {
	db := newTable(t, "status text DEFAULT 'active'")
	flags := newFlagsStub(Old, Old)
	w := start(t, Config{Pool: db.Pool, Table: "items", Old: "email", New: "status", Kind: Added, Fill: "active",
		Up: func(v string) string { return "s-" + v }, Chooser: flags, OldShare: 0.5, Seed: 4})
	time.Sleep(400 * time.Millisecond)
	flags.set(New, New)
	time.Sleep(400 * time.Millisecond)
	w.RetireOld()
	db.Exec(t, "ALTER TABLE items ALTER COLUMN status SET NOT NULL")
	time.Sleep(300 * time.Millisecond)
	r := w.Stop()
	v := verify(t, w)
	requireClean(t, r, v)
	var written int
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM items WHERE status LIKE 's-%'").Scan(&written); err != nil || written == 0 {
		t.Errorf("rows with a status written by new instances: %d, %v", written, err)
	}
}

// The harness must be able to fail: each of these tampers with writes
// behind the application's back and verification must notice.
func TestVerificationCatchesLostWrites(t *testing.T) {
	tests := []struct {
		name   string
		tamper string // SQL run on the table before the fleet starts
		after  string // SQL run after the fleet stops
		check  func(v Verification) bool
	}{
		{
			name: "update silently dropped",
			tamper: `CREATE FUNCTION keep_email() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN IF NEW.id % 5 = 0 THEN NEW.email := OLD.email; END IF; RETURN NEW; END $$;
				CREATE TRIGGER keep_email BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION keep_email()`,
			check: func(v Verification) bool { return v.Divergent > 0 },
		},
		{
			name: "new column diverges",
			tamper: `CREATE FUNCTION skew() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN IF NEW.id % 3 = 0 THEN NEW.email_address := NEW.email || '!'; END IF; RETURN NEW; END $$;
				CREATE TRIGGER zz_skew BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION skew()`,
			check: func(v Verification) bool { return v.Divergent > 0 },
		},
		{
			name:  "rows deleted behind the fleet's back",
			after: `DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY id LIMIT 3)`,
			check: func(v Verification) bool { return v.Missing == 3 },
		},
		{
			name:  "row inserted behind the fleet's back",
			after: `INSERT INTO items (email, email_address) VALUES ('x', 'x')`,
			check: func(v Verification) bool { return v.Unexpected == 1 },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newTable(t, "email_address text")
			syncTrigger(t, db, "email_address", "NEW.email", "NEW.email_address")
			if tt.tamper != "" {
				db.Exec(t, tt.tamper)
			}
			w := start(t, Config{Pool: db.Pool, Table: "items", Old: "email", New: "email_address",
				Chooser: Fixed{Read: Old, Write: Old}, Duration: 700 * time.Millisecond, Seed: 5})
			w.Wait()
			if tt.after != "" {
				db.Exec(t, tt.after)
			}
			v := verify(t, w)
			if v.OK() || !tt.check(v) {
				t.Errorf("verification did not catch it:\n%s", v)
			}
		})
	}
}

func TestFailedRequestsAreCounted(t *testing.T) {
	db := newTable(t, "")
	db.Exec(t, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.id % 4 = 0 THEN RAISE EXCEPTION 'refused row %', NEW.id; END IF; RETURN NEW; END $$`)
	db.Exec(t, `CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON items FOR EACH ROW EXECUTE FUNCTION refuse()`)
	w := start(t, Config{Pool: db.Pool, Table: "items", Old: "email", OldShare: 1, Duration: 700 * time.Millisecond, Seed: 6})
	r := w.Wait()
	if r.Failed == 0 || len(r.Errors) == 0 || !strings.Contains(r.Errors[0], "refused row") {
		t.Fatalf("failures not recorded:\n%s", r)
	}
	// A request refused by the server changed nothing: the rows still match.
	if v := verify(t, w); !v.OK() {
		t.Errorf("verification after refused writes:\n%s", v)
	}
}

func TestStallIsMeasured(t *testing.T) {
	db := newTable(t, "")
	w := start(t, Config{Pool: db.Pool, Table: "items", Old: "email", OldShare: 1, Seed: 7})
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE items IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	r := w.Stop()
	if r.LongestStall < 400*time.Millisecond {
		t.Errorf("longest stall %s while the table was locked for 600ms", r.LongestStall)
	}
	if r.Failed != 0 {
		t.Errorf("failed requests: %s", r)
	}
}

func TestVerifyRefusesWhileRunning(t *testing.T) {
	db := newTable(t, "")
	w := start(t, Config{Pool: db.Pool, Table: "items", Old: "email", OldShare: 1, Seed: 8})
	if _, err := w.Verify(context.Background()); err == nil {
		t.Error("Verify succeeded while the fleet runs")
	}
}

// TestDeployFollowsPublishedFlags publishes flags the way the engine does
// and checks that new instances, through the real OpenFeature provider, see
// each state, and that write=new retires the old instances.
func TestDeployFollowsPublishedFlags(t *testing.T) {
	db := newTable(t, "email_address text")
	syncTrigger(t, db, "email_address", "NEW.email", "NEW.email_address")
	ctx := context.Background()
	const change, schema = "items-email", "planner"
	domain := "workload/" + t.Name()
	p := flags.NewProvider(db.URL, flags.WithSchema(schema))
	t.Cleanup(func() {
		_ = openfeature.SetNamedProviderAndWait(domain, openfeature.NoopProvider{})
		p.Shutdown()
	})
	if err := openfeature.SetNamedProviderAndWait(domain, p); err != nil {
		t.Fatal(err)
	}
	chooser := FlagsChooser{Client: openfeature.NewClient(domain), ChangeID: change, Old: "email", New: "email_address"}
	w := start(t, Config{Pool: db.Pool, Table: "items", Old: "email", New: "email_address", Chooser: chooser, OldShare: 0.5, Seed: 9})

	publish := func(phase, read, write string) {
		t.Helper()
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if err := flags.Migrate(ctx, tx, schema); err != nil {
			t.Fatal(err)
		}
		if err := flags.Publish(ctx, tx, schema, change, phase, phases.Flags{flags.ReadKey(change): read, flags.WriteKey(change): write}, nil); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		phase       string
		read, write string
		retired     bool
	}{
		{"", Old, Old, false}, // nothing published yet: the old column
		{"expand", Old, Old, false},
		{"dual_write", New, Both, false},
		{"enforce", New, New, true},
	}
	for _, s := range steps {
		if s.phase != "" {
			publish(s.phase, s.read, s.write)
		}
		got, err := w.Deploy(ctx, db.Pool, schema, change, 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", s.phase, err)
		}
		if want := (Choice{Read: s.read, Write: s.write}); got != want {
			t.Errorf("%s: published %+v, want %+v", s.phase, got, want)
		}
		if w.Retired() != s.retired {
			t.Errorf("%s: old instances retired = %v, want %v", s.phase, w.Retired(), s.retired)
		}
		time.Sleep(200 * time.Millisecond)
	}
	requireClean(t, w.Stop(), verify(t, w))
}

// tableStub is a TableChooser whose answer the test changes, like the
// table flag published by successive phases.
type tableStub struct{ cur atomic.Pointer[string] }

func newTableStub(name string) *tableStub {
	s := &tableStub{}
	s.set(name)
	return s
}

func (s *tableStub) set(name string)                       { s.cur.Store(&name) }
func (s *tableStub) Table(context.Context) (string, error) { return *s.cur.Load(), nil }

// TestTableFollowsRename walks the fleet through a rename_table done by
// hand: the rename and a view under the old name in one transaction, new
// instances moved to the new name, old ones retired, the view dropped.
// Nothing may fail; with the old instances kept, the drop of the view must
// fail their requests.
func TestTableFollowsRename(t *testing.T) {
	for _, keepOld := range []bool{false, true} {
		t.Run(map[bool]string{false: "following", true: "old instances kept"}[keepOld], func(t *testing.T) {
			db := newTable(t, "")
			tables := newTableStub("items")
			w := start(t, Config{Pool: db.Pool, Table: "items", NewTable: "members", Tables: tables, Old: "email", OldShare: 0.5, Seed: 10})
			time.Sleep(300 * time.Millisecond)
			db.Exec(t, "BEGIN; ALTER TABLE items RENAME TO members; CREATE VIEW items WITH (security_invoker = true) AS SELECT * FROM members; COMMIT")
			time.Sleep(300 * time.Millisecond)
			tables.set("members")
			time.Sleep(300 * time.Millisecond)
			if !keepOld {
				w.RetireOld()
			}
			db.Exec(t, "DROP VIEW items")
			time.Sleep(300 * time.Millisecond)
			r := w.Stop()
			v := verify(t, w)
			if keepOld {
				if r.Failed == 0 || !strings.Contains(strings.Join(r.Errors, "\n"), `relation "public.items" does not exist`) {
					t.Errorf("old instances on the dropped view did not fail:\n%s", r)
				}
				if !v.OK() {
					t.Errorf("verification:\n%s", v)
				}
				return
			}
			requireClean(t, r, v)
			if r.OldOps == 0 || r.NewOps == 0 {
				t.Errorf("old ops %d, new ops %d: want both", r.OldOps, r.NewOps)
			}
		})
	}
}

// TestTableStopsAtDrop: once the table flag says dropped, new instances
// make no request on the table, so renaming it aside fails none; the rows
// are verified where they went.
func TestTableStopsAtDrop(t *testing.T) {
	db := newTable(t, "")
	tables := newTableStub("items")
	w := start(t, Config{Pool: db.Pool, Table: "items", Tables: tables, Old: "email", OldShare: 0.5, Seed: 11})
	time.Sleep(400 * time.Millisecond)
	tables.set("")
	w.RetireOld()
	db.Exec(t, "ALTER TABLE items RENAME TO items_tomb")
	time.Sleep(300 * time.Millisecond)
	r := w.Stop()
	if _, err := w.Verify(context.Background()); err == nil {
		t.Error("Verify succeeded on a table the fleet stopped using")
	}
	v, err := w.VerifyIn(context.Background(), "items_tomb")
	if err != nil {
		t.Fatal(err)
	}
	requireClean(t, r, v)
	if r.Idle == 0 {
		t.Errorf("no request was left out after the drop:\n%s", r)
	}
}

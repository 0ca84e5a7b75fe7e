package flags_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/planner"
)

// workload describes the table and change an engine test drives.
type workload struct {
	name, change     string
	create, seed     string // seed: rows 1..$1
	spec             string
	oldCol, newCol   string
	oldType, newType string
	// oldVal and newVal are value n as each column stores it (as text);
	// seedNew is a seeded row's new value.
	oldVal, newVal func(n int64) string
	seedNew        func(id int64) string
}

var workloads = []workload{
	{
		name: "rename", change: "users-email",
		create: `CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL DEFAULT 'none', n int)`,
		seed:   `INSERT INTO users (id, email) SELECT i, 'seed-' || i FROM generate_series(1, $1::int) i`,
		spec: `changes:
  - id: users-email
    kind: rename_column
    table: users
    column: email
    to: email_address
`,
		oldCol: "email", newCol: "email_address", oldType: "text", newType: "text",
		oldVal:  func(n int64) string { return fmt.Sprintf("u%d@example.com", n) },
		newVal:  func(n int64) string { return fmt.Sprintf("u%d@example.com", n) },
		seedNew: func(id int64) string { return fmt.Sprintf("seed-%d", id) },
	},
	{
		name: "int dollars to bigint cents", change: "users-price",
		create: `CREATE TABLE users (id bigint PRIMARY KEY, price integer NOT NULL DEFAULT 0, n int)`,
		seed:   `INSERT INTO users (id, price) SELECT i, i FROM generate_series(1, $1::int) i`,
		spec: `changes:
  - id: users-price
    kind: change_column_type
    table: users
    column: price
    type: bigint
    new_column: price_cents
    up: price::bigint * 100
    down: (price_cents / 100)::integer
`,
		oldCol: "price", newCol: "price_cents", oldType: "integer", newType: "bigint",
		oldVal:  func(n int64) string { return fmt.Sprint(n) },
		newVal:  func(n int64) string { return fmt.Sprint(n * 100) },
		seedNew: func(id int64) string { return fmt.Sprint(id * 100) },
	},
}

// app is a writer of one application version. Every operation writes a
// unique value to one row, reads it back through the column it reads, and
// logs the write in the same transaction: while the UPDATE holds the row
// lock, so the log's order per row is the order of the writes.
type app struct {
	db     *pgxpool.Pool
	w      workload
	name   string
	client *openfeature.Client // nil: an old application that knows only the old column
	nextID *atomic.Int64
	values *atomic.Int64
	rows   int
	ops    atomic.Int64
	failed atomic.Int64
	errs   chan error
}

func (a *app) columns(ctx context.Context) flags.ColumnChoice {
	if a.client == nil {
		return flags.ColumnChoice{Read: a.w.oldCol, Write: []string{a.w.oldCol}}
	}
	return flags.Columns(ctx, a.client, a.w.change, a.w.oldCol, a.w.newCol)
}

// value is n as column col stores it, and the SQL placeholder typed for col.
func (a *app) value(col string, n int64, param int) (string, string) {
	if col == a.w.oldCol {
		return a.w.oldVal(n), fmt.Sprintf("$%d::text::%s", param, a.w.oldType)
	}
	return a.w.newVal(n), fmt.Sprintf("$%d::text::%s", param, a.w.newType)
}

func (a *app) op(ctx context.Context, r *rand.Rand) error {
	cols := a.columns(ctx)
	n := a.values.Add(1)
	return pgx.BeginFunc(ctx, a.db, func(tx pgx.Tx) error {
		var id int64
		args := []any{nil}
		var names, params, sets []string
		for _, c := range cols.Write {
			v, ph := a.value(c, n, len(args)+1)
			args = append(args, v)
			names, params = append(names, pgx.Identifier{c}.Sanitize()), append(params, ph)
			sets = append(sets, pgx.Identifier{c}.Sanitize()+" = "+ph)
		}
		if r.IntN(5) == 0 {
			id = a.nextID.Add(1)
			args[0] = id
			if _, err := tx.Exec(ctx, "INSERT INTO users (id, "+strings.Join(names, ", ")+") VALUES ($1, "+strings.Join(params, ", ")+")", args...); err != nil {
				return fmt.Errorf("insert: %w", err)
			}
		} else {
			id = 1 + r.Int64N(int64(a.rows))
			args[0] = id
			if _, err := tx.Exec(ctx, "UPDATE users SET "+strings.Join(sets, ", ")+" WHERE id = $1", args...); err != nil {
				return fmt.Errorf("update: %w", err)
			}
		}
		want, _ := a.value(cols.Read, n, 0)
		var got *string
		if err := tx.QueryRow(ctx, "SELECT "+pgx.Identifier{cols.Read}.Sanitize()+"::text FROM users WHERE id = $1", id).Scan(&got); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if got == nil || *got != want {
			return fmt.Errorf("read %s of row %d = %v right after writing value %d to %v", cols.Read, id, got, n, cols.Write)
		}
		_, err := tx.Exec(ctx, "INSERT INTO write_log (id, n) VALUES ($1, $2)", id, n)
		return err
	})
}

func (a *app) run(ctx context.Context, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	for ctx.Err() == nil {
		if err := a.op(ctx, r); err != nil {
			if ctx.Err() != nil {
				return
			}
			a.failed.Add(1)
			select {
			case a.errs <- fmt.Errorf("%s: %w", a.name, err):
			default:
			}
			continue
		}
		a.ops.Add(1)
		time.Sleep(time.Millisecond)
	}
}

// TestEngineChangesUnderWorkload drives a rename and a type change through
// every phase with the engine, with a rollback on the way, while old-app
// writers (old column only) and flag-reading new-app writers run: no
// application operation fails, no row diverges once the backfill is
// verified, every row ends with its last write, and each published flag
// reaches the provider within one second (within the poll interval for a
// provider that cannot LISTEN).
func TestEngineChangesUnderWorkload(t *testing.T) {
	for _, w := range workloads {
		t.Run(w.name, func(t *testing.T) { runWorkload(t, w) })
	}
}

func runWorkload(t *testing.T, w workload) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	const rows = 400
	db.Exec(t, w.create)
	db.Exec(t, w.seed, rows)
	db.Exec(t, `CREATE TABLE write_log (seq bigserial PRIMARY KEY, id bigint NOT NULL, n bigint NOT NULL)`)
	specs, err := planner.Parse("changes.yaml", []byte(w.spec))
	if err != nil {
		t.Fatal(err)
	}
	readKey, writeKey := flags.ReadKey(w.change), flags.WriteKey(w.change)
	engine := &planner.Engine{Pool: db.Pool, Schema: "planner", LockTimeout: 2 * time.Second, Retries: 20}
	deploy := 0
	next := func(wantPhase string) {
		t.Helper()
		// A gate may need another deploy, or an instance to load the flags
		// (the polling one below: up to its poll interval).
		for range 12 {
			deploy++
			rep, err := engine.Next(ctx, specs, fmt.Sprintf("deploy-%d", deploy), false)
			if err != nil {
				t.Fatalf("next (%s): %v", wantPhase, err)
			}
			if rep.AdvancedCount() == 1 {
				if got := rep.Changes[0].Phase; got != wantPhase {
					t.Fatalf("next applied %s, want %s", got, wantPhase)
				}
				return
			}
			t.Logf("deploy-%d: %+v", deploy, rep.Changes)
			time.Sleep(250 * time.Millisecond)
		}
		t.Fatalf("%s never applied", wantPhase)
	}

	// The expand phase creates the flags table: run it before the provider
	// starts, as a first deploy would.
	next("expand")
	client := register(t, flags.NewProvider(db.URL, flags.WithPollInterval(time.Minute), flags.WithLogger(quiet)))
	waitValue(t, client, writeKey, "old", time.Second)
	// A second application behind a pooler that cannot LISTEN: polls only.
	const poll = pollInterval
	pollingClient := func() *openfeature.Client {
		p := flags.NewProvider(db.URL, flags.WithoutListen(), flags.WithPollInterval(poll), flags.WithLogger(quiet))
		domain := t.Name() + "/polling"
		t.Cleanup(func() {
			_ = openfeature.SetNamedProviderAndWait(domain, openfeature.NoopProvider{})
			p.Shutdown()
		})
		if err := openfeature.SetNamedProviderAndWait(domain, p); err != nil {
			t.Fatal(err)
		}
		return openfeature.NewClient(domain)
	}()

	var nextID, values atomic.Int64
	nextID.Store(1_000_000)
	errs := make(chan error, 16)
	oldCtx, stopOld := context.WithCancel(ctx)
	newCtx, stopNew := context.WithCancel(ctx)
	defer stopOld()
	defer stopNew()
	var apps []*app
	var wgOld, wgNew sync.WaitGroup
	for i := range 2 {
		o := &app{db: db.Pool, w: w, name: fmt.Sprintf("old%d", i), nextID: &nextID, values: &values, rows: rows, errs: errs}
		n := &app{db: db.Pool, w: w, name: fmt.Sprintf("new%d", i), client: client, nextID: &nextID, values: &values, rows: rows, errs: errs}
		apps = append(apps, o, n)
		wgOld.Go(func() { o.run(oldCtx, uint64(i)) })
		wgNew.Go(func() { n.run(newCtx, uint64(10+i)) })
	}
	oldQ, newQ := pgx.Identifier{w.oldCol}.Sanitize(), pgx.Identifier{w.newCol}.Sanitize()
	diverging := func(when string) {
		t.Helper()
		var n int
		// the backfill's own expression: the up conversion
		q := fmt.Sprintf(`SELECT count(*) FROM users WHERE %s IS DISTINCT FROM %s`, newQ, upSQL(w, oldQ))
		if err := db.Pool.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: %d rows diverge", when, n)
		}
	}
	settle := func() { time.Sleep(300 * time.Millisecond) } // let the writers work in each phase

	settle()
	next("backfill")
	diverging("after backfill")
	settle()
	next("dual_write")
	published := time.Now()
	t.Logf("read=new visible %s after next returned", waitValue(t, client, readKey, "new", time.Second))
	// Within the poll interval (plus slack) of the publish, not of this wait.
	waitValue(t, pollingClient, readKey, "new", poll+pollSlack-time.Since(published))
	t.Logf("read=new visible to the polling provider %s after next returned (poll %s)", time.Since(published), poll)
	d, err := client.StringValueDetails(ctx, readKey, "old", openfeature.EvaluationContext{})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"change_id": w.change, "phase": "dual_write", "table": "public.users",
		"old_column": w.oldCol, "new_column": w.newCol} {
		if got, _ := d.FlagMetadata.GetString(k); got != want {
			t.Errorf("flag metadata %s = %q, want %q", k, got, want)
		}
	}
	diverging("dual_write")
	settle()

	if _, err := engine.Rollback(ctx, w.change, "rollback-1"); err != nil {
		t.Fatal(err)
	}
	waitValue(t, client, readKey, "old", time.Second)
	waitValue(t, client, writeKey, "old", time.Second)
	settle()
	next("dual_write")
	waitValue(t, client, writeKey, "both", time.Second)
	settle()
	next("enforce")
	waitValue(t, client, writeKey, "new", time.Second)
	diverging("enforce")
	settle()

	// The contract's premise: no application still uses the old column.
	// Old instances are gone by now (the soak gate); new ones read flags.
	stopOld()
	wgOld.Wait()
	time.Sleep(100 * time.Millisecond) // new-app operations that read older flags finish
	diverging("before contract")
	next("contract")
	settle()
	stopNew()
	wgNew.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, a := range apps {
		t.Logf("%s: %d operations, %d failed", a.name, a.ops.Load(), a.failed.Load())
		if a.ops.Load() == 0 {
			t.Errorf("%s did no work", a.name)
		}
		if a.failed.Load() != 0 {
			t.Errorf("%s: %d failed operations", a.name, a.failed.Load())
		}
	}

	// No lost write: every row holds its last logged write; rows nobody
	// wrote hold their converted seed value.
	rowsQ, err := db.Pool.Query(ctx, fmt.Sprintf(`SELECT u.id, u.%s::text, last.n FROM users u
		LEFT JOIN (SELECT DISTINCT ON (id) id, n FROM write_log ORDER BY id, seq DESC) last USING (id)`, newQ))
	if err != nil {
		t.Fatal(err)
	}
	written, bad := 0, 0
	for rowsQ.Next() {
		var id int64
		var got string
		var last *int64
		if err := rowsQ.Scan(&id, &got, &last); err != nil {
			t.Fatal(err)
		}
		want := w.seedNew(id)
		if last != nil {
			want = w.newVal(*last)
			written++
		}
		if got != want && bad < 5 {
			t.Errorf("row %d: %s = %s, want %s", id, w.newCol, got, want)
		}
		if got != want {
			bad++
		}
	}
	if err := rowsQ.Err(); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d rows do not hold their last write", bad)
	}
	t.Logf("%d rows written by the applications", written)
	var oldLeft bool
	if err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = $1 AND NOT attisdropped)`, w.oldCol).Scan(&oldLeft); err != nil {
		t.Fatal(err)
	}
	if oldLeft {
		t.Error("contract left the old column")
	}
}

// upSQL is the workload's up conversion applied to the SQL expression old.
func upSQL(w workload, old string) string {
	if w.oldType == w.newType {
		return old
	}
	return "(" + old + ")::bigint * 100"
}

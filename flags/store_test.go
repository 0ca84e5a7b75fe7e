package flags_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// emailMeta is what the engine publishes for a rename (change_id included).
var emailMeta = map[string]string{"change_id": "users-email", "table": "public.users", "old_column": "email", "new_column": "email_address"}

// stateDB is a fresh database with the flags table in schema.
func stateDB(t *testing.T, schema string) *pgtest.DB {
	t.Helper()
	db := pgtest.NewDB(t)
	for range 2 { // idempotent
		err := pgx.BeginFunc(context.Background(), db.Pool, func(tx pgx.Tx) error {
			return flags.Migrate(context.Background(), tx, schema)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func publish(t *testing.T, db *pgtest.DB, schema, change, phase string, values phases.Flags, meta map[string]string) {
	t.Helper()
	err := pgx.BeginFunc(context.Background(), db.Pool, func(tx pgx.Tx) error {
		return flags.Publish(context.Background(), tx, schema, change, phase, values, meta)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func list(t *testing.T, db *pgtest.DB, schema string) map[string]flags.Flag {
	t.Helper()
	l, err := flags.List(context.Background(), db.Pool, schema)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]flags.Flag{}
	for _, f := range l {
		m[f.Key] = f
	}
	return m
}

func TestPublishAndList(t *testing.T) {
	const schema = `Planner "State"`
	db := stateDB(t, schema)
	publish(t, db, schema, "users-email", "expand", phases.Flags{"users-email.read": "old", "users-email.write": "old"}, emailMeta)
	first := list(t, db, schema)
	if len(first) != 2 {
		t.Fatalf("flags: %v", first)
	}
	r := first["users-email.read"]
	if r.Variant != "old" || r.ChangeID != "users-email" || r.Phase != "expand" || r.Metadata["new_column"] != "email_address" || r.UpdatedAt.IsZero() {
		t.Errorf("read flag: %+v", r)
	}
	time.Sleep(10 * time.Millisecond)
	publish(t, db, schema, "users-email", "backfill", phases.Flags{"users-email.read": "old", "users-email.write": "both"}, emailMeta)
	second := list(t, db, schema)
	if got := second["users-email.read"]; got.Phase != "backfill" || !got.UpdatedAt.Equal(r.UpdatedAt) {
		t.Errorf("same variant republished: phase %q updated_at %v, want backfill and unchanged %v", got.Phase, got.UpdatedAt, r.UpdatedAt)
	}
	if got := second["users-email.write"]; got.Variant != "both" || !got.UpdatedAt.After(first["users-email.write"].UpdatedAt) {
		t.Errorf("changed variant: %+v, updated_at must move", got)
	}
}

func TestPublishRefusesUnknownVariants(t *testing.T) {
	db := stateDB(t, "planner")
	for _, values := range []phases.Flags{
		{"c.read": "both"},
		{"c.write": "yes"},
		{"c.read": "new", "c.write": ""},
	} {
		err := pgx.BeginFunc(context.Background(), db.Pool, func(tx pgx.Tx) error {
			return flags.Publish(context.Background(), tx, "planner", "c", "x", values, nil)
		})
		if err == nil {
			t.Errorf("Publish(%v): want an error", values)
		}
	}
	if l := list(t, db, "planner"); len(l) != 0 {
		t.Errorf("refused publish stored %v", l)
	}
}

func TestListWithoutTable(t *testing.T) {
	db := pgtest.NewDB(t)
	l, err := flags.List(context.Background(), db.Pool, "planner")
	if err != nil || l != nil {
		t.Fatalf("List on a database the planner never touched: %v, %v", l, err)
	}
}

// TestPublishNotifiesOnCommit: listeners hear of a publish when, and only
// when, its transaction commits.
func TestPublishNotifiesOnCommit(t *testing.T) {
	db := stateDB(t, "planner")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{flags.Channel("planner")}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := flags.Publish(ctx, tx, "planner", "c", "expand", phases.Flags{"c.read": "old"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wait := func() (string, error) {
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		n, err := conn.WaitForNotification(wctx)
		if err != nil {
			return "", err
		}
		return n.Payload, nil
	}
	if p, err := wait(); err == nil {
		t.Fatalf("notification %q from a rolled back publish", p)
	}
	publish(t, db, "planner", "c", "expand", phases.Flags{"c.read": "old"}, nil)
	if p, err := wait(); err != nil || p != "c" {
		t.Fatalf("after commit: payload %q, %v", p, err)
	}
}

func TestForget(t *testing.T) {
	db := stateDB(t, "planner")
	publish(t, db, "planner", "a", "expand", phases.Flags{"a.read": "old", "a.write": "old"}, nil)
	publish(t, db, "planner", "b", "expand", phases.Flags{"b.read": "old"}, nil)
	err := pgx.BeginFunc(context.Background(), db.Pool, func(tx pgx.Tx) error {
		return flags.Forget(context.Background(), tx, "planner", "a")
	})
	if err != nil {
		t.Fatal(err)
	}
	if l := list(t, db, "planner"); len(l) != 1 || l["b.read"].Variant != "old" {
		t.Errorf("after Forget(a): %v", l)
	}
}

func TestChannel(t *testing.T) {
	if got := flags.Channel("planner"); got != "planner.flags" {
		t.Errorf("Channel(planner) = %q", got)
	}
	long := flags.Channel(strings.Repeat("s", 70))
	if len(long) > 63 || long == flags.Channel(strings.Repeat("s", 71)) {
		t.Errorf("long schema channel %q: must fit 63 bytes and differ per schema", long)
	}
}

func TestVariants(t *testing.T) {
	cases := map[string][]string{"x.read": {"old", "new"}, "x.write": {"old", "both", "new"}, "x.other": nil}
	for key, want := range cases {
		if got := flags.Variants(key); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("Variants(%q) = %v, want %v", key, got, want)
		}
	}
}

// TestListThroughPooler: List works on an ordinary pool (pgx's default
// statement cache) through PgBouncer in transaction mode, as the flagd
// export and applications' own code use it.
func TestListThroughPooler(t *testing.T) {
	db := stateDB(t, "planner")
	publish(t, db, "planner", "users-email", "expand", phases.Flags{"users-email.read": "old"}, emailMeta)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pooled(t, db)+"&pool_max_conns=4")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				l, err := flags.List(ctx, pool, "planner")
				if err == nil && (len(l) != 1 || l[0].Variant != "old" || l[0].Metadata["table"] != "public.users") {
					err = fmt.Errorf("listed %+v", l)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

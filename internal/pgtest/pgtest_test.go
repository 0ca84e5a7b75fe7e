package pgtest

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestNewDBRunsSQL(t *testing.T) {
	db := NewDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id bigint PRIMARY KEY, v text)`)
	db.Exec(t, `INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g`)
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 100 {
		t.Fatalf("count = %d, %v", n, err)
	}
	t.Logf("PostgreSQL %d at %s", db.ServerVersion(t), db.Name)
}

func TestDatabasesAreIsolated(t *testing.T) {
	a, b := NewDB(t), NewDB(t)
	a.Exec(t, `CREATE TABLE only_in_a (id int)`)
	var exists bool
	if err := b.Pool.QueryRow(context.Background(), `SELECT to_regclass('only_in_a') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Fatalf("table leaked across databases: %v %v", exists, err)
	}
}

func TestMissingBinariesSaysWhatToInstall(t *testing.T) {
	t.Setenv("PLANNER_PG_BINDIR", t.TempDir())
	_, err := FindBinDir()
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("err = %v, want ErrNoBinaries", err)
	}
}

func TestPgBouncerTransactionModeSharesServerSessions(t *testing.T) {
	db := NewDB(t)
	url := NewPgBouncer(t, db, "transaction", 1)
	ctx := context.Background()
	a, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	b, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	var pa, pb int
	simple := pgx.QueryExecModeSimpleProtocol
	if err := a.QueryRow(ctx, `SELECT pg_backend_pid()`, simple).Scan(&pa); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(ctx, `SELECT pg_backend_pid()`, simple).Scan(&pb); err != nil {
		t.Fatal(err)
	}
	if pa != pb {
		t.Fatalf("two clients of a one-connection transaction pool ran on backends %d and %d", pa, pb)
	}
	var name string
	if err := a.QueryRow(ctx, `SELECT current_database()`, simple).Scan(&name); err != nil || name != db.Name {
		t.Fatalf("through the pooler: database %q, %v; want %q", name, err, db.Name)
	}
}

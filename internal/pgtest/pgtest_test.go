package pgtest

import (
	"context"
	"errors"
	"os"
	"testing"
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

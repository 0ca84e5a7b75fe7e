package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL points the tests at an existing server instead of a throwaway one.
// Its role needs CREATEDB; each test gets a database of its own there too.
const EnvURL = "PLANNER_TEST_DATABASE_URL"

var (
	shared     *Cluster
	sharedErr  error
	sharedOnce sync.Once
	dbCounter  atomic.Int64
)

// Main wraps testing.M: it runs the tests and stops the shared cluster (if a
// test started one). Use it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	// Shown by `go test -v`: proof that the tests ran against a real server.
	if n := dbCounter.Load(); n > 0 {
		if shared != nil {
			fmt.Printf("pgtest: PostgreSQL %d from %s: %d test databases\n", shared.Version, shared.BinDir, n)
		} else {
			fmt.Printf("pgtest: existing server from %s: %d test databases\n", EnvURL, n)
		}
	}
	if shared != nil {
		shared.Stop()
	}
	return code
}

// adminURL returns a URL to a maintenance database on the test server,
// starting the shared throwaway cluster on first use.
func adminURL() (string, error) {
	if u := os.Getenv(EnvURL); u != "" {
		return u, nil
	}
	sharedOnce.Do(func() { shared, sharedErr = Start(Options{TCP: true}) })
	if sharedErr != nil {
		return "", sharedErr
	}
	return shared.URL("postgres"), nil
}

// DB is a fresh database for one test.
type DB struct {
	URL  string
	Name string
	Pool *pgxpool.Pool
}

// NewDB creates an empty database for t and drops it when t ends. Version
// of the server is in DB.ServerVersion.
func NewDB(t testing.TB) *DB {
	t.Helper()
	db, drop, err := CreateDB()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Logf("pgtest: %v", err)
		}
	})
	return db
}

// CreateDB creates an empty database on the test server, for callers that
// are not a testing.TB (scripts); drop closes its pool and drops it.
func CreateDB() (db *DB, drop func() error, err error) {
	admin, err := adminURL()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", redact(admin), err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbCounter.Add(1))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		return nil, nil, fmt.Errorf("create database: %w", err)
	}
	dbURL, err := withDatabase(admin, name)
	if err != nil {
		return nil, nil, err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, nil, err
	}
	drop = func() error {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return fmt.Errorf("drop %s: %w", name, err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop %s: %w", name, err)
		}
		return nil
	}
	return &DB{URL: dbURL, Name: name, Pool: pool}, drop, nil
}

// Exec runs SQL statements on the test database and fails the test on error.
func (db *DB) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// ServerVersion returns the server's major version, e.g. 18.
func (db *DB) ServerVersion(t testing.TB) int {
	t.Helper()
	var num int
	if err := db.Pool.QueryRow(context.Background(), "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		t.Fatal(err)
	}
	return num / 10000
}

func withDatabase(raw, db string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("pgtest: %s must be a postgres:// URL", EnvURL)
	}
	u.Path = "/" + db
	return u.String(), nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// NewDB creates an empty database on c, a cluster of the test's own (for
// settings the shared test server lacks); the cluster's Stop removes it.
func (c *Cluster) NewDB(t testing.TB) *DB {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), dbCounter.Add(1))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	pool, err := pgxpool.New(ctx, c.URL(name))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return &DB{URL: c.URL(name), Name: name, Pool: pool}
}

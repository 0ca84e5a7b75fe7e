package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

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

// TestStandbyStreams starts a standby of a primary of its own (the shared
// cluster is left alone) and shows a row written on the primary replayed
// there, and replay paused with pg_wal_replay_pause() holding rows back.
func TestStandbyStreams(t *testing.T) {
	primary, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Stop()
	standby, err := StartStandby(primary)
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := pgx.Connect(ctx, primary.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	s, err := pgx.Connect(ctx, standby.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	var inRecovery bool
	if err := s.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("standby not in recovery: %v %v", inRecovery, err)
	}
	countOnStandby := func() int {
		var n int
		if err := s.QueryRow(ctx, `SELECT coalesce((SELECT count(*) FROM t), 0)`).Scan(&n); err != nil {
			return -1 // table not replayed yet
		}
		return n
	}
	waitFor := func(want int) {
		for countOnStandby() != want {
			if ctx.Err() != nil {
				t.Fatalf("standby has %d rows, want %d", countOnStandby(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if _, err := p.Exec(ctx, `CREATE TABLE t (id int); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	waitFor(1)
	if _, err := s.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, `INSERT INTO t VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := countOnStandby(); n != 1 {
		t.Fatalf("paused standby has %d rows, want 1", n)
	}
	if _, err := s.Exec(ctx, `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
	waitFor(2)
}

// A cluster and a pooler started by a process that is killed with kill -9
// are stopped and removed by their watchers.
func TestKilledProcessLeavesNothingBehind(t *testing.T) {
	if os.Getenv("PGTEST_HELPER") == "1" {
		c, err := Start(Options{})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		b, err := StartPgBouncer(c.Socket, c.Port, "transaction", 1, Superuser)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Printf("dirs %s %s\n", c.Dir, b.Dir)
		select {} // until killed
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledProcessLeavesNothingBehind$")
	cmd.Env = append(os.Environ(), "PGTEST_HELPER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "dirs ") {
		cmd.Process.Kill()
		t.Fatalf("helper said %q (%v)", line, err)
	}
	dirs := strings.Fields(strings.TrimPrefix(line, "dirs "))
	cmd.Process.Kill() // SIGKILL: no deferred cleanup runs
	cmd.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for _, d := range dirs {
		for {
			if _, err := os.Stat(d); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still there after the process was killed", d)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

package planner

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/internal/pgtest"
)

func TestBusyWhenAnotherPlannerHoldsTheLease(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	holder := *f.e
	l, err := holder.begin(ctx, "deploy-of-the-holder", "planner next")
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	f.e.Wait = 300 * time.Millisecond
	start := time.Now()
	_, err = f.e.Next(ctx, f.specs(t, renameSpec), "d1", false)
	host, _ := os.Hostname()
	for _, want := range []string{"held by " + host + " pid " + strconv.Itoa(os.Getpid()), "deploy deploy-of-the-holder", "planner next"} {
		if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want ErrBusy naming the holder (%q)", err, want)
		}
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("gave up after %s, before --wait", waited)
	}
	if _, err := f.e.Rollback(ctx, "users-email-rename", ""); !errors.Is(err, ErrBusy) {
		t.Fatalf("rollback: %v, want ErrBusy", err)
	}
	// Another state schema is another lease.
	f.e.Schema = "other_state"
	if _, err := f.e.Next(ctx, f.specs(t, renameSpec), "d1", false); err != nil {
		t.Fatalf("a planner with another state schema was blocked: %v", err)
	}
}

// A lease whose holder stops renewing it (killed with kill -9) is taken over
// once it expires, long before --wait; the killed holder's work resumes.
func TestExpiredLeaseIsTakenOver(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	dead := *f.e
	dead.LeaseTTL = time.Second
	l, err := dead.begin(ctx, "d0", "planner next")
	if err != nil {
		t.Fatal(err)
	}
	l.stop() // renewals end as with kill -9; the row stays
	<-l.stopped
	f.e.Wait = time.Minute
	start := time.Now()
	f.next(t, f.specs(t, renameSpec), "d1")
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("took over after %s; the lease expires after 1s", waited)
	}
	var holder string
	if err := f.db.Pool.QueryRow(ctx, `SELECT deploy_id FROM planner.lease`).Scan(&holder); err == nil {
		t.Fatalf("lease still held (by deploy %s) after the run", holder)
	}
}

// The lease survives its holder's connections being terminated (it is a
// row, renewed on any connection), and ends the work promptly, with the
// reason, when another planner took it over.
func TestLeaseSurvivesTerminatedBackendsAndStopsWhenTakenOver(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	f.e.LeaseTTL = time.Second
	l, err := f.e.begin(ctx, "d1", "planner next")
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	f.db.Exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '' AND pid <> pg_backend_pid() AND datname = current_database()`)
	time.Sleep(2 * time.Second)
	if err := l.lost(); err != nil {
		t.Fatalf("lease lost after its backends were terminated: %v", err)
	}
	f.db.Exec(t, `UPDATE planner.lease SET token = 'someone else'`)
	select {
	case <-l.ctx.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the work's context was not cancelled after the lease was taken over")
	}
	if err := l.lost(); err == nil || !strings.Contains(err.Error(), "another planner took it over") {
		t.Fatalf("lost() = %v", err)
	}
}

// Behind a transaction-mode pooler the planner refuses before it changes
// anything; through a session-mode pool it works.
func TestPoolerModes(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	pooled := func(mode string) *Engine {
		pool, err := pgxpool.New(ctx, pgtest.NewPgBouncer(t, f.db, mode, 2))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return testEngine(pool)
	}
	e := pooled("transaction")
	_, err := e.Next(ctx, f.specs(t, renameSpec), "d1", false)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "transaction or statement mode") || !strings.Contains(err.Error(), "session mode") {
		t.Fatalf("next through a transaction pool: %v, want ErrConfig saying to use a direct or session-mode URL", err)
	}
	if _, err := e.Rollback(ctx, "users-email-rename", "r1"); !errors.Is(err, ErrConfig) {
		t.Fatalf("rollback through a transaction pool: %v, want ErrConfig", err)
	}
	if n := engCount(t, f.db, `SELECT count(*) FROM pg_namespace WHERE nspname = 'planner'`); n != 0 {
		t.Fatal("the refused run created the state schema")
	}
	e = pooled("session")
	r, err := e.Next(ctx, f.specs(t, renameSpec), "d1", false)
	if err != nil || r.AdvancedCount() != 1 {
		t.Fatalf("next through a session pool: %v %+v", err, r)
	}
}

// Two planners started at the same moment, at every phase of changes that
// build indexes concurrently (CREATE INDEX CONCURRENTLY waits for every
// older snapshot, so a planner blocked in a query would deadlock the other),
// both finish promptly, and each deploy advances each change once.
func TestConcurrentPlannersNeitherBlocksTheOther(t *testing.T) {
	f := newEngineFixture(t)
	f.db.Exec(t, `CREATE UNIQUE INDEX users_email_key ON users (email)`)
	specs := f.specs(t, `
changes:
  - id: users-email-rename
    kind: rename_column
    table: users
    column: email
    to: email_address
  - id: orders-created-at-index
    kind: add_index
    table: orders
    name: orders_created_at_idx
    columns: [created_at]
  - id: accounts-login-unique
    kind: add_unique
    table: app."User Accounts"
    name: user_accounts_login_key
    columns: [login]
`)
	ctx := context.Background()
	engines := make([]*Engine, 2)
	for i := range engines {
		pool, err := pgxpool.New(ctx, f.db.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		engines[i] = testEngine(pool)
		engines[i].Wait = 2 * time.Minute // a deadlock shows as a run far past the bound below
	}
	const bound = 30 * time.Second
	for deploy := 1; deploy <= 12; deploy++ {
		id := "d" + strconv.Itoa(deploy)
		start := make(chan struct{})
		type result struct {
			r    *Report
			err  error
			took time.Duration
		}
		results := make(chan result, 2)
		for _, e := range engines {
			go func() {
				<-start
				t0 := time.Now()
				r, err := e.Next(ctx, specs, id, false)
				results <- result{r, err, time.Since(t0)}
			}()
		}
		close(start)
		advanced := map[string]int{}
		done := 0
		for range engines {
			res := <-results
			if res.err != nil {
				t.Fatalf("deploy %s: %v", id, res.err)
			}
			if res.took > bound {
				t.Fatalf("deploy %s: a planner took %s", id, res.took)
			}
			for _, c := range res.r.Changes {
				if c.Action == Advanced {
					advanced[c.ID]++
				}
				if c.Action == Done {
					done++
				}
			}
		}
		for change, n := range advanced {
			if n != 1 {
				t.Fatalf("deploy %s advanced %s %d times", id, change, n)
			}
		}
		if done == 2*len(specs) {
			var ups int
			if err := f.db.Pool.QueryRow(ctx, `SELECT count(*) FROM planner.history WHERE direction = 'up' AND finished IS NOT NULL
				GROUP BY change, deploy_id ORDER BY count(*) DESC LIMIT 1`).Scan(&ups); err != nil || ups != 1 {
				t.Fatalf("a change advanced %d times in one deploy (%v)", ups, err)
			}
			return
		}
	}
	t.Fatal("changes not done after 12 deploys")
}

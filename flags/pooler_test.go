package flags_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

// logRecords is a slog handler that keeps what the provider logs.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

// at returns the messages logged at level, and those above it if orAbove.
func (l *logRecords) at(level slog.Level, orAbove bool) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if r.Level == level || orAbove && r.Level > level {
			out = append(out, r.Message)
		}
	}
	return out
}

// pooled starts PgBouncer in transaction mode with two server connections
// in front of db, and keeps three other clients busy through it, so that the
// provider's consecutive transactions land on different server connections,
// as they do in production.
func pooled(t *testing.T, db *pgtest.DB) string {
	t.Helper()
	url := pgtest.NewPgBouncer(t, db, "transaction", 2)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 3
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	ctx, cancel := context.WithCancel(context.Background())
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				pool.Exec(ctx, `SELECT $1::int`, 1)
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait(); pool.Close() })
	return url
}

// TestProviderThroughTransactionPooler: with default settings through
// PgBouncer in transaction mode the provider serves every change within the
// poll interval, never goes STALE or ERROR, says once that it polls, and
// logs nothing else.
func TestProviderThroughTransactionPooler(t *testing.T) {
	db := stateDB(t, "planner")
	url := pooled(t, db)
	var logs logRecords
	c := register(t, flags.NewProvider(url, flags.WithPollInterval(pollInterval), flags.WithLogger(slog.New(&logs))))
	var ev events
	ev.watch(c, openfeature.ProviderStale, openfeature.ProviderError)

	for i, write := range []string{flags.Old, flags.Both, flags.New, flags.Both, flags.Old} {
		publish(t, db, "planner", "users-email", "phase", phases.Flags{"users-email.write": write}, emailMeta)
		took := waitValue(t, c, "users-email.write", write, pollInterval+pollSlack)
		t.Logf("change %d visible after %s (poll %s)", i+1, took, pollInterval)
	}
	if got := ev.types(); len(got) != 0 {
		t.Errorf("events through the pooler: %v, want none", got)
	}
	if warn := logs.at(slog.LevelWarn, true); len(warn) != 0 {
		t.Errorf("warnings through a healthy pooler: %q", warn)
	}
	info := logs.at(slog.LevelInfo, false)
	if len(info) != 1 || !strings.Contains(info[0], "WithListenURL") || !strings.Contains(info[0], pollInterval.String()) {
		t.Errorf("info lines %q, want one saying it polls, naming WithListenURL and the bound %s", info, pollInterval)
	}
}

// TestProviderListenURLThroughPooler: reading through the pooler and
// listening on a direct URL, changes arrive through NOTIFY: the poll
// interval is a minute, so only LISTEN explains a change seen within a
// second.
func TestProviderListenURLThroughPooler(t *testing.T) {
	db := stateDB(t, "planner")
	url := pooled(t, db)
	var logs logRecords
	c := register(t, flags.NewProvider(url, flags.WithListenURL(db.URL), flags.WithPollInterval(time.Minute),
		flags.WithLogger(slog.New(&logs))))
	var ev events
	ev.watch(c, openfeature.ProviderStale, openfeature.ProviderError)

	for i, write := range []string{flags.Old, flags.Both, flags.New} {
		publish(t, db, "planner", "users-email", "phase", phases.Flags{"users-email.write": write}, emailMeta)
		took := waitValue(t, c, "users-email.write", write, time.Second)
		t.Logf("change %d visible after %s", i+1, took)
	}
	if got := ev.types(); len(got) != 0 {
		t.Errorf("events: %v, want none", got)
	}
	if got := logs.at(slog.LevelInfo, true); len(got) != 0 {
		t.Errorf("logged %q, want nothing", got)
	}
}

// TestProviderListenURLThatPools: a listen URL that itself goes through the
// pooler cannot deliver notifications: the provider warns once and polls.
func TestProviderListenURLThatPools(t *testing.T) {
	db := stateDB(t, "planner")
	url := pooled(t, db)
	var logs logRecords
	c := register(t, flags.NewProvider(url, flags.WithListenURL(url), flags.WithPollInterval(pollInterval),
		flags.WithLogger(slog.New(&logs))))
	publish(t, db, "planner", "c", "expand", phases.Flags{"c.read": flags.New}, nil)
	waitValue(t, c, "c.read", flags.New, pollInterval+pollSlack)
	warn := logs.at(slog.LevelWarn, true)
	if len(warn) != 1 || !strings.Contains(warn[0], "WithListenURL") || !strings.Contains(warn[0], "direct or session-mode") {
		t.Errorf("warnings %q, want one saying the listen URL pools", warn)
	}
}

// TestProviderListensThroughSessionPooler: a pooler in session mode keeps
// one server session per client, so LISTEN works there and the provider
// uses it: with a poll interval of a minute, only NOTIFY explains a change
// seen within a second.
func TestProviderListensThroughSessionPooler(t *testing.T) {
	db := stateDB(t, "planner")
	url := pgtest.NewPgBouncer(t, db, "session", 5)
	var logs logRecords
	c := register(t, flags.NewProvider(url, flags.WithPollInterval(time.Minute), flags.WithLogger(slog.New(&logs))))
	publish(t, db, "planner", "c", "expand", phases.Flags{"c.read": flags.New}, nil)
	waitValue(t, c, "c.read", flags.New, time.Second)
	if got := logs.at(slog.LevelInfo, true); len(got) != 0 {
		t.Errorf("logged %q, want nothing", got)
	}
}

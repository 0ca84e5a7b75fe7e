package flags_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// events records a client's provider events.
type events struct {
	mu   sync.Mutex
	seen []openfeature.EventDetails
	kind []openfeature.EventType
}

func (e *events) watch(c *openfeature.Client, types ...openfeature.EventType) {
	for _, typ := range types {
		cb := func(d openfeature.EventDetails) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.seen = append(e.seen, d)
			e.kind = append(e.kind, typ)
		}
		c.AddHandler(typ, &cb)
	}
}

// waitFor waits until an event of type typ satisfying ok arrives.
func (e *events) waitFor(t *testing.T, typ openfeature.EventType, timeout time.Duration, ok func(openfeature.EventDetails) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		for i, d := range e.seen {
			if e.kind[i] == typ && (ok == nil || ok(d)) {
				e.mu.Unlock()
				return
			}
		}
		e.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %s event within %s (saw %v)", typ, timeout, e.types())
}

func (e *events) types() []openfeature.EventType {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.kind)
}

// register installs p under a domain of the test's own and returns a client.
func register(t *testing.T, p *flags.Provider) *openfeature.Client {
	t.Helper()
	domain := t.Name()
	t.Cleanup(func() {
		_ = openfeature.SetNamedProviderAndWait(domain, openfeature.NoopProvider{})
		p.Shutdown()
	})
	if err := openfeature.SetNamedProviderAndWait(domain, p); err != nil {
		t.Fatal(err)
	}
	return openfeature.NewClient(domain)
}

// waitValue polls the client until key evaluates to want; it returns how
// long that took.
func waitValue(t *testing.T, c *openfeature.Client, key, want string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := c.String(context.Background(), key, "default", openfeature.EvaluationContext{})
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s = %q after %s, want %q", key, got, timeout, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestProviderResolves(t *testing.T) {
	db := stateDB(t, "planner")
	publish(t, db, "planner", "users-email", "dual_write", phases.Flags{"users-email.read": "new", "users-email.write": "both"}, emailMeta)
	c := register(t, flags.NewProvider(db.URL, flags.WithLogger(quiet)))
	ctx := context.Background()
	ec := openfeature.EvaluationContext{}

	d, err := c.StringValueDetails(ctx, "users-email.read", "old", ec)
	if err != nil || d.Value != "new" || d.Variant != "new" || d.Reason != openfeature.StaticReason {
		t.Errorf("read: %+v, %v", d, err)
	}
	for k, want := range map[string]string{"change_id": "users-email", "phase": "dual_write", "table": "public.users",
		"old_column": "email", "new_column": "email_address"} {
		if got, _ := d.FlagMetadata.GetString(k); got != want {
			t.Errorf("metadata %s = %q, want %q", k, got, want)
		}
	}
	if ts, _ := d.FlagMetadata.GetString("updated_at"); ts == "" {
		t.Error("metadata updated_at missing")
	}

	booleans := map[string]bool{"users-email.read_new": true, "users-email.write_old": true, "users-email.write_new": true}
	for key, want := range booleans {
		bd, err := c.BooleanValueDetails(ctx, key, !want, ec)
		if err != nil || bd.Value != want || bd.Reason != openfeature.StaticReason {
			t.Errorf("%s: %+v, %v", key, bd, err)
		}
		if from, _ := bd.FlagMetadata.GetString("derived_from"); from == "" {
			t.Errorf("%s: no derived_from metadata", key)
		}
	}

	errs := []struct {
		name string
		eval func() (any, openfeature.ErrorCode)
		want openfeature.ErrorCode
		def  any
	}{
		{"unknown key", func() (any, openfeature.ErrorCode) {
			d, _ := c.StringValueDetails(ctx, "nope.read", "old", ec)
			return d.Value, d.ErrorCode
		}, openfeature.FlagNotFoundCode, "old"},
		{"unknown boolean key", func() (any, openfeature.ErrorCode) {
			d, _ := c.BooleanValueDetails(ctx, "nope.read_new", false, ec)
			return d.Value, d.ErrorCode
		}, openfeature.FlagNotFoundCode, false},
		{"string flag as boolean", func() (any, openfeature.ErrorCode) {
			d, _ := c.BooleanValueDetails(ctx, "users-email.read", false, ec)
			return d.Value, d.ErrorCode
		}, openfeature.TypeMismatchCode, false},
		{"boolean flag as string", func() (any, openfeature.ErrorCode) {
			d, _ := c.StringValueDetails(ctx, "users-email.read_new", "x", ec)
			return d.Value, d.ErrorCode
		}, openfeature.TypeMismatchCode, "x"},
		{"string flag as int", func() (any, openfeature.ErrorCode) {
			d, _ := c.IntValueDetails(ctx, "users-email.write", 7, ec)
			return d.Value, d.ErrorCode
		}, openfeature.TypeMismatchCode, int64(7)},
		{"string flag as float", func() (any, openfeature.ErrorCode) {
			d, _ := c.FloatValueDetails(ctx, "users-email.write", 1.5, ec)
			return d.Value, d.ErrorCode
		}, openfeature.TypeMismatchCode, 1.5},
		{"object of unknown key", func() (any, openfeature.ErrorCode) {
			d, _ := c.ObjectValueDetails(ctx, "nope", "o", ec)
			return d.Value, d.ErrorCode
		}, openfeature.FlagNotFoundCode, "o"},
	}
	for _, e := range errs {
		v, code := e.eval()
		if code != e.want || v != e.def {
			t.Errorf("%s: code %q value %v, want %q with the default %v", e.name, code, v, e.want, e.def)
		}
	}
}

// TestProviderServesEachSnapshotsDetails: the answers are built once per
// snapshot, so after a change every evaluation, stored and derived flags
// alike, must carry the new snapshot's variant and metadata, and a
// forgotten change's flags must be gone.
func TestProviderServesEachSnapshotsDetails(t *testing.T) {
	db := stateDB(t, "planner")
	publish(t, db, "planner", "users-email", "expand", phases.Flags{"users-email.read": "old", "users-email.write": "old"}, emailMeta)
	c := register(t, flags.NewProvider(db.URL, flags.WithPollInterval(100*time.Millisecond), flags.WithLogger(quiet)))
	ctx := context.Background()
	ec := openfeature.EvaluationContext{}
	meta := func(d openfeature.EvaluationDetails, k string) string {
		v, _ := d.FlagMetadata.GetString(k)
		return v
	}

	first, err := c.StringValueDetails(ctx, "users-email.read", "x", ec)
	if err != nil || first.Variant != "old" || meta(first.EvaluationDetails, "phase") != "expand" {
		t.Fatalf("before the change: %+v, %v", first, err)
	}
	b, err := c.BooleanValueDetails(ctx, "users-email.read_new", true, ec)
	if err != nil || b.Value || b.Variant != flags.Off || meta(b.EvaluationDetails, "phase") != "expand" {
		t.Fatalf("read_new before the change: %+v, %v", b, err)
	}

	moved := map[string]string{"change_id": "users-email", "table": "public.users", "old_column": "email", "new_column": "mail"}
	publish(t, db, "planner", "users-email", "dual_write", phases.Flags{"users-email.read": "new", "users-email.write": "both"}, moved)
	waitValue(t, c, "users-email.read", "new", 5*time.Second)

	d, err := c.StringValueDetails(ctx, "users-email.read", "x", ec)
	if err != nil || d.Variant != "new" || d.Reason != openfeature.StaticReason {
		t.Errorf("after the change: %+v, %v", d, err)
	}
	for k, want := range map[string]string{"phase": "dual_write", "new_column": "mail", "key": "users-email.read"} {
		if got := meta(d.EvaluationDetails, k); got != want {
			t.Errorf("after the change: metadata %s = %q, want %q", k, got, want)
		}
	}
	if meta(d.EvaluationDetails, "updated_at") == meta(first.EvaluationDetails, "updated_at") {
		t.Errorf("after the change: updated_at still %s", meta(d.EvaluationDetails, "updated_at"))
	}
	// one value for every evaluation context: targeting changes nothing
	targeted := openfeature.NewEvaluationContext("user-42", map[string]any{"region": "eu", "plan": "free"})
	if td, err := c.StringValueDetails(ctx, "users-email.read", "x", targeted); err != nil || td.Value != "new" ||
		td.Reason != openfeature.StaticReason || meta(td.EvaluationDetails, "phase") != "dual_write" {
		t.Errorf("with a targeting key and attributes: %+v, %v", td, err)
	}
	for key, want := range map[string]bool{"users-email.read_new": true, "users-email.write_old": true, "users-email.write_new": true} {
		bd, err := c.BooleanValueDetails(ctx, key, !want, ec)
		variant := flags.Off
		if want {
			variant = flags.On
		}
		if err != nil || bd.Value != want || bd.Variant != variant || bd.Reason != openfeature.StaticReason {
			t.Errorf("%s after the change: %+v, %v", key, bd, err)
		}
		if got := meta(bd.EvaluationDetails, "phase"); got != "dual_write" {
			t.Errorf("%s after the change: metadata phase %q, want dual_write", key, got)
		}
		if got := meta(bd.EvaluationDetails, "new_column"); got != "mail" {
			t.Errorf("%s after the change: metadata new_column %q, want mail", key, got)
		}
	}

	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return flags.Forget(ctx, tx, "planner", "users-email") })
	if err != nil {
		t.Fatal(err)
	}
	waitValue(t, c, "users-email.read", "default", 5*time.Second) // waitValue's default: the flag is gone
	for _, key := range []string{"users-email.read", "users-email.write"} {
		if d, _ := c.StringValueDetails(ctx, key, "gone", ec); d.ErrorCode != openfeature.FlagNotFoundCode {
			t.Errorf("%s after forget: %+v, want FLAG_NOT_FOUND", key, d)
		}
	}
	if bd, _ := c.BooleanValueDetails(ctx, "users-email.write_new", false, ec); bd.ErrorCode != openfeature.FlagNotFoundCode {
		t.Errorf("write_new after forget: %+v, want FLAG_NOT_FOUND", bd)
	}
}

// TestProviderSeesPublishThroughNotify: the poll interval is a minute, so
// only LISTEN/NOTIFY can deliver the change within one second. Connected
// directly, the provider finds no pooler and logs nothing.
func TestProviderSeesPublishThroughNotify(t *testing.T) {
	db := stateDB(t, "planner")
	publish(t, db, "planner", "users-email", "expand", phases.Flags{"users-email.read": "old", "users-email.write": "old"}, emailMeta)
	var logs logRecords
	c := register(t, flags.NewProvider(db.URL, flags.WithPollInterval(time.Minute), flags.WithLogger(slog.New(&logs))))
	var ev events
	ev.watch(c, openfeature.ProviderConfigChange)
	waitValue(t, c, "users-email.write", "old", time.Second)

	publish(t, db, "planner", "users-email", "dual_write", phases.Flags{"users-email.read": "new", "users-email.write": "both"}, emailMeta)
	took := waitValue(t, c, "users-email.write", "both", time.Second)
	t.Logf("publish visible after %s", took)
	if got := c.String(context.Background(), "users-email.read", "", openfeature.EvaluationContext{}); got != "new" {
		t.Errorf("read = %q", got)
	}
	ev.waitFor(t, openfeature.ProviderConfigChange, time.Second, func(d openfeature.EventDetails) bool {
		return slices.Contains(d.FlagChanges, "users-email.write") && slices.Contains(d.FlagChanges, "users-email.read") &&
			slices.Contains(d.FlagChanges, "users-email.write_new")
	})
	if got := logs.at(slog.LevelInfo, true); len(got) != 0 {
		t.Errorf("logged %q, want nothing", got)
	}
}

// TestProviderListenSurvivesPollTimeouts: waiting for a notification times
// out at every poll interval; the connection must stay usable (no STALE) and
// still receive notifications.
func TestProviderListenSurvivesPollTimeouts(t *testing.T) {
	db := stateDB(t, "planner")
	c := register(t, flags.NewProvider(db.URL, flags.WithPollInterval(50*time.Millisecond), flags.WithLogger(quiet)))
	var ev events
	ev.watch(c, openfeature.ProviderStale, openfeature.ProviderError)
	time.Sleep(time.Second) // about 20 timeouts
	if got := ev.types(); len(got) != 0 {
		t.Fatalf("events while idle: %v", got)
	}
	var backends int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE application_name = 'planner-flags' AND datname = current_database()`).Scan(&backends); err != nil {
		t.Fatal(err)
	}
	if backends != 1 {
		t.Errorf("%d provider connections, want 1 (no reconnects)", backends)
	}
	publish(t, db, "planner", "c", "expand", phases.Flags{"c.read": "old"}, nil)
	waitValue(t, c, "c.read", "old", time.Second)
}

// pollSlack is what a change may take beyond the poll interval to reach a
// provider that only polls: the reload query (at worst twice: one that
// began just before the publish committed, then the next) and goroutine
// scheduling on a busy machine under -race. The tests poll every
// pollInterval, more than the slack: a provider that skipped a poll fails.
const (
	pollInterval = time.Second
	pollSlack    = 700 * time.Millisecond
)

// TestProviderPollsWithoutNotify: with LISTEN off a change shows within the
// poll interval.
func TestProviderPollsWithoutNotify(t *testing.T) {
	db := stateDB(t, "planner")
	const poll = pollInterval
	c := register(t, flags.NewProvider(db.URL, flags.WithoutListen(), flags.WithPollInterval(poll), flags.WithLogger(quiet)))
	if got := c.String(context.Background(), "users-email.read", "dflt", openfeature.EvaluationContext{}); got != "dflt" {
		t.Fatalf("before any publish: %q", got)
	}
	publish(t, db, "planner", "users-email", "expand", phases.Flags{"users-email.read": "old"}, emailMeta)
	took := waitValue(t, c, "users-email.read", "old", poll+pollSlack)
	t.Logf("publish visible after %s (poll %s)", took, poll)
}

// TestProviderOutage: while the database refuses connections the provider
// serves the last snapshot (reason CACHED) and is STALE; when the database
// is back it is READY and current again.
func TestProviderOutage(t *testing.T) {
	db := stateDB(t, "planner")
	publish(t, db, "planner", "users-email", "expand", phases.Flags{"users-email.read": "old", "users-email.write": "old"}, emailMeta)
	p := flags.NewProvider(db.URL, flags.WithPollInterval(200*time.Millisecond), flags.WithLogger(quiet))
	c := register(t, p)
	var ev events
	ev.watch(c, openfeature.ProviderStale, openfeature.ProviderReady, openfeature.ProviderConfigChange)
	ctx := context.Background()

	admin, err := db.Pool.Acquire(ctx) // survives while new connections are refused
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Release()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := admin.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	allowConnections(t, db, false)
	exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'planner-flags' AND datname = current_database()`)

	ev.waitFor(t, openfeature.ProviderStale, 10*time.Second, nil)
	if s := c.State(); s != openfeature.StaleState {
		t.Errorf("client state %s, want STALE", s)
	}
	d, err := c.StringValueDetails(ctx, "users-email.read", "x", openfeature.EvaluationContext{})
	if err != nil || d.Value != "old" || d.Reason != openfeature.CachedReason {
		t.Errorf("during the outage: %+v, %v; want the last snapshot, reason CACHED", d, err)
	}
	bd, err := c.BooleanValueDetails(ctx, "users-email.write_old", false, openfeature.EvaluationContext{})
	if from, _ := bd.FlagMetadata.GetString("derived_from"); err != nil || !bd.Value || bd.Reason != openfeature.CachedReason || from != "users-email.write" {
		t.Errorf("during the outage: %+v, %v; want the last snapshot's write_old, reason CACHED", bd, err)
	}
	// a publish during the outage (through the surviving connection)
	err = pgx.BeginFunc(ctx, admin, func(tx pgx.Tx) error {
		return flags.Publish(ctx, tx, "planner", "users-email", "dual_write",
			phases.Flags{"users-email.read": "new", "users-email.write": "both"}, emailMeta)
	})
	if err != nil {
		t.Fatal(err)
	}
	allowConnections(t, db, true)

	ev.waitFor(t, openfeature.ProviderReady, 15*time.Second, func(d openfeature.EventDetails) bool {
		return d.Message != "provider is in ready state" // not the replay on registration
	})
	waitValue(t, c, "users-email.read", "new", 5*time.Second)
	d, _ = c.StringValueDetails(ctx, "users-email.read", "x", openfeature.EvaluationContext{})
	if d.Reason != openfeature.StaticReason || c.State() != openfeature.ReadyState {
		t.Errorf("after recovery: reason %s state %s", d.Reason, c.State())
	}
	ev.waitFor(t, openfeature.ProviderConfigChange, 5*time.Second, nil)
}

// allowConnections opens or closes db to new connections (from the
// maintenance database: PostgreSQL refuses it for the current one).
func allowConnections(t *testing.T, db *pgtest.DB, allow bool) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	sql := fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %t", pgx.Identifier{db.Name}.Sanitize(), allow)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
	if !allow {
		// reopen even when the test fails, so the database can be dropped
		t.Cleanup(func() { allowConnections(t, db, true) })
	}
}

// TestProviderStartsWithoutDatabase: Init fails, evaluations answer the
// defaults without panicking, the retries warn once and then stay quiet,
// and the provider becomes READY once the database is reachable.
func TestProviderStartsWithoutDatabase(t *testing.T) {
	db := stateDB(t, "planner")
	publish(t, db, "planner", "c", "expand", phases.Flags{"c.read": "new"}, nil)
	ctx := context.Background()
	allowConnections(t, db, false)
	var logs logRecords
	p := flags.NewProvider(db.URL, flags.WithLogger(slog.New(&logs)), flags.WithPollInterval(200*time.Millisecond))
	domain := t.Name()
	t.Cleanup(func() {
		_ = openfeature.SetNamedProviderAndWait(domain, openfeature.NoopProvider{})
		p.Shutdown()
	})
	if err := openfeature.SetNamedProviderAndWait(domain, p); err == nil {
		t.Fatal("SetNamedProviderAndWait: want an error while the database refuses connections")
	}
	c := openfeature.NewClient(domain)
	var ev events
	ev.watch(c, openfeature.ProviderReady)
	if got := flags.Columns(ctx, c, "c", "a", "b"); got.Read != "a" || len(got.Write) != 1 || got.Write[0] != "a" {
		t.Errorf("Columns with the provider in error: %+v, want the old column", got)
	}
	time.Sleep(2 * time.Second) // several retries (the backoff starts at 100ms)
	if warn, retries := logs.at(slog.LevelWarn, true), logs.at(slog.LevelDebug, false); len(warn) != 1 || len(retries) < 3 {
		t.Errorf("while the database refuses: warnings %q and %d retries at debug, want one warning and several retries", warn, len(retries))
	}
	allowConnections(t, db, true)
	ev.waitFor(t, openfeature.ProviderReady, 15*time.Second, nil)
	waitValue(t, c, "c.read", "new", 5*time.Second)
}

// TestProviderNeverPanics: evaluations before Init, after Shutdown and with
// odd keys answer the default.
func TestProviderNeverPanics(t *testing.T) {
	p := flags.NewProvider("postgres://127.0.0.1:1/none?connect_timeout=1", flags.WithLogger(quiet))
	ctx := context.Background()
	for _, key := range []string{"", ".read", "x.read", "\x00", "x.read_new"} {
		if d := p.StringEvaluation(ctx, key, "d", nil); d.Value != "d" || d.Error() == nil {
			t.Errorf("%q before Init: %+v", key, d)
		}
		if d := p.BooleanEvaluation(ctx, key, true, nil); d.Value != true || d.Error() == nil {
			t.Errorf("%q before Init: %+v", key, d)
		}
	}
	p.Shutdown() // before Init: no-op
	if got := flags.Columns(ctx, nil, "c", "a", "b"); got.Read != "a" {
		t.Errorf("Columns(nil client) = %+v", got)
	}
}

func TestColumns(t *testing.T) {
	db := stateDB(t, "planner")
	c := register(t, flags.NewProvider(db.URL, flags.WithLogger(quiet)))
	cases := []struct {
		phase       string
		read, write string // "" publishes nothing
		wantRead    string
		wantWrite   []string
	}{
		{"", "", "", "email", []string{"email"}},
		{"expand", "old", "old", "email", []string{"email"}},
		{"dual_write", "new", "both", "email_address", []string{"email", "email_address"}},
		{"enforce", "new", "new", "email_address", []string{"email_address"}},
		{"rollback enforce", "new", "both", "email_address", []string{"email", "email_address"}},
	}
	for _, tc := range cases {
		if tc.read != "" {
			publish(t, db, "planner", "users-email", tc.phase, phases.Flags{"users-email.read": tc.read, "users-email.write": tc.write}, emailMeta)
			waitValue(t, c, "users-email.write", tc.write, 5*time.Second)
			waitValue(t, c, "users-email.read", tc.read, 5*time.Second)
		}
		got := flags.Columns(context.Background(), c, "users-email", "email", "email_address")
		if got.Read != tc.wantRead || !slices.Equal(got.Write, tc.wantWrite) {
			t.Errorf("%s: %+v, want read %s write %v", tc.phase, got, tc.wantRead, tc.wantWrite)
		}
		if !got.Writes(tc.wantWrite[0]) {
			t.Errorf("%s: Writes(%s) false", tc.phase, tc.wantWrite[0])
		}
	}
	// a client of a domain without a provider (the SDK's no-op) answers old
	if got := flags.Columns(context.Background(), openfeature.NewClient(t.Name()+"-none"), "users-email", "email", "email_address"); got.Read != "email" {
		t.Errorf("no provider: %+v", got)
	}
}

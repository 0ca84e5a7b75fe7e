package planner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/pgtest"
)

// engineFixture is a database with the demo tables and an engine on it.
type engineFixture struct {
	db  *pgtest.DB
	e   *Engine
	dir string
}

const fixtureTables = `
CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, name text, legacy_flags int,
	created_at timestamptz NOT NULL DEFAULT '2026-01-01');
CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint, total numeric(12,2) NOT NULL DEFAULT 0,
	status text NOT NULL DEFAULT 'open', created_at timestamptz);
CREATE SCHEMA app;
CREATE TABLE app."User Accounts" (id bigserial PRIMARY KEY, login text);
INSERT INTO users (email, name, legacy_flags)
	SELECT 'user' || g || '@example.com', CASE WHEN g % 7 = 0 THEN NULL ELSE 'name ' || g END, g % 3 FROM generate_series(1, 2000) g;
INSERT INTO orders (user_id, total, status, created_at)
	SELECT 1 + g % 2000, (g % 500) * 1.25, CASE WHEN g % 4 = 0 THEN 'open' ELSE 'closed' END,
	       '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 2000) g;
INSERT INTO app."User Accounts" (login) SELECT 'login' || g FROM generate_series(1, 2000) g;
`

// testLog sends the engine's log to the test's.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newEngineFixture(t *testing.T) *engineFixture {
	t.Helper()
	db := pgtest.NewDB(t)
	db.Exec(t, fixtureTables)
	return &engineFixture{db: db, e: testEngine(db.Pool), dir: t.TempDir()}
}

func testEngine(pool *pgxpool.Pool) *Engine {
	// No purge delay: the tests drive changes through every phase.
	return &Engine{Pool: pool, LockTimeout: 500 * time.Millisecond, StatementTimeout: 30 * time.Second,
		Retries: 8, Wait: 60 * time.Second, PurgeAfter: -1}
}

// specs writes yaml to a spec file and loads it.
func (f *engineFixture) specs(t *testing.T, yaml string) []Spec {
	t.Helper()
	path := filepath.Join(f.dir, "changes.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	specs, err := Load(path)
	if err != nil {
		t.Fatalf("load specs: %v", err)
	}
	return specs
}

func (f *engineFixture) next(t *testing.T, specs []Spec, deploy string) *Report {
	t.Helper()
	r, err := f.e.Next(context.Background(), specs, deploy, false)
	if err != nil {
		t.Fatalf("next (deploy %s): %v", deploy, err)
	}
	return r
}

func reportOf(t *testing.T, r *Report, id string) ChangeReport {
	t.Helper()
	for _, c := range r.Changes {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no report for change %s in %+v", id, r.Changes)
	return ChangeReport{}
}

func (f *engineFixture) change(t *testing.T, id string) *ChangeState {
	t.Helper()
	c, err := f.e.state().change(context.Background(), f.db.Pool, id)
	if err != nil || c == nil {
		t.Fatalf("change %s: %v %v", id, c, err)
	}
	return c
}

// schemaOf describes tables (triggers by their definition) and every
// function (by its body) from the catalogs.
func schemaOf(t *testing.T, db *pgtest.DB, tables ...string) string {
	t.Helper()
	var out []string
	for _, table := range tables {
		var s string
		// A table kind's stairway names tables that do not exist at some
		// steps, and views (a renamed table's old name).
		var kind *string
		var viewDef, acl *string
		if err := db.Pool.QueryRow(context.Background(), `SELECT relkind::text, pg_get_viewdef(oid), relacl::text FROM pg_class WHERE oid = to_regclass($1)`, table).Scan(&kind, &viewDef, &acl); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatalf("schema of %s: %v", table, err)
		}
		if kind == nil {
			out = append(out, "table "+table+" absent")
			continue
		}
		out = append(out, fmt.Sprintf("relation %s kind %s view %v acl %v", table, *kind, deref(viewDef), deref(acl)))
		err := db.Pool.QueryRow(context.Background(), `
SELECT coalesce(string_agg(x, E'\n' ORDER BY x), '') FROM (
  SELECT 'column ' || attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END
         || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') AS x
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL SELECT 'index ' || pg_get_indexdef(indexrelid) || ' valid=' || indisvalid || ' ready=' || indisready FROM pg_index WHERE indrelid = $1::regclass
  UNION ALL SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) || ' validated=' || convalidated FROM pg_constraint WHERE conrelid = $1::regclass
  UNION ALL SELECT 'trigger ' || pg_get_triggerdef(oid) || ' enabled=' || tgenabled::text FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal
) s`, table).Scan(&s)
		if err != nil {
			t.Fatalf("schema of %s: %v", table, err)
		}
		out = append(out, "table "+table+"\n"+s)
	}
	var fns string
	if err := db.Pool.QueryRow(context.Background(), `
SELECT coalesce(string_agg(p.oid::regprocedure::text || ' body ' || md5(p.prosrc), E'\n' ORDER BY p.oid::regprocedure::text), '') FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')`).Scan(&fns); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n") + "\nfunctions\n" + fns
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

// dataOf is a checksum of a table's rows, or of some of its columns.
func dataOf(t *testing.T, db *pgtest.DB, table string, columns ...string) string {
	t.Helper()
	row := "t::text"
	if len(columns) > 0 {
		row = "(" + strings.Join(columns, ", ") + ")::text"
		if len(columns) == 1 {
			row = "ROW(" + columns[0] + ")::text"
		}
	}
	var exists bool
	if err := db.Pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil || !exists {
		return fmt.Sprintf("absent (%v)", err)
	}
	var sum string
	if err := db.Pool.QueryRow(context.Background(),
		`SELECT md5(coalesce(string_agg(`+row+`, ',' ORDER BY id), '')) FROM `+table+` t`).Scan(&sum); err != nil {
		t.Fatalf("checksum of %s: %v", table, err)
	}
	return sum
}

// flagsOf returns the published flags of a change.
func flagsOf(t *testing.T, db *pgtest.DB, change string) map[string]string {
	t.Helper()
	list, err := flags.List(context.Background(), db.Pool, "planner")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range list {
		if f.ChangeID == change {
			out[f.Key] = f.Variant
		}
	}
	return out
}

const renameSpec = `
changes:
  - id: users-email-rename
    kind: rename_column
    table: users
    column: email
    to: email_address
`

func TestStateSchemaVersionRefusesNewerState(t *testing.T) {
	f := newEngineFixture(t)
	specs := f.specs(t, renameSpec)
	f.next(t, specs, "d1")
	for _, table := range []string{"meta", "changes", "history", "flags", "backfill_jobs"} {
		if engCount(t, f.db, `SELECT count(*) FROM pg_tables WHERE schemaname = 'planner' AND tablename = $1`, table) != 1 {
			t.Errorf("state table planner.%s missing", table)
		}
	}
	if v := engCount(t, f.db, `SELECT version FROM planner.meta`); v != StateVersion {
		t.Fatalf("state version %d, want %d", v, StateVersion)
	}
	f.db.Exec(t, `UPDATE planner.meta SET version = version + 1`)
	_, err := f.e.Next(context.Background(), specs, "d2", false)
	if err == nil || !strings.Contains(err.Error(), "newer planner") {
		t.Fatalf("err = %v, want a refusal naming a newer planner", err)
	}
	if _, err := f.e.Status(context.Background(), specs); err == nil {
		t.Fatal("status read state written by a newer planner")
	}
}

func TestStateSchemaIsConfigurable(t *testing.T) {
	f := newEngineFixture(t)
	f.e.Schema = "Deploy State"
	f.next(t, f.specs(t, renameSpec), "d1")
	if engCount(t, f.db, `SELECT count(*) FROM "Deploy State".changes`) != 1 {
		t.Fatal("change not recorded in the configured schema")
	}
	if engCount(t, f.db, `SELECT count(*) FROM pg_namespace WHERE nspname = 'planner'`) != 0 {
		t.Fatal("default schema created anyway")
	}
}

func TestNextRefusesWithoutDeployID(t *testing.T) {
	f := newEngineFixture(t)
	_, err := f.e.Next(context.Background(), f.specs(t, renameSpec), " ", false)
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "deploy id") {
		t.Fatalf("err = %v, want ErrInput about the deploy id", err)
	}
}

func TestSameDeployIDTwiceAdvancesNothing(t *testing.T) {
	f := newEngineFixture(t)
	specs := f.specs(t, renameSpec)
	r := f.next(t, specs, "deploy-7")
	if c := reportOf(t, r, "users-email-rename"); c.Action != Advanced || c.Phase != "expand" {
		t.Fatalf("first call: %+v", c)
	}
	r = f.next(t, specs, "deploy-7")
	c := reportOf(t, r, "users-email-rename")
	if c.Action != NothingToDo || !strings.Contains(c.Reason, "already advanced in deploy deploy-7") {
		t.Fatalf("second call: %+v, want nothing to do because already advanced", c)
	}
	if r.AdvancedCount() != 0 || f.change(t, "users-email-rename").Applied != 1 {
		t.Fatal("the retried deploy advanced again")
	}
	r = f.next(t, specs, "deploy-8")
	if c := reportOf(t, r, "users-email-rename"); c.Action != Advanced || c.Phase != "backfill" {
		t.Fatalf("next deploy: %+v", c)
	}
}

func TestEditedInFlightSpecIsRefused(t *testing.T) {
	f := newEngineFixture(t)
	f.next(t, f.specs(t, renameSpec), "d1")
	edited := f.specs(t, strings.Replace(renameSpec, "to: email_address", "to: mail", 1))
	_, err := f.e.Next(context.Background(), edited, "d2", false)
	if !errors.Is(err, ErrInput) {
		t.Fatalf("err = %v, want ErrInput", err)
	}
	for _, want := range []string{"users-email-rename", "changes.yaml", "revert", "rollback", "new id"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if c := f.change(t, "users-email-rename"); c.Applied != 1 {
		t.Fatalf("applied = %d after a refused run", c.Applied)
	}
	// Status still works and shows the edit.
	list, err := f.e.Status(context.Background(), edited)
	if err != nil || len(list) != 1 || !list[0].Edited {
		t.Fatalf("status = %+v, %v; want the change marked edited", list, err)
	}
	// A change with nothing applied may be edited: it is re-registered.
	f.db.Exec(t, `UPDATE planner.changes SET applied = 0, status = 'pending'`)
	r := f.next(t, edited, "d3")
	if c := reportOf(t, r, "users-email-rename"); c.Action != Advanced {
		t.Fatalf("pending edited change: %+v", c)
	}
}

func TestChangesOnOneTableAdvanceOneAtATime(t *testing.T) {
	f := newEngineFixture(t)
	specs := f.specs(t, `
changes:
  - id: a-check
    kind: add_check
    table: orders
    name: orders_total_positive
    check: "total >= 0"
  - id: b-index
    kind: add_index
    table: orders
    name: orders_created_idx
    columns: [created_at]
  - id: c-users
    kind: add_check
    table: users
    name: users_email_at
    check: "email LIKE '%@%'"
`)
	r := f.next(t, specs, "d1")
	want := map[string]Action{"a-check": Advanced, "b-index": NothingToDo, "c-users": Advanced}
	for id, a := range want {
		if c := reportOf(t, r, id); c.Action != a {
			t.Errorf("d1 %s: %s (%s), want %s", id, c.Action, c.Reason, a)
		}
	}
	if c := reportOf(t, r, "b-index"); !strings.Contains(c.Reason, "queued behind change a-check") {
		t.Errorf("b-index reason %q", c.Reason)
	}
	r = f.next(t, specs, "d2") // a-check validates; b still waits
	if c := reportOf(t, r, "b-index"); c.Action != NothingToDo {
		t.Errorf("d2 b-index: %+v", c)
	}
	if c := reportOf(t, r, "a-check"); c.Action != Advanced || c.Phase != "validate" {
		t.Errorf("d2 a-check: %+v", c)
	}
	r = f.next(t, specs, "d3") // a done: b starts
	if c := reportOf(t, r, "a-check"); c.Action != Done {
		t.Errorf("d3 a-check: %+v", c)
	}
	if c := reportOf(t, r, "b-index"); c.Action != Advanced {
		t.Errorf("d3 b-index: %+v", c)
	}
	if engCount(t, f.db, `SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_created_idx'`) != 1 {
		t.Fatal("index not built")
	}
}

func TestGatesWaitAndSayWhy(t *testing.T) {
	f := newEngineFixture(t)
	f.e.Async = true
	f.e.MinSoak = time.Hour
	specs := f.specs(t, renameSpec)
	f.next(t, specs, "d1") // expand
	r := f.next(t, specs, "d2")
	c := reportOf(t, r, "users-email-rename")
	if c.Action != Waiting || c.Phase != "backfill" || c.Backfill == nil || !r.Waiting() {
		t.Fatalf("async backfill: %+v, want waiting with progress", c)
	}
	if st := f.change(t, "users-email-rename"); st.Status != StatusApplying || st.Applied != 1 {
		t.Fatalf("state during async backfill: %s %d", st.Status, st.Applied)
	}
	// The backfill runs elsewhere (planner backfill run); the same deploy
	// then completes the phase.
	if _, err := backfill.Run(context.Background(), f.db.Pool, "planner", "users-email-rename", backfill.Options{}); err != nil {
		t.Fatal(err)
	}
	r = f.next(t, specs, "d2")
	if c := reportOf(t, r, "users-email-rename"); c.Action != Advanced || c.Phase != "backfill" {
		t.Fatalf("after the backfill: %+v", c)
	}
	f.next(t, specs, "d3") // dual_write
	f.next(t, specs, "d4") // enforce
	r = f.next(t, specs, "d5")
	c = reportOf(t, r, "users-email-rename")
	if c.Action != Waiting || c.Phase != "contract" || !strings.Contains(c.Reason, "minimum soak 1h0m0s") {
		t.Fatalf("contract with min soak: %+v", c)
	}
	f.e.MinSoak = 0
	r = f.next(t, specs, "d5")
	if c := reportOf(t, r, "users-email-rename"); c.Action != Advanced || c.Phase != "contract" {
		t.Fatalf("contract after soak: %+v", c)
	}
	if engHasColumn(t, f.db, "users", "email") || !engHasColumn(t, f.db, "users", "email_address") {
		t.Fatal("contract did not move the old column away")
	}
}

func TestBackfillGateBlocksDualWriteUntilVerified(t *testing.T) {
	f := newEngineFixture(t)
	specs := f.specs(t, renameSpec)
	f.next(t, specs, "d1")
	f.next(t, specs, "d2") // inline backfill
	// Forget the job behind the engine's back: the gate must not open.
	if err := backfill.Reset(context.Background(), f.db.Pool, "planner", "users-email-rename"); err != nil {
		t.Fatal(err)
	}
	r := f.next(t, specs, "d3")
	c := reportOf(t, r, "users-email-rename")
	if c.Action != Waiting || c.Gate != "backfill_verified" || !strings.Contains(c.Reason, "no backfill job") {
		t.Fatalf("%+v, want waiting on the backfill gate", c)
	}
}

func TestRollbackReversesPhasesAndRefusesPurge(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, `
changes:
  - id: legacy-drop
    kind: drop_column
    table: users
    column: legacy_flags
`)
	f.next(t, specs, "d1")
	if got := flagsOf(t, f.db, "legacy-drop"); got["legacy-drop.read"] != "new" {
		t.Fatalf("flags after stop_using: %v", got)
	}
	res, err := f.e.Rollback(ctx, "legacy-drop", "r1")
	if err != nil || res.Applied != 0 {
		t.Fatalf("rollback: %+v %v", res, err)
	}
	if got := flagsOf(t, f.db, "legacy-drop"); len(got) != 0 {
		t.Fatalf("flags after rolling back the first phase: %v, want none (as before the change)", got)
	}
	// The same deploy does not roll back twice.
	res, err = f.e.Rollback(ctx, "legacy-drop", "r1")
	if err != nil || !res.NothingToDo {
		t.Fatalf("second rollback in the same deploy: %+v %v", res, err)
	}
	if _, err := f.e.Rollback(ctx, "legacy-drop", "r2"); !errors.Is(err, ErrInput) {
		t.Fatalf("rollback with nothing applied: %v, want ErrInput", err)
	}
	f.next(t, specs, "d2")
	f.next(t, specs, "d3") // contract: the column becomes a tombstone
	f.next(t, specs, "d4") // purge
	_, err = f.e.Rollback(ctx, "legacy-drop", "r3")
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "phase purge cannot be rolled back") || !strings.Contains(err.Error(), "(the old legacy_flags) and its data") {
		t.Fatalf("rollback of purge: %v", err)
	}
	if _, err := f.e.Rollback(ctx, "nope", ""); !errors.Is(err, ErrInput) {
		t.Fatalf("unknown change: %v", err)
	}
	h, err := f.e.History(ctx, "legacy-drop")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range h {
		dirs = append(dirs, e.Phase+":"+e.Direction+":"+e.DeployID)
	}
	if got, want := strings.Join(dirs, " "), "stop_using:up:d1 stop_using:down:r1 stop_using:up:d2 contract:up:d3 purge:up:d4"; got != want {
		t.Fatalf("history %q, want %q", got, want)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, renameSpec)
	before := schemaOf(t, f.db, "users")
	r, err := f.e.Next(ctx, specs, "d1", true)
	if err != nil {
		t.Fatal(err)
	}
	c := reportOf(t, r, "users-email-rename")
	if c.Action != WouldApply || c.Phase != "expand" || len(c.Statements) == 0 || !strings.Contains(c.Statements[0].SQL, "ADD COLUMN") {
		t.Fatalf("dry run: %+v", c)
	}
	if schemaOf(t, f.db, "users") != before || engCount(t, f.db, `SELECT count(*) FROM pg_namespace WHERE nspname = 'planner'`) != 0 {
		t.Fatal("dry run changed the database")
	}
	f.next(t, specs, "d1")
	r, err = f.e.Next(ctx, specs, "d2", true)
	if err != nil {
		t.Fatal(err)
	}
	if c := reportOf(t, r, "users-email-rename"); c.Action != WouldApply || c.Phase != "backfill" || c.BackfillWork == nil {
		t.Fatalf("dry run of the backfill: %+v", c)
	}
	if f.change(t, "users-email-rename").Applied != 1 {
		t.Fatal("dry run advanced")
	}
}

func TestStatusAndHistory(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, renameSpec+`
  - id: orders-check
    kind: add_check
    table: orders
    name: orders_total_positive
    check: "total >= 0"
`)
	list, err := f.e.Status(ctx, specs)
	if err != nil || len(list) != 2 || list[0].Status != "unregistered" {
		t.Fatalf("status before any next: %+v %v", list, err)
	}
	f.next(t, specs, "d1")
	f.next(t, specs, "d2")
	list, err = f.e.Status(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	var rename ChangeStatus
	for _, s := range list {
		if s.ID == "users-email-rename" {
			rename = s
		}
	}
	if rename.Applied != 2 || rename.Total != 6 || rename.Next != "dual_write" || rename.Gate != "backfill_verified" ||
		rename.GateMet == nil || !*rename.GateMet || rename.Backfill == nil || !rename.Backfill.Verified ||
		rename.Flags["users-email-rename.read"] != "old" {
		b, _ := json.Marshal(rename)
		t.Fatalf("status: %s", b)
	}
	h, err := f.e.History(ctx, "")
	if err != nil || len(h) != 4 {
		t.Fatalf("history: %+v %v", h, err)
	}
	for _, e := range h {
		if e.Finished == nil || e.DeployID == "" || e.Direction != Up || e.Error != "" {
			t.Fatalf("history row %+v", e)
		}
	}
}

func TestFailedPhaseIsRecordedAndResumable(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, `
changes:
  - id: orders-check
    kind: add_check
    table: orders
    name: orders_total_positive
    check: "total >= 0"
`)
	// A row violating the check, present before the NOT VALID constraint
	// is added, makes VALIDATE fail.
	f.db.Exec(t, `UPDATE orders SET total = -1 WHERE id = 1`)
	f.next(t, specs, "d1")
	_, err := f.e.Next(ctx, specs, "d2", false)
	if err == nil || !strings.Contains(err.Error(), "orders_total_positive") {
		t.Fatalf("err = %v, want the VALIDATE failure", err)
	}
	st := f.change(t, "orders-check")
	if st.Status != StatusFailed || st.Applied != 1 || st.LastError == "" {
		t.Fatalf("state after failure: %+v", st)
	}
	h, _ := f.e.History(ctx, "orders-check")
	if last := h[len(h)-1]; last.Error == "" || last.DeployID != "d2" {
		t.Fatalf("failure not in history: %+v", last)
	}
	f.db.Exec(t, `UPDATE orders SET total = 1 WHERE id = 1`)
	r := f.next(t, specs, "d2") // a retry of the failed deploy resumes it
	if c := reportOf(t, r, "orders-check"); c.Action != Advanced || c.Phase != "validate" {
		t.Fatalf("retry: %+v", c)
	}
	if st := f.change(t, "orders-check"); st.Status != StatusDone || st.LastError != "" {
		t.Fatalf("state after retry: %+v", st)
	}
}

func TestDDLPhaseWaitsForBlockerUnderLockTimeout(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	f.e.LockTimeout = 200 * time.Millisecond
	f.e.Retries = 30
	f.e.Log, f.e.Verbose = testLog{t}, true
	specs := f.specs(t, renameSpec)
	blocker, err := f.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(ctx, `SELECT count(*) FROM users`); err != nil {
		t.Fatal(err)
	}
	reader := startReader(f.db.Pool, `SELECT email FROM users WHERE id = $1`, 2000)
	start := time.Now()
	time.AfterFunc(time.Second, func() { blocker.Rollback(ctx) })
	r := f.next(t, specs, "d1")
	readerMax, readerErrs := reader.stop()
	if c := reportOf(t, r, "users-email-rename"); c.Action != Advanced {
		t.Fatalf("%+v", c)
	}
	if time.Since(start) < time.Second {
		t.Fatal("the phase did not wait for the blocker")
	}
	if readerErrs > 0 {
		t.Fatalf("%d reader queries failed", readerErrs)
	}
	// The reader did queue behind the waiting ALTER TABLE (so the bound
	// below measures something), but never for much longer than one
	// lock_timeout.
	if readerMax < f.e.LockTimeout/2 {
		t.Fatalf("reader max latency %s: it never queued behind the waiting phase", readerMax)
	}
	if bound := f.e.LockTimeout + 600*time.Millisecond; readerMax > bound {
		t.Fatalf("a reader waited %s behind the expand phase; bound is lock_timeout + 600ms = %s", readerMax, bound)
	}
	t.Logf("reader max latency %s while the phase waited for the blocker", readerMax.Round(time.Millisecond))
}

func TestValidate(t *testing.T) {
	f := newEngineFixture(t)
	f.db.Exec(t, `CREATE TABLE nokey (a int, b text)`)
	specs := f.specs(t, `
changes:
  - id: ok-rename
    kind: rename_column
    table: users
    column: email
    to: email_address
  - id: missing-table
    kind: add_check
    table: nope
    name: c
    check: "x > 0"
  - id: missing-column
    kind: rename_column
    table: users
    column: mail
    to: mail2
  - id: bad-type
    kind: add_column
    table: orders
    column: note
    type: textt
    backfill: "'x'"
  - id: bad-expression
    kind: change_column_type
    table: orders
    column: total
    type: bigint
    up: "round(totl * 100)::bigint"
    down: "total_cents / 100.0"
    new_column: total_cents
  - id: bad-check
    kind: add_check
    table: orders
    name: orders_bad
    check: "status + 1"
  - id: no-key
    kind: set_not_null
    table: nokey
    column: b
    backfill: "''"
`)
	before := schemaOf(t, f.db, "users", "orders")
	results, err := f.e.Validate(context.Background(), specs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ok-rename":      "",
		"missing-table":  "does not exist",
		"missing-column": "mail",
		"bad-type":       "textt",
		"bad-expression": "totl",
		"bad-check":      "status + 1",
		"no-key":         "primary key",
	}
	for _, v := range results {
		w, ok := want[v.ID]
		if !ok {
			t.Errorf("unexpected result %s", v.ID)
			continue
		}
		text := v.String()
		if w == "" {
			if !v.OK() {
				t.Errorf("%s: unexpected problems: %s", v.ID, text)
			}
			continue
		}
		if v.OK() || !strings.Contains(text, w) {
			t.Errorf("%s: %s; want a problem mentioning %q", v.ID, text, w)
		}
	}
	if len(results) != len(want) {
		t.Errorf("%d results, want %d", len(results), len(want))
	}
	if schemaOf(t, f.db, "users", "orders") != before {
		t.Fatal("validate changed the schema")
	}
}

// Helper process: the test binary re-executed as a stand-in for
// `planner next`, configured by environment variables.
const helperEnv = "PLANNER_TEST_HELPER"

func helperMain() int {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("PLANNER_TEST_URL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pool.Close()
	e := testEngine(pool)
	if d, err := time.ParseDuration(os.Getenv("PLANNER_TEST_LEASE_TTL")); err == nil {
		e.LeaseTTL = d // a killed helper holds up the next one this long
	}
	if n, _ := strconv.Atoi(os.Getenv("PLANNER_TEST_BACKFILL_BATCH")); n > 0 {
		e.Backfill.MinBatch, e.Backfill.MaxBatch = n, n
		e.Backfill.Sleep = 20 * time.Millisecond
	}
	specs, err := Load(os.Getenv("PLANNER_TEST_SPECS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	r, err := e.Next(ctx, specs, os.Getenv("PLANNER_TEST_DEPLOY"), false)
	if r != nil {
		json.NewEncoder(os.Stdout).Encode(r)
	}
	switch {
	case errors.Is(err, ErrBusy):
		return 4
	case errors.Is(err, ErrInput):
		return 2
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return 1
	case r.Waiting():
		return 3
	}
	return 0
}

// helper starts the test binary as `planner next` for deploy.
func (f *engineFixture) helper(t *testing.T, deploy string, env ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=next", "PLANNER_TEST_URL="+f.db.URL,
		"PLANNER_TEST_SPECS="+filepath.Join(f.dir, "changes.yaml"), "PLANNER_TEST_DEPLOY="+deploy)
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

func TestTwoPlannersAtOnceAdvanceOnePhase(t *testing.T) {
	f := newEngineFixture(t)
	f.specs(t, renameSpec+`
  - id: orders-check
    kind: add_check
    table: orders
    name: orders_total_positive
    check: "total >= 0"
`)
	var wg sync.WaitGroup
	outs := make([]string, 2)
	codes := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd, out := f.helper(t, "same-deploy")
			err := cmd.Wait()
			outs[i] = out.String()
			if ee, ok := err.(*exec.ExitError); ok {
				codes[i] = ee.ExitCode()
			}
		}()
	}
	wg.Wait()
	if codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("exit codes %v:\n%s\n%s", codes, outs[0], outs[1])
	}
	for _, id := range []string{"users-email-rename", "orders-check"} {
		if c := f.change(t, id); c.Applied != 1 {
			t.Errorf("%s: %d phases applied, want exactly 1", id, c.Applied)
		}
	}
	if n := engCount(t, f.db, `SELECT count(*) FROM planner.history WHERE deploy_id = 'same-deploy'`); n != 2 {
		t.Errorf("%d history rows, want 2 (one per change)", n)
	}
	if !strings.Contains(outs[0]+outs[1], "already advanced in deploy same-deploy") {
		t.Errorf("neither planner said the deploy had already advanced:\n%s\n%s", outs[0], outs[1])
	}
}

// kill -9 at chosen points of a phase (test hooks), then a rerun of the
// same deploy finishes the phase; at the end schema and data are right.
func TestKilledMidPhaseResumes(t *testing.T) {
	f := newEngineFixture(t)
	specs := f.specs(t, renameSpec)
	emails := dataOf(t, f.db, "users", "id", "email")
	steps := []struct {
		deploy string
		env    string // crash hook for the first try
	}{
		{"d1", "PLANNER_TEST_CRASH_AFTER=2"},        // expand: killed before its transaction commits
		{"d2", ""},                                  // backfill
		{"d3", "PLANNER_TEST_CRASH_AFTER_COMMIT=1"}, // dual_write: killed after the phase commits
		{"d4", "PLANNER_TEST_CRASH_AFTER_COMMIT=1"}, // enforce: killed after CHECK NOT VALID commits
	}
	for _, s := range steps {
		if s.env != "" {
			cmd, out := f.helper(t, s.deploy, s.env)
			err := cmd.Wait()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("%s: helper was not killed: %v\n%s", s.deploy, err, out)
			}
		}
		cmd, out := f.helper(t, s.deploy)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s: rerun failed: %v\n%s", s.deploy, err, out)
		}
	}
	c := f.change(t, "users-email-rename")
	if c.Applied != 4 || c.Status != StatusActive {
		t.Fatalf("after 4 deploys: applied %d, status %s", c.Applied, c.Status)
	}
	if n := engCount(t, f.db, `SELECT count(*) FROM planner.history WHERE direction = 'up' AND error = ''`); n != 4 {
		t.Fatalf("%d phases recorded, want 4 (one per deploy despite the kills)", n)
	}
	f.next(t, specs, "d5")
	if engHasColumn(t, f.db, "users", "email") {
		t.Fatal("contract did not run")
	}
	if got := dataOf(t, f.db, "users", "id", "email_address"); got != emails {
		t.Fatal("email_address does not hold the old emails")
	}
	if engCount(t, f.db, `SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email_address' AND attnotnull`) != 1 {
		t.Fatal("email_address is not NOT NULL")
	}
	if n := engCount(t, f.db, `SELECT count(*) FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype = 'c'`); n != 0 {
		t.Fatalf("%d helper check constraints left behind", n)
	}
}

// A real SIGKILL while an inline backfill runs; the rerun resumes it.
func TestKilledDuringBackfillResumes(t *testing.T) {
	f := newEngineFixture(t)
	f.db.Exec(t, `INSERT INTO users (email) SELECT 'more' || g || '@example.com' FROM generate_series(1, 8000) g`)
	specs := f.specs(t, renameSpec)
	f.next(t, specs, "d1")
	cmd, out := f.helper(t, "d2", "PLANNER_TEST_BACKFILL_BATCH=200")
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := engCount(t, f.db, `SELECT count(*) FROM users WHERE email_address IS NOT NULL`)
		if n >= 1000 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("backfill made no progress:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	partial := engCount(t, f.db, `SELECT count(*) FROM users WHERE email_address IS NOT NULL`)
	if partial >= 10000 {
		t.Fatalf("backfill finished before the kill (%d rows); make it slower", partial)
	}
	st := f.change(t, "users-email-rename")
	if st.Status != StatusApplying || st.Applied != 1 {
		t.Fatalf("state after the kill: %s %d", st.Status, st.Applied)
	}
	r := f.next(t, specs, "d2")
	if c := reportOf(t, r, "users-email-rename"); c.Action != Advanced || c.Phase != "backfill" || c.Backfill == nil || !c.Backfill.Verified {
		t.Fatalf("rerun: %+v", c)
	}
	if n := engCount(t, f.db, `SELECT count(*) FROM users WHERE email_address IS DISTINCT FROM email`); n != 0 {
		t.Fatalf("%d rows wrong after the resumed backfill", n)
	}
	t.Logf("killed with %d of 10000 rows backfilled", partial)
}

// A phase killed midway is what rollback undoes first: the schema goes
// back to what it was before that phase, and the phase can run again.
func TestRollbackOfKilledPhase(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, renameSpec)
	for _, d := range []string{"d1", "d2", "d3"} {
		f.next(t, specs, d)
	}
	before := schemaOf(t, f.db, "users")
	flagsBefore := flagsOf(t, f.db, "users-email-rename")
	cmd, out := f.helper(t, "d4", "PLANNER_TEST_CRASH_AFTER_COMMIT=1") // enforce: after CHECK NOT VALID commits
	if err := cmd.Wait(); err == nil {
		t.Fatalf("helper was not killed:\n%s", out)
	}
	if schemaOf(t, f.db, "users") == before {
		t.Fatal("the killed phase left nothing behind; the test does not test anything")
	}
	if st := f.change(t, "users-email-rename"); st.Status != StatusApplying || st.Applied != 3 {
		t.Fatalf("after the kill: %s %d", st.Status, st.Applied)
	}
	res, err := f.e.Rollback(ctx, "users-email-rename", "r1")
	if err != nil || !res.Partial || res.Phase != "enforce" || res.Applied != 3 {
		t.Fatalf("rollback: %+v %v", res, err)
	}
	if got := schemaOf(t, f.db, "users"); got != before {
		t.Fatalf("rollback of the killed phase:\n%s", diffLines(before, got))
	}
	if got := flagsOf(t, f.db, "users-email-rename"); !maps.Equal(got, flagsBefore) {
		t.Fatalf("flags %v, want %v", got, flagsBefore)
	}
	if st := f.change(t, "users-email-rename"); st.Status != StatusActive || st.Applied != 3 {
		t.Fatalf("after the rollback: %s %d", st.Status, st.Applied)
	}
	r := f.next(t, specs, "d5")
	if c := reportOf(t, r, "users-email-rename"); c.Action != Advanced || c.Phase != "enforce" {
		t.Fatalf("enforce after rollback: %+v", c)
	}
}

// Retries exhausted: a clear error naming the statement, the table and the
// blocker; the change stays resumable and the same deploy completes it.
func TestLockFailureLeavesChangeResumable(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	f.e.LockTimeout, f.e.Retries = 50*time.Millisecond, 2
	specs := f.specs(t, renameSpec)
	blocker, err := f.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(ctx, `SELECT count(*) FROM users`); err != nil {
		t.Fatal(err)
	}
	r, err := f.e.Next(ctx, specs, "d1", false)
	blocker.Rollback(ctx)
	var le *lockError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v, want a lockError", err)
	}
	for _, want := range []string{"users-email-rename", "expand", "ADD COLUMN", "public.users", "AccessShareLock", "2 tries"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
	if c := reportOf(t, r, "users-email-rename"); c.Action != Failed || c.Error == "" {
		t.Fatalf("report: %+v", c)
	}
	if st := f.change(t, "users-email-rename"); st.Status != StatusFailed || st.Applied != 0 || !strings.Contains(st.LastError, "lock") {
		t.Fatalf("state: %+v", st)
	}
	if engHasColumn(t, f.db, "users", "email_address") {
		t.Fatal("the failed phase left its column behind")
	}
	r = f.next(t, specs, "d1")
	if c := reportOf(t, r, "users-email-rename"); c.Action != Advanced || c.Phase != "expand" {
		t.Fatalf("rerun: %+v", c)
	}
}

// The planner needs no superuser: a role that owns the tables it changes
// and its state schema (or has CREATE on the database to make it), with
// CREATE on the tables' schema (for trigger functions), runs every phase.
func TestRunsWithoutSuperuser(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	role := "planner_role_" + f.db.Name
	f.db.Exec(t, `CREATE ROLE `+role+` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT`)
	t.Cleanup(func() {
		// The database is dropped after this cleanup runs; drop what the
		// role owns first so the role can go.
		f.db.Pool.Exec(context.Background(), `REASSIGN OWNED BY `+role+` TO CURRENT_USER; DROP OWNED BY `+role)
		f.db.Pool.Exec(context.Background(), `DROP ROLE IF EXISTS `+role)
	})
	// The state schema made beforehand and given to the role, so the role
	// needs no CREATE on the database (the other way to run it).
	f.db.Exec(t, `CREATE SCHEMA planner AUTHORIZATION `+role)
	f.db.Exec(t, `GRANT CREATE ON SCHEMA public TO `+role)
	f.db.Exec(t, `ALTER TABLE users OWNER TO `+role)
	f.db.Exec(t, `ALTER TABLE orders OWNER TO `+role)
	var super bool
	cfg, err := pgxpool.ParseConfig(f.db.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.User = role
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil || super {
		t.Fatalf("not connected as an unprivileged role: %v %v", super, err)
	}
	e := testEngine(pool)
	specs := f.specs(t, renameSpec+`
  - id: orders-idx
    kind: add_index
    table: orders
    name: orders_created_idx
    columns: [created_at]
  - id: orders-fk
    kind: add_foreign_key
    table: orders
    name: orders_user_fk
    columns: [user_id]
    references:
      table: users
      columns: [id]
`)
	if vs, err := e.Validate(ctx, specs); err != nil || !vs[0].OK() {
		t.Fatalf("validate as %s: %+v %v", role, vs, err)
	}
	for i := 1; i <= 8; i++ {
		if _, err := e.Next(ctx, specs, fmt.Sprintf("d%d", i), false); err != nil {
			t.Fatalf("deploy %d as %s: %v", i, role, err)
		}
	}
	for _, id := range []string{"users-email-rename", "orders-idx", "orders-fk"} {
		if c := f.change(t, id); c.Status != StatusDone {
			t.Errorf("%s: %s after 8 deploys", id, c.Status)
		}
	}
	if _, err := e.Status(ctx, specs); err != nil {
		t.Fatal(err)
	}
}

func TestRefusedSpecRegistersNothing(t *testing.T) {
	f := newEngineFixture(t)
	specs := f.specs(t, renameSpec+`
  - id: missing
    kind: add_check
    table: nope
    name: c
    check: "x > 0"
`)
	_, err := f.e.Next(context.Background(), specs, "d1", false)
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v, want ErrInput naming the missing table", err)
	}
	if n := engCount(t, f.db, `SELECT count(*) FROM planner.changes`); n != 0 {
		t.Fatalf("%d changes registered by a refused run", n)
	}
	if engHasColumn(t, f.db, "users", "email_address") {
		t.Fatal("a refused run advanced a change")
	}
}

// A change that needs what an earlier change on the same table adds (an
// index on a column being added) is checked against the live schema when
// it starts, not when it is registered.
func TestQueuedChangeIsCheckedWhenItStarts(t *testing.T) {
	f := newEngineFixture(t)
	specs := f.specs(t, `
changes:
  - id: status-add
    kind: add_column
    table: users
    column: status
    type: text
    backfill: "'active'"
  - id: status-index
    kind: add_index
    table: users
    name: users_status_idx
    columns: [status]
`)
	var deploys int
	for deploys = 1; deploys <= 10; deploys++ {
		f.next(t, specs, fmt.Sprintf("d%d", deploys))
		if f.change(t, "status-index").Status == StatusDone {
			break
		}
	}
	if f.change(t, "status-add").Status != StatusDone || f.change(t, "status-index").Status != StatusDone {
		t.Fatal("changes not done after 10 deploys")
	}
	if engCount(t, f.db, `SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('users_status_idx') AND indisvalid`) != 1 {
		t.Fatal("index missing")
	}
	if c := f.change(t, "status-index"); c.Catalog == nil || c.Catalog.Column("status") == nil {
		t.Fatal("the index's catalog snapshot was not taken when it started")
	}
	t.Logf("done in %d deploys", deploys)
}

func TestInFlightChangeWithoutSpecIsNotAdvanced(t *testing.T) {
	f := newEngineFixture(t)
	f.next(t, f.specs(t, renameSpec), "d1")
	other := f.specs(t, `
changes:
  - id: users-check
    kind: add_check
    table: users
    name: users_email_at
    check: "email LIKE '%@%'"
`)
	r := f.next(t, other, "d2")
	if c := reportOf(t, r, "users-email-rename"); c.Action != Missing || !strings.Contains(c.Reason, "no longer in the spec files") {
		t.Fatalf("%+v", c)
	}
	if c := reportOf(t, r, "users-check"); c.Action != NothingToDo || !strings.Contains(c.Reason, "queued behind change users-email-rename") {
		t.Fatalf("%+v", c)
	}
	if f.change(t, "users-email-rename").Applied != 1 {
		t.Fatal("a change without its spec advanced")
	}
	// Rollback works from the stored spec.
	if _, err := f.e.Rollback(context.Background(), "users-email-rename", "r1"); err != nil {
		t.Fatal(err)
	}
	r = f.next(t, other, "d3")
	if c := reportOf(t, r, "users-check"); c.Action != Advanced {
		t.Fatalf("after rolling the orphan back: %+v", c)
	}
}

// An operator's pause makes an inline backfill report waiting instead of
// holding the deploy; after resume the same deploy completes the phase.
func TestPausedBackfillWaits(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, renameSpec)
	f.next(t, specs, "d1")
	f.e.Async = true
	f.next(t, specs, "d2") // starts the job
	if err := backfill.Pause(ctx, f.db.Pool, "planner", "users-email-rename"); err != nil {
		t.Fatal(err)
	}
	f.e.Async = false
	r := f.next(t, specs, "d2")
	if c := reportOf(t, r, "users-email-rename"); c.Action != Waiting || !strings.Contains(c.Reason, "paused") {
		t.Fatalf("paused backfill: %+v", c)
	}
	if err := backfill.Resume(ctx, f.db.Pool, "planner", "users-email-rename"); err != nil {
		t.Fatal(err)
	}
	r = f.next(t, specs, "d2")
	if c := reportOf(t, r, "users-email-rename"); c.Action != Advanced || c.Phase != "backfill" {
		t.Fatalf("after resume: %+v", c)
	}
}

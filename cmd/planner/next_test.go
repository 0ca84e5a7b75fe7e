package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgplanner/planner/internal/pgtest"
)

// The engine commands are tested through the real binary, so exit codes,
// flags and environment variables are what a pipeline sees.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func plannerBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "planner-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "planner")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = errors.New(string(out))
		}
	})
	if binErr != nil {
		t.Fatalf("build planner: %v", binErr)
	}
	return binPath
}

type cli struct {
	t   *testing.T
	bin string
	env []string
	dir string
}

type result struct {
	code           int
	stdout, stderr string
}

func newCLI(t *testing.T) (*cli, *pgtest.DB) {
	db := pgtest.NewDB(t)
	db.Exec(t, `CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, name text)`)
	db.Exec(t, `INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 500) g`)
	return cliFor(t, db.URL), db
}

// cliFor is a CLI on the database at url, with the rename spec in its
// directory.
func cliFor(t *testing.T, url string) *cli {
	dir := t.TempDir()
	spec := `changes:
  - id: users-email-rename
    kind: rename_column
    table: users
    column: email
    to: email_address
`
	if err := os.WriteFile(filepath.Join(dir, "01.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PLANNER_DEPLOY_ID", "GITHUB_RUN_ID", "CI_PIPELINE_ID", "BUILDKITE_BUILD_ID", "CIRCLE_WORKFLOW_ID", "DATABASE_URL":
			continue
		}
		env = append(env, kv)
	}
	// A killed run's lease holds up the rerun for at most this long.
	env = append(env, "DATABASE_URL="+url, "PLANNER_LEASE_TTL=2s")
	return &cli{t: t, bin: plannerBinary(t), env: env, dir: dir}
}

func (c *cli) run(extraEnv []string, args ...string) result {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(append([]string{}, c.env...), extraEnv...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return r
}

func (c *cli) expect(r result, code int, contains ...string) {
	c.t.Helper()
	if r.code != code {
		c.t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range contains {
		if !strings.Contains(r.stdout+r.stderr, s) {
			c.t.Fatalf("output does not contain %q\nstdout:\n%s\nstderr:\n%s", s, r.stdout, r.stderr)
		}
	}
}

func TestNextCommand(t *testing.T) {
	c, _ := newCLI(t)
	dir := "--dir=" + c.dir

	// No deploy id: refused, nothing done.
	c.expect(c.run(nil, "next", dir), 2, "no deploy id", "--deploy-id", "GITHUB_RUN_ID")
	c.expect(c.run(nil, "status", dir), 0, "unregistered")

	// The deploy id from CI: a retried run advances nothing more.
	gh := []string{"GITHUB_RUN_ID=4242", "GITHUB_RUN_ATTEMPT=1"}
	c.expect(c.run(gh, "next", dir), 0, "deploy github:4242", "1 advanced", "expand")
	gh[1] = "GITHUB_RUN_ATTEMPT=2"
	c.expect(c.run(gh, "next", dir), 0, "nothing advanced", "already advanced in deploy github:4242")

	// Dry run: the backfill it would run, nothing done.
	c.expect(c.run(nil, "next", dir, "--deploy-id=d2", "--dry-run"), 0, "dry run", "would_apply", "backfill public.users: SET email_address")

	// --async: the backfill starts, the pipeline is told to come back (3).
	r := c.run(nil, "next", dir, "--deploy-id=d2", "--async", "-o", "json")
	c.expect(r, 3)
	var rep struct {
		DeployID string `json:"deploy_id"`
		Changes  []struct {
			ID, Action, Phase, Reason string
		} `json:"changes"`
	}
	if err := unmarshalResult(r.stdout, &rep); err != nil {
		t.Fatalf("next -o json: %v\n%s", err, r.stdout)
	}
	if len(rep.Changes) != 1 || rep.Changes[0].Action != "waiting" || rep.Changes[0].Phase != "backfill" {
		t.Fatalf("report %+v", rep)
	}

	// Status in JSON shows the phase and the backfill.
	r = c.run(nil, "status", dir, "-o", "json")
	c.expect(r, 0)
	var status []struct {
		ID, Status string
		Applied    int
		Total      int
		Next       string `json:"next_phase"`
		Flags      map[string]string
	}
	if err := unmarshalResult(r.stdout, &status); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r.stdout)
	}
	if len(status) != 1 || status[0].Applied != 1 || status[0].Total != 6 || status[0].Next != "backfill" ||
		status[0].Flags["users-email-rename.read"] != "old" {
		t.Fatalf("status %+v", status)
	}
	c.expect(c.run(nil, "status", dir), 0, "phase 1 of 6 applied", "next: backfill", "users-email-rename.read=old")

	// Inline: the backfill runs and the phase completes.
	c.expect(c.run(nil, "next", dir, "--deploy-id=d3"), 0, "1 advanced", "backfill")
	c.expect(c.run(nil, "history"), 0, "github:4242", "d3", "expand", "backfill")

	// Rollback, and its retry with the same deploy id.
	c.expect(c.run(nil, "rollback", "users-email-rename", "--deploy-id=r1"), 0, "rolled back phase 2 backfill; 1 of 6")
	c.expect(c.run(nil, "rollback", "users-email-rename", "--deploy-id=r1"), 0, "nothing rolled back")
	c.expect(c.run(nil, "rollback", "nope"), 2, "no change \"nope\"")

	// Editing the in-flight spec: refused with exit 2.
	edited := filepath.Join(c.dir, "01.yaml")
	data, _ := os.ReadFile(edited)
	os.WriteFile(edited, []byte(strings.Replace(string(data), "email_address", "mail", 1)), 0o644)
	c.expect(c.run(nil, "next", dir, "--deploy-id=d4"), 2, "was edited after it started")
	os.WriteFile(edited, data, 0o644)
}

func TestNextCommandBusy(t *testing.T) {
	c, db := newCLI(t)
	c.expect(c.run(nil, "next", "--dir="+c.dir, "--deploy-id=d1"), 0)
	db.Exec(t, `INSERT INTO planner.lease (token, host, pid, deploy_id, command, taken, renewed, expires)
		VALUES ('t', 'build-7', 4242, 'deploy-9', 'planner next', now(), now(), now() + interval '1 hour')`)
	c.expect(c.run(nil, "next", "--dir="+c.dir, "--deploy-id=d2", "--wait=200ms"), 4,
		"another planner is running", "held by build-7 pid 4242 (planner next, deploy deploy-9)")
}

// Through PgBouncer in transaction mode the commands that run phases,
// backfill batches or validation refuse with exit 5 and say what to do, creating
// nothing; the commands that only read work.
func TestCommandsThroughTransactionPooling(t *testing.T) {
	c, db := newCLI(t)
	pooled := []string{"DATABASE_URL=" + pgtest.NewPgBouncer(t, db, "transaction", 2)}
	for _, args := range [][]string{
		{"next", "--dir=" + c.dir, "--deploy-id=d1"},
		{"rollback", "users-email-rename"},
		{"backfill", "run", "users-email-rename"},
		{"run", "users-email-rename", "--dir=" + c.dir},
		// validate and a connected plan build scratch tables in a session
		{"validate", "--dir=" + c.dir},
		{"plan", "--dir=" + c.dir},
	} {
		c.expect(c.run(pooled, args...), 5, "transaction or statement mode", "session mode", "Nothing was changed")
	}
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_namespace WHERE nspname = 'planner'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("state schema created through the refused pooler: %d %v", n, err)
	}
	// Session mode is fine.
	c.expect(c.run([]string{"DATABASE_URL=" + pgtest.NewPgBouncer(t, db, "session", 2)}, "next", "--dir="+c.dir, "--deploy-id=d1"), 0)
	for _, args := range [][]string{
		{"status", "--dir=" + c.dir},
		{"history"},
		{"backfill", "status"},
		{"flags"},
	} {
		// Twice: a second run meets server connections the first used.
		c.expect(c.run(pooled, args...), 0)
		c.expect(c.run(pooled, args...), 0)
	}
}

func TestValidateCommand(t *testing.T) {
	c, _ := newCLI(t)
	c.expect(c.run(nil, "validate", "--dir="+c.dir), 0, "ok", "users-email-rename", "1 spec(s) fit")
	bad := filepath.Join(c.dir, "02.yaml")
	os.WriteFile(bad, []byte(`changes:
  - id: bad
    kind: add_column
    table: users
    column: age
    type: integr
    backfill: "0"
`), 0o644)
	c.expect(c.run(nil, "validate", "--dir="+c.dir), 2, "FAIL", "integr", "safe alternative")
	r := c.run(nil, "validate", "--dir="+c.dir, "-o", "json")
	c.expect(r, 2)
	var results []struct {
		ID       string
		Problems []struct{ Field, Message, Hint string }
	}
	if err := unmarshalResult(r.stdout, &results); err != nil || len(results) != 2 || len(results[1].Problems) == 0 {
		t.Fatalf("validate -o json: %v %+v\n%s", err, results, r.stdout)
	}
}

// kill -9 of the real binary in the middle of a phase (test hook), then a
// rerun of the same deploy completes it exactly once.
func TestNextCommandKilledMidPhase(t *testing.T) {
	c, db := newCLI(t)
	dir := "--dir=" + c.dir
	r := c.run([]string{"PLANNER_TEST_CRASH_AFTER=1"}, "next", dir, "--deploy-id=d1")
	if r.code != -1 {
		t.Fatalf("exit %d, want killed by a signal\n%s%s", r.code, r.stdout, r.stderr)
	}
	c.expect(c.run(nil, "status", dir), 0, "phase 0 of 6 applied")
	// The killed run's lease (PLANNER_LEASE_TTL=2s) holds the rerun up until
	// it expires, not for --wait.
	start := time.Now()
	c.expect(c.run(nil, "next", dir, "--deploy-id=d1", "--wait=5m"), 0, "1 advanced", "expand")
	if took := time.Since(start); took > time.Minute {
		t.Fatalf("the rerun took %s: it waited for --wait, not for the 2s lease", took)
	}
	// Killed after the backfill phase committed: the rerun has nothing to do.
	r = c.run([]string{"PLANNER_TEST_CRASH_AFTER_COMMIT=1"}, "next", dir, "--deploy-id=d2")
	if r.code != -1 {
		t.Fatalf("exit %d, want killed by a signal\n%s%s", r.code, r.stdout, r.stderr)
	}
	c.expect(c.run(nil, "next", dir, "--deploy-id=d2"), 0, "nothing advanced", "already advanced in deploy d2")
	var wrong int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users WHERE email_address IS DISTINCT FROM email`).Scan(&wrong); err != nil || wrong != 0 {
		t.Fatalf("%d rows not backfilled (%v)", wrong, err)
	}
}

// TestPlanRefusesTableWithoutKey: with a database, plan refuses what
// validate and next refuse, a backfill on a table with neither a primary
// key nor a unique NOT NULL column; offline it cannot know.
func TestPlanRefusesTableWithoutKey(t *testing.T) {
	c, db := newCLI(t)
	db.Exec(t, `CREATE TABLE events (id int, payload text); CREATE UNIQUE INDEX ON events (id)`) // nullable: no key
	spec := filepath.Join(t.TempDir(), "events.yaml")
	os.WriteFile(spec, []byte(`changes:
  - id: events-rename
    kind: rename_column
    table: events
    column: payload
    to: body
`), 0o644)
	const refusal = "neither a primary key nor a unique index on NOT NULL columns"
	c.expect(c.run(nil, "plan", spec), 2, "events-rename", refusal, "safe alternative", "PRIMARY KEY USING INDEX")
	c.expect(c.run(nil, "validate", "--dir="+spec), 2, refusal)
	for _, r := range []result{c.run([]string{"DATABASE_URL="}, "plan", spec), c.run(nil, "plan", "--offline", spec)} {
		c.expect(r, 0, "events-rename", "assumed")
		if strings.Contains(r.stdout+r.stderr, refusal) {
			t.Fatalf("offline plan refused: %s%s", r.stdout, r.stderr)
		}
	}
	// A table with a key plans with the live catalog.
	c.expect(c.run(nil, "plan", c.dir), 0, "users-email-rename", "email_address")
	// Once the table has a key, the same spec plans.
	db.Exec(t, `ALTER TABLE events ALTER COLUMN id SET NOT NULL`)
	c.expect(c.run(nil, "plan", spec), 0, "events-rename")
}

// TestNextBackfillFlags: next takes the backfill tuning flags of
// backfill run (with a backfill- prefix) and its inline backfill uses them.
func TestNextBackfillFlags(t *testing.T) {
	c, db := newCLI(t)
	dir := "--dir=" + c.dir
	for _, bad := range [][]string{
		{"--backfill-workers=-1", "--backfill-workers"},
		{"--backfill-max-workers=0", "--backfill-max-workers"},
		{"--backfill-min-batch=0", "--backfill-min-batch"},
		{"--backfill-max-batch=5", "--backfill-max-batch"},
		{"--backfill-batch-time=-1s", "--backfill-batch-time"},
		{"--backfill-sleep=-1s", "--backfill-sleep"},
		{"--backfill-max-replica-lag-bytes=0", "--backfill-max-replica-lag-bytes"},
		{"--backfill-max-replica-lag-bytes=lots", "--backfill-max-replica-lag-bytes"},
	} {
		c.expect(c.run(nil, "next", dir, "--deploy-id=d0", bad[0]), 2, bad[1])
	}
	r := c.run(nil, "next", "--help")
	c.expect(r, 0)
	rr := c.run(nil, "backfill", "run", "--help")
	c.expect(rr, 0, "splits")
	for _, f := range []string{"workers", "max-workers", "batch-time", "min-batch", "max-batch", "sleep", "max-replica-lag", "max-replica-lag-bytes"} {
		if !strings.Contains(r.stdout, "--backfill-"+f+" ") || !strings.Contains(rr.stdout, "--"+f+" ") {
			t.Errorf("flag %s: not in both next --help (--backfill-%[1]s) and backfill run --help (--%[1]s)", f)
		}
	}

	c.expect(c.run(nil, "next", dir, "--deploy-id=d1"), 0, "expand")
	c.expect(c.run(nil, "next", dir, "--deploy-id=d2", "--backfill-workers=2", "--backfill-min-batch=10",
		"--backfill-max-batch=20", "--backfill-batch-time=1s", "--backfill-sleep=1ms", "--backfill-max-replica-lag=-1s", "--backfill-max-replica-lag-bytes=64kB"), 0, "1 advanced", "backfill")
	// The batch size grew toward the (long) target, up to --backfill-max-batch.
	var most int
	if err := db.Pool.QueryRow(context.Background(), `SELECT max(batch_size) FROM planner.backfill_ranges`).Scan(&most); err != nil || most != 20 {
		t.Fatalf("largest batch size %d (%v), want --backfill-max-batch=20", most, err)
	}
	var wrong int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users WHERE email_address IS DISTINCT FROM email`).Scan(&wrong); err != nil || wrong != 0 {
		t.Fatalf("%d rows not backfilled (%v)", wrong, err)
	}
}

// unmarshalResult decodes the result of a command's --output json envelope.
func unmarshalResult(stdout string, v any) error {
	var env struct{ Result json.RawMessage }
	if err := json.Unmarshal([]byte(stdout), &env); err != nil {
		return err
	}
	return json.Unmarshal(env.Result, v)
}

// plan --format sql, connected, is a script psql runs to the same end state
// as planner next: every phase, the backfill loop included.
func TestPlanSQLScriptRuns(t *testing.T) {
	c, db := newCLI(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatalf("psql is needed to run the script (Debian: postgresql-client, which make test installs with postgresql): %v", err)
	}
	r := c.run(nil, "plan", "--dir="+c.dir, "--format=sql")
	c.expect(r, 0, "SET LOCAL lock_timeout = '500ms'", "-- gate: backfill_verified")
	cmd := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.URL)
	cmd.Stdin = strings.NewReader(r.stdout)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	var emails, nulls, left int
	err = db.Pool.QueryRow(context.Background(), `SELECT count(email_address), count(*) FILTER (WHERE email_address IS NULL),
		(SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'email')
		FROM users`).Scan(&emails, &nulls, &left)
	if err != nil || emails != 500 || nulls != 0 || left != 0 {
		t.Fatalf("after the script: %d emails, %d NULL, old column left %d (%v)", emails, nulls, left, err)
	}
	var notNull bool
	db.Pool.QueryRow(context.Background(), `SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'email_address'`).Scan(&notNull)
	if !notNull {
		t.Fatal("email_address lost NOT NULL")
	}
}

package main

import (
	"context"
	"database/sql"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/pgplanner/planner/internal/pgtest"
)

// exportSetup is the starting schema of the export tests: a NOT NULL
// column with a unique index to rename, and a column to index.
const exportSetup = `CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, name text);
CREATE UNIQUE INDEX users_email_key ON users (email);
INSERT INTO users (email, name) SELECT 'u' || g || '@example.com', CASE WHEN g % 3 > 0 THEN 'n' || g END FROM generate_series(1, 300) g;`

// exportCLI is a CLI whose specs are an add_index then a rename_column,
// with the schema planner next produces from them on its own database,
// and the starting schema.
func exportCLI(t *testing.T) (c *cli, want, original string) {
	c, ref := newCLI(t)
	ref.Exec(t, `DROP TABLE users`)
	ref.Exec(t, exportSetup)
	original = catalogDump(t, ref.URL)
	index := `changes:
  - id: users-name-index
    kind: add_index
    table: users
    columns: [name]
    where: "name IS NOT NULL"
`
	if err := os.WriteFile(filepath.Join(c.dir, "00.yaml"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 8; i++ {
		r := c.run(nil, "next", "--dir="+c.dir, "--deploy-id="+strconv.Itoa(i), "--purge-after=0")
		if r.code != 0 && r.code != 3 {
			t.Fatalf("next: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	}
	c.expect(c.run(nil, "status", "--dir="+c.dir), 0, "done")
	want = catalogDump(t, ref.URL)
	if want == original {
		t.Fatal("planner next changed nothing")
	}
	return c, want, original
}

// exportDB is a database with the starting schema, and the planner's
// environment pointed at it.
func exportDB(t *testing.T) (*pgtest.DB, []string) {
	db := pgtest.NewDB(t)
	db.Exec(t, exportSetup)
	return db, []string{"DATABASE_URL=" + db.URL}
}

// catalogDump lists the public schema's columns (type, NOT NULL, default),
// indexes, constraints and triggers, leaving out the runners' own tables.
func catalogDump(t *testing.T, url string) string {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`WITH t AS (
  SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
     AND c.relname NOT IN ('goose_db_version', 'alembic_version'))
SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid IN (SELECT oid FROM t) AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
  FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM t)
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
       || CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END
  FROM pg_constraint WHERE conrelid IN (SELECT oid FROM t)
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid IN (SELECT oid FROM t) AND NOT tgisinternal
ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func expectSchema(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: schema differs\ngot:\n%s\nwant:\n%s", what, got, want)
	}
}

// The exported goose revisions, applied one by one with goose through
// database/sql and pgx, give the schema planner next gives; going down
// undoes every reversible revision.
func TestExportGoose(t *testing.T) {
	c, want, original := exportCLI(t)
	db, env := exportDB(t)
	dir := t.TempDir()
	r := c.run(env, "export", "--dir="+c.dir, "--format=goose", dir)
	c.expect(r, 0, "wrote 7 goose revision file(s)", "00006_users-email-rename_contract.sql", "00007_users-email-rename_purge.sql")
	if strings.Contains(r.stdout, "offline") {
		t.Fatalf("connected export says offline:\n%s", r.stdout)
	}
	if err := goose.SetDialect("postgres"); err != nil {
		t.Fatal(err)
	}
	goose.SetLogger(log.New(io.Discard, "", 0))
	sqlDB, err := sql.Open("pgx", db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	// Up to the last reversible revision (the contract), then all the way down.
	for i := 0; i < 6; i++ {
		if err := goose.UpByOne(sqlDB, dir); err != nil {
			t.Fatalf("goose up-by-one #%d: %v", i+1, err)
		}
	}
	for i := 6; i > 0; i-- {
		if err := goose.Down(sqlDB, dir); err != nil {
			t.Fatalf("goose down from %d: %v", i, err)
		}
	}
	expectSchema(t, "after every goose down", catalogDump(t, db.URL), original)
	for i := 0; i < 7; i++ {
		if err := goose.UpByOne(sqlDB, dir); err != nil {
			t.Fatalf("goose up-by-one #%d: %v", i+1, err)
		}
	}
	expectSchema(t, "after every goose up", catalogDump(t, db.URL), want)
	if err := goose.Down(sqlDB, dir); err == nil || !strings.Contains(err.Error(), "irreversible") {
		t.Fatalf("goose down of purge: %v, want an irreversible error", err)
	}
	expectSchema(t, "after a refused goose down", catalogDump(t, db.URL), want)
	var copied int
	if err := sqlDB.QueryRow(`SELECT count(*) FROM users WHERE email_address = 'u' || id || '@example.com'`).Scan(&copied); err != nil || copied != 300 {
		t.Fatalf("%d of 300 rows copied (%v)", copied, err)
	}
	noSessionSettingsLeft(t, sqlDB)
}

// noSessionSettingsLeft checks every connection the pool holds: no
// lock_timeout or statement_timeout that a revision set stayed behind.
func noSessionSettingsLeft(t *testing.T, db *sql.DB) {
	t.Helper()
	ctx := context.Background()
	var conns []*sql.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 3; i++ {
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		var lock, stmt string
		if err := conn.QueryRowContext(ctx, `SELECT current_setting('lock_timeout'), current_setting('statement_timeout')`).Scan(&lock, &stmt); err != nil {
			t.Fatal(err)
		}
		if lock != "0" || stmt != "0" {
			t.Fatalf("a pooled connection kept lock_timeout=%s statement_timeout=%s", lock, stmt)
		}
	}
}

// The exported Alembic revisions, run with Debian's alembic one by one
// (upgrade +1), give the schema planner next gives; downgrade undoes every
// reversible one.
func TestExportAlembic(t *testing.T) {
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import alembic, psycopg2").CombinedOutput(); err != nil {
		t.Fatalf("Debian's alembic is needed: apt-get install python3-alembic python3-psycopg2 (make test installs them): %v\n%s", err, out)
	}
	c, want, original := exportCLI(t)
	db, env := exportDB(t)
	dir := t.TempDir()
	c.expect(c.run(env, "export", "--dir="+c.dir, "--format=alembic", dir), 0, "wrote 10 alembic revision file(s)", "env.py")
	alembic := func(args ...string) {
		t.Helper()
		cmd := exec.Command(python, append([]string{"-m", "alembic", "-c", filepath.Join(dir, "alembic.ini")}, args...)...)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+db.URL)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("alembic %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for i := 0; i < 6; i++ {
		alembic("upgrade", "+1")
	}
	alembic("downgrade", "base")
	expectSchema(t, "after alembic downgrade base", catalogDump(t, db.URL), original)
	for i := 0; i < 7; i++ {
		alembic("upgrade", "+1")
	}
	expectSchema(t, "after every alembic upgrade", catalogDump(t, db.URL), want)
}

// The session guards of a statement that cannot run in a transaction
// reach it under goose: a CREATE INDEX CONCURRENTLY that waits for a lock
// fails after the exported --long-statement-timeout instead of waiting.
func TestExportGooseGuards(t *testing.T) {
	c, _ := newCLI(t)
	db, env := exportDB(t)
	index := `changes:
  - id: users-name-index
    kind: add_index
    table: users
    columns: [name]
`
	if err := os.WriteFile(filepath.Join(c.dir, "01.yaml"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c.expect(c.run(env, "export", "--dir="+c.dir, "--format=goose", "--long-statement-timeout=1s", dir), 0, "wrote 1 goose revision file(s)")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	holder, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(context.Background())
	if _, err := holder.Exec(ctx, `LOCK TABLE users IN SHARE UPDATE EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if err := goose.SetDialect("postgres"); err != nil {
		t.Fatal(err)
	}
	goose.SetLogger(log.New(io.Discard, "", 0))
	sqlDB, err := sql.Open("pgx", db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	start := time.Now()
	err = goose.UpByOneContext(ctx, sqlDB, dir)
	// lock_timeout and statement_timeout are both 1s: either may fire.
	if err == nil || !strings.Contains(err.Error(), "due to") || time.Since(start) > 10*time.Second {
		t.Fatalf("goose up while the table is locked: %v after %s, want a lock or statement timeout after about 1s", err, time.Since(start))
	}
	holder.Rollback(ctx)
	// A rerun (a new goose process: a new connection) builds the index.
	sqlDB.Close()
	if sqlDB, err = sql.Open("pgx", db.URL); err != nil {
		t.Fatal(err)
	}
	if err := goose.UpByOneContext(ctx, sqlDB, dir); err != nil {
		t.Fatalf("goose up after the lock is gone: %v", err)
	}
	if !strings.Contains(catalogDump(t, db.URL), "CREATE INDEX users_name_idx ON public.users USING btree (name)") {
		t.Fatalf("no index:\n%s", catalogDump(t, db.URL))
	}
	noSessionSettingsLeft(t, sqlDB)
}

// The plain SQL revisions, run one file at a time with psql, give the
// schema planner next gives; the down files undo the reversible ones.
func TestExportSQL(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatalf("psql is needed (Debian: postgresql-client, which make test installs with postgresql): %v", err)
	}
	c, want, original := exportCLI(t)
	db, env := exportDB(t)
	dir := t.TempDir()
	c.expect(c.run(env, "export", "--dir="+c.dir, "--format=sql", dir), 0, "wrote 14 sql revision file(s)")
	runFile := func(name string) {
		t.Helper()
		out, err := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.URL, "-f", filepath.Join(dir, name)).CombinedOutput()
		if err != nil {
			t.Fatalf("psql -f %s: %v\n%s", name, err, out)
		}
	}
	ups, _ := filepath.Glob(filepath.Join(dir, "*.up.sql"))
	if len(ups) != 7 {
		t.Fatalf("%d up files, want 7", len(ups))
	}
	for _, f := range ups[:6] {
		runFile(filepath.Base(f))
	}
	for i := 5; i >= 0; i-- {
		runFile(strings.TrimSuffix(filepath.Base(ups[i]), ".up.sql") + ".down.sql")
	}
	expectSchema(t, "after every down file", catalogDump(t, db.URL), original)
	for _, f := range ups {
		runFile(filepath.Base(f))
	}
	expectSchema(t, "after every up file", catalogDump(t, db.URL), want)
}

// export refuses a missing or unknown format and writes nothing; offline,
// it says the SQL has placeholders, on stdout and in every file.
func TestExportInputs(t *testing.T) {
	c, _ := newCLI(t)
	dir := filepath.Join(t.TempDir(), "out")
	c.expect(c.run(nil, "export", "--dir="+c.dir, dir), 2, "--format is required: goose, alembic or sql")
	c.expect(c.run(nil, "export", "--dir="+c.dir, "--format=flyway", dir), 2, "--format must be goose, alembic or sql")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused export created %s (%v)", dir, err)
	}
	r := c.run(nil, "export", "--dir="+c.dir, "--format=sql", "--offline", "--start=7", dir)
	c.expect(r, 0, "offline: column facts assumed", "00007_users-email-rename_expand.up.sql")
	data, err := os.ReadFile(filepath.Join(dir, "00012_users-email-rename_purge.down.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-- NOT FOR RUNNING AS IS: offline", "-- gate: purge_after", "RAISE EXCEPTION"} {
		if !strings.Contains(string(data), want) {
			t.Fatalf("purge down file lacks %q:\n%s", want, data)
		}
	}
	r = c.run(nil, "export", "--dir="+c.dir, "--format=goose", "--output=json", filepath.Join(dir, "g"))
	c.expect(r, 0, `"offline": false`, `00005_users-email-rename_contract.sql`)
}

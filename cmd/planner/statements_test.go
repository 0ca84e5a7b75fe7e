package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/internal/pgtest"
)

// cliOnCluster is newCLI's setup on a new database of cluster c.
func cliOnCluster(t *testing.T, c *pgtest.Cluster, name string, extension bool) (*cli, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()+` TEMPLATE template0`); err != nil {
		t.Fatal(err)
	}
	app, err := pgx.Connect(ctx, c.URL(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(context.Background()) })
	setup := []string{`CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, name text)`,
		`INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 500) g`}
	if extension {
		setup = append(setup, `CREATE EXTENSION pg_stat_statements`)
	}
	for _, sql := range setup {
		if _, err := app.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	return cliFor(t, c.URL(name)), app
}

// planner next --gate-statements exits 3 while a client still runs a
// statement on the old column, naming it (text and JSON); without the flag
// the contract runs and says so; without the extension nothing mentions
// pg_stat_statements, and the flag is refused (exit 5).
func TestNextGateStatements(t *testing.T) {
	cluster, err := pgtest.Start(pgtest.Options{Settings: []string{"shared_preload_libraries = 'pg_stat_statements'"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Stop)
	const oldSelect = "SELECT email FROM users WHERE id = $1"
	toEnforce := func(c *cli) {
		for i := 1; i <= 4; i++ {
			c.expect(c.run(nil, "next", "--dir="+c.dir, fmt.Sprintf("--deploy-id=d%d", i)), 0, "1 advanced")
		}
	}

	c, app := cliOnCluster(t, cluster, "with_pgss", true)
	dir := "--dir=" + c.dir
	toEnforce(c)
	for range 3 {
		if _, err := app.Exec(context.Background(), oldSelect, 1); err != nil {
			t.Fatal(err)
		}
	}
	c.expect(c.run(nil, "next", dir, "--deploy-id=d5", "--gate-statements"), 3, "waiting", "contract", oldSelect, "--gate-statements")
	if _, err := app.Exec(context.Background(), oldSelect, 1); err != nil {
		t.Fatal(err)
	}
	r := c.run(nil, "next", dir, "--deploy-id=d5", "--gate-statements", "-o", "json")
	c.expect(r, 3)
	var rep struct {
		Changes []struct {
			Action, Phase, Reason string
			Statements            *struct {
				Table, Column string
				Available     bool
				Gating        bool
				Statements    []struct {
					QueryID         int64 `json:"queryid"`
					Calls           int64 `json:"calls"`
					CallsSinceCheck int64 `json:"calls_since_check"`
					Query           string
				}
			} `json:"old_column_statements"`
		}
	}
	if err := validateJSON("../../docs/schema/next.json", r.stdout); err != nil {
		t.Fatal(err)
	}
	if err := unmarshalResult(r.stdout, &rep); err != nil {
		t.Fatalf("next -o json: %v\n%s", err, r.stdout)
	}
	ch := rep.Changes[0]
	if ch.Action != "waiting" || ch.Statements == nil || !ch.Statements.Gating || len(ch.Statements.Statements) != 1 {
		t.Fatalf("json report: %s", r.stdout)
	}
	if s := ch.Statements.Statements[0]; s.Query != oldSelect || s.Calls != 4 || s.CallsSinceCheck != 1 || s.QueryID == 0 ||
		!strings.Contains(ch.Reason, fmt.Sprint(s.QueryID)) {
		t.Fatalf("json statement: %s", r.stdout)
	}
	r = c.run(nil, "status", dir, "-o", "json")
	c.expect(r, 0, `"old_column_statements"`, `"queryid"`)
	if err := validateJSON("../../docs/schema/status.json", r.stdout); err != nil {
		t.Fatal(err)
	}
	c.expect(c.run(nil, "status", dir), 0, "statements: 1 statement(s) naming public.users.email called since enforce", oldSelect)
	// Without the flag: the contract runs, and the output says who still
	// named the old column.
	c.expect(c.run(nil, "next", dir, "--deploy-id=d6"), 0, "1 advanced", "contract", "pg_stat_statements: 1 statement(s)", oldSelect)

	plain, papp := cliOnCluster(t, cluster, "without_pgss", false)
	toEnforce(plain)
	if _, err := papp.Exec(context.Background(), oldSelect, 1); err != nil {
		t.Fatal(err)
	}
	r = plain.run(nil, "status", "--dir="+plain.dir)
	plain.expect(r, 0, "next: contract")
	if strings.Contains(r.stdout, "pg_stat_statements") || strings.Contains(r.stdout, "statements:") {
		t.Fatalf("status without the extension mentions it:\n%s", r.stdout)
	}
	plain.expect(plain.run(nil, "next", "--dir="+plain.dir, "--deploy-id=d5", "--gate-statements"), 5, "pg_stat_statements extension is not installed")
	r = plain.run(nil, "next", "--dir="+plain.dir, "--deploy-id=d5")
	plain.expect(r, 0, "1 advanced", "contract")
	if strings.Contains(r.stdout+r.stderr, "pg_stat_statements") {
		t.Fatalf("next without the extension mentions it:\n%s%s", r.stdout, r.stderr)
	}
}

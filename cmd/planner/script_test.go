package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/pgplanner/planner/internal/pgtest"
)

// The user-facing contract — exit codes, JSON shapes, messages for common
// mistakes — is pinned by scripts in testdata/script, run against a fresh
// database each (txtar files; see rogpeppe/go-internal's testscript).
// Commands they add:
//
//	exit N planner ARGS...   run planner, expect exit code N
//	sql STATEMENT            run SQL on the script's database ($DBNAME)
//	dburl ROLE               point DATABASE_URL at the database as ROLE
//	jsonschema FILE          validate stdout against docs/schema/FILE

func TestMain(m *testing.M) {
	testscript.Main(withCluster{m}, map[string]func(){"planner": main})
}

// withCluster stops the shared test cluster after the tests.
type withCluster struct{ m *testing.M }

func (w withCluster) Run() int { return pgtest.Main(w.m) }

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			db, drop, err := pgtest.CreateDB()
			if err != nil {
				return err
			}
			env.Defer(func() {
				if err := drop(); err != nil {
					env.T().Log(err)
				}
			})
			env.Setenv("DATABASE_URL", db.URL)
			env.Setenv("DBNAME", db.Name)
			env.Setenv("PLANNER_LEASE_TTL", "2s")
			env.Values["db"] = db
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exit":       exitCmd,
			"sql":        sqlCmd,
			"dburl":      dburlCmd,
			"jsonschema": jsonschemaCmd,
		},
	})
}

func exitCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exit N COMMAND [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exit: %v", err)
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("exit: %v", err)
	}
	if got != want {
		ts.Fatalf("exit code %d, want %d", got, want)
	}
}

func sqlCmd(ts *testscript.TestScript, neg bool, args []string) {
	db := ts.Value("db").(*pgtest.DB)
	_, err := db.Pool.Exec(context.Background(), strings.Join(args, " "))
	if (err != nil) != neg {
		ts.Fatalf("sql: %v", err)
	}
}

func dburlCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: dburl ROLE")
	}
	u, err := url.Parse(ts.Value("db").(*pgtest.DB).URL)
	ts.Check(err)
	u.User = url.User(args[0])
	ts.Setenv("DATABASE_URL", u.String())
}

func jsonschemaCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: jsonschema FILE")
	}
	err := validateJSON(filepath.Join("..", "..", "docs", "schema", args[0]), ts.ReadFile("stdout"))
	if (err != nil) != neg {
		ts.Fatalf("jsonschema %s: %v", args[0], err)
	}
}

// validateJSON checks doc against the schema file at path (its $refs to
// sibling files resolve in the same directory).
func validateJSON(path, doc string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	c := jsonschema.NewCompiler()
	sch, err := c.Compile(abs)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(doc)))
	if err != nil {
		return fmt.Errorf("stdout is not one JSON document: %w\n%s", err, doc)
	}
	if err := sch.Validate(v); err != nil {
		pretty, _ := json.MarshalIndent(v, "", "  ")
		return fmt.Errorf("%w\n%s", err, pretty)
	}
	return nil
}

package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// Hostile expressions through the real CLI: next, validate and plan exit 2
// naming file:line:col and the field, and the database is left as it was
// (no planner schema, the table unchanged).
func TestHostileExpressionsChangeNothing(t *testing.T) {
	c, db := newCLI(t)
	for _, a := range []struct{ name, spec, at string }{
		{"check", "changes:\n  - id: a\n    kind: add_check\n    table: users\n    check: \"email <> '' /* ( */ ) -- \"\n", ":5:33: changes[0].check"},
		{"e-string", "changes:\n  - id: a\n    kind: set_not_null\n    table: users\n    column: name\n    backfill: E'\\'' ; DROP TABLE users; --\n", ":6:21: changes[0].backfill"},
		{"subquery", "changes:\n  - id: a\n    kind: set_not_null\n    table: users\n    column: name\n    backfill: (SELECT email FROM users u LIMIT 1)\n", ":6:16: changes[0].backfill"},
		{"sleep", "changes:\n  - id: a\n    kind: change_column_type\n    table: users\n    column: name\n    type: text\n    up: name || pg_sleep(2)::text\n    down: name_new\n", ":7:17: changes[0].up"},
	} {
		{
			file := filepath.Join(t.TempDir(), a.name+".yaml")
			if err := os.WriteFile(file, []byte(a.spec), 0o644); err != nil {
				t.Fatal(err)
			}
			c.expect(c.run(nil, "next", "--dir", file, "--deploy-id", "d1"), 2, file+a.at)
			c.expect(c.run(nil, "validate", "--dir", file), 2, file+a.at)
			c.expect(c.run(nil, "plan", file), 2, file+a.at)
			var schemas, cols int
			ctx := context.Background()
			if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = 'planner'`).Scan(&schemas); err != nil {
				t.Fatal(err)
			}
			if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attnum > 0 AND NOT attisdropped`).Scan(&cols); err != nil {
				t.Fatal(err)
			}
			if schemas != 0 || cols != 3 {
				t.Fatalf("the database changed: %d planner schemas, %d columns on users", schemas, cols)
			}
		}
	}
}

package planner

import (
	"context"
	"strings"
	"testing"

	"github.com/pgplanner/planner/internal/pgtest"
)

// What the view rename_table leaves under the old name does and does not
// do, on the server under test (the README's list): statements through the
// view either work as on the table or fail, never silently differ.
func TestRenameTableViewCapabilities(t *testing.T) {
	db := pgtest.NewDB(t)
	db.Exec(t, `CREATE TABLE members (id bigserial PRIMARY KEY, login text NOT NULL UNIQUE, n int NOT NULL DEFAULT 0);
		CREATE VIEW accounts WITH (security_invoker = true) AS SELECT * FROM members;
		INSERT INTO members (login) VALUES ('a'), ('b')`)
	ctx := context.Background()
	works := []string{
		`INSERT INTO accounts (login) VALUES ('c') RETURNING id`,
		`INSERT INTO accounts (login) VALUES ('a') ON CONFLICT (login) DO UPDATE SET n = accounts.n + 1 RETURNING n`,
		`INSERT INTO accounts (login) VALUES ('a') ON CONFLICT DO NOTHING`,
		`UPDATE accounts SET n = n + 1 WHERE login = 'b' RETURNING n`,
		`SELECT * FROM accounts WHERE login = 'b' FOR UPDATE`,
		`DELETE FROM accounts WHERE login = 'c' RETURNING id`,
	}
	for _, q := range works {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Errorf("through the view: %s: %v", q, err)
		}
	}
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT n FROM members WHERE login = 'a'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("ON CONFLICT DO UPDATE through the view: n = %d, %v", n, err)
	}
	fails := []string{`TRUNCATE accounts`, `COPY accounts FROM STDIN`, `SELECT ctid FROM accounts`}
	if db.ServerVersion(t) < 17 {
		fails = append(fails, `MERGE INTO accounts a USING (SELECT 'a' AS login) s ON a.login = s.login WHEN MATCHED THEN UPDATE SET n = 5`)
	} else {
		works := `MERGE INTO accounts a USING (SELECT 'a' AS login) s ON a.login = s.login WHEN MATCHED THEN UPDATE SET n = 5`
		if _, err := db.Pool.Exec(ctx, works); err != nil {
			t.Errorf("MERGE through the view on %d: %v", db.ServerVersion(t), err)
		}
	}
	for _, q := range fails {
		if _, err := db.Pool.Exec(ctx, q); err == nil || strings.Contains(err.Error(), "syntax error") {
			t.Errorf("through the view: %s: want a refusal, got %v", q, err)
		}
	}
}

package planner

import (
	"context"
	"testing"

	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/internal/sqllex"
)

// The lexer agrees with the server on where statements end: for texts full
// of the constructs that move that boundary, the server (simple protocol,
// which runs every statement of a string) runs as many statements as the
// lexer finds ';' outside literals and comments, plus one.
func TestLexerAgreesWithServerOnStatements(t *testing.T) {
	db := pgtest.NewDB(t)
	conn, err := db.Pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, sql := range []string{
		`SELECT E'\'' ; SELECT 1`,
		`SELECT E'a\'' ; SELECT 1 --'`,
		"SELECT E'x'\n'\\' -- ' ; SELECT 1",
		"SELECT 'x'\n'\\' ; SELECT 1 --'",
		"SELECT 'x' -- c\n 'y' ; SELECT 1",
		"SELECT ARRAY['x' /* c */\n, 'y;'] ; SELECT 1",
		`SELECT $a$ $$ ; $a$ ; SELECT 1`,
		`SELECT $a$ $b$a$ ; SELECT 1`,
		`SELECT 1 /* ; /* ; */ ; */ ; SELECT 1`,
		`SELECT U&'\0041;' ; SELECT 1`,
		`SELECT U&"a;" FROM (SELECT 1 AS "a;") s ; SELECT 1`,
		`SELECT "a;""b" FROM (SELECT 1 AS "a;""b") s; SELECT 1`,
		"SELECT 1 <-- ;\n 2; SELECT 1",
		"SELECT 1 +/* ; */ 1; SELECT 1",
		`SELECT B'01' ; SELECT 1`,
		`SELECT X'1F' ; SELECT 1`,
		`SELECT N'x;' ; SELECT 1`,
		`SELECT 1 AS a$$ ; SELECT 1`,
		"SELECT 1 -- ; \r + 2; SELECT 1",
		`SELECT '\' ; SELECT 1`,
	} {
		toks, err := sqllex.Lex(sql)
		if err != nil {
			t.Errorf("Lex(%q): %v", sql, err)
			continue
		}
		want := 1
		for _, tk := range toks {
			if tk.Kind == sqllex.Punct && tk.Text == ";" {
				want++
			}
		}
		results, err := conn.Conn().PgConn().Exec(context.Background(), sql).ReadAll()
		if err != nil {
			t.Errorf("server: %q: %v", sql, err)
			continue
		}
		if len(results) != want {
			t.Errorf("%q: the server ran %d statements, the lexer found %d", sql, len(results), want)
		}
	}
}

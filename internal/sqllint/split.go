package sqllint

import (
	"strings"

	"github.com/pgplanner/planner/internal/sqllex"
)

// A piece is one statement of a script: its text from its first token to
// the end of its last, where it starts, and its tokens without spaces and
// comments.
type piece struct {
	SQL    string
	Pos    int
	Tokens []sqllex.Token
}

// split cuts a script into statements at the semicolons PostgreSQL would
// end them at: not inside literals, comments or parentheses, and not
// inside a BEGIN ATOMIC ... END function body (where CASE ... END nests).
func split(src string) ([]piece, error) {
	toks, err := sqllex.Lex(src)
	if err != nil {
		return nil, err
	}
	var out []piece
	var cur []sqllex.Token
	depth, atomic := 0, 0
	flush := func() {
		if len(cur) > 0 {
			end := cur[len(cur)-1]
			out = append(out, piece{SQL: src[cur[0].Pos : end.Pos+len(end.Text)], Pos: cur[0].Pos, Tokens: cur})
		}
		cur = nil
	}
	for _, t := range toks {
		if t.Kind == sqllex.Space || t.Kind == sqllex.Comment {
			continue
		}
		switch {
		case t.Text == "(":
			depth++
		case t.Text == ")":
			depth--
		case t.Text == ";" && depth <= 0 && atomic == 0:
			flush()
			depth = 0
			continue
		case t.Is("atomic") && len(cur) > 0 && cur[len(cur)-1].Is("begin"):
			atomic = 1
		case atomic > 0 && t.Is("case"):
			atomic++
		case atomic > 0 && t.Is("end"):
			atomic--
		}
		cur = append(cur, t)
	}
	flush()
	return out, nil
}

// lineCol turns a byte offset of src into a 1-based line and column (in
// characters).
func lineCol(src string, pos int) (line, col int) {
	if pos > len(src) {
		pos = len(src)
	}
	before := src[:pos]
	line = strings.Count(before, "\n") + 1
	col = len([]rune(before[strings.LastIndexByte(before, '\n')+1:])) + 1
	return line, col
}

package planner

import (
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/phases"
)

// quoteIfNeeded quotes an identifier only when it needs it, for hints.
func quoteIfNeeded(name string) string {
	for i, c := range name {
		if !(c == '_' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return pgx.Identifier{name}.Sanitize()
		}
	}
	return name
}

// fillExpr is a backfill's value for a column that keeps what rows already
// have: COALESCE(column, fill).
func fillExpr(column, fill string) string {
	return fmt.Sprintf("COALESCE(%s, %s\n)", phases.Ident(column), fill)
}

package planner

import (
	"github.com/jackc/pgx/v5"
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

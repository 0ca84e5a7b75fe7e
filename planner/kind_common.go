package planner

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/pgplanner/planner/internal/sqllex"
)

// Helpers shared by the kinds' Check methods.

func required(field, value string) []Problem {
	if strings.TrimSpace(value) == "" {
		return []Problem{{Field: field, Message: "is required", Hint: "set " + field}}
	}
	return nil
}

func requiredList(field string, values []string) []Problem {
	if len(values) == 0 {
		return []Problem{{Field: field, Message: "needs at least one column", Hint: "list the columns, e.g. " + field + ": [a, b]"}}
	}
	var ps []Problem
	seen := map[string]bool{}
	for i, v := range values {
		f := fmt.Sprintf("%s[%d]", field, i)
		if strings.TrimSpace(v) == "" {
			ps = append(ps, Problem{Field: f, Message: "is empty", Hint: "name a column"})
			continue
		}
		if seen[v] {
			ps = append(ps, Problem{Field: f, Message: fmt.Sprintf("column %q is listed twice", v), Hint: "list each column once"})
		}
		seen[v] = true
		ps = append(ps, identifier(f, v)...)
	}
	return ps
}

// identifier checks a name PostgreSQL would accept (quoted) without
// truncating it silently.
func identifier(field, name string) []Problem {
	switch {
	case name == "":
		return nil
	case len(name) > maxIdentifier:
		return []Problem{{Field: field, Message: fmt.Sprintf("%q is %d bytes; PostgreSQL truncates names to %d", name, len(name), maxIdentifier), Hint: "use a shorter name"}}
	case strings.ContainsRune(name, 0):
		return []Problem{{Field: field, Message: "contains a NUL byte"}}
	}
	return nil
}

func tableProblems(table string) []Problem {
	if ps := required("table", table); ps != nil {
		return ps
	}
	t := ParseTableName(table)
	if t.Name == "" {
		return []Problem{{Field: "table", Message: fmt.Sprintf("%q has no table name", table), Hint: `write table: name or table: schema.name (quote parts with double quotes: app."User Accounts")`}}
	}
	if len(splitQualified(table)) > 2 {
		return []Problem{{Field: "table", Message: fmt.Sprintf("%q has more than two dotted parts", table), Hint: `write schema.name; quote names containing dots: app."a.b"`}}
	}
	return append(identifier("table", t.Name), identifier("table", t.Schema)...)
}

func columnProblems(field, column string) []Problem {
	if ps := required(field, column); ps != nil {
		return ps
	}
	return identifier(field, column)
}

var typeNameRe = regexp.MustCompile(`^[A-Za-z_"][A-Za-z0-9_ ."(),\[\]]*$`)

func typeProblems(field, typ string) []Problem {
	if ps := required(field, typ); ps != nil {
		return ps
	}
	if _, err := sqllex.Analyze(typ); err != nil || !typeNameRe.MatchString(typ) {
		return []Problem{{Field: field, Message: fmt.Sprintf("%q is not a type name", typ), Hint: "write a PostgreSQL type, e.g. text, bigint, varchar(80), numeric(12,2), timestamptz"}}
	}
	return nil
}

// maxIdentifier is PostgreSQL's limit on a name, in bytes; longer names
// are silently cut, so the planner refuses them.
const maxIdentifier = 63

package planner

import (
	"fmt"
	"regexp"
	"strings"
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

// exprProblems rejects expressions that could end the statement they are
// spliced into. Expressions are SQL written by the spec's author and reviewed
// in the PR (they cannot be query parameters); this only catches accidents.
func exprProblems(field, expr string) []Problem {
	if strings.TrimSpace(expr) == "" {
		return nil
	}
	if strings.Contains(expr, ";") && !semicolonInLiteral(expr) {
		return []Problem{{Field: field, Message: "contains ';'", Hint: "write a single SQL expression, not statements"}}
	}
	if depth := parenBalance(expr); depth != 0 {
		return []Problem{{Field: field, Message: "has unbalanced parentheses", Hint: "check the expression's parentheses"}}
	}
	return nil
}

// semicolonInLiteral reports whether every ';' sits inside a quoted literal.
func semicolonInLiteral(expr string) bool {
	inQuote := false
	for _, c := range expr {
		switch {
		case c == '\'':
			inQuote = !inQuote
		case c == ';' && !inQuote:
			return false
		}
	}
	return true
}

func parenBalance(expr string) int {
	depth, inQuote, inIdent := 0, false, false
	for _, c := range expr {
		switch {
		case c == '\'' && !inIdent:
			inQuote = !inQuote
		case c == '"' && !inQuote:
			inIdent = !inIdent
		case inQuote || inIdent:
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth < 0 {
				return depth
			}
		}
	}
	return depth
}

var typeNameRe = regexp.MustCompile(`^[A-Za-z_"][A-Za-z0-9_ ."(),\[\]]*$`)

func typeProblems(field, typ string) []Problem {
	if ps := required(field, typ); ps != nil {
		return ps
	}
	if !typeNameRe.MatchString(typ) || parenBalance(typ) != 0 {
		return []Problem{{Field: field, Message: fmt.Sprintf("%q is not a type name", typ), Hint: "write a PostgreSQL type, e.g. text, bigint, varchar(80), numeric(12,2), timestamptz"}}
	}
	return nil
}

const maxIdentifier = 63

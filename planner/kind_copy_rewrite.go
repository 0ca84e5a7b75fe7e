package planner

import (
	"strings"

	"github.com/pgplanner/planner/phases"
)

// A small SQL tokenizer, enough to rewrite column references in definitions
// PostgreSQL prints (pg_get_indexdef, pg_get_constraintdef): identifiers,
// quoted identifiers, string literals, numbers, operators, whitespace.
// Rewriting tokens, not text, keeps literals, function names, qualified
// names and type casts that merely contain the column's name intact.

type tokenKind int

const (
	tokSpace tokenKind = iota
	tokIdent
	tokQuotedIdent
	tokString
	tokOther
)

type token struct {
	kind tokenKind
	text string
}

// value is an identifier's name as PostgreSQL sees it.
func (t token) value() string {
	switch t.kind {
	case tokIdent:
		return strings.ToLower(t.text)
	case tokQuotedIdent:
		return strings.ReplaceAll(t.text[1:len(t.text)-1], `""`, `"`)
	}
	return t.text
}

func (t token) isIdent() bool { return t.kind == tokIdent || t.kind == tokQuotedIdent }

func (t token) is(keyword string) bool {
	return t.kind == tokIdent && strings.EqualFold(t.text, keyword)
}

func tokenize(s string) []token {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		j := i + 1
		kind := tokOther
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			kind = tokSpace
			for j < len(s) && strings.IndexByte(" \t\n\r", s[j]) >= 0 {
				j++
			}
		case c == '"' || c == '\'':
			kind = tokQuotedIdent
			if c == '\'' {
				kind = tokString
			}
			for j < len(s) {
				if s[j] == c {
					if j+1 < len(s) && s[j+1] == c {
						j += 2
						continue
					}
					j++
					break
				}
				j++
			}
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
			kind = tokIdent
			for j < len(s) && (s[j] == '_' || s[j] == '$' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9' || s[j] >= 0x80) {
				j++
			}
		case c == ':' && j < len(s) && s[j] == ':':
			j++
		}
		out = append(out, token{kind: kind, text: s[i:j]})
		i = j
	}
	return out
}

func join(tokens []token) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteString(t.text)
	}
	return b.String()
}

// neighbour returns the nearest non-space token before (dir -1) or after
// (dir +1) position i, or an empty token.
func neighbour(tokens []token, i, dir int) token {
	for j := i + dir; j >= 0 && j < len(tokens); j += dir {
		if tokens[j].kind != tokSpace {
			return tokens[j]
		}
	}
	return token{}
}

// renameColumnRefs replaces references to column old by new in
// tokens[from:to]: identifiers that are not qualified (x.old), not
// qualifiers (old.x), not function names (old(...)) and not type names
// (::old).
func renameColumnRefs(tokens []token, from, to int, old, new string) {
	for i := from; i < to && i < len(tokens); i++ {
		t := tokens[i]
		if !t.isIdent() || t.value() != old {
			continue
		}
		prev, next := neighbour(tokens, i, -1), neighbour(tokens, i, +1)
		if prev.text == "." || prev.text == "::" || next.text == "." || next.text == "(" {
			continue
		}
		tokens[i] = token{kind: tokQuotedIdent, text: phases.Ident(new)}
	}
}

// renameInExpr rewrites column references in a whole expression or
// constraint definition.
func renameInExpr(def, old, new string) string {
	tokens := tokenize(def)
	renameColumnRefs(tokens, 0, len(tokens), old, new)
	return join(tokens)
}

// parenGroup returns the token range [open, close] of the parenthesized
// group starting at the first "(" at or after i.
func parenGroup(tokens []token, i int) (open, close int, ok bool) {
	for ; i < len(tokens) && tokens[i].text != "("; i++ {
	}
	depth := 0
	for j := i; j < len(tokens); j++ {
		switch tokens[j].text {
		case "(":
			depth++
		case ")":
			depth--
			if depth == 0 {
				return i, j, true
			}
		}
	}
	return 0, 0, false
}

// indexBody is the part of a pg_get_indexdef definition after the table
// name ("USING btree (email) WHERE ..."), with old renamed to new.
func indexBody(def, old, new string) (string, bool) {
	tokens := tokenize(def)
	for i, t := range tokens {
		if t.is("USING") {
			renameColumnRefs(tokens, i+1, len(tokens), old, new)
			return join(tokens[i:]), true
		}
	}
	return "", false
}

// fkTokens splits a pg_get_constraintdef foreign key definition:
// the referencing columns' group, the referenced table's name, and the
// referenced columns' group, as token ranges.
type fkTokens struct {
	tokens                []token
	localOpen, localClose int
	refTable              string
	refOpen, refClose     int
}

func parseForeignKey(def string) (fkTokens, bool) {
	f := fkTokens{tokens: tokenize(def)}
	var ok bool
	if f.localOpen, f.localClose, ok = parenGroup(f.tokens, 0); !ok {
		return f, false
	}
	i := f.localClose + 1
	for ; i < len(f.tokens) && !f.tokens[i].is("REFERENCES"); i++ {
	}
	if i == len(f.tokens) {
		return f, false
	}
	if f.refOpen, f.refClose, ok = parenGroup(f.tokens, i+1); !ok {
		return f, false
	}
	f.refTable = strings.TrimSpace(join(f.tokens[i+1 : f.refOpen]))
	return f, true
}

// renameFK renames old to new among the referencing columns (local) and/or
// the referenced columns (referenced).
func renameFK(def, old, new string, local, referenced bool) (string, bool) {
	f, ok := parseForeignKey(def)
	if !ok {
		return "", false
	}
	if local {
		renameColumnRefs(f.tokens, f.localOpen, f.localClose, old, new)
	}
	if referenced {
		renameColumnRefs(f.tokens, f.refOpen, f.refClose, old, new)
	}
	return join(f.tokens), true
}

// referencedTable is the table a foreign key definition references.
func referencedTable(def string) (TableName, bool) {
	f, ok := parseForeignKey(def)
	if !ok {
		return TableName{}, false
	}
	return ParseTableName(f.refTable), true
}

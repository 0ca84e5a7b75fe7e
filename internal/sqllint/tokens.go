package sqllint

import (
	"strings"

	"github.com/pgplanner/planner/internal/sqllex"
)

// toks are a statement's significant tokens, with the small matchers the
// rules need: they recognise statements by their keywords, not by a parse
// tree, so they look only at what decides a lock or a rewrite.
type toks []sqllex.Token

// kw is the keyword at i, folded to lower case ("" past the end or for
// anything but an unquoted identifier).
func (t toks) kw(i int) string {
	if i < 0 || i >= len(t) || t[i].Kind != sqllex.Ident {
		return ""
	}
	return strings.ToLower(t[i].Text)
}

// at reports whether the keywords at i are words.
func (t toks) at(i int, words ...string) bool {
	for j, w := range words {
		if t.kw(i+j) != w {
			return false
		}
	}
	return true
}

// skip steps over words when they are at i.
func (t toks) skip(i int, words ...string) int {
	if t.at(i, words...) {
		return i + len(words)
	}
	return i
}

// text is the punctuation or operator at i ("" past the end).
func (t toks) text(i int) string {
	if i < 0 || i >= len(t) {
		return ""
	}
	return t[i].Text
}

func (t toks) pos(i int) int {
	if i >= len(t) {
		i = len(t) - 1
	}
	if i < 0 {
		return 0
	}
	return t[i].Pos
}

// name reads a possibly qualified name at i (a.b.c, quoted parts
// unquoted), returning it and the index after it ("" when i holds no name).
func (t toks) name(i int) (string, int) {
	parts, i := t.parts(i)
	return strings.Join(parts, "."), i
}

// relation reads a possibly qualified relation name at i, its schema kept
// apart from its name (of catalog.schema.name, the last two parts).
func (t toks) relation(i int) (Name, int) {
	parts, i := t.parts(i)
	switch len(parts) {
	case 0:
		return Name{}, i
	case 1:
		return Name{Name: parts[0]}, i
	}
	return Name{Schema: parts[len(parts)-2], Name: parts[len(parts)-1]}, i
}

// parts reads the dot-separated parts of a name at i, unquoted.
func (t toks) parts(i int) ([]string, int) {
	var parts []string
	for i < len(t) && (t[i].Kind == sqllex.Ident || t[i].Kind == sqllex.QuotedIdent) {
		parts = append(parts, t[i].Name())
		i++
		if t.text(i) != "." {
			break
		}
		i++
	}
	return parts, i
}

// find is the index of keyword w at parenthesis depth 0 from i, or -1.
func (t toks) find(i int, w string) int {
	depth := 0
	for ; i < len(t); i++ {
		switch t[i].Text {
		case "(", "[":
			depth++
		case ")", "]":
			depth--
		}
		if depth == 0 && t.kw(i) == w {
			return i
		}
	}
	return -1
}

// has reports whether the keywords words follow one another at depth 0.
func (t toks) has(words ...string) bool {
	for i := t.find(0, words[0]); i >= 0; i = t.find(i+1, words[0]) {
		if t.at(i, words...) {
			return true
		}
	}
	return false
}

// commas splits t at its top-level commas.
func (t toks) commas() []toks {
	var out []toks
	depth, start := 0, 0
	for i, tk := range t {
		switch tk.Text {
		case "(", "[":
			depth++
		case ")", "]":
			depth--
		case ",":
			if depth == 0 {
				out = append(out, t[start:i])
				start = i + 1
			}
		}
	}
	return append(out, t[start:])
}

// group is the tokens inside the parentheses opening at i, and the index
// after the closing one; nil when t[i] is not "(".
func (t toks) group(i int) (toks, int) {
	if t.text(i) != "(" {
		return nil, i
	}
	depth := 0
	for j := i; j < len(t); j++ {
		switch t[j].Text {
		case "(":
			depth++
		case ")":
			depth--
			if depth == 0 {
				return t[i+1 : j], j + 1
			}
		}
	}
	return t[i+1:], len(t)
}

// calls lists the functions t calls (a name followed by "("), by their
// last name part, with the index of each.
func (t toks) calls() map[int]string {
	out := map[int]string{}
	for i := 0; i+1 < len(t); i++ {
		if (t[i].Kind == sqllex.Ident || t[i].Kind == sqllex.QuotedIdent) && t[i+1].Text == "(" {
			out[i] = t[i].Name()
		}
	}
	return out
}

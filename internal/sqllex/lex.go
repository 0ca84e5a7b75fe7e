// Package sqllex splits SQL text into tokens the way PostgreSQL's own
// scanner (src/backend/parser/scan.l) does, with standard_conforming_strings
// on: `--` line comments, nested `/* */` comments, ” strings with ”
// doubling, E” strings with backslash escapes, B” and X” bit strings,
// N” and U&” strings, U&"" and "" identifiers, dollar quotes ($$, $tag$),
// string continuation across newlines, and operators cut before a comment
// start. It only finds where tokens begin and end; it does not parse.
//
// The planner pastes spec expressions into generated statements, so what
// matters is that it agrees with PostgreSQL on where literals, comments and
// identifiers end: a disagreement would let text the planner took for a
// literal act as SQL.
package sqllex

import (
	"fmt"
	"strings"
)

// Kind is the class of a token.
type Kind int

const (
	Space        Kind = iota // spaces, tabs, newlines
	Comment                  // -- to end of line, or /* ... */ (nested)
	Ident                    // unquoted identifier or keyword
	QuotedIdent              // "..." or U&"..."
	String                   // '...', E'...', N'...', U&'...', B'...', X'...'
	DollarString             // $$...$$ or $tag$...$tag$
	Number                   // 42, 1.5e3, 0x1F, 1_000
	Param                    // $1
	Operator                 // +, <=, ::, ||, ...
	Punct                    // ( ) [ ] , ; . :
)

func (k Kind) String() string {
	switch k {
	case Space:
		return "space"
	case Comment:
		return "comment"
	case Ident:
		return "identifier"
	case QuotedIdent:
		return "quoted identifier"
	case String:
		return "string"
	case DollarString:
		return "dollar-quoted string"
	case Number:
		return "number"
	case Param:
		return "parameter"
	case Operator:
		return "operator"
	case Punct:
		return "punctuation"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Token is one token: Text is exactly the source, Pos its byte offset.
type Token struct {
	Kind Kind
	Text string
	Pos  int
}

// Name is an identifier's name as PostgreSQL sees it: unquoted ones folded
// to lower case (ASCII only, as PostgreSQL does for multibyte encodings),
// quoted ones with "" undoubled. Other tokens return their text.
func (t Token) Name() string {
	switch t.Kind {
	case Ident:
		return strings.Map(func(r rune) rune {
			if r >= 'A' && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return r
		}, t.Text)
	case QuotedIdent:
		s := t.Text
		if s[0] != '"' {
			s = s[2:] // U&"..."
		}
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return t.Text
}

// Is reports whether t is the unquoted keyword kw (case-insensitive).
func (t Token) Is(kw string) bool { return t.Kind == Ident && strings.EqualFold(t.Text, kw) }

// Error is a lexing failure at a byte offset of the input.
type Error struct {
	Pos     int
	Message string
	Hint    string
}

func (e *Error) Error() string { return fmt.Sprintf("at byte %d: %s", e.Pos, e.Message) }

// Lex splits s into tokens. It fails on what PostgreSQL's scanner rejects
// or would read past the end of s: unterminated strings, quoted
// identifiers, dollar quotes and block comments, zero-length quoted
// identifiers, and NUL bytes.
func Lex(s string) ([]Token, error) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return nil, &Error{Pos: i, Message: "contains a NUL byte", Hint: "PostgreSQL refuses NUL bytes in SQL text"}
	}
	l := lexer{s: s}
	for l.pos < len(s) {
		start := l.pos
		kind, err := l.next()
		if err != nil {
			return l.out, err
		}
		l.out = append(l.out, Token{Kind: kind, Text: s[start:l.pos], Pos: start})
	}
	return l.out, nil
}

type lexer struct {
	s   string
	pos int
	out []Token
}

func (l *lexer) peek(i int) byte {
	if l.pos+i < len(l.s) {
		return l.s[l.pos+i]
	}
	return 0
}

func (l *lexer) fail(at int, msg, hint string) error {
	return &Error{Pos: at, Message: msg, Hint: hint}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isIdentCont(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' || c == '$' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

const opChars = "~!@#^&|`?+-*/%<>="
const selfChars = ",()[].;:+-*/%^<>="

func (l *lexer) next() (Kind, error) {
	c := l.s[l.pos]
	switch {
	case c == 0:
		return 0, l.fail(l.pos, "contains a NUL byte", "PostgreSQL refuses NUL bytes in SQL text")
	case isSpace(c):
		for l.pos < len(l.s) && isSpace(l.s[l.pos]) {
			l.pos++
		}
		return Space, nil
	case c == '-' && l.peek(1) == '-':
		l.lineComment()
		return Comment, nil
	case c == '/' && l.peek(1) == '*':
		return Comment, l.blockComment()
	case c == '\'':
		return String, l.quoted(l.pos, '\'', quoteStandard)
	case c == '"':
		return QuotedIdent, l.quotedIdent(l.pos, 1)
	case (c == 'e' || c == 'E') && l.peek(1) == '\'':
		start := l.pos
		l.pos++
		return String, l.quoted(start, '\'', quoteEscape)
	case (c == 'b' || c == 'B' || c == 'x' || c == 'X') && l.peek(1) == '\'':
		start := l.pos
		l.pos++
		return String, l.quoted(start, '\'', quoteBits)
	case (c == 'n' || c == 'N') && l.peek(1) == '\'':
		start := l.pos
		l.pos++
		return String, l.quoted(start, '\'', quoteStandard)
	case (c == 'u' || c == 'U') && l.peek(1) == '&' && l.peek(2) == '\'':
		start := l.pos
		l.pos += 2
		return String, l.quoted(start, '\'', quoteStandard)
	case (c == 'u' || c == 'U') && l.peek(1) == '&' && l.peek(2) == '"':
		return QuotedIdent, l.quotedIdent(l.pos, 3)
	case isIdentStart(c):
		for l.pos < len(l.s) && isIdentCont(l.s[l.pos]) {
			l.pos++
		}
		return Ident, nil
	case c == '$':
		if isDigit(l.peek(1)) {
			l.pos++
			for l.pos < len(l.s) && isDigit(l.s[l.pos]) {
				l.pos++
			}
			return Param, nil
		}
		if tag, ok := l.dollarTag(); ok {
			return DollarString, l.dollarBody(tag)
		}
		l.pos++ // a lone $: PostgreSQL refuses it when parsing
		return Operator, nil
	case isDigit(c) || c == '.' && isDigit(l.peek(1)):
		return Number, l.number()
	case c == ':' && l.peek(1) == ':':
		l.pos += 2
		return Operator, nil
	case c == '.' && l.peek(1) == '.':
		l.pos += 2
		return Operator, nil
	case c == ':' && l.peek(1) == '=', c == '=' && l.peek(1) == '>':
		l.pos += 2
		return Operator, nil
	case strings.IndexByte(opChars, c) >= 0:
		l.operator()
		return Operator, nil
	case strings.IndexByte(selfChars, c) >= 0:
		l.pos++
		return Punct, nil
	}
	// Anything else (a backslash, a stray byte) is a token of its own,
	// as in scan.l; the parser refuses it.
	l.pos++
	return Operator, nil
}

func (l *lexer) lineComment() {
	for l.pos < len(l.s) && l.s[l.pos] != '\n' && l.s[l.pos] != '\r' {
		l.pos++
	}
}

func (l *lexer) blockComment() error {
	start, depth := l.pos, 0
	for l.pos < len(l.s) {
		switch {
		case l.s[l.pos] == '/' && l.peek(1) == '*':
			depth++
			l.pos += 2
		case l.s[l.pos] == '*' && l.peek(1) == '/':
			depth--
			l.pos += 2
			if depth == 0 {
				return nil
			}
		default:
			l.pos++
		}
	}
	return l.fail(start, "has an unterminated /* comment", "close every /* with */ (comments nest in PostgreSQL)")
}

type quoteMode int

const (
	quoteStandard quoteMode = iota // '' doubles a quote; backslash is plain
	quoteEscape                    // E'': backslash escapes the next byte
	quoteBits                      // B'', X'': no escapes; '' ends the literal
)

// quoted reads a string literal whose opening quote is at l.pos, and its
// continuations: PostgreSQL joins 'a'<newline>'b' into one literal that
// keeps the first part's mode (so E'...' continues with backslash escapes).
func (l *lexer) quoted(start int, q byte, mode quoteMode) error {
	for {
		l.pos++ // the opening quote
		closed := false
		for l.pos < len(l.s) && !closed {
			switch c := l.s[l.pos]; {
			case c == 0:
				return l.fail(l.pos, "contains a NUL byte", "PostgreSQL refuses NUL bytes in SQL text")
			case c == '\\' && mode == quoteEscape:
				l.pos += 2
			case c == q && l.peek(1) == q && mode != quoteBits:
				l.pos += 2
			case c == q:
				l.pos++
				closed = true
			default:
				l.pos++
			}
		}
		if !closed {
			return l.fail(start, "has an unterminated string literal", "close the string with ' (write '' for a quote inside it)")
		}
		next, ok := l.continuation()
		if !ok {
			return nil
		}
		l.pos = next
	}
}

// continuation returns the position of the quote that continues the
// literal just closed, if any: whitespace holding at least one newline
// (and -- comments) between the two parts, as scan.l's
// {whitespace_with_newline}{quote}.
func (l *lexer) continuation() (int, bool) {
	i := l.pos
	skipComment := func() bool {
		if i+1 < len(l.s) && l.s[i] == '-' && l.s[i+1] == '-' {
			for i < len(l.s) && l.s[i] != '\n' && l.s[i] != '\r' {
				i++
			}
			return true
		}
		return false
	}
	newline := false
	for i < len(l.s) {
		switch c := l.s[i]; {
		case c == '\n' || c == '\r':
			newline = true
			i++
		case c == ' ' || c == '\t' || c == '\f' || c == '\v':
			i++
		case skipComment():
		default:
			if newline && c == '\'' {
				return i, true
			}
			return 0, false
		}
	}
	return 0, false
}

func (l *lexer) quotedIdent(start, open int) error {
	l.pos += open
	for l.pos < len(l.s) {
		switch c := l.s[l.pos]; {
		case c == 0:
			return l.fail(l.pos, "contains a NUL byte", "PostgreSQL refuses NUL bytes in SQL text")
		case c == '"' && l.peek(1) == '"':
			l.pos += 2
		case c == '"':
			l.pos++
			if l.pos-start == open+1 {
				return l.fail(start, `has a zero-length quoted identifier ""`, `remove the "" or name something inside it`)
			}
			return nil
		default:
			l.pos++
		}
	}
	return l.fail(start, `has an unterminated quoted identifier`, `close the identifier with " (write "" for a quote inside it)`)
}

// dollarTag reads $tag$ at l.pos (the tag: an identifier without $).
func (l *lexer) dollarTag() (string, bool) {
	i := l.pos + 1
	if i < len(l.s) && l.s[i] != '$' {
		if !isIdentStart(l.s[i]) {
			return "", false
		}
		for i < len(l.s) && l.s[i] != '$' {
			if !isIdentCont(l.s[i]) {
				return "", false
			}
			i++
		}
	}
	if i >= len(l.s) {
		return "", false
	}
	return l.s[l.pos : i+1], true
}

// dollarBody skips to the end of the closing tag: the body ends at the
// first occurrence of the opening tag.
func (l *lexer) dollarBody(tag string) error {
	start := l.pos
	end := strings.Index(l.s[start+len(tag):], tag)
	if end < 0 {
		return l.fail(start, "has an unterminated dollar-quoted string "+tag, "close it with "+tag)
	}
	if i := strings.IndexByte(l.s[start:start+len(tag)+end], 0); i >= 0 {
		return l.fail(start+i, "contains a NUL byte", "PostgreSQL refuses NUL bytes in SQL text")
	}
	l.pos = start + len(tag) + end + len(tag)
	return nil
}

// number reads a numeric literal as PostgreSQL 16 does (decimal with
// underscores, fraction, exponent; 0x, 0o, 0b integers) and refuses an
// identifier stuck to it: PostgreSQL 15+ refuses that as trailing junk, and
// 14 reads it as a separate token, so 1e'..' would be an E-string there.
func (l *lexer) number() error {
	start := l.pos
	digits := func(ok func(byte) bool) {
		for l.pos < len(l.s) && (ok(l.s[l.pos]) || l.s[l.pos] == '_' && l.pos+1 < len(l.s) && ok(l.s[l.pos+1])) {
			l.pos++
		}
	}
	isHex := func(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
	isOct := func(c byte) bool { return c >= '0' && c <= '7' }
	isBin := func(c byte) bool { return c == '0' || c == '1' }
	prefixed := func(x byte, ok func(byte) bool) bool {
		if l.peek(0) == '0' && (l.peek(1) == x || l.peek(1) == x-'a'+'A') && ok(l.peek(2)) {
			l.pos += 2
			digits(ok)
			return true
		}
		return false
	}
	if !prefixed('x', isHex) && !prefixed('o', isOct) && !prefixed('b', isBin) {
		digits(isDigit)
		if l.peek(0) == '.' && l.peek(1) != '.' {
			l.pos++
			digits(isDigit)
		}
		if c := l.peek(0); c == 'e' || c == 'E' {
			sign := 0
			if l.peek(1) == '+' || l.peek(1) == '-' {
				sign = 1
			}
			if isDigit(l.peek(1 + sign)) {
				l.pos += 1 + sign
				digits(isDigit)
			}
		}
	}
	if l.pos < len(l.s) && isIdentStart(l.s[l.pos]) {
		return l.fail(start, fmt.Sprintf("has a number followed directly by %q", l.s[l.pos:l.pos+1]),
			"put a space or an operator between a number and what follows it")
	}
	return nil
}

// operator reads a run of operator characters, stopping before -- or /*,
// which start a comment even inside an operator.
func (l *lexer) operator() {
	start := l.pos
	for l.pos < len(l.s) && strings.IndexByte(opChars, l.s[l.pos]) >= 0 {
		if l.pos > start && (strings.HasPrefix(l.s[l.pos:], "--") || strings.HasPrefix(l.s[l.pos:], "/*")) {
			return
		}
		l.pos++
	}
}

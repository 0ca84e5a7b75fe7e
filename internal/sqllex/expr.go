package sqllex

import "strings"

// Expr is what the lexer can tell about one SQL expression without a
// catalog: the functions it calls, whether it holds a subquery, and the
// qualified names it refers to.
type Expr struct {
	Tokens []Token
	// Calls are the functions called (an identifier followed by "("),
	// with their qualifier when written (schema.fn): Name is as
	// PostgreSQL folds it. Syntax that only looks like a call (CAST,
	// COALESCE, IN (...), a type modifier such as numeric(12,2)) is left
	// out.
	Calls []Ref
	// ValueFunctions are the SQL keywords that call a function without
	// parentheses (current_timestamp, current_user, ...): all STABLE.
	ValueFunctions []Ref
	// Subqueries are where a SELECT, TABLE, or a parenthesized WITH or
	// VALUES starts: the expression reads whatever tables those name.
	Subqueries []int
	// Qualified are dotted names that are not calls or type names
	// (t.col, schema.t.col, col.field): column references of some table.
	Qualified []Ref
	// Operators are the operator tokens used, e.g. "+" or "||".
	Operators []Ref
}

// Ref is a name found at byte offset Pos. Parts are the dotted parts as
// PostgreSQL folds them; Name is the last one.
type Ref struct {
	Parts []string
	Pos   int
}

// Name is the last part of a dotted name.
func (r Ref) Name() string { return r.Parts[len(r.Parts)-1] }

// String is the dotted name.
func (r Ref) String() string { return strings.Join(r.Parts, ".") }

// valueFunctions are keywords that PostgreSQL evaluates as function calls
// without parentheses; every one is STABLE.
var valueFunctions = map[string]bool{
	"current_date": true, "current_time": true, "current_timestamp": true,
	"localtime": true, "localtimestamp": true, "current_role": true,
	"current_user": true, "session_user": true, "user": true,
	"current_catalog": true, "current_schema": true, "system_user": true,
}

// notCalls are keywords that may stand before "(" without calling a
// function by that name (or that name a type, e.g. varchar(80)).
var notCalls = map[string]bool{
	"and": true, "or": true, "not": true, "in": true, "any": true, "all": true, "some": true,
	"exists": true, "array": true, "row": true, "cast": true, "coalesce": true, "nullif": true,
	"greatest": true, "least": true, "case": true, "when": true, "then": true, "else": true,
	"end": true, "is": true, "as": true, "between": true, "like": true, "ilike": true,
	"similar": true, "over": true, "filter": true, "within": true, "distinct": true,
	"values": true, "select": true, "with": true, "table": true, "from": true, "where": true,
	"on": true, "using": true, "escape": true, "symmetric": true, "collate": true,
	"varchar": true, "char": true, "character": true, "varying": true, "nchar": true,
	"numeric": true, "decimal": true, "dec": true, "float": true, "bit": true, "varbit": true,
	"time": true, "timestamp": true, "interval": true, "second": true, "zone": true,
	"precision": true, "at": true, "by": true, "order": true, "for": true,
}

// Analyze lexes an expression that is to be pasted into a generated
// statement and checks that it stays an expression there: exactly one
// statement (no ";" outside literals and comments), parentheses and
// brackets balanced and never closing more than it opened, no comma
// outside them, and nothing left open at its end (string, quoted
// identifier, dollar quote, block comment). Failures are *Error with the
// byte offset of the culprit.
func Analyze(s string) (*Expr, error) {
	tokens, err := Lex(s)
	if err != nil {
		return nil, err
	}
	x := &Expr{Tokens: tokens}
	var open []Token // unclosed ( and [
	sig := significant(tokens)
	for i, t := range sig {
		if t.Kind == Punct {
			switch t.Text {
			case ";":
				return nil, &Error{Pos: t.Pos, Message: "has a ';' outside literals and comments, which would end the statement",
					Hint: "write one SQL expression, not statements; put a ';' that belongs to the value inside a string literal"}
			case "(", "[":
				open = append(open, t)
			case ")", "]":
				want := map[string]string{")": "(", "]": "["}[t.Text]
				if len(open) == 0 || open[len(open)-1].Text != want {
					return nil, &Error{Pos: t.Pos, Message: "has a '" + t.Text + "' that closes nothing opened in the expression",
						Hint: "balance the expression's parentheses and brackets (those inside literals and comments do not count)"}
				}
				open = open[:len(open)-1]
			case ",":
				if len(open) == 0 {
					return nil, &Error{Pos: t.Pos, Message: "has a ',' outside parentheses, which would add to the generated statement",
						Hint: "write one SQL expression; wrap a row or a list in parentheses"}
				}
			}
		}
		x.note(sig, i)
	}
	if len(open) > 0 {
		t := open[len(open)-1]
		return nil, &Error{Pos: t.Pos, Message: "has a '" + t.Text + "' that is never closed",
			Hint: "balance the expression's parentheses and brackets (those inside literals and comments do not count)"}
	}
	return x, nil
}

// significant drops spaces and comments.
func significant(tokens []Token) []Token {
	out := make([]Token, 0, len(tokens))
	for _, t := range tokens {
		if t.Kind != Space && t.Kind != Comment {
			out = append(out, t)
		}
	}
	return out
}

func isName(t Token) bool { return t.Kind == Ident || t.Kind == QuotedIdent }

// note records what sig[i] tells about reach and volatility.
func (x *Expr) note(sig []Token, i int) {
	t := sig[i]
	var prev Token
	if i > 0 {
		prev = sig[i-1]
	}
	switch {
	case t.Kind == Operator && t.Text != "::" && t.Text != "=>" && t.Text != ":=":
		x.Operators = append(x.Operators, Ref{Parts: []string{t.Text}, Pos: t.Pos})
		return
	case t.Is("select") || t.Is("table"):
		x.Subqueries = append(x.Subqueries, t.Pos)
		return
	case (t.Is("with") || t.Is("values")) && prev.Text == "(" && prev.Kind == Punct:
		x.Subqueries = append(x.Subqueries, t.Pos)
		return
	}
	if !isName(t) {
		return
	}
	// Only the first part of a dotted name starts one.
	if prev.Kind == Punct && prev.Text == "." {
		return
	}
	parts := []string{t.Name()}
	j := i + 1
	for j+1 < len(sig) && sig[j].Kind == Punct && sig[j].Text == "." && isName(sig[j+1]) {
		parts = append(parts, sig[j+1].Name())
		j += 2
	}
	ref := Ref{Parts: parts, Pos: t.Pos}
	typeName := prev.Text == "::" || prev.Is("as")
	call := j < len(sig) && sig[j].Kind == Punct && sig[j].Text == "("
	switch {
	case typeName:
	case call:
		if len(parts) > 1 || t.Kind == QuotedIdent || !notCalls[parts[0]] {
			x.Calls = append(x.Calls, ref)
		}
	case len(parts) == 1 && t.Kind == Ident && valueFunctions[parts[0]]:
		x.ValueFunctions = append(x.ValueFunctions, ref)
	case len(parts) > 1:
		x.Qualified = append(x.Qualified, ref)
	}
}

// BuiltinVolatile says whether name (as PostgreSQL folds it) is a VOLATILE
// function of PostgreSQL or of a common extension (uuid-ossp, dblink):
// known without a catalog, for refusing or flagging it offline; connected,
// pg_proc decides.
func BuiltinVolatile(name string) bool { return builtinVolatile[name] }

var builtinVolatile = map[string]bool{
	"random": true, "random_normal": true, "setseed": true, "nextval": true, "setval": true,
	"currval": true, "lastval": true, "clock_timestamp": true, "timeofday": true,
	"pg_sleep": true, "pg_sleep_for": true, "pg_sleep_until": true, "gen_random_uuid": true,
	"uuidv4": true, "uuidv7": true, "uuid_generate_v1": true, "uuid_generate_v4": true,
	"txid_current": true, "pg_current_xact_id": true, "set_config": true, "pg_notify": true,
	"pg_advisory_lock": true, "pg_advisory_xact_lock": true, "pg_try_advisory_lock": true,
	"pg_terminate_backend": true, "pg_cancel_backend": true, "pg_read_file": true,
	"pg_read_binary_file": true, "lo_import": true, "lo_export": true, "dblink": true,
	"dblink_exec": true, "pg_reload_conf": true, "pg_logical_emit_message": true,
}

// Package sqllint finds the statements of a PostgreSQL migration script that
// would block application traffic, rewrite a table, or break applications
// still running against the old schema, and says what to do instead. It
// recognises statements by their keywords (tokens from internal/sqllex, so
// literals, comments and dollar quotes never confuse it) and knows, for
// each, the table lock PostgreSQL takes. It is what `planner lint` runs, and
// what the planner's sql change kind checks its statements with.
package sqllint

// This file is the linter proper: the statement forms it knows (CREATE,
// DROP, ALTER TABLE and each of its actions), each with the lock it takes
// and the rules it can break. It is long because each form's checks are
// short and independent, and read best next to the dispatch that picks
// them; the rules and their texts are in rules.go, splitting a script in
// split.go, token helpers in tokens.go.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pgplanner/planner/internal/sqllex"
)

// Table lock modes, weakest first, as PostgreSQL names them.
const (
	AccessShare          = "ACCESS SHARE"
	RowShare             = "ROW SHARE"
	RowExclusive         = "ROW EXCLUSIVE"
	ShareUpdateExclusive = "SHARE UPDATE EXCLUSIVE"
	Share                = "SHARE"
	ShareRowExclusive    = "SHARE ROW EXCLUSIVE"
	Exclusive            = "EXCLUSIVE"
	AccessExclusive      = "ACCESS EXCLUSIVE"
)

var lockRank = map[string]int{"": 0, AccessShare: 1, RowShare: 2, RowExclusive: 3,
	ShareUpdateExclusive: 4, Share: 5, ShareRowExclusive: 6, Exclusive: 7, AccessExclusive: 8}

// BlocksTraffic reports whether a lock conflicts with application writes
// (SHARE and stronger) and so queues them while it is waited for or held.
func BlocksTraffic(lock string) bool { return lockRank[lock] >= lockRank[Share] }

// Options tune a lint.
type Options struct {
	// Version is the PostgreSQL major the script is for (0: 17).
	Version int
	// Runner says the statements run through the planner's runner: all of
	// them in one transaction that it opens, under its lock_timeout and
	// statement_timeout. Timeouts are then set, and transaction control in
	// the statements is wrong.
	Runner bool
}

// Finding is one rule a statement breaks.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	// Pos is the byte offset in the script; Line and Column (1-based,
	// in characters) the same place.
	Pos     int    `json:"-"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
	Safe    string `json:"safe_alternative"`
}

// Statement is one statement of the script, what it locks and what it
// breaks.
type Statement struct {
	SQL    string `json:"sql"`
	Pos    int    `json:"-"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
	// Verb is the statement's first keywords in upper case ("ALTER TABLE",
	// "CREATE INDEX", "BEGIN", "SET"...).
	Verb string `json:"verb"`
	// Lock is the strongest table lock it takes ("" for none), on Tables.
	Lock   string `json:"lock"`
	Tables []Name `json:"tables"`
	// Rewrites / Scans: it rewrites / reads the whole table under Lock.
	Rewrites bool `json:"rewrites"`
	Scans    bool `json:"scans"`
	// NoTransaction: PostgreSQL refuses it inside a transaction block.
	NoTransaction bool `json:"no_transaction"`
	// Control: a transaction control statement (BEGIN, COMMIT, SAVEPOINT...).
	Control bool `json:"-"`
	// SetsSession: SET or RESET of a setting (LOCAL or not).
	SetsSession bool      `json:"-"`
	Findings    []Finding `json:"findings"`
}

// Name is a relation as a statement names it, unquoted, with its schema
// ("" when unqualified) kept apart from its name, so that a dot inside a
// quoted part ("a.b"."c.d") stays part of that part.
type Name struct {
	Schema, Name string
}

// String is the name as the lint prints it: its parts joined by a dot.
func (n Name) String() string {
	if n.Schema == "" {
		return n.Name
	}
	return n.Schema + "." + n.Name
}

// MarshalText makes JSON show the name as String does.
func (n Name) MarshalText() ([]byte, error) { return []byte(n.String()), nil }

// columnRef is a column of a table, as a map key.
type columnRef struct {
	table  Name
	column string
}

// Unsafe counts the statement's unsafe findings.
func (s Statement) Unsafe() int {
	n := 0
	for _, f := range s.Findings {
		if f.Severity == Unsafe {
			n++
		}
	}
	return n
}

// Error is a script that cannot be split into statements (an unterminated
// string, quoted identifier, dollar quote or comment).
type Error struct {
	Pos, Line, Column int
	Message, Hint     string
}

func (e *Error) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Message) }

// Lint checks every statement of src.
func Lint(src string, opts Options) ([]Statement, error) {
	if opts.Version == 0 {
		opts.Version = 17
	}
	pieces, err := split(src)
	if err != nil {
		le, ok := err.(*sqllex.Error)
		if !ok {
			return nil, err
		}
		line, col := lineCol(src, le.Pos)
		return nil, &Error{Pos: le.Pos, Line: line, Column: col, Message: le.Message, Hint: le.Hint}
	}
	l := &linter{src: src, opts: opts, created: map[Name]bool{}, notValid: map[string]bool{},
		notNullChecks: map[string]columnRef{}, provenNotNull: map[columnRef]bool{}}
	if opts.Runner {
		l.depth, l.timeouts = 1, true
	}
	out := make([]Statement, 0, len(pieces))
	for _, p := range pieces {
		out = append(out, l.statement(p))
	}
	if !opts.Runner && l.depth > 0 {
		s := &out[l.beginAt]
		s.Findings = append(s.Findings, l.finding("ban-uncommitted-transaction", s.Pos, ""))
	}
	return out, nil
}

// linter carries what earlier statements of the script established.
type linter struct {
	src  string
	opts Options
	// depth > 0 inside BEGIN ... COMMIT; beginAt is the BEGIN's index.
	depth, beginAt int
	// timeouts: a lock_timeout is in effect (session, or LOCAL in the
	// open transaction: localTimeout); timeoutReported: said once.
	timeouts, localTimeout, timeoutReported bool
	// created holds the tables the script creates: changing them blocks
	// no application, which cannot use them yet.
	created map[Name]bool
	// notValid: constraints added NOT VALID in the open transaction.
	notValid map[string]bool
	// notNullChecks maps a constraint name to the column its
	// CHECK (column IS NOT NULL) covers; provenNotNull holds the
	// columns whose such check was validated.
	notNullChecks map[string]columnRef
	provenNotNull map[columnRef]bool
	index         int
}

func (l *linter) finding(rule string, pos int, detail string) Finding {
	r, ok := RuleByName(rule)
	if !ok {
		panic("sqllint: no rule " + rule)
	}
	line, col := lineCol(l.src, pos)
	msg := r.Message
	if detail != "" {
		msg = detail + ": " + msg
	}
	return Finding{Rule: r.Name, Severity: r.Severity, Pos: pos, Line: line, Column: col, Message: msg, Safe: r.Safe}
}

// stmt is the statement being checked.
type stmt struct {
	*Statement
	l *linter
	t toks
	// newTable: the statement changes a table the script created.
	newTable bool
}

func (s *stmt) flag(rule string, i int, detail string) {
	s.Findings = append(s.Findings, s.l.finding(rule, s.t.pos(i), detail))
}

func (s *stmt) lock(mode string, tables ...Name) {
	if lockRank[mode] > lockRank[s.Lock] {
		s.Lock = mode
	}
	for _, t := range tables {
		if t.Name != "" && !slices.Contains(s.Tables, t) {
			s.Tables = append(s.Tables, t)
		}
	}
}

// isCreated: the script created table (a table it created unqualified
// counts under any schema, the lint not knowing the search_path).
func (l *linter) isCreated(table Name) bool {
	return l.created[table] || table.Schema != "" && l.created[Name{Name: table.Name}]
}

func (l *linter) statement(p piece) Statement {
	line, col := lineCol(l.src, p.Pos)
	st := &Statement{SQL: p.SQL, Pos: p.Pos, Line: line, Column: col, Tables: []Name{}, Findings: []Finding{}}
	s := &stmt{Statement: st, l: l, t: toks(p.Tokens)}
	s.Verb = strings.ToUpper(s.t.kw(0))
	l.dispatch(s)
	if s.NoTransaction && l.depth > 0 && !l.opts.Runner {
		s.flag("ban-concurrent-index-creation-in-transaction", 0, "")
	}
	if s.newTable {
		// Nobody uses a table the script just created.
		s.Findings = s.Findings[:0]
	}
	if !l.timeouts && !l.localTimeout && !l.timeoutReported && BlocksTraffic(s.Lock) && !s.newTable {
		l.timeoutReported = true
		s.flag("require-timeout-settings", 0, "")
	}
	if k := s.t.kw(0); k == "create" || k == "alter" {
		for i, tk := range s.t {
			if (tk.Kind == sqllex.Ident || tk.Kind == sqllex.QuotedIdent) && len(tk.Name()) > 63 {
				s.flag("identifier-too-long", i, fmt.Sprintf("%.20s... is %d bytes", tk.Name(), len(tk.Name())))
			}
		}
	}
	l.index++
	return *st
}

func (l *linter) dispatch(s *stmt) {
	t := s.t
	switch t.kw(0) {
	case "begin", "start":
		s.Control = true
		s.Verb = "BEGIN"
		if l.depth > 0 {
			s.flag("transaction-nesting", 0, "")
		}
		l.depth++
		l.beginAt = l.index
	case "commit", "end", "abort", "rollback":
		s.Control = true
		if t.kw(0) == "rollback" && (t.at(1, "to") || t.at(2, "to")) {
			if l.opts.Runner {
				s.flag("transaction-nesting", 0, "")
			}
			return
		}
		if l.opts.Runner || l.depth == 0 {
			s.flag("transaction-nesting", 0, "")
			return
		}
		l.depth = 0
		l.localTimeout = false
		clear(l.notValid)
	case "savepoint", "release", "prepare":
		s.Control = true
		if l.opts.Runner {
			s.flag("transaction-nesting", 0, "")
		}
	case "set", "reset":
		s.SetsSession = true
		i := t.skip(t.skip(1, "session"), "local")
		if t.kw(i) == "lock_timeout" {
			if t.at(1, "local") {
				l.localTimeout = l.depth > 0
			} else {
				l.timeouts = true
			}
		}
	case "create":
		l.create(s)
	case "drop":
		l.drop(s)
	case "alter":
		l.alter(s)
	case "reindex":
		s.Verb = "REINDEX"
		i := 1
		if t.text(1) == "(" {
			_, i = t.group(1)
		}
		target := t.kw(i)
		j := i + 1
		concurrently := t.at(j, "concurrently")
		name, _ := t.relation(t.skip(j, "concurrently"))
		switch {
		case concurrently:
			s.lock(ShareUpdateExclusive, name)
			s.NoTransaction = true
		case target == "index":
			s.lock(AccessExclusive, name) // on the index; SHARE on its table
			s.flag("require-concurrent-reindex", 0, "")
		default:
			s.lock(Share, name)
			s.flag("require-concurrent-reindex", 0, "")
		}
	case "vacuum":
		s.NoTransaction = true
		full := t.at(1, "full")
		if opts, _ := t.group(1); opts != nil && opts.has("full") && !opts.has("full", "false") {
			full = true
		}
		if full {
			s.Verb = "VACUUM FULL"
			s.lock(AccessExclusive)
			s.Rewrites = true
			s.flag("prefer-repack", 0, "")
		} else {
			s.lock(ShareUpdateExclusive)
		}
	case "cluster":
		s.lock(AccessExclusive)
		s.Rewrites = true
		s.flag("prefer-repack", 0, "")
	case "comment":
		s.lock(ShareUpdateExclusive)
	case "analyze":
		s.lock(ShareUpdateExclusive)
	case "lock":
		i := t.skip(1, "table")
		i = t.skip(i, "only")
		name, _ := t.relation(i)
		mode := AccessExclusive
		if in := t.find(i, "in"); in >= 0 {
			if m := t.find(in, "mode"); m > in+1 {
				var words []string
				for k := in + 1; k < m; k++ {
					words = append(words, strings.ToUpper(t.kw(k)))
				}
				mode = strings.Join(words, " ")
			}
		}
		s.lock(mode, name)
		if !l.isCreated(name) {
			s.flag("ban-lock-table", 0, "")
		}
	case "truncate":
		i := t.skip(t.skip(1, "table"), "only")
		name, _ := t.relation(i)
		s.lock(AccessExclusive, name)
		if t.has("cascade") {
			s.flag("ban-truncate-cascade", 0, "")
		}
	case "refresh":
		s.Verb = "REFRESH MATERIALIZED VIEW"
		i := t.skip(1, "materialized", "view")
		if t.at(i, "concurrently") {
			name, _ := t.relation(i + 1)
			s.lock(Exclusive, name)
			return
		}
		name, _ := t.relation(i)
		s.lock(AccessExclusive, name)
		s.flag("require-concurrent-refresh", 0, "")
	case "update", "delete":
		i := t.skip(1, "from")
		i = t.skip(i, "only")
		name, _ := t.relation(i)
		s.lock(RowExclusive, name)
		s.newTable = l.isCreated(name)
		if t.find(i, "where") < 0 {
			s.Scans = true
			s.flag("backfill-in-migration", 0, "")
		}
	case "insert", "merge":
		i := t.skip(1, "into")
		name, _ := t.relation(i)
		s.lock(RowExclusive, name)
	case "select", "with", "values", "table":
		s.lock(AccessShare)
	}
}

func (l *linter) create(s *stmt) {
	t := s.t
	i := t.skip(1, "or", "replace")
	for _, w := range []string{"global", "local", "temporary", "temp", "unlogged"} {
		i = t.skip(i, w)
	}
	switch {
	case t.at(i, "unique", "index") || t.at(i, "index"):
		s.Verb = "CREATE INDEX"
		unique := t.at(i, "unique")
		i = t.skip(t.skip(i, "unique"), "index")
		concurrently := t.at(i, "concurrently")
		i = t.skip(i, "concurrently")
		ifNotExists := t.at(i, "if", "not", "exists")
		on := t.find(i, "on")
		if on < 0 {
			return
		}
		only := t.at(on+1, "only")
		table, j := t.relation(t.skip(on+1, "only"))
		s.newTable = l.isCreated(table)
		if t.at(j, "using") {
			j += 2
		}
		if cols, _ := t.group(j); cols != nil && !unique && len(cols.commas()) > 3 {
			s.flag("index-too-many-columns", j, "")
		}
		switch {
		case concurrently:
			s.lock(ShareUpdateExclusive, table)
			s.NoTransaction = true
			if !ifNotExists && !l.opts.Runner {
				s.flag("prefer-robust-stmts", 0, "")
			}
		case only:
			s.lock(Share, table) // an invalid index on a partitioned parent: nothing is built
		default:
			s.lock(Share, table)
			s.Scans = true
			s.flag("require-concurrent-index-creation", 0, "")
		}
	case t.at(i, "table"):
		s.Verb = "CREATE TABLE"
		i = t.skip(i+1, "if", "not", "exists")
		name, j := t.relation(i)
		l.created[name] = true
		if t.at(j, "partition", "of") {
			parent, _ := t.relation(j + 2)
			s.lock(AccessExclusive, parent)
		}
		if cols, _ := t.group(j); cols != nil {
			for _, c := range cols.commas() {
				if isConstraintStart(c) {
					continue
				}
				typeAdvice(s, c, 1)
			}
		}
	case t.at(i, "domain"):
		if t.has("check") {
			s.flag("ban-create-domain-with-constraint", 0, "")
		}
	case t.at(i, "trigger") || t.at(i, "constraint", "trigger"):
		if on := t.find(i, "on"); on >= 0 {
			table, _ := t.relation(on + 1)
			s.lock(ShareRowExclusive, table)
		}
	}
}

func isConstraintStart(c toks) bool {
	switch c.kw(0) {
	case "constraint", "check", "unique", "primary", "foreign", "exclude", "like":
		return true
	}
	return false
}

func (l *linter) drop(s *stmt) {
	t := s.t
	switch {
	case t.at(1, "index"):
		s.Verb = "DROP INDEX"
		i := 2
		if t.at(i, "concurrently") {
			s.lock(ShareUpdateExclusive)
			s.NoTransaction = true
			if !t.at(i+1, "if", "exists") && !l.opts.Runner {
				s.flag("prefer-robust-stmts", 0, "")
			}
			return
		}
		name, _ := t.relation(t.skip(i, "if", "exists"))
		s.lock(AccessExclusive, name)
		s.flag("require-concurrent-index-deletion", 0, "")
	case t.at(1, "table"):
		s.Verb = "DROP TABLE"
		name, _ := t.relation(t.skip(2, "if", "exists"))
		s.lock(AccessExclusive, name)
		if !l.isCreated(name) {
			s.flag("ban-drop-table", 0, "")
		}
	case t.at(1, "database"):
		s.Verb = "DROP DATABASE"
		s.NoTransaction = true
		s.flag("ban-drop-database", 0, "")
	case t.at(1, "trigger"):
		s.Verb = "DROP TRIGGER"
		if on := t.find(2, "on"); on >= 0 {
			table, _ := t.relation(on + 1)
			s.lock(AccessExclusive, table)
		}
	}
}

func (l *linter) alter(s *stmt) {
	t := s.t
	switch {
	case t.at(1, "table"):
		s.Verb = "ALTER TABLE"
		i := t.skip(t.skip(2, "if", "exists"), "only")
		table, j := t.relation(i)
		if t.text(j) == "*" {
			j++
		}
		s.lock("", table)
		s.newTable = l.isCreated(table)
		for _, a := range t[j:].commas() {
			l.action(s, table, a)
		}
	case t.at(1, "index"):
		s.Verb = "ALTER INDEX"
		i := t.skip(2, "if", "exists")
		name, j := t.relation(i)
		switch {
		case t.at(j, "rename"):
			s.lock(ShareUpdateExclusive, name)
		case t.at(j, "set", "tablespace"):
			s.lock(AccessExclusive, name)
			s.Rewrites = true
			s.flag("rewriting-table", j, "")
		default:
			s.lock(AccessExclusive, name)
		}
	case t.at(1, "domain"):
		if t.has("add") && !t.has("not", "valid") {
			s.flag("ban-alter-domain-with-add-constraint", 0, "")
			s.Scans = true
			s.lock(Share)
		}
	case t.at(1, "type"):
		if t.has("add", "value") && !t.has("before") && !t.has("after") {
			s.flag("require-enum-value-ordering", 0, "")
		}
	}
}

// action checks one action of ALTER TABLE on table.
func (l *linter) action(s *stmt, table Name, a toks) {
	at := func() int { return indexOf(s.t, a) }
	switch {
	case a.at(0, "add"):
		i := 1
		constraint := ""
		if a.at(1, "constraint") {
			constraint, i = a.name(2)
		}
		switch a.kw(i) {
		case "check":
			l.addCheck(s, table, constraint, a, i, at())
		case "foreign":
			var ref Name
			if r := a.find(i, "references"); r >= 0 {
				ref, _ = a.relation(r + 1)
			}
			s.lock(ShareRowExclusive, table, ref)
			l.notValidOrFlag(s, constraint, a, at())
		case "unique", "primary":
			s.lock(AccessExclusive, table)
			if a.has("using", "index") {
				return
			}
			s.Scans = true
			if a.kw(i) == "unique" {
				s.flag("disallowed-unique-constraint", at(), "")
			} else {
				s.flag("adding-primary-key-constraint", at(), "")
			}
		case "exclude":
			s.lock(AccessExclusive, table)
			s.Scans = true
			s.flag("adding-exclusion-constraint", at(), "")
		default:
			i = a.skip(a.skip(i, "column"), "if", "not", "exists")
			l.addColumn(s, table, a[i:], at())
		}
	case a.at(0, "drop"):
		s.lock(AccessExclusive, table)
		if a.at(1, "constraint") {
			return
		}
		s.flag("ban-drop-column", at(), "")
	case a.at(0, "alter"):
		i := a.skip(1, "column")
		col, j := a.name(i)
		l.alterColumn(s, table, col, a, j, at())
	case a.at(0, "rename"):
		s.lock(AccessExclusive, table)
		switch {
		case a.at(1, "constraint"):
		case a.at(1, "to"):
			s.flag("renaming-table", at(), "")
		default:
			s.flag("renaming-column", at(), "")
		}
	case a.at(0, "set", "tablespace"), a.at(0, "set", "logged"), a.at(0, "set", "unlogged"), a.at(0, "set", "access", "method"):
		s.lock(AccessExclusive, table)
		s.Rewrites = true
		s.flag("rewriting-table", at(), "")
	case a.at(0, "set", "schema"):
		s.lock(AccessExclusive, table)
		s.flag("renaming-table", at(), "moves the table to another schema")
	case a.at(0, "set"), a.at(0, "reset"), a.at(0, "cluster"):
		s.lock(ShareUpdateExclusive, table)
	case a.at(0, "validate", "constraint"):
		name, _ := a.name(2)
		s.lock(ShareUpdateExclusive, table)
		s.Scans = true
		if l.notValid[name] {
			s.flag("validate-in-same-transaction", at(), "")
		}
		if col, ok := l.notNullChecks[name]; ok {
			l.provenNotNull[col] = true
		}
	case a.at(0, "enable", "trigger"), a.at(0, "disable", "trigger"):
		s.lock(ShareRowExclusive, table)
	case a.at(0, "attach", "partition"):
		part, _ := a.relation(2)
		s.lock(ShareUpdateExclusive, table)
		s.lock(AccessExclusive, part)
		s.Scans = true
	case a.at(0, "detach", "partition"):
		if a.has("concurrently") || a.has("finalize") {
			s.lock(ShareUpdateExclusive, table)
			s.NoTransaction = a.has("concurrently")
			return
		}
		s.lock(AccessExclusive, table)
		s.flag("require-concurrent-partition-detach", at(), "")
	default:
		s.lock(AccessExclusive, table)
	}
}

// indexOf is where the slice a starts in t.
func indexOf(t, a toks) int {
	if len(a) == 0 {
		return len(t) - 1
	}
	for i := range t {
		if t[i].Pos == a[0].Pos {
			return i
		}
	}
	return 0
}

func (l *linter) addCheck(s *stmt, table Name, constraint string, a toks, i, at int) {
	s.lock(AccessExclusive, table)
	if body, _ := a.group(i + 1); len(body) == 4 && body.at(1, "is", "not", "null") && constraint != "" {
		col, _ := body.name(0)
		l.notNullChecks[constraint] = columnRef{table: table, column: col}
	}
	l.notValidOrFlag(s, constraint, a, at)
}

func (l *linter) notValidOrFlag(s *stmt, constraint string, a toks, at int) {
	if a.has("not", "valid") {
		if constraint != "" && l.depth > 0 {
			l.notValid[constraint] = true
		}
		return
	}
	s.Scans = true
	s.flag("constraint-missing-not-valid", at, "")
}

var serialTypes = map[string]bool{"serial": true, "serial4": true, "bigserial": true, "serial8": true, "smallserial": true, "serial2": true}

// addColumn checks ADD COLUMN; def starts at the column's name.
func (l *linter) addColumn(s *stmt, table Name, def toks, at int) {
	s.lock(AccessExclusive, table)
	typeAdvice(s, def, 1)
	hasDefault := def.find(1, "default") >= 0
	rewrites := ""
	if d := def.find(1, "default"); d >= 0 {
		for _, fn := range def[d+1:].calls() {
			if sqllex.BuiltinVolatile(fn) {
				rewrites = "adding-field-with-default"
				s.flag(rewrites, at, fmt.Sprintf("the default calls %s()", fn))
				break
			}
		}
		if rewrites == "" && l.opts.Version < 11 {
			rewrites = "adding-field-with-default"
			s.flag(rewrites, at, "before PostgreSQL 11 any default")
		}
	}
	generated := def.find(1, "generated")
	switch {
	case serialTypes[def.kw(1)] || generated >= 0 && def.find(generated, "identity") >= 0:
		rewrites = "adding-auto-increment-column"
		s.flag(rewrites, at, "")
	case generated >= 0 && def.find(generated, "stored") >= 0:
		rewrites = "adding-stored-generated-column"
		s.flag(rewrites, at, "")
	}
	if rewrites != "" {
		s.Rewrites = true
	}
	if def.has("not", "null") && !hasDefault && generated < 0 && !serialTypes[def.kw(1)] {
		s.flag("adding-required-field", at, "")
	}
	if r := def.find(1, "references"); r >= 0 {
		ref, _ := def.relation(r + 1)
		s.lock(ShareRowExclusive, ref)
		s.Scans = true
		s.flag("adding-foreign-key-constraint", at, "")
	}
	switch {
	case def.has("primary", "key"):
		s.Scans = true
		s.flag("adding-primary-key-constraint", at, "")
	case def.find(1, "unique") >= 0:
		s.Scans = true
		s.flag("disallowed-unique-constraint", at, "")
	}
	if def.find(1, "check") >= 0 {
		s.Scans = true
		s.flag("constraint-missing-not-valid", at, "a CHECK on a new column")
	}
}

func (l *linter) alterColumn(s *stmt, table Name, col string, a toks, j, at int) {
	if a.at(j, "set", "statistics") || a.at(j, "set", "(") || a.at(j, "reset") {
		s.lock(ShareUpdateExclusive, table)
		return
	}
	s.lock(AccessExclusive, table)
	switch {
	case a.at(j, "type") || a.at(j, "set", "data", "type"):
		k := a.skip(a.skip(j, "set", "data"), "type")
		typeAdvice(s, a, k)
		s.Rewrites = true
		s.flag("changing-column-type", at, fmt.Sprintf("column %s", col))
	case a.at(j, "set", "not", "null"):
		if l.provenNotNull[columnRef{table: table, column: col}] {
			return
		}
		s.Scans = true
		s.flag("adding-not-nullable-field", at, fmt.Sprintf("column %s", col))
	case a.at(j, "drop", "not", "null"):
		s.flag("ban-drop-not-null", at, fmt.Sprintf("column %s", col))
	}
}

// typeAdvice looks at the type name at c[i].
func typeAdvice(s *stmt, c toks, i int) {
	flag := func(rule string, i int) { s.Findings = append(s.Findings, s.l.finding(rule, c.pos(i), "")) }
	name := c.kw(i)
	if c.text(i+1) == "." { // schema-qualified: pg_catalog.int4
		name = c.kw(i + 2)
		i += 2
	}
	switch name {
	case "char", "character", "bpchar", "nchar":
		if c.at(i+1, "varying") {
			flag("prefer-text-field", i)
		} else {
			flag("ban-char-field", i)
		}
	case "varchar":
		if c.text(i+1) == "(" {
			flag("prefer-text-field", i)
		}
	case "int", "integer", "int4":
		flag("prefer-bigint-over-int", i)
	case "serial", "serial4":
		flag("prefer-bigint-over-int", i)
		flag("prefer-identity", i)
	case "bigserial", "serial8":
		flag("prefer-identity", i)
	case "smallint", "int2":
		flag("prefer-bigint-over-smallint", i)
	case "smallserial", "serial2":
		flag("prefer-bigint-over-smallint", i)
		flag("prefer-identity", i)
	case "timestamp":
		k := i + 1
		if c.text(k) == "(" {
			_, k = c.group(k)
		}
		if !c.at(k, "with") {
			flag("prefer-timestamptz", i)
		}
	case "json":
		flag("prefer-jsonb", i)
	}
}

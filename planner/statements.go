// Statements that still name the old column: when pg_stat_statements is
// installed, the contract of a change that removes a column reports the
// normalized statements of the change's database that name the table and
// the column and were called since enforce, and with GateStatements waits
// while they keep being called. The contracts of the table kinds
// (rename_table, drop_table) do the same for the statements naming the
// old table name.
//
// pg_stat_statements keeps cumulative call counts without timestamps, so
// "since enforce" is a baseline: the counts of the matching statements,
// stored when the phase before the contract is applied. Each gate check of
// planner next stores the counts too, so that "keep being called" means
// called since the previous check.

package planner

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgplanner/planner/internal/sqllex"
)

// StatementsReport is what pg_stat_statements says about the column (or,
// Column "", the table name) a contract removes. Every key is always
// present.
type StatementsReport struct {
	Table  string `json:"table"`
	Column string `json:"column"`
	// SincePhase is the phase before the contract, whose end is the
	// baseline (enforce, stop_using, switch).
	SincePhase string `json:"since_phase"`
	// Available: pg_stat_statements could be read; Problem says why not,
	// or what makes the report incomplete (statements of other roles
	// hidden).
	Available bool   `json:"available"`
	Problem   string `json:"problem"`
	// Since is when the baseline was taken (at enforce, else at the first
	// check that could read the view); LastCheck the previous check by
	// planner next.
	Since     *time.Time `json:"since"`
	LastCheck *time.Time `json:"last_check"`
	// Hidden counts statements of other roles whose text this role may not
	// read (it needs pg_read_all_stats).
	Hidden int `json:"hidden"`
	// Statements are those called since the baseline, most recently busy
	// first.
	Statements []ObservedStatement `json:"statements"`
	// Gating: the contract waits while any is called (GateStatements).
	Gating bool `json:"gating"`
}

// ObservedStatement is one normalized statement naming the old column.
type ObservedStatement struct {
	QueryID int64 `json:"queryid"`
	// Calls since the baseline; CallsSinceCheck since the last check (the
	// baseline when there was none); TotalCalls as pg_stat_statements
	// counts them.
	Calls           int64  `json:"calls"`
	CallsSinceCheck int64  `json:"calls_since_check"`
	TotalCalls      int64  `json:"total_calls"`
	Query           string `json:"query"`
}

// queryTextLimit is how much of a statement's text reports show.
const queryTextLimit = 160

// retiredName is what applications stop using before a change's contract:
// a column of the change's table, or, for the table kinds (column ""), the
// table's name itself.
type retiredName struct {
	table    TableName
	column   string
	contract int    // the contract's phase index
	since    string // the phase before it
	renamed  bool   // rename_table: its first phase renames the table
}

// retired says what the change's contract retires; ok is false for
// changes that remove neither a column nor a table name.
func retired(en *entry) (r retiredName, ok bool) {
	r.table = en.state.Table
	switch k := en.spec.Change.(type) {
	case tableRenamer:
		r.renamed = true
	case tableDropper:
	case flagMetaer:
		if r.column = k.FlagMeta()["old_column"]; r.column == "" {
			return r, false
		}
	default:
		return r, false
	}
	for i, p := range en.plan.Phases {
		if i > 0 && p.Name == "contract" {
			r.contract, r.since = i, en.plan.Phases[i-1].Name
			return r, true
		}
	}
	return r, false
}

// subject names what the statements name, for reasons and summaries.
func (r retiredName) subject() string {
	if r.column == "" {
		return "the table " + r.table.String()
	}
	return r.table.String() + "." + r.column
}

// names says whether a statement names it.
func (r retiredName) names(sql string) bool {
	if r.column == "" {
		return namesTable(sql, r.table)
	}
	return namesColumn(sql, r.table.Name, r.column)
}

// statementSource is where pg_stat_statements lives in this database.
type statementSource struct {
	view, info string // qualified names; info "" before PostgreSQL 14
}

// findStatementSource returns nil when the extension is not installed.
func findStatementSource(ctx context.Context, q Querier) (*statementSource, error) {
	var nsp string
	var hasInfo bool
	err := q.QueryRow(ctx, `SELECT n.nspname, to_regclass(quote_ident(n.nspname) || '.pg_stat_statements_info') IS NOT NULL
		FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
		WHERE e.extname = 'pg_stat_statements'`).Scan(&nsp, &hasInfo)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := &statementSource{view: pgx.Identifier{nsp, "pg_stat_statements"}.Sanitize()}
	if hasInfo {
		s.info = pgx.Identifier{nsp, "pg_stat_statements_info"}.Sanitize()
	}
	return s, nil
}

// statementSnapshot is the matching statements' counts at one moment.
type statementSnapshot struct {
	calls      map[int64]int64
	text       map[int64]string
	hidden     int
	statsReset *time.Time
}

// statementsUnusable: the view can be read but counts nothing.
type statementsUnusable string

func (s statementsUnusable) Error() string { return string(s) }

// unreadable turns the errors of a view that cannot be read (or counts
// nothing) into the report's problem; other errors stay errors.
func unreadable(err error) (string, bool) {
	var unusable statementsUnusable
	if errors.As(err, &unusable) {
		return string(unusable), true
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return "", false
	}
	switch pe.Code {
	case "55000": // object_not_in_prerequisite_state
		return "pg_stat_statements is installed but not loaded: add it to shared_preload_libraries and restart the server", true
	case "42501":
		return "the planner's role may not read pg_stat_statements: " + pe.Message, true
	}
	return "", false
}

// snapshot reads the statements of the current database that name what r
// retires. A first filter in SQL keeps the transfer small; the lexer
// decides.
func (s *statementSource) snapshot(ctx context.Context, q Querier, r retiredName) (*statementSnapshot, error) {
	// Quoted names with "" inside would not be found as written: no filter.
	filter := func(name string) string {
		if strings.Contains(name, `"`) {
			return ""
		}
		return strings.ToLower(name)
	}
	var track *string
	if err := q.QueryRow(ctx, `SELECT current_setting('pg_stat_statements.track', true)`).Scan(&track); err != nil {
		return nil, err
	}
	if track != nil && *track == "none" {
		return nil, statementsUnusable("pg_stat_statements.track is none: no statement is counted (set it to top or all)")
	}
	// One pass over the view: the matching statements, and the rows of
	// other roles, which have no queryid without pg_read_all_stats.
	rows, err := q.Query(ctx, `SELECT s.queryid, sum(s.calls)::bigint, coalesce(min(s.query), ''), count(*)::int
		FROM `+s.view+` s
		WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
			AND (s.queryid IS NULL OR strpos(lower(s.query), $1) > 0 AND strpos(lower(s.query), $2) > 0)
		GROUP BY s.queryid`, filter(r.column), filter(r.table.Name))
	if err != nil {
		return nil, err
	}
	snap := &statementSnapshot{calls: map[int64]int64{}, text: map[int64]string{}}
	for rows.Next() {
		var id *int64
		var calls int64
		var text string
		var n int
		if err := rows.Scan(&id, &calls, &text, &n); err != nil {
			rows.Close()
			return nil, err
		}
		switch {
		case id == nil:
			snap.hidden = n
		case r.names(text):
			snap.calls[*id], snap.text[*id] = calls, text
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if s.info != "" {
		if err := q.QueryRow(ctx, `SELECT stats_reset FROM `+s.info).Scan(&snap.statsReset); err != nil {
			return nil, err
		}
	}
	return snap, nil
}

// trafficKeywords start the statements applications run against a
// table's columns; DDL (the planner's own included) does not count.
var trafficKeywords = map[string]bool{"select": true, "insert": true, "update": true, "delete": true, "merge": true,
	"with": true, "values": true, "table": true, "copy": true, "declare": true, "prepare": true}

// trafficTokens are a statement's tokens without spaces and comments, nil
// unless it is one applications run. A statement the lexer cannot finish
// is judged by the tokens before the problem.
func trafficTokens(sql string) []sqllex.Token {
	tokens, _ := sqllex.Lex(sql)
	var out []sqllex.Token
	first := true
	for _, t := range tokens {
		switch t.Kind {
		case sqllex.Space, sqllex.Comment:
			continue
		case sqllex.Punct:
			if first && t.Text == "(" {
				continue
			}
		}
		if first {
			if t.Kind != sqllex.Ident || !trafficKeywords[t.Name()] {
				return nil
			}
			first = false
		}
		out = append(out, t)
	}
	return out
}

func isName(t sqllex.Token) bool { return t.Kind == sqllex.Ident || t.Kind == sqllex.QuotedIdent }

// namesColumn says whether a statement names both the table and the
// column as identifiers (unquoted ones fold to lower case; literals,
// comments and longer names do not count).
func namesColumn(sql, table, column string) bool {
	hasTable, hasColumn := false, false
	for _, t := range trafficTokens(sql) {
		if isName(t) {
			name := t.Name()
			hasTable = hasTable || name == table
			hasColumn = hasColumn || name == column
		}
	}
	return hasTable && hasColumn
}

// namesTable says whether a statement names the table as an identifier,
// unqualified or qualified by its own schema (other.orders is another
// table); a column qualified by it (orders.id) names it too.
func namesTable(sql string, table TableName) bool {
	tokens := trafficTokens(sql)
	for i, t := range tokens {
		if !isName(t) || t.Name() != table.Name {
			continue
		}
		if i < 2 || tokens[i-1].Kind != sqllex.Punct || tokens[i-1].Text != "." {
			return true
		}
		if q := tokens[i-2]; isName(q) && (table.Schema == "" || q.Name() == table.Schema) {
			return true
		}
	}
	return false
}

// renamedEntries handles a pg_stat_statements quirk: before PostgreSQL 18
// an entry is keyed by the relations' oids, not their names, and keeps the text it was first
// seen with. After rename_table, the statements naming the table by its
// new name share the entries of those that named it by the old name before
// the rename, under the old text; those naming the old name reach the view
// and get entries of their own. So the entries naming the table just
// before the rename are stored, and the contract ignores them. It never
// fails the phase: without them such statements hold a gated contract
// until they stop. PostgreSQL 18 keys entries by the relations' names
// instead: statements on the new name get entries of their own, those on
// the old name keep theirs, and nothing is to be ignored.
func (e *Engine) renamedEntries(ctx context.Context, en *entry, r retiredName) {
	if en.state.ServerVersion >= 18 {
		return
	}
	src, err := findStatementSource(ctx, e.Pool)
	if err != nil || src == nil {
		return
	}
	snap, err := src.snapshot(ctx, e.Pool, r)
	if err == nil {
		err = e.state().setIgnoredStatements(ctx, e.Pool, en.state.ID, snap)
	}
	if _, ok := unreadable(err); err != nil && !ok {
		e.logf("%s: pg_stat_statements entries of %s not recorded before the rename: %v\n", en.state.ID, r.table, err)
	}
}

// takeStatementBaseline stores, once the phase before a contract is
// applied, the counts of the statements naming what it retires. It never
// fails the phase: without a baseline the first check takes one.
func (e *Engine) takeStatementBaseline(ctx context.Context, en *entry, r retiredName) {
	st := e.state()
	var snap *statementSnapshot
	src, err := findStatementSource(ctx, e.Pool)
	if err == nil && src != nil {
		snap, err = src.snapshot(ctx, e.Pool, r)
		if _, ok := unreadable(err); ok {
			snap, err = nil, nil
		}
	}
	if err == nil {
		_, err = st.setStatementBaseline(ctx, e.Pool, en.state.ID, snap)
	}
	if err != nil {
		e.logf("%s: pg_stat_statements baseline not taken (the contract's first check takes one): %v\n", en.state.ID, err)
	}
}

// columnStatements is the statements report of the contract gate (phase
// idx), and, with GateStatements, why the contract must wait ("": it need
// not). record stores the counts seen (planner next, not its dry run).
func (e *Engine) columnStatements(ctx context.Context, en *entry, idx int, record bool) (*StatementsReport, string, error) {
	ret, ok := retired(en)
	if !ok || idx != ret.contract {
		return nil, "", nil
	}
	configErr := func(problem string) error {
		return fmt.Errorf("--gate-statements: %s; without it the contract relies on the fleet and deploy gates alone: %w", problem, ErrConfig)
	}
	src, err := findStatementSource(ctx, e.Pool)
	if err != nil {
		return nil, "", err
	}
	if src == nil {
		if e.GateStatements {
			return nil, "", configErr("the pg_stat_statements extension is not installed in this database (see README, Statements that still use the old column)")
		}
		return nil, "", nil
	}
	rep := &StatementsReport{Table: ret.table.String(), Column: ret.column, SincePhase: ret.since, Gating: e.GateStatements, Statements: []ObservedStatement{}}
	snap, err := src.snapshot(ctx, e.Pool, ret)
	if problem, ok := unreadable(err); ok {
		rep.Problem = problem
		if e.GateStatements {
			return rep, "", configErr(problem)
		}
		return rep, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	rep.Available, rep.Hidden = true, snap.hidden
	if snap.hidden > 0 {
		var role string
		if err := e.Pool.QueryRow(ctx, `SELECT current_user`).Scan(&role); err != nil {
			return nil, "", err
		}
		rep.Problem = fmt.Sprintf("%d statement(s) of other roles are hidden: GRANT pg_read_all_stats TO %s", snap.hidden, pgx.Identifier{role}.Sanitize())
		if e.GateStatements {
			return rep, "", configErr(rep.Problem)
		}
	}
	st := e.state()
	base, err := st.statementBaseline(ctx, e.Pool, en.state.ID)
	if err != nil {
		return nil, "", err
	}
	what := "statement(s) naming " + ret.subject()
	if base == nil {
		// pg_stat_statements was not readable at enforce: count from now.
		wait := fmt.Sprintf("no pg_stat_statements baseline was taken at the previous phase; a planner next takes one, and a later one compares the %s with it (--gate-statements)", what)
		if record {
			taken, err := st.setStatementBaseline(ctx, e.Pool, en.state.ID, snap)
			if err != nil {
				return nil, "", err
			}
			rep.Since = &taken
			wait = fmt.Sprintf("no pg_stat_statements baseline was taken at the previous phase; one is taken now, and a later planner next compares the %s with it (--gate-statements)", what)
		}
		if !e.GateStatements {
			wait = ""
		}
		return rep, wait, nil
	}
	rep.Since, rep.LastCheck = &base.taken, base.checkedAt
	reset := snap.statsReset != nil && base.statsReset != nil && !snap.statsReset.Equal(*base.statsReset)
	for id, calls := range snap.calls {
		if _, ok := base.ignored[id]; ok {
			continue
		}
		since := func(counts map[int64]int64) int64 {
			prev := counts[id]
			if reset || calls < prev { // counts restarted (reset, or the entry was evicted)
				prev = 0
			}
			return calls - prev
		}
		o := ObservedStatement{QueryID: id, TotalCalls: calls, Calls: since(base.baseline), Query: truncateQuery(snap.text[id])}
		if base.checkedAt != nil {
			o.CallsSinceCheck = since(base.checked)
		} else {
			o.CallsSinceCheck = o.Calls
		}
		if o.Calls > 0 {
			rep.Statements = append(rep.Statements, o)
		}
	}
	sort.Slice(rep.Statements, func(i, j int) bool {
		a, b := rep.Statements[i], rep.Statements[j]
		if a.CallsSinceCheck != b.CallsSinceCheck {
			return a.CallsSinceCheck > b.CallsSinceCheck
		}
		if a.Calls != b.Calls {
			return a.Calls > b.Calls
		}
		return a.QueryID < b.QueryID
	})
	if record {
		if err := st.recordStatementCheck(ctx, e.Pool, en.state.ID, snap, reset); err != nil {
			return nil, "", err
		}
	}
	if !e.GateStatements {
		return rep, "", nil
	}
	var busy []ObservedStatement
	for _, o := range rep.Statements {
		if o.CallsSinceCheck > 0 {
			busy = append(busy, o)
		}
	}
	if len(busy) == 0 {
		return rep, "", nil
	}
	from := ret.since + " (" + base.taken.UTC().Format(time.RFC3339) + ")"
	if base.checkedAt != nil {
		from = "the previous check (" + base.checkedAt.UTC().Format(time.RFC3339) + ")"
	}
	return rep, fmt.Sprintf("%d %s called since %s: %s; the contract waits (--gate-statements) until a planner next finds none called since the one before",
		len(busy), what, from, describeStatements(busy, true)), nil
}

// describeStatements lists statements for a reason, at most five.
func describeStatements(list []ObservedStatement, sinceCheck bool) string {
	var parts []string
	for i, o := range list {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(list)-i))
			break
		}
		n := o.Calls
		if sinceCheck {
			n = o.CallsSinceCheck
		}
		parts = append(parts, fmt.Sprintf("queryid %d (%d call(s)): %s", o.QueryID, n, o.Query))
	}
	return strings.Join(parts, "; ")
}

// Summary is the report in one line, for status and next.
func (r *StatementsReport) Summary() string {
	subject := r.Table + "." + r.Column
	if r.Column == "" {
		subject = "the table " + r.Table
	}
	since := r.SincePhase
	switch {
	case !r.Available:
		return "pg_stat_statements: " + r.Problem
	case len(r.Statements) == 0 && r.Problem != "":
		return fmt.Sprintf("pg_stat_statements: no statement naming %s called since %s (%s)", subject, since, r.Problem)
	case len(r.Statements) == 0:
		return fmt.Sprintf("pg_stat_statements: no statement naming %s called since %s", subject, since)
	}
	s := fmt.Sprintf("pg_stat_statements: %d statement(s) naming %s called since %s: %s", len(r.Statements), subject, since, describeStatements(r.Statements, false))
	if r.Problem != "" {
		s += " (" + r.Problem + ")"
	}
	return s
}

// truncateQuery collapses a statement's white space and cuts it.
func truncateQuery(sql string) string {
	s := strings.Join(strings.Fields(sql), " ")
	if r := []rune(s); len(r) > queryTextLimit {
		return string(r[:queryTextLimit]) + "…"
	}
	return s
}

package planner

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/pgplanner/planner/phases"
)

// OfflineNote heads plans compiled without a database.
const OfflineNote = "offline: column facts assumed (types shown as /* type of ... */ placeholders, " +
	"existing columns assumed NOT NULL, no indexes, constraints or defaults copied); pass --database-url for exact SQL"

// RenderText writes plans for a terminal or a PR comment (Markdown): a
// heading per change, a table of its phases, then each phase's statements
// with their locks, its gate, the flags it publishes and its rollback.
func RenderText(w io.Writer, plans []Plan, offline bool) error {
	r := &textRenderer{w: w}
	noun := "changes"
	if len(plans) == 1 {
		noun = "change"
	}
	r.printf("# planner plan: %d %s\n\n", len(plans), noun)
	if offline {
		r.printf("> **%s**\n\n", OfflineNote)
	}
	for _, p := range plans {
		r.plan(p)
	}
	return r.err
}

type textRenderer struct {
	w   io.Writer
	err error
}

func (r *textRenderer) printf(format string, args ...any) {
	if r.err == nil {
		_, r.err = fmt.Fprintf(r.w, format, args...)
	}
}

func (r *textRenderer) plan(p Plan) {
	s := p.Spec
	r.printf("## %s (%s)\n\n", s.ID, s.Kind)
	if s.File != "" {
		loc := s.File
		if s.Line > 0 {
			loc = fmt.Sprintf("%s:%d", s.File, s.Line)
		}
		r.printf("Declared in `%s`", loc)
		if fields := describeFields(s.Change); fields != "" {
			r.printf(": %s", codeSpan(fields))
		}
		r.printf("\n\n")
	} else if fields := describeFields(s.Change); fields != "" {
		r.printf("%s\n\n", codeSpan(fields))
	}
	if len(p.Expressions) > 0 {
		r.printf("Expressions:\n\n")
		for _, n := range p.Expressions {
			r.printf("- %s\n", n.describe())
		}
		r.printf("\n")
	}
	if p.Partitioned != "" {
		r.printf("> **Partitioned table:** %s\n\n", p.Partitioned)
	}
	r.printf("| # | phase | gate | strongest lock | flags after | rollback |\n|---|---|---|---|---|---|\n")
	for i, ph := range p.Phases {
		r.printf("| %d | %s | %s | %s | %s | %s |\n", i+1, ph.Name, gateShort(ph.Gate), strongestLock(ph), flagsInline(ph.Flags, "unchanged"), rollbackShort(ph))
	}
	r.printf("\n")
	for i, ph := range p.Phases {
		r.phase(i+1, ph)
	}
}

func (r *textRenderer) phase(n int, ph phases.Phase) {
	r.printf("### %d. %s\n\n%s.\n\n", n, ph.Name, capitalize(ph.Purpose))
	r.printf("- **Gate:** %s\n", ph.Gate.Describe())
	if len(ph.Partitions) > 0 {
		r.printf("- **Partitions:** %s\n", partitionsLine(ph.Partitions))
	}
	if ph.Backfill != nil {
		b := ph.Backfill
		t := TableName{Schema: b.Schema, Name: b.Table}
		col := phases.Ident(b.Column)
		r.printf("- **Backfill:** batches of %s, keyset-paginated on the table's key, one short transaction each (row locks only)\n",
			codeSpan(fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s IS DISTINCT FROM %s", t.Quoted(), col, oneLineSQL(b.Expr), col, oneLineSQL(b.Expr))))
	}
	r.printf("- **Flags after:** %s\n\n", flagsInline(ph.Flags, "unchanged"))
	if len(ph.Statements) > 0 {
		r.statements(ph.Statements)
	} else if ph.Backfill == nil {
		r.printf("No SQL: only the flags change.\n\n")
	}
	switch {
	case ph.Irreversible != "":
		r.printf("**Rollback:** irreversible: %s.\n\n", ph.Irreversible)
	case len(ph.Rollback) > 0:
		r.printf("**Rollback** (flags after: %s):\n\n", flagsInline(ph.RollbackFlags, "unchanged"))
		r.statements(ph.Rollback)
		if ph.Backfill != nil {
			r.printf("Then: %s.\n\n", backfillRollback(ph.Backfill))
		}
	case ph.Backfill != nil:
		r.printf("**Rollback:** %s", backfillRollback(ph.Backfill))
		if ph.RollbackFlags != nil {
			r.printf("; flags after: %s", flagsInline(ph.RollbackFlags, ""))
		}
		r.printf(".\n\n")
	case ph.RollbackFlags != nil:
		r.printf("**Rollback:** flags back to %s.\n\n", flagsInline(ph.RollbackFlags, ""))
	default:
		r.printf("**Rollback:** nothing to undo (rolling back the earlier phases removes what this one checked).\n\n")
	}
}

func (r *textRenderer) statements(sts []phases.Statement) {
	for i, st := range sts {
		fence := codeFence(st.SQL)
		r.printf("%d. %s\n\n%ssql\n%s;\n%s\n\n", i+1, describeStatement(st), fence, st.SQL, fence)
	}
}

// describeStatement says what a statement does to traffic, in one line.
func describeStatement(st phases.Statement) string {
	var parts []string
	if st.Lock == phases.NoLock {
		parts = append(parts, "no table lock")
	} else {
		parts = append(parts, fmt.Sprintf("`%s` on %s: blocks %s", st.Lock, st.Tables, st.Lock.Blocks()))
		if st.Held != "" {
			parts = append(parts, "held "+st.Held)
		}
	}
	if st.NoTransaction {
		parts = append(parts, "runs outside a transaction")
	}
	if st.Rewrites {
		parts = append(parts, "rewrites table")
	} else if st.Scans {
		parts = append(parts, "scans table")
	}
	if st.CommitAfter {
		parts = append(parts, "commits after")
	}
	if st.Done != "" {
		parts = append(parts, "skipped when already done")
	}
	return strings.Join(parts, "; ")
}

var lockStrength = map[phases.Lock]int{
	phases.NoLock: 0, phases.AccessShare: 1, phases.RowExclusive: 2, phases.ShareUpdateExclusive: 3,
	phases.Share: 4, phases.ShareRowExclusive: 5, phases.AccessExclusive: 6,
}

func strongestLock(ph phases.Phase) string {
	best := phases.NoLock
	for _, st := range ph.Statements {
		if lockStrength[st.Lock] > lockStrength[best] {
			best = st.Lock
		}
	}
	if best == phases.NoLock {
		if ph.Backfill != nil {
			return "row locks (batches)"
		}
		return "none"
	}
	return string(best)
}

func gateShort(g phases.Gate) string {
	if g == phases.NoGate {
		return "none"
	}
	return string(g)
}

// backfillRollback says what rolling a backfill back does to the data.
func backfillRollback(b *phases.Backfill) string {
	if b.Undo {
		return "the rows the backfill filled are set back to NULL, in batches (a row changed since keeps its value), and the job is forgotten"
	}
	return "forget the backfill job (values already written stay; the column is dropped by rolling back earlier phases)"
}

func rollbackShort(ph phases.Phase) string {
	switch {
	case ph.Irreversible != "":
		return "irreversible"
	case len(ph.Rollback) > 0:
		return fmt.Sprintf("%d statements", len(ph.Rollback))
	case ph.RollbackFlags != nil:
		return "flags only"
	}
	return "nothing to undo"
}

func flagsInline(f phases.Flags, none string) string {
	if len(f) == 0 {
		return none
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("`%s=%s`", k, f[k])
	}
	return strings.Join(parts, ", ")
}

// describeFields renders a kind's fields as "key: value, ..." in their
// declaration order.
func describeFields(k Kind) string {
	if k == nil {
		return ""
	}
	data, err := json.Marshal(k)
	if err != nil {
		return ""
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	var parts []string
	// Walk the object's tokens to keep field order.
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return ""
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return ""
		}
		parts = append(parts, fmt.Sprintf("%s: %s", key, compactValue(v)))
	}
	return strings.Join(parts, ", ")
}

func compactValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []any:
		s := make([]string, len(x))
		for i, e := range x {
			s[i] = compactValue(e)
		}
		return "[" + strings.Join(s, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		s := make([]string, len(keys))
		for i, k := range keys {
			s[i] = k + ": " + compactValue(x[k])
		}
		return "{" + strings.Join(s, ", ") + "}"
	}
	return fmt.Sprint(v)
}

// codeFence is a Markdown code fence longer than any run of backticks in
// sql, so that an expression holding ``` cannot end the block and show the
// rest of a statement as Markdown in a pull request.
func codeFence(sql string) string {
	return strings.Repeat("`", max(3, longestBacktickRun(sql)+1))
}

// codeSpan is s as inline Markdown code, delimited by more backticks than
// it holds.
func codeSpan(s string) string {
	n := longestBacktickRun(s)
	if n == 0 {
		return "`" + s + "`"
	}
	d := strings.Repeat("`", n+1)
	return d + " " + s + " " + d
}

func longestBacktickRun(s string) int {
	best, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best
}

// oneLineSQL joins the lines of generated SQL for an inline mention. Only
// the newline the planner puts after an expression is dropped; an
// expression of several lines is shown as written.
func oneLineSQL(s string) string { return strings.ReplaceAll(s, "\n)", ")") }

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// jsonPlan is one plan in `planner plan --output json`.
type jsonPlan struct {
	ID       string         `json:"id"`
	Kind     string         `json:"kind"`
	File     string         `json:"file"`
	Line     int            `json:"line"`
	Checksum string         `json:"checksum"`
	Change   Kind           `json:"change"`
	Phases   []phases.Phase `json:"phases"`
	// Expressions: volatility and reach of each SQL expression.
	Expressions []ExpressionNote `json:"expressions"`
	// Partitioned says what differs on a partitioned table.
	Partitioned string `json:"partitioned"`
}

// jsonPlans is the document `planner plan --output json` writes.
type jsonPlans struct {
	Offline bool       `json:"offline"`
	Note    string     `json:"note"`
	Plans   []jsonPlan `json:"plans"`
}

// RenderJSON writes plans as one indented JSON document (jsonPlans).
func RenderJSON(w io.Writer, plans []Plan, offline bool) error {
	doc := jsonPlans{Offline: offline, Plans: make([]jsonPlan, len(plans))}
	if offline {
		doc.Note = OfflineNote
	}
	for i, p := range plans {
		doc.Plans[i] = jsonPlan{ID: p.Spec.ID, Kind: p.Spec.Kind, File: p.Spec.File, Line: p.Spec.Line,
			Checksum: p.Spec.Checksum, Change: p.Spec.Change, Phases: p.Phases, Expressions: p.Expressions, Partitioned: p.Partitioned}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// partitionsLine says which partitions a per-partition phase handles.
func partitionsLine(parts phases.TableList) string {
	names := make([]string, 0, min(len(parts), 9))
	for _, p := range parts[:min(len(parts), 8)] {
		names = append(names, p.String())
	}
	if len(parts) > 8 {
		names = append(names, fmt.Sprintf("and %d more", len(parts)-8))
	}
	return fmt.Sprintf("one step per partition, for the %d partitions of the catalog snapshot (%s); a partition attached or detached since refuses the phase before it runs",
		len(parts), strings.Join(names, ", "))
}

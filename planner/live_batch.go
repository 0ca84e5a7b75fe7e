package planner

// This file is the batched live checks of validate, next and plan: the
// server-side questions of many changes (type names, access methods,
// expressions) are collected, then asked in a few pipelined round trips.
// Collecting and running stay in one file because each pipeline step is
// paired with the answer it fills; the samples of existing rows are in
// sample.go.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// liveBatch gathers the server-side checks of many changes (type names,
// index access methods, expressions) and runs them together: a few
// pipelined round trips whatever the number of changes, instead of a
// dozen per change.
type liveBatch struct {
	types   map[string]*typeAnswer
	methods map[string]bool // index access methods the server has (after run)
	jobs    []*exprJob
	// sample: also evaluate expressions on existing rows; full: on all of
	// them.
	sample, full bool
	samples      []*sampleJob
	// catalog has the tables as they are today, by TableName.String(),
	// for the samples (nil: the table a change is checked against).
	catalog map[TableName]*Table
}

type typeAnswer struct {
	known bool
	err   string // PostgreSQL's complaint about a malformed name
}

type exprJob struct {
	table *Table
	x     expression
	msg   string // the problem found, if any (after run)
}

func newLiveBatch() *liveBatch { return &liveBatch{types: map[string]*typeAnswer{}} }

func (b *liveBatch) typ(name string) *typeAnswer {
	a := b.types[name]
	if a == nil {
		a = &typeAnswer{}
		b.types[name] = a
	}
	return a
}

// collect registers the live checks of one compiled change (those of
// liveProblems) and returns a function that yields its problems once the
// batch has run, in liveProblems' order, and its warnings.
func (b *liveBatch) collect(s Spec, plan Plan, table *Table) func() (problems, warnings []Problem) {
	var ps []Problem
	if lc, ok := s.Change.(LiveChecker); ok && table != nil {
		ps = append(ps, lc.CheckLive(table)...)
	}
	needsKey := false
	for _, p := range plan.Phases {
		needsKey = needsKey || p.Backfill != nil
	}
	if needsKey && table != nil && len(table.Key) == 0 {
		ps = append(ps, Problem{Field: "table",
			Message: fmt.Sprintf("%s has neither a primary key nor a unique index on NOT NULL columns, and this change backfills rows in batches paginated on one", table.Name),
			Hint:    "add a primary key first without blocking writes: CREATE UNIQUE INDEX CONCURRENTLY t_pkey_idx ON t (id); ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_pkey_idx"})
	}
	b.askNames(s.Change)
	var jobs []*exprJob
	var samples []*sampleJob
	if table != nil {
		exprs := liveExpressionsOf(s.Change, table)
		for _, x := range exprs {
			for _, t := range x.adds {
				b.typ(t)
			}
			for _, c := range table.Columns {
				b.typ(c.Type)
			}
			j := &exprJob{table: table, x: x}
			b.jobs = append(b.jobs, j)
			jobs = append(jobs, j)
		}
		if b.sample {
			catalog := table
			if b.catalog != nil {
				catalog = b.catalog[table.Name.Key()]
			}
			samples = sampleJobsOf(exprs, jobs, table, catalog)
			b.samples = append(b.samples, samples...)
		}
	}
	return func() ([]Problem, []Problem) {
		out := append([]Problem{}, ps...)
		out = append(out, b.typeProblemsOf(s.Change)...)
		for _, j := range jobs {
			if j.msg != "" {
				out = append(out, Problem{Field: j.x.field, Message: j.msg, Hint: j.x.hint})
			}
		}
		var warnings []Problem
		for _, j := range samples {
			if j.problem != nil {
				out = append(out, *j.problem)
			}
			if j.warning != nil {
				warnings = append(warnings, *j.warning)
			}
		}
		return out, warnings
	}
}

// askNames registers the type names and access method a change names.
func (b *liveBatch) askNames(k Kind) {
	if tn, ok := k.(TypeNamer); ok {
		for _, t := range tn.TypeNames() {
			if t != "" {
				b.typ(t)
			}
		}
	}
}

// typeProblemsOf is the batch's answer on the types and access method a
// change names (after run).
func (b *liveBatch) typeProblemsOf(k Kind) []Problem {
	return nameProblems(k, func(name string) typeAnswer { return *b.typ(name) },
		func(m string) bool { return b.methods[m] })
}

const typeHint = "create the type (or extension) first, or fix the name, e.g. text, bigint, varchar(80), numeric(12,2), timestamptz"

// nameProblems is the one place the server's answers on the types
// (TypeNamer) and index access method (accessMethodNamer) a change names
// become problems, for validate, next, plan and checkTypes alike.
func nameProblems(k Kind, typ func(string) typeAnswer, hasMethod func(string) bool) []Problem {
	var ps []Problem
	if tn, ok := k.(TypeNamer); ok {
		names := tn.TypeNames()
		fields := make([]string, 0, len(names))
		for f := range names {
			fields = append(fields, f)
		}
		sort.Strings(fields)
		for _, f := range fields {
			name := names[f]
			if name == "" {
				continue
			}
			if a := typ(name); !a.known || a.err != "" {
				msg := fmt.Sprintf("type %q does not exist on the server", name)
				if a.err != "" {
					msg += " (" + a.err + ")" // a malformed name
				}
				ps = append(ps, Problem{Field: f, Message: msg, Hint: typeHint})
			}
		}
	}
	if am, ok := k.(accessMethodNamer); ok {
		if field, m := am.accessMethod(); m != "" && !hasMethod(strings.ToLower(m)) {
			ps = append(ps, Problem{Field: field, Message: fmt.Sprintf("index access method %q does not exist on the server", m),
				Hint: "use btree, hash, gist, spgist, gin or brin, or create the extension that provides it"})
		}
	}
	return ps
}

// pipeStep is one statement of a pipeline, synced on its own so that an
// error affects it alone.
type pipeStep struct {
	sql    string
	params [][]byte
	row    func([][]byte) // receives each row's values (text format)
	err    error
}

// pipelineChunk bounds the statements in flight, so that neither side's
// buffers fill while the other waits.
const pipelineChunk = 256

func runPipeline(ctx context.Context, conn *pgconn.PgConn, steps []*pipeStep) error {
	for start := 0; start < len(steps); start += pipelineChunk {
		chunk := steps[start:min(start+pipelineChunk, len(steps))]
		p := conn.StartPipeline(ctx)
		for _, st := range chunk {
			p.SendQueryParams(st.sql, st.params, nil, nil, nil)
			p.SendPipelineSync()
		}
		if err := p.Flush(); err != nil {
			p.Close()
			return err
		}
		for _, st := range chunk {
			res, err := p.GetResults()
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				st.err = err
			} else if err != nil {
				p.Close()
				return err
			} else if rr, ok := res.(*pgconn.ResultReader); ok {
				for rr.NextRow() {
					if st.row != nil {
						st.row(rr.Values())
					}
				}
				if _, err := rr.Close(); err != nil {
					st.err = err
				}
			}
			if _, err := p.GetResults(); err != nil { // the step's sync
				p.Close()
				return err
			}
		}
		if err := p.Close(); err != nil {
			return err
		}
	}
	return nil
}

// run asks the server. It uses a connection of its own, closed afterwards,
// so that the scratch tables and settings it makes go with it.
func (b *liveBatch) run(ctx context.Context, pool *pgxpool.Pool) error {
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return wrapf(err, "connect for the live checks")
	}
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	pg := conn.PgConn()
	if err := execOne(ctx, pg, `SET statement_timeout = '10s'`); err != nil {
		return wrapf(err, "set up the live checks")
	}
	if err := execOne(ctx, pg, `SET lock_timeout = '1s'`); err != nil {
		return wrapf(err, "set up the live checks")
	}
	// Only scratch tables are committed: no need to wait for the disk.
	if err := execOne(ctx, pg, `SET synchronous_commit = off`); err != nil {
		return wrapf(err, "set up the live checks")
	}
	b.methods = map[string]bool{}
	rows, err := conn.Query(ctx, `SELECT amname FROM pg_catalog.pg_am WHERE amtype = 'i'`)
	if err != nil {
		return wrapf(err, "read the index access methods")
	}
	methods, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return wrapf(err, "read the index access methods")
	}
	for _, m := range methods {
		b.methods[m] = true
	}
	if err := b.runTypes(ctx, pg); err != nil {
		return err
	}
	if err := b.runExpressions(ctx, pg); err != nil {
		return err
	}
	return b.runSamples(ctx, pg)
}

func (b *liveBatch) runTypes(ctx context.Context, pg *pgconn.PgConn) error {
	names := make([]string, 0, len(b.types))
	for n := range b.types {
		names = append(names, n)
	}
	sort.Strings(names)
	steps := make([]*pipeStep, len(names))
	for i, n := range names {
		a := b.types[n]
		steps[i] = &pipeStep{sql: `SELECT pg_catalog.to_regtype($1) IS NOT NULL`, params: [][]byte{[]byte(n)},
			row: func(v [][]byte) { a.known = string(v[0]) == "t" }}
	}
	if err := runPipeline(ctx, pg, steps); err != nil {
		return fmt.Errorf("check types: %w", err)
	}
	for i, st := range steps {
		var pe *pgconn.PgError
		if errors.As(st.err, &pe) {
			b.types[names[i]].err = pe.Message
		} else if st.err != nil {
			return fmt.Errorf("check types: %w", st.err)
		}
	}
	return nil
}

// scratch is one temporary table standing in for a source table: the
// union of the columns its expressions see, as long as no two of them
// give one name two types (then a second scratch table is made).
type scratch struct {
	name  string
	table TableName
	cols  map[string]string
	order []string
}

func (sc *scratch) fits(cols map[string]string) bool {
	for n, t := range cols {
		if have, ok := sc.cols[n]; ok && have != t {
			return false
		}
	}
	return true
}

// runExpressions plans every expression against a scratch table with the
// columns it will see, each in a transaction that is rolled back.
func (b *liveBatch) runExpressions(ctx context.Context, pg *pgconn.PgConn) error {
	if len(b.jobs) == 0 {
		return nil
	}
	var scratches []*scratch
	byTable := map[string][]*scratch{}
	jobScratch := make([]*scratch, len(b.jobs))
	for i, j := range b.jobs {
		cols := map[string]string{}
		for _, c := range j.table.Columns {
			if a := b.types[c.Type]; a != nil && a.known {
				cols[c.Name] = c.Type
			}
		}
		bad := ""
		for c, t := range j.x.adds {
			a := b.types[t]
			switch {
			case a.err != "":
				bad = fmt.Sprintf("column %s of type %s: %s", c, t, a.err)
			case !a.known:
				bad = fmt.Sprintf("column %s of type %s: type %q does not exist", c, t, t)
			default:
				cols[c] = t
			}
		}
		if bad != "" {
			j.msg = bad
			continue
		}
		key := j.table.Name.String()
		var sc *scratch
		for _, cand := range byTable[key] {
			if cand.fits(cols) {
				sc = cand
				break
			}
		}
		if sc == nil {
			sc = &scratch{name: fmt.Sprintf("planner_validate_%d", len(scratches)), table: j.table.Name, cols: map[string]string{}}
			scratches = append(scratches, sc)
			byTable[key] = append(byTable[key], sc)
		}
		names := make([]string, 0, len(cols))
		for n := range cols {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if _, ok := sc.cols[n]; !ok {
				sc.cols[n] = cols[n]
				sc.order = append(sc.order, n)
			}
		}
		jobScratch[i] = sc
	}
	creates := make([]*pipeStep, len(scratches))
	for i, sc := range scratches {
		defs := make([]string, len(sc.order))
		for k, n := range sc.order {
			defs[k] = pgx.Identifier{n}.Sanitize() + " " + sc.cols[n]
		}
		creates[i] = &pipeStep{sql: `CREATE TEMP TABLE ` + pgx.Identifier{sc.name}.Sanitize() + ` (` + strings.Join(defs, ", ") + `)`}
	}
	// All in one transaction (they are many on many tables); one by one
	// only if one fails, to name it.
	all := append(append([]*pipeStep{{sql: `BEGIN`}}, creates...), &pipeStep{sql: `COMMIT`})
	if err := runPipeline(ctx, pg, all); err != nil {
		return fmt.Errorf("validate: scratch tables: %w", err)
	}
	for _, st := range all {
		if st.err != nil {
			for _, c := range creates {
				c.err = nil
			}
			if err := runPipeline(ctx, pg, creates); err != nil {
				return fmt.Errorf("validate: scratch tables: %w", err)
			}
			break
		}
	}
	for i, st := range creates {
		if st.err != nil {
			return fmt.Errorf("validate: copy the columns of %s: %w", scratches[i].table, st.err)
		}
	}
	var idx []int
	var sqls []string
	for i, j := range b.jobs {
		if sc := jobScratch[i]; sc != nil {
			idx = append(idx, i)
			sqls = append(sqls, explainSQL(pgx.Identifier{sc.name}.Sanitize(), j.table, j.x))
		}
	}
	errs, err := explainAll(ctx, pg, sqls)
	if err != nil {
		return fmt.Errorf("validate: %w", err)
	}
	explain := map[int]*pipeStep{}
	for k, i := range idx {
		explain[i] = &pipeStep{err: errs[k]}
	}
	for i, st := range explain {
		if st.err == nil {
			continue
		}
		var pe *pgconn.PgError
		if !errors.As(st.err, &pe) {
			return fmt.Errorf("validate: %w", st.err)
		}
		msg := pe.Message
		if pe.Hint != "" {
			msg += " (" + pe.Hint + ")"
		}
		j := b.jobs[i]
		j.msg = fmt.Sprintf("%q is not valid for %s: %s", oneLine(j.x.expr, 80), j.table.Name, msg)
	}
	return nil
}

// explainSQL plans (never runs) the expression as it will be used: an
// assignment through UPDATE, which applies assignment casts exactly as the
// backfill will, or a condition. The alias is the table's own name, so
// expressions qualified with it (users.email) resolve too.
func explainSQL(scratch string, table *Table, x expression) string {
	alias := pgx.Identifier{table.Name.Name}.Sanitize()
	if x.column != "" {
		return `EXPLAIN UPDATE ` + scratch + ` AS ` + alias + ` SET ` + pgx.Identifier{x.column}.Sanitize() + ` = (` + x.expr + "\n)"
	}
	return `EXPLAIN SELECT 1 FROM ` + scratch + ` AS ` + alias + ` WHERE (` + x.expr + "\n)"
}

// explainAll plans the statements in transactions that are rolled back.
func explainAll(ctx context.Context, pg *pgconn.PgConn, sqls []string) ([]error, error) {
	steps := make([]*pipeStep, len(sqls))
	for i, q := range sqls {
		steps[i] = &pipeStep{sql: q}
	}
	if err := rolledBack(ctx, pg, `BEGIN`, steps); err != nil {
		return nil, err
	}
	errs := make([]error, len(steps))
	for i, st := range steps {
		errs[i] = st.err
	}
	return errs, nil
}

// rolledBack runs the steps in transactions opened with begin and rolled
// back, many to a transaction. A failure aborts its transaction: the steps
// after it run again in a new one, in smaller groups for a while, so that
// many failures do not make the work grow with their square.
func rolledBack(ctx context.Context, pg *pgconn.PgConn, begin string, steps []*pipeStep) error {
	size := pipelineChunk
	for start := 0; start < len(steps); {
		end := min(start+size, len(steps))
		group := append([]*pipeStep{{sql: begin}}, steps[start:end]...)
		group = append(group, &pipeStep{sql: `ROLLBACK`})
		for _, st := range steps[start:end] {
			st.err = nil
		}
		if err := runPipeline(ctx, pg, group); err != nil {
			return err
		}
		if group[0].err != nil {
			return group[0].err
		}
		next := end
		for i, st := range steps[start:end] {
			if st.err != nil {
				next = start + i + 1
				break
			}
		}
		if next < end {
			size = max(1, size/4)
		} else {
			size = min(pipelineChunk, size*2)
		}
		start = next
	}
	return nil
}

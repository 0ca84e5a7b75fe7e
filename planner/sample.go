package planner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Expressions are also evaluated on existing rows before anything runs: a
// cast that fails on some values, or a backfill that would take hours,
// shows up at validate (and before a change's first phase) rather than in
// the middle of a backfill. Every evaluation runs in a read-only
// transaction that is rolled back, under a statement timeout.

// sampleRows is how many existing rows each expression is evaluated on.
const sampleRows = 1000

// slowBackfill is the estimated backfill duration past which validate
// warns.
const slowBackfill = time.Hour

// sampleTimeout bounds each evaluation; a slower one is measured on a
// smaller sample.
const sampleTimeout = 2 * time.Second

// fullBatch is the rows per read-only transaction of a full scan.
const fullBatch = 10000

// sampleJob is one expression to evaluate on the table's rows.
type sampleJob struct {
	table *Table
	field string
	expr  string
	typ   string // cast target of an assigned value; "" for a condition
	check bool   // a CHECK: rows where it is false are reported too
	hint  string
	after *exprJob // evaluated only once it plans

	problem, warning *Problem
}

// aggregate is the job's select-list item: evaluating it evaluates the
// expression on every row.
func (j *sampleJob) aggregate() string {
	switch {
	case j.typ != "":
		return `count(CAST((` + j.expr + "\n) AS " + j.typ + `))`
	case j.check:
		return `count(*) FILTER (WHERE (` + j.expr + "\n) IS FALSE)"
	default:
		return `count(*) FILTER (WHERE (` + j.expr + "\n))"
	}
}

// sampleJobsOf lists the expressions of a change that run on existing
// rows: backfills, conversions, checks and index predicates. Defaults and
// down (which runs on rows the application writes) do not.
//
// table is the table as the change finds it, catalog as it is today: an
// expression naming a column that only earlier changes (or this one) add
// cannot run on today's rows, and is left out.
func sampleJobsOf(exprs []expression, jobs []*exprJob, table, catalog *Table) []*sampleJob {
	if catalog == nil || len(catalog.Key) == 0 {
		return nil
	}
	var out []*sampleJob
	for i, x := range exprs {
		if !x.onRows {
			continue
		}
		expr := x.expr
		if x.rowsExpr != "" {
			expr = x.rowsExpr
		}
		runs := true
		for _, id := range identifiersOf(expr) {
			runs = runs && (table.Column(id) == nil || catalog.Column(id) != nil)
		}
		if !runs {
			continue
		}
		out = append(out, &sampleJob{table: catalog, field: x.field, expr: expr, typ: x.typ,
			check: x.constraint, hint: x.hint, after: jobs[i]})
	}
	return out
}

func (t *Table) keyList() string {
	var ks []string
	for _, k := range t.Key {
		ks = append(ks, pgx.Identifier{k}.Sanitize())
	}
	return strings.Join(ks, ", ")
}

// sampleFrom is the sample as a FROM item named like the table, so that
// expressions qualified with the table's name resolve: rows in key order,
// read through the key's index (a page-level TABLESAMPLE comes back empty
// when the statistics are stale).
func sampleFrom(t *Table, limit, offset int) string {
	return fmt.Sprintf("(SELECT * FROM %s ORDER BY %s LIMIT %d OFFSET %d) AS %s",
		t.Name.Quoted(), t.keyList(), limit, offset, pgx.Identifier{t.Name.Name}.Sanitize())
}

// timed wraps a query over the sample so that it also returns its own
// duration in seconds, measured on the server.
func timed(aggs []string, from string) string {
	return `SELECT extract(epoch FROM clock_timestamp() - statement_timestamp())::float8, q.* FROM (SELECT ` +
		strings.Join(aggs, ", ") + ` FROM ` + from + `) AS q`
}

// sampleRun is the outcome of one evaluation of some jobs: the sample
// read alone (base), then with the expressions on it (large), and, after a
// timeout, on ten rows (small).
type sampleRun struct {
	rows                           int64
	base, small, large             *pipeStep
	baseSecs, smallSecs, largeSecs float64
	smallCounts, largeCounts       []int64
}

func sampleSteps(t *Table, jobs []*sampleJob, small bool) (*sampleRun, []*pipeStep) {
	r := &sampleRun{}
	aggs := make([]string, len(jobs))
	for i, j := range jobs {
		aggs[i] = j.aggregate()
	}
	scan := func(secs *float64, counts *[]int64) func([][]byte) {
		return func(v [][]byte) {
			*secs, _ = strconv.ParseFloat(string(v[0]), 64)
			*counts = (*counts)[:0]
			for _, c := range v[1:] {
				n, _ := strconv.ParseInt(string(c), 10, 64)
				*counts = append(*counts, n)
			}
		}
	}
	var baseCounts []int64
	r.base = &pipeStep{sql: timed([]string{"count(*)"}, sampleFrom(t, sampleRows, 0))}
	r.base.row = func(v [][]byte) {
		scan(&r.baseSecs, &baseCounts)(v)
		r.rows = baseCounts[0]
	}
	r.large = &pipeStep{sql: timed(aggs, sampleFrom(t, sampleRows, 0)), row: scan(&r.largeSecs, &r.largeCounts)}
	steps := []*pipeStep{r.base, r.large}
	if small {
		r.small = &pipeStep{sql: timed(aggs, sampleFrom(t, 10, 0)), row: scan(&r.smallSecs, &r.smallCounts)}
		steps = append(steps, r.small)
	}
	return r, steps
}

// readOnlyBegin opens the transactions samples are read in.
const readOnlyBegin = `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`

func isTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "57014"
}

// perRow is the measured cost of the jobs per row, in seconds, and the
// counts of the largest sample that finished; false when none did.
func (r *sampleRun) perRow() (float64, []int64, bool) {
	switch {
	case r.large.err == nil && r.rows > 0:
		return max(0, r.largeSecs-r.baseSecs) / float64(r.rows), r.largeCounts, true
	case r.large.err == nil:
		return 0, r.largeCounts, true // an empty table
	case r.small != nil && r.small.err == nil && isTimeout(r.large.err):
		return r.smallSecs / float64(min(10, max(r.rows, 1))), r.smallCounts, true
	}
	return 0, nil, false
}

// runSamples evaluates the jobs on conn: all the expressions of one table
// together first (one pipelined round trip for all tables), then one by
// one only for tables where that failed or was slow.
func (b *liveBatch) runSamples(ctx context.Context, pg *pgconn.PgConn) error {
	groups := map[string][]*sampleJob{}
	var order []string
	for _, j := range b.samples {
		if j.after != nil && j.after.msg != "" {
			continue // it does not even plan: reported as such
		}
		k := j.table.Name.String()
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], j)
	}
	if err := execOne(ctx, pg, fmt.Sprintf(`SET statement_timeout = %d`, sampleTimeout.Milliseconds())); err != nil {
		return fmt.Errorf("evaluate expressions on existing rows: %w", err)
	}
	runs := map[string]*sampleRun{}
	var steps []*pipeStep
	for _, k := range order {
		r, st := sampleSteps(groups[k][0].table, groups[k], false)
		runs[k] = r
		steps = append(steps, st...)
	}
	if err := rolledBack(ctx, pg, readOnlyBegin, steps); err != nil {
		return fmt.Errorf("evaluate expressions on existing rows: %w", err)
	}
	var alone []*sampleJob
	for _, k := range order {
		jobs := groups[k]
		cost, counts, ok := runs[k].perRow()
		if !ok || len(jobs) > 1 && slowFor(jobs[0].table, cost) {
			alone = append(alone, jobs...)
			continue
		}
		for i, j := range jobs {
			j.judge(cost, counts[i])
		}
	}
	for _, j := range alone {
		if err := b.sampleAlone(ctx, pg, j); err != nil {
			return err
		}
	}
	if b.full {
		for _, j := range b.samples {
			if j.problem == nil && (j.after == nil || j.after.msg == "") {
				if err := fullScan(ctx, pg, j); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func slowFor(t *Table, perRow float64) bool {
	return time.Duration(perRow*float64(t.RowEstimate)*float64(time.Second)) > slowBackfill
}

// judge turns a measurement into a warning: a slow backfill, a check that
// existing rows violate.
func (j *sampleJob) judge(perRow float64, count int64) {
	if j.check && count > 0 {
		j.warning = &Problem{Field: j.field,
			Message: fmt.Sprintf("%d of the sampled rows of %s do not satisfy %q: the validate phase will fail until they are fixed", count, j.table.Name, oneLine(j.expr, 80)),
			Hint:    "fix those rows first, or narrow the check"}
	}
	if j.typ != "" && slowFor(j.table, perRow) { // a value computed per row: a backfill
		est := time.Duration(perRow * float64(j.table.RowEstimate) * float64(time.Second))
		j.warning = &Problem{Field: j.field,
			Message: fmt.Sprintf("%q costs about %s a row, measured on existing rows of %s: at its estimated %d rows the backfill would take %s or more",
				oneLine(j.expr, 80), time.Duration(perRow*float64(time.Second)).Round(time.Microsecond), j.table.Name, j.table.RowEstimate, est.Round(time.Minute)),
			Hint: "make the expression cheaper (no subqueries or slow functions per row), or expect a long backfill"}
	}
}

// sampleAlone evaluates one job by itself; when it fails on the sample, it
// narrows down one offending row.
func (b *liveBatch) sampleAlone(ctx context.Context, pg *pgconn.PgConn, j *sampleJob) error {
	r, steps := sampleSteps(j.table, []*sampleJob{j}, true)
	if err := rolledBack(ctx, pg, readOnlyBegin, steps); err != nil {
		return fmt.Errorf("evaluate expressions on existing rows: %w", err)
	}
	if cost, counts, ok := r.perRow(); ok {
		j.judge(cost, counts[0])
		return nil
	}
	if isTimeout(r.small.err) {
		// Even ten rows take longer than the timeout: judge on that bound.
		j.judge(sampleTimeout.Seconds()/10, 0)
		return nil
	}
	failure := r.small.err
	if failure == nil {
		failure = r.large.err
	}
	n := int(min(r.rows, sampleRows))
	if r.small.err != nil {
		n = int(min(r.rows, 10))
	}
	key, err := offendingRow(ctx, pg, j, func(limit, offset int) string { return sampleFrom(j.table, limit, offset) }, n)
	if err != nil || key == "" {
		return wrapf(err, "find a row of %s where %q fails", j.table.Name, oneLine(j.expr, 80))
	}
	j.fail(key, failure)
	return nil
}

func (j *sampleJob) fail(key string, err error) {
	msg := err.Error()
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		msg = pe.Message
	}
	j.problem = &Problem{Field: j.field,
		Message: fmt.Sprintf("%q fails on existing rows of %s, e.g. the row with %s: %s", oneLine(j.expr, 80), j.table.Name, key, msg),
		Hint:    j.hint + "; handle every existing value (e.g. CASE WHEN x ~ '^[0-9]+$' THEN x::int END)"}
}

// readOnly runs sql in a read-only transaction that is rolled back,
// returning its error and rows.
func readOnly(ctx context.Context, pg *pgconn.PgConn, sql string, params ...[]byte) ([][][]byte, error) {
	if err := execOne(ctx, pg, readOnlyBegin); err != nil {
		return nil, wrapf(err, "begin a read-only transaction")
	}
	defer execOne(context.WithoutCancel(ctx), pg, `ROLLBACK`)
	if err := execOne(ctx, pg, fmt.Sprintf(`SET LOCAL statement_timeout = %d`, sampleTimeout.Milliseconds())); err != nil {
		return nil, wrapf(err, "set the sample's statement timeout")
	}
	res := pg.ExecParams(ctx, sql, params, nil, nil, nil).Read()
	return res.Rows, res.Err
}

// offendingRow bisects rows [0, n) of from for one where the expression
// fails, and names its key ("" when no single row fails: the failure is
// not a row's).
func offendingRow(ctx context.Context, pg *pgconn.PgConn, j *sampleJob, from func(limit, offset int) string, n int, params ...[]byte) (string, error) {
	fails := func(limit, offset int) (bool, error) {
		_, err := readOnly(ctx, pg, `SELECT `+j.aggregate()+` FROM `+from(limit, offset), params...)
		var pe *pgconn.PgError
		if err != nil && !errors.As(err, &pe) {
			return false, err
		}
		return err != nil && !isTimeout(err), nil
	}
	if f, err := fails(0, 0); err != nil || f {
		return "", err // fails on no rows at all: not about the data
	}
	lo, size := 0, n
	for size > 1 {
		half := size / 2
		f, err := fails(half, lo)
		if err != nil {
			return "", err
		}
		if f {
			size = half
		} else {
			lo, size = lo+half, size-half
		}
	}
	if f, err := fails(1, lo); err != nil || !f {
		return "", err
	}
	var cols []string
	for _, k := range j.table.Key {
		cols = append(cols, pgx.Identifier{k}.Sanitize()+"::text")
	}
	rows, err := readOnly(ctx, pg, `SELECT `+strings.Join(cols, ", ")+` FROM `+from(1, lo), params...)
	if err != nil || len(rows) == 0 {
		return "", err
	}
	vals := make([]string, len(rows[0]))
	for i, v := range rows[0] {
		vals[i] = string(v)
	}
	return fmt.Sprintf("(%s)=(%s)", strings.Join(j.table.Key, ", "), strings.Join(vals, ", ")), nil
}

// fullScan evaluates the expression on every row (validate --full), in
// batches by key, each batch in a read-only transaction of its own so
// that no long transaction holds back vacuum.
func fullScan(ctx context.Context, pg *pgconn.PgConn, j *sampleJob) error {
	t := j.table
	var last [][]byte // the previous batch's last key, as text
	for {
		where := ""
		if last != nil {
			var vals []string
			for i, k := range t.Key {
				typ := "text"
				if c := t.Column(k); c != nil {
					typ = c.Type
				}
				vals = append(vals, fmt.Sprintf("CAST($%d::text AS %s)", i+1, typ))
			}
			where = fmt.Sprintf(" WHERE (%s) > (%s)", t.keyList(), strings.Join(vals, ", "))
		}
		from := func(limit, offset int) string {
			return fmt.Sprintf("(SELECT * FROM %s%s ORDER BY %s LIMIT %d OFFSET %d) AS %s",
				t.Name.Quoted(), where, t.keyList(), limit, offset, pgx.Identifier{t.Name.Name}.Sanitize())
		}
		var cols []string
		for _, k := range t.Key {
			cols = append(cols, "max_key."+pgx.Identifier{k}.Sanitize()+"::text")
		}
		// The batch's value aggregate, and its last key.
		sql := `SELECT (SELECT ` + j.aggregate() + ` FROM ` + from(fullBatch, 0) + `), ` + strings.Join(cols, ", ") +
			` FROM (SELECT * FROM ` + from(fullBatch, 0) + ` ORDER BY ` + t.keyList() + ` DESC LIMIT 1) AS max_key`
		rows, err := readOnly(ctx, pg, sql, last...)
		var pe *pgconn.PgError
		switch {
		case errors.As(err, &pe) && !isTimeout(err):
			key, ferr := offendingRow(ctx, pg, j, from, fullBatch, last...)
			if ferr != nil {
				return wrapf(ferr, "validate --full: find a row of %s where %q fails", t.Name, oneLine(j.expr, 80))
			}
			if key != "" {
				j.fail(key, err)
			}
			return nil
		case err != nil:
			return fmt.Errorf("validate --full: %s: %w", t.Name, err)
		}
		if len(rows) == 0 {
			return nil // past the last row
		}
		if j.check {
			if n, _ := strconv.ParseInt(string(rows[0][0]), 10, 64); n > 0 {
				j.warning = &Problem{Field: j.field,
					Message: fmt.Sprintf("rows of %s do not satisfy %q: the validate phase will fail until they are fixed", t.Name, oneLine(j.expr, 80)),
					Hint:    "fix those rows first, or narrow the check"}
			}
		}
		last = rows[0][1:]
	}
}

package planner

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/internal/pgq"
	"github.com/pgplanner/planner/internal/sqllex"
)

// resolveExpressions records in t.Expressions the volatility of each SQL
// expression of change k, as the live catalog has it (see resolveAll).
func resolveExpressions(ctx context.Context, db pgq.Beginner, t *Table, k Kind) error {
	return resolveAll(ctx, db, []resolveItem{{Table: t, Change: k}})
}

// resolveItem is one change's expressions to resolve against its table.
type resolveItem struct {
	Table  *Table
	Change Kind
}

// resolveAll records, for every item, in its Table.Expressions the
// volatility of each SQL expression of its change. An expression is
// immutable when PostgreSQL accepts it in an index expression on a
// temporary copy of the table's columns (its own check, with operators and
// casts resolved by type), and names no function with a VOLATILE overload.
// Otherwise it is the most volatile of the functions and operators it
// names, over all their overloads in pg_proc (and STABLE for
// current_timestamp and the like), and at least stable. Everything runs in
// one transaction that is rolled back, with what repeats asked once: one
// scratch table per table, each function or operator name looked up once,
// and expressions that differ only in integer constants checked once.
func resolveAll(ctx context.Context, db pgq.Beginner, items []resolveItem) error {
	var todo []resolveItem
	for _, it := range items {
		if _, ok := it.Change.(expressioner); ok && it.Table != nil {
			todo = append(todo, it)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return wrapf(err, "resolving the volatility of expressions")
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', '10s', true), set_config('lock_timeout', '1s', true)`); err != nil {
		return wrapf(err, "resolving the volatility of expressions")
	}
	r := &resolver{tx: tx, scratches: map[TableName][]*scratchTable{}, indexable: map[string]bool{}, names: map[string]nameFacts{}}
	for _, it := range todo {
		if err := r.resolve(ctx, it.Table, it.Change); err != nil {
			return err
		}
	}
	return nil
}

// resolver is one resolveAll's transaction and what it found so far.
type resolver struct {
	tx pgx.Tx
	// scratches: a table's scratch copies (name "" when it could not be
	// made: no TEMP privilege).
	scratches map[TableName][]*scratchTable
	made      int
	indexable map[string]bool      // scratch + normalized body → accepted
	names     map[string]nameFacts // "f:schema.name" or "o:name" → facts
}

type nameFacts struct {
	found bool
	vol   string // i, s or v
	safe  bool
}

func (r *resolver) resolve(ctx context.Context, t *Table, k Kind) error {
	ex := k.(expressioner)
	var casts, adds map[string]string
	if c, ok := k.(castTargeter); ok {
		casts = c.castTargets(t)
	}
	if a, ok := k.(columnAdder); ok {
		adds = a.addedColumns(t)
	}
	scratch, err := r.scratch(ctx, t, adds)
	if err != nil {
		return err
	}
	// Merged, not replaced: changes may share a table snapshot.
	if t.Expressions == nil {
		t.Expressions = map[string]ExprFacts{}
	}
	facts := t.Expressions
	for _, e := range ex.Expressions() {
		if strings.TrimSpace(e.SQL) == "" {
			continue
		}
		x, err := sqllex.Analyze(e.SQL)
		if err != nil {
			continue // refused by Check
		}
		f, err := r.namedVolatility(ctx, x)
		if err != nil {
			return err
		}
		body := "(" + e.SQL + "\n)"
		if typ := casts[e.Field]; typ != "" {
			body = "CAST(" + body + " AS " + typ + ")"
		}
		immutable := false
		if scratch != "" {
			if immutable, err = r.isIndexable(ctx, scratch, body); err != nil {
				return err
			}
		}
		// A function named VOLATILE keeps the expression volatile even
		// when PostgreSQL inlines its body into something immutable.
		switch {
		case f.Volatility == Volatile:
		case immutable:
			f.Volatility = Immutable
		case f.Volatility == Immutable:
			f.Volatility = Stable // a cast or an operator PostgreSQL resolved to a stable function
		}
		f.ParallelSafe = f.ParallelSafe && immutable && len(x.Subqueries) == 0
		facts[e.SQL] = f
	}
	return nil
}

// scratch returns a temporary table with t's columns and the added ones.
// A table gets one, and the columns changes add are added to it as they
// come (a column added twice with two types gets a scratch table of its
// own), so expressions on one table are checked against one scratch.
func (r *resolver) scratch(ctx context.Context, t *Table, adds map[string]string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	cols := make([]string, 0, len(adds))
	for c := range adds {
		if t.Column(c) == nil {
			cols = append(cols, c)
		}
	}
	sort.Strings(cols)
	for _, sc := range r.scratches[t.Name.Key()] {
		if sc.fits(adds, cols) {
			if sc.name != "" {
				for _, c := range cols {
					if _, ok := sc.cols[c]; !ok {
						sc.cols[c] = adds[c]
						savepoint(ctx, r.tx, `ALTER TABLE pg_temp.`+sc.name+` ADD COLUMN `+pgx.Identifier{c}.Sanitize()+` `+adds[c])
					}
				}
			}
			return sc.name, nil
		}
	}
	r.made++
	sc := &scratchTable{name: fmt.Sprintf("planner_volatility_%d", r.made), cols: map[string]string{}}
	if !savepoint(ctx, r.tx, `CREATE TEMP TABLE `+sc.name+` (LIKE `+t.Name.Quoted()+`) ON COMMIT DROP`) {
		sc.name = "" // no TEMP privilege: nothing is found immutable
	}
	for _, c := range cols {
		sc.cols[c] = adds[c]
		if sc.name != "" {
			savepoint(ctx, r.tx, `ALTER TABLE pg_temp.`+sc.name+` ADD COLUMN `+pgx.Identifier{c}.Sanitize()+` `+adds[c])
		}
	}
	r.scratches[t.Name.Key()] = append(r.scratches[t.Name.Key()], sc)
	return sc.name, nil
}

// scratchTable is a table's scratch copy and the columns added to it.
type scratchTable struct {
	name string
	cols map[string]string // added column -> type
}

// fits: no column the change adds is there with another type.
func (sc *scratchTable) fits(adds map[string]string, cols []string) bool {
	for _, c := range cols {
		if typ, ok := sc.cols[c]; ok && typ != adds[c] {
			return false
		}
	}
	return true
}

// isIndexable reports whether PostgreSQL accepts body in an index
// expression, which it does only for immutable expressions. IS NULL makes
// the indexed value boolean, so the body's type needs no operator class.
// Integer constants do not change the answer (they resolve to the same
// types), so bodies that differ only in them are asked once.
func (r *resolver) isIndexable(ctx context.Context, scratch, body string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	key := scratch + "\x00" + normalizeIntegers(body)
	if ok, seen := r.indexable[key]; seen {
		return ok, nil
	}
	ok := savepoint(ctx, r.tx, `CREATE INDEX ON pg_temp.`+scratch+` ((`+body+` IS NULL))`)
	r.indexable[key] = ok
	return ok, nil
}

// normalizeIntegers writes body with every integer constant that fits in
// an int4 as 0, and without comments, for memoizing.
func normalizeIntegers(body string) string {
	tokens, err := sqllex.Lex(body)
	if err != nil {
		return body
	}
	var b strings.Builder
	for _, t := range tokens {
		switch {
		case t.Kind == sqllex.Comment:
			b.WriteString(" ")
		case t.Kind == sqllex.Number && len(t.Text) <= 9 && strings.Trim(t.Text, "0123456789") == "":
			b.WriteString("0")
		default:
			b.WriteString(t.Text)
		}
	}
	return b.String()
}

// savepoint runs sql in a savepoint, rolled back when it fails.
func savepoint(ctx context.Context, tx pgx.Tx, sql string) bool {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false
	}
	if _, err := sp.Exec(ctx, sql); err != nil {
		_ = sp.Rollback(ctx)
		return false
	}
	return sp.Commit(ctx) == nil
}

// namedVolatility is the most volatile overload of every function and
// operator x names; unknown names count for nothing (PostgreSQL refuses
// them when the expression runs, and validate says so).
func (r *resolver) namedVolatility(ctx context.Context, x *sqllex.Expr) (ExprFacts, error) {
	f := ExprFacts{Volatility: Immutable, ParallelSafe: true}
	rank := map[string]int{Immutable: 0, Stable: 1, Volatile: 2}
	note := func(name, vol string, safe bool) {
		if vol == "" {
			return
		}
		v := map[string]string{"i": Immutable, "s": Stable, "v": Volatile}[vol]
		if rank[v] > rank[f.Volatility] {
			f.Volatility = v
		}
		if v == Volatile && !slices.Contains(f.Volatile, name) {
			f.Volatile = append(f.Volatile, name)
		}
		f.ParallelSafe = f.ParallelSafe && safe
	}
	for _, c := range x.Calls {
		schema := ""
		if len(c.Parts) > 1 {
			schema = c.Parts[len(c.Parts)-2]
		}
		nf, err := r.lookup(ctx, "f:"+schema+"."+c.Name(), `SELECT max(p.provolatile::text), bool_and(p.proparallel = 's')
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.proname = $1 AND ($2 = '' OR n.nspname = $2)`, c.Name(), schema)
		if err != nil {
			return f, err
		}
		if nf.found {
			note(c.String()+"()", nf.vol, nf.safe)
		}
	}
	for _, o := range x.Operators {
		nf, err := r.lookup(ctx, "o:"+o.Name(), `SELECT max(p.provolatile::text), bool_and(p.proparallel = 's')
FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
WHERE o.oprname = $1`, o.Name())
		if err != nil {
			return f, err
		}
		if nf.found {
			note("operator "+o.Name(), nf.vol, nf.safe)
		}
	}
	for _, v := range x.ValueFunctions {
		note(v.String(), "s", true)
	}
	sort.Strings(f.Volatile)
	return f, nil
}

// lookup asks the catalog once per name in the transaction.
func (r *resolver) lookup(ctx context.Context, key, sql string, args ...any) (nameFacts, error) {
	if nf, ok := r.names[key]; ok {
		return nf, nil
	}
	var vol *string
	var safe *bool
	if err := r.tx.QueryRow(ctx, sql, args...).Scan(&vol, &safe); err != nil {
		return nameFacts{}, wrapf(err, "looking up the volatility of %v", args[0])
	}
	nf := nameFacts{found: vol != nil, safe: safe != nil && *safe}
	if vol != nil {
		nf.vol = *vol
	}
	r.names[key] = nf
	return nf, nil
}

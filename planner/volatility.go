package planner

import (
	"context"
	"fmt"
	"maps"
	"slices"
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
// temporary table with the columns it names (its own check, with operators and
// casts resolved by type), and names no function with a VOLATILE overload.
// Otherwise it is the most volatile of the functions and operators it
// names, over all their overloads in pg_proc (and STABLE for
// current_timestamp and the like), and at least stable. Everything runs in
// one transaction that is rolled back, with what repeats asked once: one
// scratch table per list of columns and types, each function or operator
// name looked up once, and an expression over the same column types, or
// differing only in integer constants, checked once whatever its table.
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
	r := &resolver{tx: tx, scratches: map[string]string{}, indexable: map[string]bool{}, names: map[string]nameFacts{}}
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
	// scratches: the scratch table of each column list (name "" when it
	// could not be made: no TEMP privilege).
	scratches map[string]string
	indexable map[string]bool      // column list + normalized body → accepted
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
		immutable, err := r.isIndexable(ctx, columnsOf(x, t, adds), body)
		if err != nil {
			return err
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

// columnsOf is the columns x names, with the types they have in t or,
// for those the change adds, in adds: all an expression's immutability
// depends on besides its text. A name that is not a column counts for
// nothing; a reference qualified by the table's name fails on any scratch
// table (it is not named so), as it would before.
func columnsOf(x *sqllex.Expr, t *Table, adds map[string]string) map[string]string {
	cols := map[string]string{}
	for _, tok := range x.Tokens {
		if tok.Kind != sqllex.Ident && tok.Kind != sqllex.QuotedIdent {
			continue
		}
		name := tok.Name()
		if c := t.Column(name); c != nil {
			cols[name] = c.Type
		} else if typ := adds[name]; typ != "" {
			cols[name] = typ
		}
	}
	return cols
}

// isIndexable reports whether PostgreSQL accepts body, over columns of
// the given types, in an index expression, which it does only for
// immutable expressions. IS NULL makes the indexed value boolean, so the
// body's type needs no operator class. The answer depends on the text and
// the types only, so it is asked once per both across all tables; integer
// constants do not change it either (they resolve to the same types). The
// scratch table is made for the columns on the first question about them.
func (r *resolver) isIndexable(ctx context.Context, cols map[string]string, body string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	names := slices.Sorted(maps.Keys(cols))
	defs := make([]string, len(names))
	for i, n := range names {
		defs[i] = pgx.Identifier{n}.Sanitize() + " " + cols[n]
	}
	columns := strings.Join(defs, ", ")
	key := columns + "\x00" + normalizeIntegers(body)
	if ok, seen := r.indexable[key]; seen {
		return ok, nil
	}
	scratch, made := r.scratches[columns]
	if !made {
		scratch = fmt.Sprintf("planner_volatility_%d", len(r.scratches)+1)
		if !savepoint(ctx, r.tx, `CREATE TEMP TABLE `+scratch+` (`+columns+`) ON COMMIT DROP`) {
			scratch = "" // no TEMP privilege, or a type that does not exist
		}
		r.scratches[columns] = scratch
	}
	ok := scratch != "" && savepoint(ctx, r.tx, `CREATE INDEX ON pg_temp.`+scratch+` ((`+body+` IS NULL))`)
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
	slices.Sort(f.Volatile)
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

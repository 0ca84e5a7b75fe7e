package planner

import (
	"context"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/internal/sqllex"
)

// Beginner starts transactions (a *pgxpool.Pool, a *pgx.Conn, a pgx.Tx).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// castTargeter is implemented by kinds whose expressions become function
// bodies cast to a type (change_column_type: up to the new type, down to
// the old one), so the cast counts in the volatility.
type castTargeter interface {
	castTargets(t *Table) map[string]string // field -> type
}

// columnAdder is implemented by kinds whose expressions name columns the
// change adds.
type columnAdder interface {
	addedColumns() map[string]string // column -> type
}

// ResolveExpressions records in t.Expressions the volatility of each SQL
// expression of change k, as the live catalog has it. An expression is
// immutable when PostgreSQL accepts it in an index expression on a
// temporary copy of the table's columns (its own check, with operators and
// casts resolved by type), and names no function with a VOLATILE overload.
// Otherwise it is the most volatile of the
// functions and operators it names, over all their overloads in pg_proc
// (and STABLE for current_timestamp and the like), and at least stable.
// Everything runs in a transaction that is rolled back.
func ResolveExpressions(ctx context.Context, db Beginner, t *Table, k Kind) error {
	ex, ok := k.(expressioner)
	if t == nil || !ok {
		return nil
	}
	var casts, adds map[string]string
	if c, ok := k.(castTargeter); ok {
		casts = c.castTargets(t)
	}
	if a, ok := k.(columnAdder); ok {
		adds = a.addedColumns()
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', '10s', true), set_config('lock_timeout', '1s', true)`); err != nil {
		return err
	}
	scratch := scratchCopy(ctx, tx, t, adds)
	facts := map[string]ExprFacts{}
	for _, e := range ex.Expressions() {
		if strings.TrimSpace(e.SQL) == "" {
			continue
		}
		x, err := sqllex.Analyze(e.SQL)
		if err != nil {
			continue // refused by Check
		}
		f, err := namedVolatility(ctx, tx, x)
		if err != nil {
			return err
		}
		body := "(" + e.SQL + "\n)"
		if typ := casts[e.Field]; typ != "" {
			body = "CAST(" + body + " AS " + typ + ")"
		}
		immutable := false
		if scratch {
			if immutable, err = indexable(ctx, tx, body); err != nil {
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
	t.Expressions = facts
	return nil
}

// scratchCopy creates pg_temp.planner_volatility with t's columns and the
// added ones; false when it cannot (no TEMP privilege): then no
// expression is found immutable.
func scratchCopy(ctx context.Context, tx pgx.Tx, t *Table, adds map[string]string) bool {
	sql := `CREATE TEMP TABLE planner_volatility (LIKE ` + t.Name.Quoted() + `) ON COMMIT DROP`
	if !savepoint(ctx, tx, sql) {
		return false
	}
	cols := make([]string, 0, len(adds))
	for c := range adds {
		if t.Column(c) == nil {
			cols = append(cols, c)
		}
	}
	sort.Strings(cols)
	for _, c := range cols {
		savepoint(ctx, tx, `ALTER TABLE pg_temp.planner_volatility ADD COLUMN `+pgx.Identifier{c}.Sanitize()+` `+adds[c])
	}
	return true
}

// indexable reports whether PostgreSQL accepts body in an index
// expression, which it does only for immutable expressions. IS NULL makes
// the indexed value boolean, so the body's type needs no operator class.
func indexable(ctx context.Context, tx pgx.Tx, body string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return savepoint(ctx, tx, `CREATE INDEX ON pg_temp.planner_volatility ((`+body+` IS NULL))`), nil
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
func namedVolatility(ctx context.Context, tx pgx.Tx, x *sqllex.Expr) (ExprFacts, error) {
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
		var vol *string
		var safe *bool
		err := tx.QueryRow(ctx, `SELECT max(p.provolatile::text), bool_and(p.proparallel = 's')
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.proname = $1 AND ($2 = '' OR n.nspname = $2)`, c.Name(), schema).Scan(&vol, &safe)
		if err != nil {
			return f, err
		}
		if vol != nil {
			note(c.String()+"()", *vol, safe != nil && *safe)
		}
	}
	for _, o := range x.Operators {
		var vol *string
		var safe *bool
		err := tx.QueryRow(ctx, `SELECT max(p.provolatile::text), bool_and(p.proparallel = 's')
FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
WHERE o.oprname = $1`, o.Name()).Scan(&vol, &safe)
		if err != nil {
			return f, err
		}
		if vol != nil {
			note("operator "+o.Name(), *vol, safe != nil && *safe)
		}
	}
	for _, v := range x.ValueFunctions {
		note(v.String(), "s", true)
	}
	sort.Strings(f.Volatile)
	return f, nil
}

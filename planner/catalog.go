package planner

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgplanner/planner/internal/pgq"
)

// Querier is what LoadTable and the state queries need: a *pgx.Conn,
// *pgxpool.Pool or pgx.Tx.
type Querier = pgq.Querier

// LoadTable reads what the catalogs say about a table: columns, key,
// indexes, constraints, foreign keys on other tables referencing it and the
// planner's row estimate. A missing table is an ErrInput.
//
// Indexes lists valid indexes only: an INVALID one (a failed CREATE INDEX
// CONCURRENTLY) is not part of the schema, and rebuilding it is the job of
// the change that made it. Index.Columns lists the key columns in order, then the columns an index
// uses only in expressions, its predicate or INCLUDE. For Referencing
// constraints, Columns are the referenced columns of this table (what a
// change to this table must care about); Table is the referencing table.
func LoadTable(ctx context.Context, q Querier, name TableName) (*Table, error) {
	tables, err := loadTables(ctx, q, []TableName{name})
	if err != nil {
		return nil, fmt.Errorf("load table %s: %w", name, err)
	}
	t := tables[name.Key()]
	if t == nil {
		return nil, fmt.Errorf("table %s does not exist: %w", name, ErrInput)
	}
	return t, nil
}

const constraintColumns = `ARRAY(SELECT a.attname FROM unnest(%s) WITH ORDINALITY AS u(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = %s AND a.attnum = u.attnum ORDER BY u.ord)`

// checkTypes asks the server whether the types a change names exist (and,
// for add_index, whether its access method does), with the messages
// validate and plan give. Run it outside a transaction block or in one
// that may absorb errors: it only reads.
func checkTypes(ctx context.Context, q Querier, k Kind) ([]Problem, error) {
	types := map[string]typeAnswer{}
	if tn, ok := k.(TypeNamer); ok {
		for _, name := range tn.TypeNames() {
			var a typeAnswer
			err := q.QueryRow(ctx, `SELECT pg_catalog.to_regtype($1) IS NOT NULL`, name).Scan(&a.known)
			var pgErr *pgconn.PgError
			if isSyntaxError(err) && errors.As(err, &pgErr) {
				a.err = pgErr.Message
			} else if err != nil {
				return nil, fmt.Errorf("check type %q: %w", name, err)
			}
			types[name] = a
		}
	}
	methods := map[string]bool{}
	if am, ok := k.(accessMethodNamer); ok {
		if _, m := am.accessMethod(); m != "" {
			var known bool
			if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_am WHERE amname = $1 AND amtype = 'i')`, strings.ToLower(m)).Scan(&known); err != nil {
				return nil, fmt.Errorf("check index method: %w", err)
			}
			methods[strings.ToLower(m)] = known
		}
	}
	return nameProblems(k, func(n string) typeAnswer { return types[n] }, func(m string) bool { return methods[m] }), nil
}

// isSyntaxError: to_regtype raises on a malformed name on some versions
// instead of returning NULL; that answers "unknown" too.
func isSyntaxError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42601" || pgErr.Code == "22P02" || pgErr.Code == "42704")
}

// ServerVersion is the server's major version (e.g. 15, 18).
func ServerVersion(ctx context.Context, q Querier) (int, error) {
	var num int
	if err := q.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&num); err != nil {
		return 0, fmt.Errorf("reading the server version: %w", err)
	}
	return num / 10000, nil
}

package planner

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what LoadTable needs: a *pgx.Conn, *pgxpool.Pool or pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

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
	t := tables[name.String()]
	if t == nil {
		return nil, fmt.Errorf("table %s does not exist: %w", name, ErrInput)
	}
	return t, nil
}

const constraintColumns = `ARRAY(SELECT a.attname FROM unnest(%s) WITH ORDINALITY AS u(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = %s AND a.attnum = u.attnum ORDER BY u.ord)`

// TypeNamer is implemented by kinds whose spec names column types; the
// live check resolves each one with to_regtype.
type TypeNamer interface {
	TypeNames() map[string]string // yaml field → type
}

// CheckTypes asks the server whether the types a change names exist (and,
// for add_index, whether its access method does). Run it outside a
// transaction block or in one that may absorb errors: it only reads.
func CheckTypes(ctx context.Context, q Querier, k Kind) ([]Problem, error) {
	var ps []Problem
	if tn, ok := k.(TypeNamer); ok {
		names := tn.TypeNames()
		fields := make([]string, 0, len(names))
		for f := range names {
			fields = append(fields, f)
		}
		sortStrings(fields)
		for _, f := range fields {
			var known bool
			err := q.QueryRow(ctx, `SELECT pg_catalog.to_regtype($1) IS NOT NULL`, names[f]).Scan(&known)
			if err != nil && !isSyntaxError(err) {
				return nil, fmt.Errorf("check type %q: %w", names[f], err)
			}
			if !known {
				ps = append(ps, Problem{Field: f, Message: fmt.Sprintf("type %q does not exist on the server", names[f]),
					Hint: "create the type (or extension) first, or fix the name, e.g. text, bigint, varchar(80), timestamptz"})
			}
		}
	}
	if ix, ok := k.(*AddIndex); ok && ix.Using != "" {
		var known bool
		if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_am WHERE amname = $1 AND amtype = 'i')`, ix.method()).Scan(&known); err != nil {
			return nil, fmt.Errorf("check index method: %w", err)
		}
		if !known {
			ps = append(ps, Problem{Field: "using", Message: fmt.Sprintf("index access method %q does not exist on the server", ix.Using),
				Hint: "use btree, hash, gist, spgist, gin or brin, or create the extension that provides it"})
		}
	}
	return ps, nil
}

// isSyntaxError: to_regtype raises on a malformed name on some versions
// instead of returning NULL; that answers "unknown" too.
func isSyntaxError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42601" || pgErr.Code == "22P02" || pgErr.Code == "42704")
}

func sortStrings(s []string) { sort.Strings(s) }

// ServerVersion is the server's major version (e.g. 15, 18).
func ServerVersion(ctx context.Context, q Querier) (int, error) {
	var num int
	if err := q.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&num); err != nil {
		return 0, fmt.Errorf("server version: %w", err)
	}
	return num / 10000, nil
}

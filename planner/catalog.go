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
	var oid uint32
	var reltuples float64
	var relkind string
	err := q.QueryRow(ctx, `
SELECT c.oid, c.reltuples, c.relkind::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
		name.SchemaOrPublic(), name.Name).Scan(&oid, &reltuples, &relkind)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("table %s does not exist: %w", name, ErrInput)
	}
	if err != nil {
		return nil, fmt.Errorf("load table %s: %w", name, err)
	}
	t := &Table{Name: TableName{Schema: name.SchemaOrPublic(), Name: name.Name}, Key: []string{},
		Columns: []Column{}, Indexes: []Index{}, Checks: []Constraint{}, Referencing: []Constraint{}}
	if reltuples > 0 {
		t.RowEstimate = int64(reltuples)
	}
	steps := []func(context.Context, Querier, uint32, *Table) error{loadColumns, loadIndexes, loadKey, loadConstraints, loadReferencing, loadPartitionedReferrers}
	if relkind == "p" {
		steps = append(steps, loadPartitioning)
	}
	for _, step := range steps {
		if err := step(ctx, q, oid, t); err != nil {
			return nil, fmt.Errorf("load table %s: %w", name, err)
		}
	}
	return t, nil
}

func loadColumns(ctx context.Context, q Querier, oid uint32, t *Table) error {
	// On PostgreSQL 18 a NOT NULL constraint added NOT VALID already sets
	// attnotnull; a column counts as NOT NULL only once it is validated.
	rows, err := q.Query(ctx, `
SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
       a.attnotnull AND NOT EXISTS (
         SELECT 1 FROM pg_catalog.pg_constraint k
         WHERE k.conrelid = a.attrelid AND k.contype = 'n' AND NOT k.convalidated AND k.conkey = ARRAY[a.attnum]),
       CASE WHEN a.attgenerated = '' THEN coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '') ELSE '' END,
       a.attidentity <> '' OR a.attgenerated <> ''
FROM pg_catalog.pg_attribute a
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, oid)
	if err != nil {
		return err
	}
	t.Columns, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Column, error) {
		var c Column
		return c, r.Scan(&c.Name, &c.Type, &c.NotNull, &c.Default, &c.Generated)
	})
	return err
}

func loadIndexes(ctx context.Context, q Querier, oid uint32, t *Table) error {
	rows, err := q.Query(ctx, `
SELECT ic.relname, pg_catalog.pg_get_indexdef(i.indexrelid), i.indisunique, i.indisprimary,
       coalesce((SELECT k.conname FROM pg_catalog.pg_constraint k
                 WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x')), ''),
       ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE k.ord <= i.indnkeyatts ORDER BY k.ord),
       ARRAY(SELECT a.attname FROM pg_catalog.pg_depend d
             JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
             WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = i.indexrelid
               AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = i.indrelid AND d.refobjsubid > 0
             ORDER BY a.attnum)
FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = $1 AND i.indisvalid
ORDER BY ic.relname`, oid)
	if err != nil {
		return err
	}
	t.Indexes, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Index, error) {
		var ix Index
		var refs []string
		if err := r.Scan(&ix.Name, &ix.Definition, &ix.Unique, &ix.Primary, &ix.Constraint, &ix.Columns, &refs); err != nil {
			return ix, err
		}
		for _, c := range refs {
			if !contains(ix.Columns, c) {
				ix.Columns = append(ix.Columns, c)
			}
		}
		return ix, nil
	})
	return err
}

// loadKey picks the backfill's key: the primary key, else the first (by
// name) valid unique index on plain NOT NULL columns without a predicate.
func loadKey(ctx context.Context, q Querier, oid uint32, t *Table) error {
	rows, err := q.Query(ctx, `
SELECT ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE k.ord <= i.indnkeyatts ORDER BY k.ord)
FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
  AND i.indimmediate
  AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  WHERE k.ord <= i.indnkeyatts AND NOT a.attnotnull)
ORDER BY i.indisprimary DESC, ic.relname
LIMIT 1`, oid)
	if err != nil {
		return err
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[[]string])
	if err != nil {
		return err
	}
	if len(keys) == 1 {
		t.Key = keys[0]
	}
	return nil
}

const constraintColumns = `ARRAY(SELECT a.attname FROM unnest(%s) WITH ORDINALITY AS u(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = %s AND a.attnum = u.attnum ORDER BY u.ord)`

func loadConstraints(ctx context.Context, q Querier, oid uint32, t *Table) error {
	rows, err := q.Query(ctx, fmt.Sprintf(`
SELECT k.conname, n.nspname, c.relname, k.contype::text, pg_catalog.pg_get_constraintdef(k.oid), %s
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE k.conrelid = $1 AND k.contype IN ('c', 'u', 'f')
ORDER BY k.conname`, fmt.Sprintf(constraintColumns, "k.conkey", "k.conrelid")), oid)
	if err != nil {
		return err
	}
	t.Checks, err = pgx.CollectRows(rows, scanConstraint)
	return err
}

func loadReferencing(ctx context.Context, q Querier, oid uint32, t *Table) error {
	rows, err := q.Query(ctx, fmt.Sprintf(`
SELECT k.conname, n.nspname, c.relname, k.contype::text, pg_catalog.pg_get_constraintdef(k.oid), %s
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE k.confrelid = $1 AND k.conrelid <> $1 AND k.contype = 'f' AND k.conparentid = 0
ORDER BY n.nspname, c.relname, k.conname`, fmt.Sprintf(constraintColumns, "k.confkey", "k.confrelid")), oid)
	if err != nil {
		return err
	}
	t.Referencing, err = pgx.CollectRows(rows, scanConstraint)
	return err
}

func scanConstraint(r pgx.CollectableRow) (Constraint, error) {
	var c Constraint
	return c, r.Scan(&c.Name, &c.Table.Schema, &c.Table.Name, &c.Type, &c.Definition, &c.Columns)
}

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

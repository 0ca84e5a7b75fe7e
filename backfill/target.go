package backfill

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/phases"
)

// keySpec is the key the backfill paginates on: columns in index order and
// their types (format_type), used to cast cursor values stored as text.
type keySpec struct {
	cols  []string
	types []string
}

// target is a job's table, column and expression, with the SQL it needs.
type target struct {
	name       string // quoted, schema-qualified table
	column     string // quoted column
	columnType string
	value      string // the expression, cast to the column's type
	key        keySpec
	undo       *undoLog // nil: the rows changed are not recorded
}

// undoLog is where a backfill with Undo records the rows it changes.
type undoLog struct {
	table    string // quoted
	changeID string
}

// changed is the UPDATE's RETURNING list and, when the rows are recorded,
// a CTE (named after done, the UPDATE's) that records them; the change id
// becomes the next parameter.
func (t *target) changed(args *[]any) (returning, record string) {
	if t.undo == nil {
		return "1", ""
	}
	*args = append(*args, t.undo.changeID)
	return fmt.Sprintf("ARRAY[%s] AS undo_key, %s::text AS undo_value", t.keyList("::text"), t.column),
		fmt.Sprintf(", recorded AS (INSERT INTO %s (change_id, key, value) SELECT $%d::text, undo_key, undo_value FROM done ON CONFLICT DO NOTHING)",
			t.undo.table, len(*args))
}

func newTarget(schema, table, column, columnType, expr string, key keySpec) *target {
	return &target{
		name:       pgx.Identifier{schema, table}.Sanitize(),
		column:     pgx.Identifier{column}.Sanitize(),
		columnType: columnType,
		// Cast once, the same way in SET and in IS DISTINCT FROM, so that a
		// re-run finds rows already done equal and leaves them alone.
		value: "CAST((" + expr + ") AS " + columnType + ")",
		key:   key,
	}
}

// describe resolves the table, the column's type and the key from the
// catalogs. An empty key means the primary key, else the narrowest valid
// unique index without predicate on NOT NULL columns.
func describe(ctx context.Context, q Querier, work phases.Backfill, key []string) (*target, error) {
	name := pgx.Identifier{work.Schema, work.Table}.Sanitize()
	var oid *uint32
	if err := q.QueryRow(ctx, `SELECT to_regclass($1)::oid`, name).Scan(&oid); err != nil {
		return nil, err
	}
	if oid == nil {
		return nil, fmt.Errorf("table %s does not exist", name)
	}
	columnType, err := columnTypes(ctx, q, *oid, []string{work.Column})
	if err != nil {
		return nil, err
	}
	if len(key) == 0 {
		if key, err = findKey(ctx, q, *oid); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	} else if err := checkKey(ctx, q, *oid, key); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	types, err := columnTypes(ctx, q, *oid, key)
	if err != nil {
		return nil, err
	}
	return newTarget(work.Schema, work.Table, work.Column, columnType[0], work.Expr, keySpec{cols: key, types: types}), nil
}

func columnTypes(ctx context.Context, q Querier, oid uint32, cols []string) ([]string, error) {
	out := make([]string, len(cols))
	for i, c := range cols {
		err := q.QueryRow(ctx, `
SELECT format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute
WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped`, oid, c).Scan(&out[i])
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("column %s does not exist", pgx.Identifier{c}.Sanitize())
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func findKey(ctx context.Context, q Querier, oid uint32) ([]string, error) {
	var key []string
	err := q.QueryRow(ctx, `
SELECT array_agg(a.attname ORDER BY k.ord)
FROM pg_catalog.pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
  AND k.ord <= i.indnkeyatts
GROUP BY i.indexrelid, i.indisprimary
HAVING bool_and(a.attnotnull) AND bool_and(k.attnum > 0)
ORDER BY i.indisprimary DESC, count(*), i.indexrelid
LIMIT 1`, oid).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoKey
	}
	return key, err
}

// checkKey makes sure a key given by the caller (the one the planner saw
// when the change was registered) still identifies rows: its columns are
// NOT NULL and a valid unique index without predicate covers exactly them.
// Paging on anything less could skip rows.
func checkKey(ctx context.Context, q Querier, oid uint32, key []string) error {
	var ok bool
	err := q.QueryRow(ctx, `
SELECT NOT EXISTS (SELECT 1 FROM unnest($2::text[]) c LEFT JOIN pg_catalog.pg_attribute a
                   ON a.attrelid = $1 AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped
                   WHERE a.attnotnull IS NOT TRUE)
   AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i
               WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
                 AND i.indnkeyatts = cardinality($2::text[])
                 AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text)
                      FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                      WHERE k.ord <= i.indnkeyatts)
                     = (SELECT array_agg(c ORDER BY c) FROM unnest($2::text[]) c))`, oid, key).Scan(&ok)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("key (%s) is no longer NOT NULL and unique (an index or constraint was dropped since the change was registered): %w",
			strings.Join(key, ", "), ErrNoKey)
	}
	return nil
}

// tuple is the key as a row expression: (a, b).
func (t *target) tuple() string {
	return "(" + t.keyList("") + ")"
}

func (t *target) keyList(suffix string) string { return t.keyListOf("", suffix) }

// keyListOf lists the key columns, each qualified by prefix (e.g.
// "bound.") and followed by suffix (e.g. "::text").
func (t *target) keyListOf(prefix, suffix string) string {
	parts := make([]string, len(t.key.cols))
	for i, c := range t.key.cols {
		parts[i] = prefix + pgx.Identifier{c}.Sanitize() + suffix
	}
	return strings.Join(parts, ", ")
}

// params is a row of parameters $n::text::<type>: cursor values are stored
// as text and cast back to the key's types, so that comparisons use the
// key index.
func (t *target) params(first int) string {
	parts := make([]string, len(t.key.types))
	for i, typ := range t.key.types {
		parts[i] = "$" + strconv.Itoa(first+i) + "::text::" + typ
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// cond restricts the key to (lower, upper]; nil bounds are open.
func (t *target) cond(lower, upper []string) (string, []any) {
	return t.condFrom(1, lower, upper)
}

// condFrom is cond with parameters numbered from first.
func (t *target) condFrom(first int, lower, upper []string) (string, []any) {
	var where []string
	var args []any
	if lower != nil {
		where = append(where, t.tuple()+" > "+t.params(first+len(args)))
		for _, v := range lower {
			args = append(args, v)
		}
	}
	if upper != nil {
		where = append(where, t.tuple()+" <= "+t.params(first+len(args)))
		for _, v := range upper {
			args = append(args, v)
		}
	}
	if len(where) == 0 {
		return "true", nil
	}
	return strings.Join(where, " AND "), args
}

// orderBy names the key columns qualified: a bare name would sort by an
// output column of the same name, the key as text.
func (t *target) orderBy() string {
	order := make([]string, len(t.key.cols))
	for i, c := range t.key.cols {
		order[i] = t.name + "." + pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(order, ", ")
}

// verifySQL is one verification batch in one statement that reads each
// row once, in key order: the first size rows after lower (up to upper),
// how many of them differ, and the last one's key as text (NULL when there
// are none). Fewer than size rows: the range's rows after lower were all
// read (the open last range: up to the last key there is).
func (t *target) verifySQL(lower, upper []string, size int) (string, []any) {
	cond, args := t.cond(lower, upper)
	if lower == nil {
		// Without a lower bound the planner may scan the table whole.
		cond += " AND " + t.firstKeyCond()
	}
	desc := make([]string, len(t.key.cols))
	for i, c := range t.key.cols {
		desc[i] = "b." + pgx.Identifier{c}.Sanitize() + " DESC"
	}
	// The size is a literal: the plan is for that many rows, whatever a
	// generic plan would assume of a parameter.
	return fmt.Sprintf(`WITH b AS MATERIALIZED (
  SELECT %[1]s, %[2]s IS DISTINCT FROM %[3]s AS "planner differs" FROM %[4]s WHERE %[5]s ORDER BY %[6]s LIMIT %[7]d
)
SELECT (SELECT count(*) FROM b), (SELECT count(*) FROM b WHERE "planner differs"),
  (SELECT ARRAY[%[8]s] FROM b ORDER BY %[9]s LIMIT 1)`,
		t.keyList(""), t.column, t.value, t.name, cond, t.orderBy(), size,
		t.keyListOf("b.", "::text"), strings.Join(desc, ", ")), args
}

// firstKeyCond bounds the key from below by the table's first key: with
// only an upper bound known at execution time, the planner would take a
// batch's rows for a third of the table and scan it whole.
func (t *target) firstKeyCond() string {
	return fmt.Sprintf("%s >= (SELECT %s FROM %s ORDER BY %s LIMIT 1)", t.tuple(), t.keyList(""), t.name, t.orderBy())
}

// probeSQL finds the n-th key after lower (up to upper) as text: the end of
// a batch. OFFSET here skips index entries of one batch only.
func (t *target) probeSQL(lower, upper []string, n int) (string, []any) {
	cond, args := t.cond(lower, upper)
	args = append(args, n-1)
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT 1 OFFSET $%d",
		t.keyList("::text"), t.name, cond, t.orderBy(), len(args)), args
}

func (t *target) countSQL(lower, upper []string) (string, []any) {
	cond, args := t.cond(lower, upper)
	return fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", t.name, cond), args
}

// countUpToSQL counts the keys of (lower, upper], at most limit of them,
// walking the key index from lower.
func (t *target) countUpToSQL(lower, upper []string, limit int) (string, []any) {
	cond, args := t.cond(lower, upper)
	return fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM %s WHERE %s ORDER BY %s LIMIT %d) s",
		t.name, cond, t.orderBy(), limit), args
}

// afterSQL says whether key a comes after key b (both as text).
func (t *target) afterSQL(a, b []string) (string, []any) {
	args := make([]any, 0, len(a)+len(b))
	for _, v := range a {
		args = append(args, v)
	}
	for _, v := range b {
		args = append(args, v)
	}
	return "SELECT " + t.params(1) + " > " + t.params(1+len(a)), args
}

// updateSQL sets the column for the rows of (lower, upper] that differ,
// and returns how many it changed.
func (t *target) updateSQL(lower, upper []string) (string, []any) {
	cond, args := t.cond(lower, upper)
	returning, record := t.changed(&args)
	return fmt.Sprintf("WITH done AS (UPDATE %s SET %s = %s WHERE %s AND %s IS DISTINCT FROM %s RETURNING %s)%s\nSELECT count(*) FROM done",
		t.name, t.column, t.value, cond, t.column, t.value, returning, record), args
}

// diffSQL counts the rows of (lower, upper] that still differ.
func (t *target) diffSQL(lower, upper []string) (string, []any) {
	cond, args := t.cond(lower, upper)
	return fmt.Sprintf("SELECT count(*) FROM %s WHERE %s AND %s IS DISTINCT FROM %s",
		t.name, cond, t.column, t.value), args
}

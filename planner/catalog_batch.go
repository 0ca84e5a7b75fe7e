package planner

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// loadTables reads what LoadTable describes, for many tables in a fixed number
// of queries (one per aspect, whatever the number of tables), so that
// validating thousands of changes costs a handful of round trips. Tables
// that do not exist are absent from the map, which is keyed by
// TableName.Key().
func loadTables(ctx context.Context, q Querier, names []TableName) (map[TableName]*Table, error) {
	out := map[TableName]*Table{}
	if len(names) == 0 {
		return out, nil
	}
	var schemas, rels []string
	seen := map[TableName]bool{}
	for _, n := range names {
		if seen[n.Key()] {
			continue
		}
		seen[n.Key()] = true
		schemas, rels = append(schemas, n.SchemaOrPublic()), append(rels, n.Name)
	}
	rows, err := q.Query(ctx, `
SELECT c.oid, n.nspname, c.relname, c.reltuples, c.relkind = 'p'
FROM unnest($1::text[], $2::text[]) AS w(nspname, relname)
JOIN pg_catalog.pg_namespace n ON n.nspname = w.nspname
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.relname
WHERE c.relkind IN ('r', 'p')`, schemas, rels)
	if err != nil {
		return nil, fmt.Errorf("load tables: %w", err)
	}
	byOID := map[uint32]*Table{}
	var oids []uint32
	var oid uint32
	var schema, rel string
	var reltuples float64
	var partitioned bool
	partitionedOIDs := map[uint32]bool{}
	_, err = pgx.ForEachRow(rows, []any{&oid, &schema, &rel, &reltuples, &partitioned}, func() error {
		t := &Table{Name: TableName{Schema: schema, Name: rel}, Key: []string{},
			Columns: []Column{}, Indexes: []Index{}, Checks: []Constraint{}, Referencing: []Constraint{}}
		if reltuples > 0 {
			t.RowEstimate = int64(reltuples)
		}
		byOID[oid] = t
		oids = append(oids, oid)
		partitionedOIDs[oid] = partitioned
		out[t.Name.Key()] = t
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load tables: %w", err)
	}
	if len(oids) == 0 {
		return out, nil
	}
	steps := []func(context.Context, Querier, []uint32, map[uint32]*Table) error{
		batchColumns, batchIndexes, batchKeys, batchConstraints, batchReferencing,
	}
	for _, step := range steps {
		if err := step(ctx, q, oids, byOID); err != nil {
			return nil, fmt.Errorf("load tables: %w", err)
		}
	}
	// Rare cases, a query per table: partitioned tables, and tables that
	// other tables reference (are some of those partitioned?).
	for _, oid := range oids {
		t := byOID[oid]
		if partitionedOIDs[oid] {
			if err := loadPartitioning(ctx, q, oid, t); err != nil {
				return nil, fmt.Errorf("load table %s: %w", t.Name, err)
			}
		}
		if len(t.Referencing) > 0 {
			if err := loadPartitionedReferrers(ctx, q, oid, t); err != nil {
				return nil, fmt.Errorf("load table %s: %w", t.Name, err)
			}
		}
	}
	return out, nil
}

// Each query below reads one aspect of every table at once, the table's
// oid first, in a fixed order within a table.

func batchColumns(ctx context.Context, q Querier, oids []uint32, byOID map[uint32]*Table) error {
	rows, err := q.Query(ctx, `
SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
       a.attnotnull AND NOT EXISTS (
         SELECT 1 FROM pg_catalog.pg_constraint k
         WHERE k.conrelid = a.attrelid AND k.contype = 'n' AND NOT k.convalidated AND k.conkey = ARRAY[a.attnum]),
       CASE WHEN a.attgenerated = '' THEN coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '') ELSE '' END,
       a.attidentity <> '' OR a.attgenerated <> ''
FROM pg_catalog.pg_attribute a
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`, oids)
	if err != nil {
		return wrapf(err, "reading columns")
	}
	var oid uint32
	var c Column
	_, err = pgx.ForEachRow(rows, []any{&oid, &c.Name, &c.Type, &c.NotNull, &c.Default, &c.Generated}, func() error {
		t := byOID[oid]
		t.Columns = append(t.Columns, c)
		return nil
	})
	return wrapf(err, "reading columns")
}

func batchIndexes(ctx context.Context, q Querier, oids []uint32, byOID map[uint32]*Table) error {
	rows, err := q.Query(ctx, `
SELECT i.indrelid, ic.relname, pg_catalog.pg_get_indexdef(i.indexrelid), i.indisunique, i.indisprimary,
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
WHERE i.indrelid = ANY($1::oid[]) AND i.indisvalid
ORDER BY i.indrelid, ic.relname`, oids)
	if err != nil {
		return wrapf(err, "reading indexes")
	}
	var oid uint32
	var ix Index
	var refs []string
	_, err = pgx.ForEachRow(rows, []any{&oid, &ix.Name, &ix.Definition, &ix.Unique, &ix.Primary, &ix.Constraint, &ix.Columns, &refs}, func() error {
		one := ix
		one.Columns = append([]string{}, ix.Columns...)
		for _, c := range refs {
			if !slices.Contains(one.Columns, c) {
				one.Columns = append(one.Columns, c)
			}
		}
		t := byOID[oid]
		t.Indexes = append(t.Indexes, one)
		return nil
	})
	return wrapf(err, "reading indexes")
}

func batchKeys(ctx context.Context, q Querier, oids []uint32, byOID map[uint32]*Table) error {
	rows, err := q.Query(ctx, `
SELECT DISTINCT ON (i.indrelid) i.indrelid,
       ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE k.ord <= i.indnkeyatts ORDER BY k.ord)
FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = ANY($1::oid[]) AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
  AND i.indimmediate
  AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  WHERE k.ord <= i.indnkeyatts AND NOT a.attnotnull)
ORDER BY i.indrelid, i.indisprimary DESC, ic.relname`, oids)
	if err != nil {
		return wrapf(err, "reading keys")
	}
	var oid uint32
	var key []string
	_, err = pgx.ForEachRow(rows, []any{&oid, &key}, func() error {
		byOID[oid].Key = append([]string{}, key...)
		return nil
	})
	return wrapf(err, "reading keys")
}

func batchConstraints(ctx context.Context, q Querier, oids []uint32, byOID map[uint32]*Table) error {
	rows, err := q.Query(ctx, fmt.Sprintf(`
SELECT k.conrelid, k.conname, n.nspname, c.relname, k.contype::text, pg_catalog.pg_get_constraintdef(k.oid), %s
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE k.conrelid = ANY($1::oid[]) AND k.contype IN ('c', 'u', 'f')
ORDER BY k.conrelid, k.conname`, fmt.Sprintf(constraintColumns, "k.conkey", "k.conrelid")), oids)
	if err != nil {
		return wrapf(err, "reading constraints")
	}
	err = scanBatchConstraints(rows, func(oid uint32, c Constraint) {
		byOID[oid].Checks = append(byOID[oid].Checks, c)
	})
	return wrapf(err, "reading constraints")
}

// batchReferencing reads the foreign keys pointing at the tables in one
// pass over pg_constraint: confrelid has no index, so a query per table
// would scan it once per table.
func batchReferencing(ctx context.Context, q Querier, oids []uint32, byOID map[uint32]*Table) error {
	rows, err := q.Query(ctx, fmt.Sprintf(`
SELECT k.confrelid, k.conname, n.nspname, c.relname, k.contype::text, pg_catalog.pg_get_constraintdef(k.oid), %s
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE k.contype = 'f' AND k.confrelid = ANY($1::oid[]) AND k.conrelid <> k.confrelid AND k.conparentid = 0
ORDER BY k.confrelid, n.nspname, c.relname, k.conname`, fmt.Sprintf(constraintColumns, "k.confkey", "k.confrelid")), oids)
	if err != nil {
		return wrapf(err, "reading the foreign keys that reference them")
	}
	err = scanBatchConstraints(rows, func(oid uint32, c Constraint) {
		byOID[oid].Referencing = append(byOID[oid].Referencing, c)
	})
	return wrapf(err, "reading the foreign keys that reference them")
}

func scanBatchConstraints(rows pgx.Rows, add func(uint32, Constraint)) error {
	var oid uint32
	var c Constraint
	_, err := pgx.ForEachRow(rows, []any{&oid, &c.Name, &c.Table.Schema, &c.Table.Name, &c.Type, &c.Definition, &c.Columns}, func() error {
		one := c
		one.Columns = append([]string{}, c.Columns...)
		add(oid, one)
		return nil
	})
	return err
}

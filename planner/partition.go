package planner

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/phases"
)

// Partitioning is what the catalogs say about a declaratively partitioned
// table: its partition key and its partitions when the change was
// registered. Kinds whose statements PostgreSQL refuses on a partitioned
// parent (CREATE INDEX CONCURRENTLY, ADD CONSTRAINT ... USING INDEX, and
// before PostgreSQL 18 a NOT VALID foreign key) compile one statement per
// partition from this list, and the engine refuses to run such a phase
// when the live partitions differ (checkPartitions).
type Partitioning struct {
	Strategy string `json:"strategy"` // range, list or hash
	// Key lists the partition key's columns; an expression in the key is
	// listed as "".
	Key        []string    `json:"key"`
	Partitions []Partition `json:"partitions"`
}

// Partition is one partition of a partitioned table.
type Partition struct {
	Table TableName `json:"table"`
	Bound string    `json:"bound"` // FOR VALUES ..., or DEFAULT
	// Kind is the partition's pg_class.relkind: "r" (a table), "p" (itself
	// partitioned) or "f" (a foreign table).
	Kind string `json:"kind"`
}

func loadPartitioning(ctx context.Context, q Querier, oid uint32, t *Table) error {
	p := &Partitioning{Partitions: []Partition{}}
	err := q.QueryRow(ctx, `
SELECT CASE pt.partstrat WHEN 'r' THEN 'range' WHEN 'l' THEN 'list' WHEN 'h' THEN 'hash' ELSE pt.partstrat::text END,
       ARRAY(SELECT coalesce(a.attname, '') FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
             LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = k.attnum ORDER BY k.ord)
FROM pg_catalog.pg_partitioned_table pt WHERE pt.partrelid = $1`, oid).Scan(&p.Strategy, &p.Key)
	if err != nil {
		return fmt.Errorf("partition key: %w", err)
	}
	rows, err := q.Query(ctx, `
SELECT n.nspname, c.relname, pg_catalog.pg_get_expr(c.relpartbound, c.oid), c.relkind::text
FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE i.inhparent = $1
ORDER BY n.nspname, c.relname`, oid)
	if err != nil {
		return wrapf(err, "reading partitions")
	}
	p.Partitions, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Partition, error) {
		var x Partition
		return x, r.Scan(&x.Table.Schema, &x.Table.Name, &x.Bound, &x.Kind)
	})
	if err != nil {
		return wrapf(err, "reading partitions")
	}
	t.Partitioning = p
	// A partitioned parent has no rows of its own and no useful reltuples:
	// the estimate is the sum over its leaf partitions.
	var est float64
	if err := q.QueryRow(ctx, `
SELECT coalesce(sum(c.reltuples) FILTER (WHERE c.reltuples > 0), 0)
FROM pg_catalog.pg_partition_tree($1::oid::regclass) t JOIN pg_catalog.pg_class c ON c.oid = t.relid
WHERE t.isleaf`, oid).Scan(&est); err != nil {
		return fmt.Errorf("row estimate: %w", err)
	}
	t.RowEstimate = int64(est)
	return nil
}

// partitioned returns the table's partitioning when target knows it (a
// connected plan, or a registered change); nil for a plain table or offline.
func (target Target) partitioned() *Partitioning {
	if target.Table == nil {
		return nil
	}
	return target.Table.Partitioning
}

// partitionedNote tells a reviewer what a partitioned table changes in a
// plan; "" for a plain table or offline.
func (target Target) partitionedNote() string {
	p := target.partitioned()
	if p == nil {
		return ""
	}
	fk := "foreign keys NOT VALID on the parent (PostgreSQL 18+)"
	if !notValidOnParent(target.Version) {
		fk = "foreign keys NOT VALID and validated per partition, then added on the parent (PostgreSQL before 18 refuses NOT VALID on a partitioned table)"
	}
	return fmt.Sprintf("%s is %s-partitioned on (%s) with %d partitions. Columns, defaults, the sync and fill triggers (cloned by PostgreSQL onto every partition), "+
		"CHECK and NOT NULL constraints apply on the parent to every partition; indexes are built concurrently per partition and attached to an index ON ONLY the parent, "+
		"unique constraints are made per partition and adopted by the parent's, %s. Phases with per-partition steps are refused if a partition is attached or detached first.",
		target.Table.Name, p.Strategy, strings.Join(p.Key, ", "), len(p.Partitions), fk)
}

// refs lists the partitions for the phases package.
func (p *Partitioning) refs() []phases.TableRef {
	out := make([]phases.TableRef, len(p.Partitions))
	for i, x := range p.Partitions {
		out[i] = x.Table
	}
	return out
}

// perPartitionProblems refuses what the per-partition statements cannot
// handle: a partition that is itself partitioned (its own index would have
// to be built in turn per sub-partition) or a foreign table (no index, no
// local constraint).
func (p *Partitioning) perPartitionProblems(t TableName, what string) []Problem {
	var ps []Problem
	for _, x := range p.Partitions {
		switch x.Kind {
		case "p":
			ps = append(ps, Problem{Message: fmt.Sprintf("%s on %s needs one step per partition, and partition %s is itself partitioned", what, t, x.Table),
				Hint: "the planner builds per-partition steps for one level of partitions only: detach " + x.Table.String() + " until the change is done, or make this change by hand per sub-partition"})
		case "f":
			ps = append(ps, Problem{Message: fmt.Sprintf("%s on %s needs one step per partition, and partition %s is a foreign table", what, t, x.Table),
				Hint: "foreign tables cannot carry indexes or local constraints: detach " + x.Table.String() + " first"})
		}
	}
	return ps
}

// keyProblems refuses a unique index or constraint that does not include
// every partition key column: PostgreSQL can only enforce uniqueness within
// each partition.
func (p *Partitioning) keyProblems(t TableName, field string, columns []string) []Problem {
	var missing []string
	for _, k := range p.Key {
		if k == "" {
			return []Problem{{Field: field, Message: fmt.Sprintf("%s is partitioned by an expression; PostgreSQL cannot enforce a unique constraint across its partitions", t),
				Hint: "enforce uniqueness per partition with add_index (unique: true) on each partition, or in the application"}}
		}
		if !slices.Contains(columns, k) {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return []Problem{{Field: field, Message: fmt.Sprintf("%s is partitioned by (%s), and a unique index on a partitioned table must include every partition key column; %s is missing",
		t, strings.Join(p.Key, ", "), strings.Join(missing, ", ")),
		Hint: fmt.Sprintf("add %s to the columns (unique per partition key value), or add a unique index on each partition with add_index (unique within one partition only)", strings.Join(missing, ", "))}}
}

// checkPartitions compares the partitions a phase was compiled for with
// the table's partitions now. A partition attached or detached since the
// change was registered would make the phase's per-partition statements
// miss one partition or fail on another; the phase is refused (ErrInput)
// before anything runs, saying what to do.
func checkPartitions(ctx context.Context, q Querier, changeID string, table TableName, p phases.Phase) error {
	if len(p.Partitions) == 0 {
		return nil
	}
	var live phases.TableList
	rows, err := q.Query(ctx, `
SELECT n.nspname, c.relname
FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE i.inhparent = to_regclass($1)
ORDER BY n.nspname || '.' || c.relname`, table.Quoted())
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", table, err)
	}
	if live, err = pgx.CollectRows(rows, pgx.RowToStructByPos[phases.TableRef]); err != nil {
		return fmt.Errorf("partitions of %s: %w", table, err)
	}
	var attached, detached phases.TableList
	for _, l := range live {
		if !p.Partitions.Contains(l) {
			attached = append(attached, l)
		}
	}
	for _, w := range p.Partitions {
		if !live.Contains(w) {
			detached = append(detached, w)
		}
	}
	if len(attached) == 0 && len(detached) == 0 {
		return nil
	}
	var what []string
	if len(attached) > 0 {
		what = append(what, "attached since: "+attached.String())
	}
	if len(detached) > 0 {
		what = append(what, "detached since: "+detached.String())
	}
	return fmt.Errorf("the partitions of %s changed since change %s was registered (%s), and phase %s runs one step per partition: "+
		"restore the partitions as they were until the change is done (then attach or detach), or roll the change back to its start "+
		"(planner rollback %s, once per applied phase; rollback works with the new partitions) and run planner next, which plans it for the partitions as they are then: %w",
		table, changeID, strings.Join(what, "; "), p.Name, changeID, ErrInput)
}

func loadPartitionedReferrers(ctx context.Context, q Querier, oid uint32, t *Table) error {
	rows, err := q.Query(ctx, `
SELECT DISTINCT n.nspname, c.relname
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE k.confrelid = $1 AND k.conrelid <> $1 AND k.contype = 'f' AND k.conparentid = 0 AND c.relkind = 'p'
ORDER BY 1, 2`, oid)
	if err != nil {
		return wrapf(err, "reading the partitioned tables that reference it")
	}
	t.PartitionedReferrers, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableName, error) {
		var n TableName
		return n, r.Scan(&n.Schema, &n.Name)
	})
	return wrapf(err, "reading the partitioned tables that reference it")
}

// partitionedReferrerProblem refuses to re-point a foreign key of a
// partitioned table at the new column before PostgreSQL 18, which cannot
// add it NOT VALID there.
func partitionedReferrerProblem(t *Table, c Constraint, version int) error {
	if notValidOnParent(version) {
		return nil
	}
	for _, r := range t.PartitionedReferrers {
		if r.Equal(c.Table) {
			return problemsError([]Problem{{Field: "column", Message: fmt.Sprintf("the foreign key %s of partitioned table %s references %s.%s; PostgreSQL before 18 cannot add its copy NOT VALID on a partitioned table",
				c.Name, c.Table, t.Name, c.Columns[0]),
				Hint: "drop that foreign key first and re-create it with add_foreign_key after this change (or run on PostgreSQL 18)"}})
		}
	}
	return nil
}

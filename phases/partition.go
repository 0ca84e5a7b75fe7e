package phases

import (
	"fmt"
	"strings"
)

// Statements for a declaratively partitioned table where PostgreSQL refuses
// the plain table's statement on the parent: CREATE INDEX CONCURRENTLY,
// ADD CONSTRAINT ... USING INDEX, and (before PostgreSQL 18) a foreign key
// added NOT VALID. Each is done per partition, then tied to the parent in
// a brief catalog-only step. Triggers, columns, CHECK constraints and
// NOT NULL need nothing of this: on the parent they apply to every
// partition (row triggers are cloned to each one, pg_trigger.tgparentid).

// partitionIndexName names a partition's part of a parent index: index
// names are unique per schema, so each partition's carries its name.
func partitionIndexName(partition TableRef, index string) string {
	return FitName(partition.Name + "_" + index)
}

// PartitionedIndex is an index on a partitioned table built without
// blocking writes: CREATE INDEX ... ON ONLY the parent (invalid, instant),
// then per partition CREATE INDEX CONCURRENTLY and ALTER INDEX ... ATTACH
// PARTITION; PostgreSQL marks the parent's index valid when every
// partition's is attached. A partition attached later gets its index from
// ATTACH PARTITION itself.
type PartitionedIndex struct {
	Index
	Partitions []TableRef
}

func (pi PartitionedIndex) child(p TableRef) Index {
	c := pi.Index
	c.Table, c.Name = p, partitionIndexName(p, pi.Name)
	return c
}

// Create builds the index; every step is probed, so a build killed at
// any point resumes with the partition it stopped at.
func (pi PartitionedIndex) Create() []Statement {
	t := pi.Table
	unique := ""
	if pi.Unique {
		unique = "UNIQUE "
	}
	out := []Statement{{
		SQL:    fmt.Sprintf("CREATE %sINDEX IF NOT EXISTS %s ON ONLY %s %s", unique, Ident(pi.Name), t.Quoted(), pi.definition()),
		Lock:   Share,
		Tables: TableList{t},
		Held:   "instant (the parent alone holds no rows; the index stays invalid until every partition's is attached)",
		Done:   probeIndexExists(t.SchemaOrPublic(), pi.Name),
	}}
	for _, p := range pi.Partitions {
		c := pi.child(p)
		out = append(out, c.Create()...)
		out = append(out, Statement{
			SQL:         fmt.Sprintf("ALTER INDEX %s ATTACH PARTITION %s", pi.qualified(), c.qualified()),
			Lock:        AccessExclusive,
			Tables:      TableList{p},
			Held:        "instant (catalog only; the lock is on the partition's new index, which queries planning on the partition open)",
			CommitAfter: true,
			Done:        probeIndexAttached(c.qualified(), pi.qualified()),
		})
	}
	return append(out, assert(probeValidIndex(t.SchemaOrPublic(), pi.Name),
		fmt.Sprintf("index %s on %s is not valid after attaching every partition's index: a partition has none", pi.Name, t.String())))
}

// Drop removes the index from the parent and every partition. A
// partitioned index cannot be dropped concurrently: DROP INDEX takes
// ACCESS EXCLUSIVE on the parent and its partitions, for a catalog-only
// moment under the lock timeout. Partitions' indexes not attached yet (an
// interrupted build) are then dropped concurrently.
func (pi PartitionedIndex) Drop() []Statement {
	t := pi.Table
	out := []Statement{{
		SQL:    "DROP INDEX IF EXISTS " + pi.qualified(),
		Lock:   AccessExclusive,
		Tables: TableList{t},
		Held:   "instant (catalog only; on the parent and every partition; drops the partitions' attached indexes too)",
		Effect: not(probeIndexExists(t.SchemaOrPublic(), pi.Name)),
	}}
	for _, p := range pi.Partitions {
		out = append(out, pi.child(p).Drop()...)
	}
	return out
}

// PartitionedUnique is a UNIQUE constraint on a partitioned table:
// PostgreSQL refuses ADD CONSTRAINT ... USING INDEX on a partitioned parent,
// but ADD CONSTRAINT ... UNIQUE on the parent adopts each partition's
// matching unique constraint instead of building an index. So: per
// partition a unique index built concurrently (Build), turned into that
// partition's constraint (brief lock each), then the parent's constraint
// (Attach), under a guard that no partition lacks its own: for such a
// partition PostgreSQL would build the index in place, blocking writes.
// Columns must include every partition key column (checked by the kind).
type PartitionedUnique struct {
	Index
	// Columns are the constraint's columns, as the parent's ADD CONSTRAINT
	// names them; Index.Body or Index.Columns define the partitions' indexes
	// and must index exactly these columns.
	Columns    []string
	Partitions []TableRef
}

func (u PartitionedUnique) child(p TableRef) Index {
	return PartitionedIndex{Index: u.Index}.child(p)
}

func (u PartitionedUnique) parentDone() string { return probeConstraint(u.Table, u.Name, false) }

// Build builds each partition's unique index concurrently.
func (u PartitionedUnique) Build() []Statement {
	var out []Statement
	for _, p := range u.Partitions {
		out = append(out, u.child(p).Create()...)
	}
	return out
}

// DropBuilt drops what Build made.
func (u PartitionedUnique) DropBuilt() []Statement {
	var out []Statement
	for _, p := range u.Partitions {
		out = append(out, u.child(p).Drop()...)
	}
	return out
}

// Attach makes each partition's index its constraint, one brief
// transaction per partition, then adds the parent's constraint, which
// adopts them.
func (u PartitionedUnique) Attach() []Statement {
	t := u.Table
	var out []Statement
	for _, p := range u.Partitions {
		c := u.child(p)
		out = append(out, Statement{
			SQL:         fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s UNIQUE USING INDEX %s", p.Quoted(), Ident(c.Name), Ident(c.Name)),
			Lock:        AccessExclusive,
			Tables:      TableList{p},
			Held:        "instant (uses the built index, no scan)",
			CommitAfter: true,
			Done:        or(probeConstraint(p, c.Name, false), u.parentDone()),
		})
	}
	out = append(out, partitionGuard(t, u.Partitions, u.parentDone())...)
	return append(out, Statement{
		SQL:    fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s UNIQUE (%s)", t.Quoted(), Ident(u.Name), IdentList(u.Columns)),
		Lock:   AccessExclusive,
		Tables: TableList{t},
		Held:   "instant (adopts every partition's unique constraint, no scan)",
		Done:   u.parentDone(),
	})
}

// Detach undoes Attach: dropping the parent's constraint drops the
// partitions' constraints and their indexes, so the indexes are built
// again, leaving the table as Build left it.
func (u PartitionedUnique) Detach() []Statement {
	out := []Statement{dropConstraintIfTable(u.Table, u.Name)}
	for _, p := range u.Partitions {
		out = append(out, dropConstraintIfTable(p, u.child(p).Name))
	}
	return append(out, u.Build()...)
}

// Drop removes the parent's constraint and everything per partition.
func (u PartitionedUnique) Drop() []Statement {
	out := []Statement{dropConstraintIfTable(u.Table, u.Name)}
	for _, p := range u.Partitions {
		out = append(out, dropConstraintIfTable(p, u.child(p).Name))
	}
	return append(out, u.DropBuilt()...)
}

// PartitionedForeignKey is a foreign key from a partitioned table on a
// PostgreSQL that refuses it NOT VALID on the parent (before 18): added NOT
// VALID and validated on each partition (the partition's constraint takes
// the parent's name), then added on the parent, which adopts the validated
// partitions' constraints without scanning.
type PartitionedForeignKey struct {
	Constraint
	Partitions []TableRef
}

func (f PartitionedForeignKey) child(p TableRef) Constraint {
	c := f.Constraint
	c.Table = p
	return c
}

func (f PartitionedForeignKey) parentDone() string { return probeConstraint(f.Table, f.Name, false) }

// AddNotValid adds the constraint NOT VALID on each partition, one brief
// transaction each.
func (f PartitionedForeignKey) AddNotValid() []Statement {
	var out []Statement
	for _, p := range f.Partitions {
		s := f.child(p).AddNotValid()
		s.Done = or(s.Done, f.parentDone())
		out = append(out, s)
	}
	return out
}

// Validate validates each partition's constraint (scans that block no
// writes), then adds the parent's.
func (f PartitionedForeignKey) Validate() []Statement {
	t := f.Table
	var out []Statement
	for _, p := range f.Partitions {
		s := f.child(p).Validate()
		s.Done = or(s.Done, f.parentDone())
		out = append(out, s)
	}
	out = append(out, partitionGuard(t, f.Partitions, f.parentDone())...)
	return append(out, f.addToParent())
}

// addToParent is the parent's ADD CONSTRAINT, validated: every
// partition already holds a validated constraint of that definition, which
// PostgreSQL adopts instead of checking rows.
func (f PartitionedForeignKey) addToParent() Statement {
	t := f.Table
	return Statement{
		SQL:    fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", t.Quoted(), Ident(f.Name), f.Definition),
		Lock:   ShareRowExclusive,
		Tables: f.tables(),
		Held:   "instant (adopts every partition's validated constraint, no scan)",
		Done:   f.parentDone(),
	}
}

// DropPartitions drops the partitions' constraints (rollback of
// AddNotValid).
func (f PartitionedForeignKey) DropPartitions() []Statement {
	var out []Statement
	for _, p := range f.Partitions {
		out = append(out, dropConstraintIfTable(p, f.Name))
	}
	return out
}

// Unvalidate undoes Validate: dropping the parent's constraint drops the
// partitions' too; they are added back NOT VALID (instant), the state
// AddNotValid left.
func (f PartitionedForeignKey) Unvalidate() []Statement {
	out := append([]Statement{dropConstraintIfTable(f.Table, f.Name)}, f.DropPartitions()...)
	for _, p := range f.Partitions {
		out = append(out, f.child(p).AddNotValid())
	}
	return out
}

// partitionGuard locks the parent against ATTACH and DETACH PARTITION
// (SHARE UPDATE EXCLUSIVE blocks no reads or writes), then checks that its
// partitions are exactly the expected ones, in the transaction of the
// statement that follows. Both skip when done says that statement ran.
func partitionGuard(t TableRef, partitions []TableRef, done string) []Statement {
	want := make([]string, len(partitions))
	for i, p := range partitions {
		want[i] = literal(p.String())
	}
	live := fmt.Sprintf("(SELECT coalesce(array_agg(n.nspname || '.' || c.relname), '{}') FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE i.inhparent = %s)", t.regclass())
	wantArr := "ARRAY[" + strings.Join(want, ", ") + "]::text[]"
	if len(want) == 0 {
		wantArr = "'{}'::text[]"
	}
	check := assert(fmt.Sprintf("SELECT %s @> %s AND %s @> %s", live, wantArr, wantArr, live),
		fmt.Sprintf("the partitions of %s changed while this phase ran: roll the change back to its start and run planner next again", t.String()))
	check.Done = done
	return []Statement{
		{
			SQL:    fmt.Sprintf("LOCK TABLE ONLY %s IN SHARE UPDATE EXCLUSIVE MODE", t.Quoted()),
			Lock:   ShareUpdateExclusive,
			Tables: TableList{t},
			Held:   "until the transaction ends (blocks only ATTACH/DETACH PARTITION and other DDL)",
			Done:   done,
		},
		check,
	}
}

// assert fails its transaction with message unless probe (a query
// returning one boolean) is true.
func assert(probe, message string) Statement {
	body := fmt.Sprintf("\nBEGIN\n  IF NOT coalesce((%s), false) THEN\n    RAISE EXCEPTION USING MESSAGE = %s;\n  END IF;\nEND\n", probe, literal(message))
	tag := dollarTag(body)
	return Statement{SQL: "DO " + tag + body + tag, Held: HeldNone, Effect: probe}
}

// dropConstraintIfTable drops a constraint of a table that may be gone (a
// partition dropped since the change was planned).
func dropConstraintIfTable(t TableRef, name string) Statement {
	return Statement{
		SQL:    fmt.Sprintf("ALTER TABLE IF EXISTS %s DROP CONSTRAINT IF EXISTS %s", t.Quoted(), Ident(name)),
		Lock:   AccessExclusive,
		Tables: TableList{t},
		Held:   HeldInstant,
		Effect: not(probeConstraint(t, name, false)),
	}
}

func probeIndexExists(schema, name string) string {
	return fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('i', 'I'))",
		literal(schema), literal(name))
}

// probeIndexAttached: the partition's index is attached to the parent's.
func probeIndexAttached(child, parent string) string {
	return fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhrelid = to_regclass(%s) AND inhparent = to_regclass(%s))",
		literal(child), literal(parent))
}

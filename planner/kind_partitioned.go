package planner

import (
	"fmt"
	"strings"

	"github.com/pgplanner/planner/phases"
)

// The phases of add_index, add_unique and add_foreign_key on a partitioned
// table, where the plain table's statements do not run on the parent (see
// phases/partition.go). The kinds call these when the catalog snapshot says
// the table is partitioned; offline, a plan cannot know it and says so.

// partitionNote is added to the purpose of phases that work per partition.
func partitionNote(p *Partitioning) string {
	return fmt.Sprintf(" (partitioned table: one step per partition, %d partitions)", len(p.Partitions))
}

func partitionedIndexPhases(t TableName, p *Partitioning, ix phases.Index) ([]phases.Phase, error) {
	if ps := p.perPartitionProblems(t, "an index"); len(ps) > 0 {
		return nil, problemsError(ps)
	}
	pi := phases.PartitionedIndex{Index: ix, Partitions: p.refs()}
	return []phases.Phase{{
		Name: "build_index",
		Purpose: fmt.Sprintf("build index %s on %s without blocking writes: invalid on the parent alone, then built concurrently and attached per partition%s",
			ix.Name, t, partitionNote(p)),
		Statements: pi.Create(),
		Rollback:   pi.Drop(),
		Partitions: p.refs(),
	}}, nil
}

func partitionedUniquePhases(t TableName, p *Partitioning, name string, columns []string) ([]phases.Phase, error) {
	ps := p.perPartitionProblems(t, "a unique constraint")
	ps = append(ps, p.keyProblems(t, "columns", columns)...)
	if len(ps) > 0 {
		return nil, problemsError(ps)
	}
	u := phases.PartitionedUnique{Index: phases.Index{Table: t, Name: name, Unique: true, Columns: columns},
		Columns: columns, Partitions: p.refs()}
	return []phases.Phase{
		{
			Name: "build_index",
			Purpose: fmt.Sprintf("build a unique index on (%s) of each partition of %s without blocking writes%s",
				strings.Join(columns, ", "), t, partitionNote(p)),
			Statements: u.Build(),
			Rollback:   u.DropBuilt(),
			Partitions: p.refs(),
		},
		{
			Name: "attach",
			Purpose: fmt.Sprintf("turn each partition's index into its unique constraint, then add %s on the parent, which adopts them (brief locks, no scan)%s",
				name, partitionNote(p)),
			Statements: u.Attach(),
			Rollback:   u.Detach(),
			Partitions: p.refs(),
		},
	}, nil
}

// partitionedForeignKeyPhases: before PostgreSQL 18 a foreign key cannot
// be added NOT VALID on a partitioned table; it is added NOT VALID and
// validated per partition, then on the parent.
func partitionedForeignKeyPhases(t TableName, p *Partitioning, c phases.Constraint, what string) ([]phases.Phase, error) {
	if ps := p.perPartitionProblems(t, "a foreign key NOT VALID (PostgreSQL before 18)"); len(ps) > 0 {
		return nil, problemsError(ps)
	}
	fk := phases.PartitionedForeignKey{Constraint: c, Partitions: p.refs()}
	return []phases.Phase{
		{
			Name: "add_not_valid",
			Purpose: fmt.Sprintf("add %s as %s on each partition, enforced for new writes only (brief lock, no scan; PostgreSQL before 18 refuses NOT VALID on a partitioned parent)%s",
				c.Name, what, partitionNote(p)),
			Statements: fk.AddNotValid(),
			Rollback:   fk.DropPartitions(),
			Partitions: p.refs(),
		},
		{
			Name: "validate",
			Purpose: fmt.Sprintf("check the existing rows of each partition against %s without blocking writes, then add it on the parent, which adopts the partitions' constraints (brief lock, no scan)%s",
				c.Name, partitionNote(p)),
			Statements: fk.Validate(),
			Rollback:   fk.Unvalidate(),
			Partitions: p.refs(),
		},
	}, nil
}

// notValidOnParent says whether PostgreSQL accepts a foreign key NOT VALID
// on a partitioned table.
func notValidOnParent(version int) bool { return version >= 18 }

// partitionedIndexCopy copies an index of the old column on a partitioned
// table (rename_column, change_column_type).
func partitionedIndexCopy(t *Table, n phases.Index) (dependentCopy, error) {
	if ps := t.Partitioning.perPartitionProblems(t.Name, "copying index "+n.Name); len(ps) > 0 {
		return dependentCopy{}, problemsError(ps)
	}
	pi := phases.PartitionedIndex{Index: n, Partitions: t.Partitioning.refs()}
	return dependentCopy{what: "index " + n.Name + " per partition", name: n.Name, forward: pi.Create(), back: pi.Drop()}, nil
}

// partitionedUniqueCopy copies a unique constraint of the old column on a
// partitioned table. The parent's ADD CONSTRAINT ... UNIQUE (columns) adopts
// the partitions' constraints only when their indexes match exactly, so
// only plain column lists are copied.
func partitionedUniqueCopy(t *Table, c Constraint, backing Index, u phases.Index, cc copyColumn) (dependentCopy, error) {
	if ps := t.Partitioning.perPartitionProblems(t.Name, "copying unique constraint "+c.Name); len(ps) > 0 {
		return dependentCopy{}, problemsError(ps)
	}
	def := backing.Definition
	plain := strings.Count(def, "(") == 1 && !strings.Contains(def, " INCLUDE ") && !strings.Contains(def, " WHERE ") &&
		!strings.Contains(def, " NULLS NOT DISTINCT") && !strings.Contains(c.Definition, "DEFERRABLE")
	if !plain {
		return dependentCopy{}, problemsError([]Problem{{Field: "column", Message: fmt.Sprintf("cannot copy the unique constraint %s (%s) of partitioned table %s: only plain column lists are copied per partition", c.Name, c.Definition, t.Name),
			Hint: "drop and re-create it yourself around this change"}})
	}
	cols := make([]string, len(c.Columns))
	for i, col := range c.Columns {
		cols[i] = col
		if col == cc.old {
			cols[i] = cc.new
		}
	}
	pu := phases.PartitionedUnique{Index: u, Columns: cols, Partitions: t.Partitioning.refs()}
	return dependentCopy{what: "unique " + u.Name + " per partition", name: u.Name,
		forward: append(pu.Build(), pu.Attach()...), back: pu.Drop()}, nil
}

// partitionedForeignKeyCopy copies a foreign key of a partitioned table
// before PostgreSQL 18, which refuses it NOT VALID on the parent.
func partitionedForeignKeyCopy(t *Table, k phases.Constraint, validate bool) (dependentCopy, error) {
	ps := t.Partitioning.perPartitionProblems(t.Name, "copying foreign key "+k.Name)
	if !validate {
		ps = append(ps, Problem{Field: "column", Message: fmt.Sprintf("the foreign key %s of partitioned table %s is NOT VALID, which PostgreSQL before 18 cannot add on a partitioned table", k.Name, t.Name),
			Hint: "validate it first (ALTER TABLE ... VALIDATE CONSTRAINT), or drop it"})
	}
	if len(ps) > 0 {
		return dependentCopy{}, problemsError(ps)
	}
	fk := phases.PartitionedForeignKey{Constraint: k, Partitions: t.Partitioning.refs()}
	back := append([]phases.Statement{k.Drop()}, fk.DropPartitions()...)
	return dependentCopy{what: "foreign key " + k.Name + " per partition", name: k.Name,
		forward: append(fk.AddNotValid(), fk.Validate()...), back: back}, nil
}

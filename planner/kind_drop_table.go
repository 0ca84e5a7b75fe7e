package planner

import (
	"fmt"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("drop_table", func() Kind { return &DropTable{} }) }

// DropTable drops a table once applications have stopped using it: the flag
// `<id>.table=dropped` tells them to stop, the contract renames the table
// to a tombstone (instant, reversible: its rows, indexes and constraints
// stay), and the purge drops it after the purge delay.
type DropTable struct {
	TableName string `yaml:"table" json:"table"`
}

func (k *DropTable) Table() TableName { return ParseTableName(k.TableName) }

// dropsTable: later changes may not use it.
func (k *DropTable) dropsTable() {}

func (k *DropTable) Check() []Problem { return tableProblems(k.TableName) }

func (k *DropTable) CheckLive(t *Table) []Problem {
	var ps []Problem
	for _, r := range t.Referencing {
		if r.Table == t.Name {
			continue // a self-reference goes with the table
		}
		ps = append(ps, Problem{Field: "table", Message: fmt.Sprintf("the foreign key %s of %s references %s", r.Name, r.Table, t.Name),
			Hint: fmt.Sprintf("drop that foreign key first (ALTER TABLE %s DROP CONSTRAINT %s), in a change before this one", r.Table.Quoted(), phases.Ident(r.Name))})
	}
	return ps
}

func (k *DropTable) FlagMeta() map[string]string {
	return map[string]string{"table": k.Table().String(), "old_table": k.Table().String(), "new_table": ""}
}

func (k *DropTable) Compile(id string, target Target) ([]phases.Phase, error) {
	t := k.Table()
	ref := t
	tomb := phases.TombstoneName(id, t.Name)
	tombRef := phases.TableRef{Schema: ref.Schema, Name: tomb}
	move := phases.RenameTable(ref, tomb)
	note := ""
	if p := target.partitioned(); p != nil {
		note = fmt.Sprintf(" (partitioned table: its %d partitions keep their names and go with it)", len(p.Partitions))
	}
	return []phases.Phase{
		{
			Name:          "stop_using",
			Purpose:       fmt.Sprintf("applications stop reading and writing %s (flag %s.table=dropped)", t, id),
			Flags:         tableFlag(id, "dropped"),
			RollbackFlags: tableFlag(id, "old"),
		},
		{
			Name: "contract",
			Purpose: fmt.Sprintf("rename %s to the tombstone %s (instant): applications no longer see it; its rows, indexes and constraints stay as they are; rollback renames it back%s",
				t, tomb, note),
			Gate:       phases.FlagsSoaked,
			Statements: []phases.Statement{phases.DependentViewGuard(ref, move.Done), move},
			Rollback:   []phases.Statement{phases.RenameTable(tombRef, t.Name)},
		},
		{
			Name:         "purge",
			Purpose:      fmt.Sprintf("drop the tombstone %s (the old %s) and its data%s", tomb, t, note),
			Gate:         phases.PurgeAfter,
			Statements:   []phases.Statement{phases.DropTable(tombRef)},
			Irreversible: fmt.Sprintf("drops %s (the old %s) and its data", tombRef.String(), t),
		},
	}, nil
}

// effect: later changes may not use the table.
func (k *DropTable) effect(string) effect { return effect{dropsTable: true} }

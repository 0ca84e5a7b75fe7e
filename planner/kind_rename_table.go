package planner

import (
	"fmt"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("rename_table", func() Kind { return &RenameTable{} }) }

// RenameTable renames a table without breaking applications that still use
// the old name: the rename and a simple, automatically updatable view
// under the old name are one transaction; the flag `<id>.table` moves the
// applications to the new name; the contract drops the view.
type RenameTable struct {
	TableName string `yaml:"table" json:"table"`
	// To is the new name, in the same schema.
	To string `yaml:"to" json:"to"`
}

func (k *RenameTable) Table() TableName { return ParseTableName(k.TableName) }

// NewName is the table's name once renamed.
func (k *RenameTable) NewName() TableName { return TableName{Schema: k.Table().Schema, Name: k.To} }

// renamesTable: later changes use the new name.
func (k *RenameTable) renamesTable() TableName { return k.NewName() }

func (k *RenameTable) Check() []Problem {
	ps := tableProblems(k.TableName)
	ps = append(ps, required("to", k.To)...)
	ps = append(ps, identifier("to", k.To)...)
	if k.To != "" && len(splitQualified(k.To)) > 1 {
		ps = append(ps, Problem{Field: "to", Message: fmt.Sprintf("%q names a schema: rename_table keeps the table in its schema", k.To),
			Hint: "write the new name alone; moving a table to another schema (ALTER TABLE ... SET SCHEMA) is not a rename"})
	}
	if k.To != "" && k.To == k.Table().Name {
		ps = append(ps, Problem{Field: "to", Message: "is the table's current name", Hint: "name the table differently"})
	}
	return ps
}

func (k *RenameTable) FlagMeta() map[string]string {
	return map[string]string{"table": k.Table().String(), "old_table": k.Table().String(), "new_table": k.NewName().String()}
}

// minRenameVersion: security_invoker views, which keep privileges and
// row-level security those of the caller, came with PostgreSQL 15.
const minRenameVersion = 15

func (k *RenameTable) Compile(id string, target Target) ([]phases.Phase, error) {
	if target.Version < minRenameVersion {
		return nil, problemsError([]Problem{{Field: "table", Message: fmt.Sprintf("rename_table needs PostgreSQL %d or later (security_invoker views); the server is %d", minRenameVersion, target.Version),
			Hint: "rename the table in a maintenance window, or upgrade first"}})
	}
	t, n := k.Table(), k.NewName()
	old := t
	renamed := phases.TableRef{Schema: old.Schema, Name: k.To}
	view := phases.CompatView{Old: old, Table: renamed}
	rename := phases.RenameTable(old, k.To)
	stmts := append(phases.RenameGuard(old, rename.Done), rename)
	stmts = append(stmts, view.Create()...)
	back := phases.RenameTable(renamed, t.Name)
	return []phases.Phase{
		{
			Name: "rename",
			Purpose: fmt.Sprintf("rename %s to %s and create the view %s under the old name in one transaction (instant): applications on the old name keep reading and writing through it",
				t, n, t),
			Statements: stmts,
			Flags:      tableFlag(id, "old"),
			Rollback:   []phases.Statement{view.Drop(), back},
		},
		{
			Name:          "switch",
			Purpose:       fmt.Sprintf("applications move to the new name %s (flag %s.table=new); the old name still works through the view", n, id),
			Flags:         tableFlag(id, "new"),
			RollbackFlags: tableFlag(id, "old"),
		},
		{
			Name:          "contract",
			Purpose:       fmt.Sprintf("drop the view %s (instant): the old name stops working; rollback creates it again", t),
			Gate:          phases.FlagsSoaked,
			Statements:    []phases.Statement{view.Drop()},
			Flags:         tableFlag(id, "new"),
			Rollback:      view.Create(),
			RollbackFlags: tableFlag(id, "new"),
		},
	}, nil
}

// tableFlag is the `<id>.table` flag of the table kinds.
func tableFlag(id, variant string) phases.Flags { return phases.Flags{id + ".table": variant} }

// effect: later changes find the table under its new name.
func (k *RenameTable) effect(string) effect {
	n := k.NewName()
	return effect{renamesTo: &n}
}

package planner

import (
	"fmt"
	"slices"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("drop_column", func() Kind { return &DropColumn{} }) }

// DropColumn drops a column once applications have stopped using it: it is
// renamed to a tombstone first (contract, reversible) and dropped a deploy
// later (purge).
type DropColumn struct {
	TableName string `yaml:"table" json:"table"`
	Column    string `yaml:"column" json:"column"`
}

func (k *DropColumn) Table() TableName { return ParseTableName(k.TableName) }

func (k *DropColumn) Check() []Problem {
	return append(tableProblems(k.TableName), columnProblems("column", k.Column)...)
}

func (k *DropColumn) CheckLive(t *Table) []Problem { return dropColumnLive(k, t) }

func (k *DropColumn) FlagMeta() map[string]string {
	return map[string]string{"table": k.Table().String(), "old_column": k.Column, "new_column": ""}
}

func (k *DropColumn) effect(string) effect {
	return effect{uses: []colRef{{"column", k.Column}}, removes: []colGone{{k.Column, "dropped"}}}
}

func (k *DropColumn) Compile(id string, target Target) ([]phases.Phase, error) {
	return compileDropColumn(k, id, target)
}

func dropColumnLive(k *DropColumn, t *Table) []Problem {
	if t.Column(k.Column) == nil {
		return []Problem{{Field: "column", Message: fmt.Sprintf("column %q does not exist on %s", k.Column, t.Name), Hint: "check the column name" + nearest(k.Column, columnNames(t))}}
	}
	if primaryKeyHas(t, k.Column) {
		return []Problem{{Field: "column", Message: fmt.Sprintf("%s.%s is part of the primary key", t.Name, k.Column),
			Hint: "make another column set the primary key first (a unique index built concurrently, then ALTER TABLE ... ADD PRIMARY KEY USING INDEX in a maintenance window)"}}
	}
	return nil
}

func compileDropColumn(k *DropColumn, id string, target Target) ([]phases.Phase, error) {
	t := k.Table()
	col := phases.Column{Table: t, Name: k.Column}
	notNull := true // offline: assumed, so that the plan shows the step
	var dropFirst []phases.Statement
	if target.Table != nil {
		if ps := dropColumnLive(k, target.Table); len(ps) > 0 {
			return nil, problemsError(ps)
		}
		c := target.Table.Column(k.Column)
		notNull = c.NotNull && c.Default == ""
		for _, r := range target.Table.Referencing {
			if slices.Contains(r.Columns, k.Column) {
				fk := phases.Constraint{Table: r.Table, Name: r.Name,
					References: &t}
				dropFirst = append(dropFirst, fk.Drop())
			}
		}
	}
	stop := phases.Phase{
		Name:          "stop_using",
		Purpose:       fmt.Sprintf("applications stop reading and writing %s.%s", t, k.Column),
		Flags:         flagVariants(id, "new", "new"),
		RollbackFlags: flagVariants(id, "old", "old"),
	}
	if notNull {
		// Applications that no longer write the column must still be able
		// to insert: NOT NULL without a default would refuse their rows.
		nn := phases.NotNull{Column: col, Version: target.Version}
		stop.Purpose += " (NOT NULL is dropped first so that inserts without it succeed)"
		stop.Statements = []phases.Statement{col.DropNotNull()}
		stop.Rollback = nn.Statements()
	}
	if target.LegacyContract {
		contract := phases.Phase{
			Name:         "contract",
			Purpose:      fmt.Sprintf("drop %s.%s", t, k.Column),
			Gate:         phases.FlagsSoaked,
			Statements:   append(dropFirst, col.Drop()),
			Irreversible: fmt.Sprintf("drops %s.%s and its data", t, k.Column),
		}
		return []phases.Phase{stop, contract}, nil
	}
	// Nothing writes the tombstone: it keeps the values it had at contract,
	// and rows inserted meanwhile get its default or NULL, as they did
	// during stop_using. Foreign keys of other tables that reference it
	// stay until the purge, so that a rollback finds them.
	tomb := phases.TombstoneName(id, k.Column)
	tombCol := phases.Column{Table: col.Table, Name: tomb}
	contract := phases.Phase{
		Name: "contract",
		Purpose: fmt.Sprintf("rename %s.%s to the tombstone %s (instant): applications no longer see it; its data stays as it was at contract; rollback renames it back",
			t, k.Column, tomb),
		Gate:       phases.FlagsSoaked,
		Statements: []phases.Statement{col.Rename(tomb)},
		Rollback:   []phases.Statement{tombCol.Rename(k.Column)},
	}
	purge := phases.Phase{
		Name:         "purge",
		Purpose:      fmt.Sprintf("drop the tombstone %s (the old %s.%s)", tomb, t, k.Column),
		Gate:         phases.PurgeAfter,
		Statements:   append(dropFirst, tombCol.Drop()),
		Irreversible: fmt.Sprintf("drops %s.%s (the old %s) and its data", t, tomb, k.Column),
	}
	return []phases.Phase{stop, contract, purge}, nil
}

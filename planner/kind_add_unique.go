package planner

import (
	"fmt"
	"strings"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("add_unique", func() Kind { return &AddUnique{} }) }

// AddUnique adds a UNIQUE constraint: the unique index is built
// concurrently, then attached with ADD CONSTRAINT ... UNIQUE USING INDEX,
// which only takes a brief lock.
type AddUnique struct {
	TableName string `yaml:"table" json:"table"`
	// Name defaults to <table>_<columns>_key.
	Name    string   `yaml:"name,omitempty" json:"name,omitempty"`
	Columns []string `yaml:"columns" json:"columns"`
}

func (k *AddUnique) Table() TableName { return ParseTableName(k.TableName) }

func (k *AddUnique) constraintName() string {
	if k.Name != "" {
		return k.Name
	}
	return phases.DerivedName(k.Table().Name, strings.Join(k.Columns, "_"), "key")
}

func (k *AddUnique) effect(string) effect {
	var e effect
	for i, c := range k.Columns {
		e.uses = append(e.uses, colRef{fmt.Sprintf("columns[%d]", i), c})
	}
	n := k.constraintName()
	e.names = []objName{{"name", n, true}}
	e.indexes = []Index{{Name: n, Columns: k.Columns, Unique: true, Constraint: n}}
	e.constraints = []Constraint{{Name: n, Type: "u", Columns: k.Columns}}
	return e
}

func (k *AddUnique) Check() []Problem {
	ps := tableProblems(k.TableName)
	ps = append(ps, identifier("name", k.Name)...)
	return append(ps, requiredList("columns", k.Columns)...)
}

func (k *AddUnique) CheckLive(t *Table) []Problem {
	ps := constraintNameLive(t, k.constraintName())
	for _, ix := range t.Indexes {
		if ix.Name == k.constraintName() {
			ps = append(ps, Problem{Field: "name", Message: fmt.Sprintf("an index named %q already exists on %s", ix.Name, t.Name), Hint: "pick another name"})
		}
	}
	return ps
}

func (k *AddUnique) Compile(id string, target Target) ([]phases.Phase, error) {
	t := k.Table()
	if p := target.partitioned(); p != nil {
		return partitionedUniquePhases(t, p, k.constraintName(), k.Columns)
	}
	u := phases.Unique{Index: phases.Index{Table: t, Name: k.constraintName(),
		Unique: true, Columns: k.Columns}}
	return []phases.Phase{
		{
			Name:       "build_index",
			Purpose:    fmt.Sprintf("build the unique index %s on %s (%s) without blocking writes", u.Name, t, strings.Join(k.Columns, ", ")),
			Statements: u.Index.Create(),
			Rollback:   u.Index.Drop(),
		},
		{
			Name:       "attach",
			Purpose:    fmt.Sprintf("turn the index into the constraint %s (brief lock, no scan)", u.Name),
			Statements: []phases.Statement{u.Attach()},
			Rollback:   u.Detach(),
		},
	}, nil
}

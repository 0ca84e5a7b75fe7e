package planner

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("add_foreign_key", func() Kind { return &AddForeignKey{} }) }

// AddForeignKey adds a foreign key NOT VALID, then validates it in a later
// transaction without blocking writes.
type AddForeignKey struct {
	TableName string `yaml:"table" json:"table"`
	// Name defaults to <table>_<columns>_fkey.
	Name       string     `yaml:"name,omitempty" json:"name,omitempty"`
	Columns    []string   `yaml:"columns" json:"columns"`
	References References `yaml:"references" json:"references"`
	// OnDelete: cascade, restrict, set null, set default, no action.
	OnDelete string `yaml:"on_delete,omitempty" json:"on_delete,omitempty"`
}

// References is the referenced table and its columns.
type References struct {
	Table   string   `yaml:"table" json:"table"`
	Columns []string `yaml:"columns" json:"columns"`
}

var onDeleteActions = []string{"cascade", "restrict", "set null", "set default", "no action"}

func (k *AddForeignKey) Table() TableName { return ParseTableName(k.TableName) }

func (k *AddForeignKey) effect(string) effect {
	var e effect
	for i, c := range k.Columns {
		e.uses = append(e.uses, colRef{fmt.Sprintf("columns[%d]", i), c})
	}
	n := k.constraintName()
	e.names = []objName{{"name", n, false}}
	e.constraints = []Constraint{{Name: n, Type: "f", Columns: k.Columns}}
	e.refTable = ParseTableName(k.References.Table)
	for i, c := range k.References.Columns {
		e.refCols = append(e.refCols, colRef{fmt.Sprintf("references.columns[%d]", i), c})
	}
	return e
}

func (k *AddForeignKey) constraintName() string {
	if k.Name != "" {
		return k.Name
	}
	return phases.DerivedName(k.Table().Name, strings.Join(k.Columns, "_"), "fkey")
}

func (k *AddForeignKey) onDelete() string {
	return strings.Join(strings.Fields(strings.ToLower(k.OnDelete)), " ")
}

func (k *AddForeignKey) Check() []Problem {
	ps := tableProblems(k.TableName)
	ps = append(ps, identifier("name", k.Name)...)
	ps = append(ps, requiredList("columns", k.Columns)...)
	for _, p := range tableProblems(k.References.Table) {
		p.Field = "references." + p.Field
		ps = append(ps, p)
	}
	for _, p := range requiredList("columns", k.References.Columns) {
		p.Field = "references." + p.Field
		ps = append(ps, p)
	}
	if len(k.Columns) > 0 && len(k.References.Columns) > 0 && len(k.Columns) != len(k.References.Columns) {
		ps = append(ps, Problem{Field: "references.columns",
			Message: fmt.Sprintf("lists %d columns but columns lists %d", len(k.References.Columns), len(k.Columns)),
			Hint:    "a foreign key pairs each column with one referenced column"})
	}
	if k.OnDelete != "" && !slices.Contains(onDeleteActions, k.onDelete()) {
		ps = append(ps, Problem{Field: "on_delete", Message: fmt.Sprintf("%q is not a referential action", k.OnDelete),
			Hint: "use one of " + strings.Join(onDeleteActions, ", ") + nearest(k.onDelete(), onDeleteActions)})
	}
	return ps
}

func (k *AddForeignKey) CheckLive(t *Table) []Problem {
	return constraintNameLive(t, k.constraintName())
}

func (k *AddForeignKey) Compile(id string, target Target) ([]phases.Phase, error) {
	t, rt := k.Table(), ParseTableName(k.References.Table)
	def := fmt.Sprintf("FOREIGN KEY (%s) REFERENCES %s (%s)", phases.IdentList(k.Columns), rt.Quoted(), phases.IdentList(k.References.Columns))
	if k.OnDelete != "" {
		def += " ON DELETE " + strings.ToUpper(k.onDelete())
	}
	c := phases.Constraint{Table: t, Name: k.constraintName(), Definition: def,
		References: &rt}
	what := fmt.Sprintf("foreign key (%s) references %s", strings.Join(k.Columns, ", "), rt)
	if p := target.partitioned(); p != nil && !notValidOnParent(target.Version) {
		return partitionedForeignKeyPhases(t, p, c, what)
	}
	return notValidThenValidate(c, what), nil
}

package planner

import (
	"fmt"
	"strings"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("add_column", func() Kind { return &AddColumn{} }) }

// AddColumn adds a column; with not_null, existing rows are filled in by a
// batched backfill before NOT NULL is enforced without a long lock.
type AddColumn struct {
	TableName string `yaml:"table" json:"table"`
	Column    string `yaml:"column" json:"column"`
	Type      string `yaml:"type" json:"type"`
	NotNull   bool   `yaml:"not_null,omitempty" json:"not_null,omitempty"`
	// Backfill computes the value for existing rows (may use other columns).
	Backfill string `yaml:"backfill,omitempty" json:"backfill,omitempty"`
	// Default is the column default for rows inserted from now on.
	Default string `yaml:"default,omitempty" json:"default,omitempty"`
	Allows  `yaml:",inline" json:",inline"`
}

func (k *AddColumn) Expressions() []Expression {
	return []Expression{{Field: "backfill", SQL: k.Backfill}, {Field: "default", SQL: k.Default}}
}

func (k *AddColumn) Table() TableName { return ParseTableName(k.TableName) }

func (k *AddColumn) Check() []Problem {
	ps := tableProblems(k.TableName)
	ps = append(ps, columnProblems("column", k.Column)...)
	ps = append(ps, typeProblems("type", k.Type)...)
	ps = append(ps, exprProblems("backfill", k.Backfill)...)
	ps = append(ps, exprProblems("default", k.Default)...)
	ps = append(ps, reachProblems(k, k.Table())...)
	if t := strings.ToLower(strings.TrimSpace(k.Type)); t == "serial" || t == "bigserial" || t == "smallserial" ||
		t == "serial4" || t == "serial8" || t == "serial2" {
		ps = append(ps, Problem{Field: "type", Message: fmt.Sprintf("%s adds a sequence default, which rewrites the table under an ACCESS EXCLUSIVE lock", k.Type),
			Hint: "add a bigint column (type: bigint), create the sequence yourself, then backfill: nextval('seq') and default: nextval('seq')"})
	}
	if k.NotNull && k.Backfill == "" && k.Default == "" {
		ps = append(ps, Problem{Field: "not_null",
			Message: "a NOT NULL column needs a value for the existing rows",
			Hint:    fmt.Sprintf("add `backfill: <expression>` (computed per row, e.g. backfill: \"''\"); the planner adds the column nullable with a trigger that fills it on writes that leave it NULL, backfills existing rows in batches, then enforces NOT NULL without a long lock; add `default: <expression>` too if applications that do not write %s will still insert rows afterwards", k.Column)})
	}
	return ps
}

func (k *AddColumn) addedColumns(*Table) map[string]string {
	return map[string]string{k.Column: k.Type}
}

func (k *AddColumn) effect(string) effect {
	return effect{adds: []colAdd{{field: "column", name: k.Column, typ: k.Type, notNull: k.NotNull}},
		exprs: []fieldExpr{{"backfill", k.Backfill}, {"default", k.Default}}}
}

// fill is the value existing rows get: the backfill, else the default.
func (k *AddColumn) fill() string {
	if k.Backfill != "" {
		return k.Backfill
	}
	return k.Default
}

func (k *AddColumn) liveExpressions(t *Table) []expression {
	var out []expression
	typ := k.Type
	if c := t.Column(k.Column); c != nil {
		typ = c.Type
	}
	if fill := k.fill(); fill != "" && typ != "" {
		x := expression{field: "backfill", expr: fillExpr(k.Column, fill), column: k.Column, typ: typ, hint: hintAssign, onRows: true}
		if k.Backfill != "" && t.Column(k.Column) == nil {
			// The phase keeps a value already written to the new column;
			// existing rows have none.
			x.rowsExpr = k.Backfill
		}
		out = append(out, x)
	}
	if k.Default != "" && k.Type != "" {
		out = append(out, expression{field: "default", expr: k.Default, column: k.Column, typ: k.Type, hint: hintDefault})
	}
	return out
}

func (k *AddColumn) CheckLive(t *Table) []Problem {
	if t.Column(k.Column) != nil {
		return []Problem{{Field: "column", Message: fmt.Sprintf("column %q already exists on %s", k.Column, t.Name), Hint: "pick a new name, or use set_not_null / change_column_type for an existing column"}}
	}
	return nil
}

func (k *AddColumn) FlagMeta() map[string]string {
	return map[string]string{"table": k.Table().String(), "old_column": "", "new_column": k.Column}
}

// TypeNames lists the types the spec names, for the live regtype check.
func (k *AddColumn) TypeNames() map[string]string { return map[string]string{"type": k.Type} }

func (k *AddColumn) Compile(id string, target Target) ([]phases.Phase, error) {
	return compileAddColumn(k, id, target)
}

func compileAddColumn(k *AddColumn, id string, target Target) ([]phases.Phase, error) {
	t := k.Table()
	col := phases.Column{Table: t, Name: k.Column}
	expand := phases.Phase{
		Name:       "expand",
		Purpose:    fmt.Sprintf("add %s.%s %s, nullable (catalog only, no rewrite)", t, k.Column, k.Type),
		Statements: []phases.Statement{col.Add(k.Type)},
		Flags:      flagVariants(id, "old", "old"),
		Rollback:   []phases.Statement{col.Drop()},
	}
	if k.Default != "" {
		// A default set apart from ADD COLUMN never rewrites the table,
		// even when volatile; it covers rows inserted from now on by
		// applications that do not write the column yet.
		expand.Statements = append(expand.Statements, col.SetDefault(k.Default))
		expand.Purpose += fmt.Sprintf(", with default %s for new rows", k.Default)
	}
	fill := k.fill()
	// Until NOT NULL holds, a write that leaves the column NULL gets the
	// fill value: instances that do not set the column yet cannot make
	// enforce fail.
	filler := phases.Fill{ID: id, Column: col, Expr: fill}
	if k.NotNull {
		expand.Statements = append(expand.Statements, filler.Install()...)
		expand.Rollback = append(filler.Remove(), expand.Rollback...)
		expand.Purpose += fmt.Sprintf(", and a trigger that fills %s with %s on writes that leave it NULL", k.Column, fill)
	}
	out := []phases.Phase{expand}
	gate := phases.NoGate
	if fill != "" {
		work := &phases.Backfill{Schema: t.SchemaOrPublic(), Table: t.Name, Column: k.Column, Expr: fillExpr(k.Column, fill)}
		if k.NotNull {
			work.KeptBy = filler.TriggerName()
		}
		out = append(out, phases.Phase{
			Name:     "backfill",
			Purpose:  fmt.Sprintf("fill %s for existing rows with %s, in batches", k.Column, fill),
			Backfill: work,
		})
		gate = phases.BackfillVerified
	}
	out = append(out, phases.Phase{
		Name:          "dual_write",
		Purpose:       fmt.Sprintf("applications start reading and writing %s", k.Column),
		Gate:          gate,
		Flags:         flagVariants(id, "new", "new"),
		RollbackFlags: flagVariants(id, "old", "old"),
	})
	if k.NotNull {
		nn := phases.NotNull{Column: col, Version: target.Version}
		// The gate lets every instance run the code that writes the column
		// before the fill trigger goes.
		out = append(out, phases.Phase{
			Name:       "enforce",
			Purpose:    fmt.Sprintf("make %s NOT NULL without a long lock, then drop the fill trigger", k.Column),
			Gate:       phases.FlagsSoaked,
			Statements: append(nn.Statements(), filler.Remove()...),
			Rollback:   append(filler.Install(), nn.Rollback()...),
		})
	}
	return out, nil
}

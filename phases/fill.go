package phases

import "fmt"

// Fill is the trigger that gives a column its fill value whenever a write
// leaves it NULL, from the moment the planner starts filling existing rows
// until NOT NULL is enforced (add_column with not_null, set_not_null). Without
// it, an application instance that does not set the column yet could insert
// a NULL after the backfill was verified, and the enforce phase would fail.
//
// Expr is evaluated over the written row: the function selects it from
// (SELECT NEW.*) aliased as the table, so the expression is written exactly
// as in the backfill, with the table's column names (or table.column).
type Fill struct {
	// ID is the change id; the trigger and function names derive from it.
	ID     string
	Column Column
	Expr   string
}

// TriggerName is the name of the trigger and of its function.
func (f Fill) TriggerName() string { return objectName("planner_fill_", f.ID) }

func (f Fill) function() string {
	return TableRef{Schema: f.Column.Table.Schema, Name: f.TriggerName()}.Quoted()
}

// Install creates the function and the trigger. Its WHEN clause makes every
// write that sets the column pay nothing.
func (f Fill) Install() []Statement {
	t := f.Column.Table
	col := "NEW." + Ident(f.Column.Name)
	body := fmt.Sprintf("\nBEGIN\n  %s := (SELECT (%s\n) FROM (SELECT NEW.*) AS %s);\n  RETURN NEW;\nEND\n", col, f.Expr, Ident(t.Name))
	tag := dollarTag(body)
	return []Statement{
		{
			SQL:    fmt.Sprintf("CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS %s%s%s", f.function(), tag, body, tag),
			Held:   HeldNone,
			Effect: probeFunction(t.SchemaOrPublic(), f.TriggerName(), body),
			Object: functionObject(t.SchemaOrPublic(), f.TriggerName()),
		},
		{
			SQL: fmt.Sprintf("CREATE OR REPLACE TRIGGER %s\nBEFORE INSERT OR UPDATE ON %s\nFOR EACH ROW WHEN (%s IS NULL)\nEXECUTE FUNCTION %s()",
				Ident(f.TriggerName()), t.Quoted(), col, f.function()),
			Lock:   ShareRowExclusive,
			Tables: TableList{t},
			Held:   HeldInstant,
			Done:   probeTrigger(t, f.TriggerName()),
			Object: triggerObject(t, f.TriggerName()),
		},
	}
}

// Remove drops the trigger and its function (enforce, once NOT NULL holds,
// or rollback). It runs before the column can be dropped: the trigger's
// WHEN clause depends on it.
func (f Fill) Remove() []Statement {
	t := f.Column.Table
	return []Statement{
		{
			SQL:    fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", Ident(f.TriggerName()), t.Quoted()),
			Lock:   AccessExclusive,
			Tables: TableList{t},
			Held:   HeldInstant,
			Done:   not(probeTrigger(t, f.TriggerName())),
			Object: triggerObject(t, f.TriggerName()),
		},
		{SQL: fmt.Sprintf("DROP FUNCTION IF EXISTS %s()", f.function()), Held: HeldNone,
			Effect: not(probeFunction(t.SchemaOrPublic(), f.TriggerName(), "")),
			Object: functionObject(t.SchemaOrPublic(), f.TriggerName())},
	}
}

package phases

import (
	"fmt"
	"strings"
)

// Statements on whole tables: create_table, rename_table and drop_table.
// Each is catalog only; the ones on a table applications use take ACCESS
// EXCLUSIVE for that instant, under the runner's lock_timeout.

// NewTable is a table to create, with its columns and constraints written
// inline (a new table is empty: nothing to scan or validate).
type NewTable struct {
	TableRef
	// Columns are `"name" type [NOT NULL] [DEFAULT (expr)]`, already quoted.
	Columns []string
	// Constraints are `CONSTRAINT "name" ...` clauses, already quoted.
	Constraints []string
	// References are the tables its foreign keys reference (their lock).
	References []TableRef
}

// probeTableExists: a relation of that name exists (of any kind).
func probeTableExists(t TableRef) string {
	return "SELECT " + t.regclass() + " IS NOT NULL"
}

// probeRelkind: the relation exists and has one of the relkinds.
func probeRelkind(t TableRef, kinds string) string {
	return fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = %s AND relkind = ANY (%s::\"char\"[]))",
		t.regclass(), literal("{"+kinds+"}"))
}

// Create creates the table. A foreign key takes SHARE ROW EXCLUSIVE on the
// referenced table for an instant (blocking its writes while queued, hence
// the lock_timeout); the new table itself is locked by nobody else.
func (n NewTable) Create() Statement {
	items := append(append([]string{}, n.Columns...), n.Constraints...)
	st := Statement{
		SQL:    fmt.Sprintf("CREATE TABLE %s (\n  %s\n)", n.Quoted(), strings.Join(items, ",\n  ")),
		Lock:   AccessExclusive,
		Tables: TableList{n.TableRef},
		Held:   "instant: the table is new, no application uses it yet",
		Done:   probeTableExists(n.TableRef),
	}
	if len(n.References) > 0 {
		st.Lock, st.Tables = ShareRowExclusive, nil
		for _, r := range n.References {
			st.Tables = append(st.Tables, r)
		}
		st.Held = "instant (catalog only: the new table has no rows to check)"
	}
	return st
}

// CreateIndex builds an index of a table created in the same transaction:
// the table is empty, so a plain CREATE INDEX is instant and needs no
// CONCURRENTLY (which could not run in that transaction).
func (ix Index) CreateIndex() Statement {
	t := ix.Table
	unique := ""
	if ix.Unique {
		unique = "UNIQUE "
	}
	return Statement{
		SQL:    fmt.Sprintf("CREATE %sINDEX %s ON %s %s", unique, Ident(ix.Name), t.Quoted(), ix.definition()),
		Lock:   Share,
		Tables: TableList{t},
		Held:   "instant: the table is new and empty",
		Done:   probeValidIndex(t.SchemaOrPublic(), ix.Name),
	}
}

// DropIfEmpty is the undo of Create: it refuses, failing its transaction,
// when the table has rows (a rollback would destroy data written since),
// then drops it. Without CASCADE: an object built on it since (a foreign
// key, a view) makes the drop fail rather than disappear with it.
func (n NewTable) DropIfEmpty() []Statement {
	gone := not(probeTableExists(n.TableRef))
	body := fmt.Sprintf("\nBEGIN\n  LOCK TABLE %s IN ACCESS EXCLUSIVE MODE;\n  IF EXISTS (SELECT FROM %s) THEN\n    RAISE EXCEPTION USING MESSAGE = %s;\n  END IF;\nEND\n",
		n.Quoted(), n.Quoted(), literal(fmt.Sprintf("table %s has rows: rolling back its creation would drop them; empty it first if they may go (or keep the table and roll back no further)", n.String())))
	tag := dollarTag(body)
	return []Statement{
		{SQL: "DO " + tag + body + tag, Lock: AccessExclusive, Tables: TableList{n.TableRef}, Held: HeldInstant, Done: gone},
		{SQL: "DROP TABLE IF EXISTS " + n.Quoted(), Lock: AccessExclusive, Tables: TableList{n.TableRef}, Held: HeldInstant},
	}
}

// RenameTable renames a table (catalog only). Probed: once the old name
// no longer names a table, the rename has run.
func RenameTable(from TableRef, to string) Statement {
	return Statement{
		SQL:    fmt.Sprintf("ALTER TABLE %s RENAME TO %s", from.Quoted(), Ident(to)),
		Lock:   AccessExclusive,
		Tables: TableList{from},
		Held:   HeldInstant,
		Done:   not(probeRelkind(from, "r,p")),
	}
}

// CompatView is the view left under a renamed table's old name, so that
// applications still using the old name keep reading and writing: a
// simple SELECT * of one table is automatically updatable (INSERT, UPDATE,
// DELETE, RETURNING, ON CONFLICT), security_invoker (PostgreSQL 15) makes
// privileges and row-level security apply to the caller as on the table,
// and the table's grants are copied to it.
type CompatView struct {
	Old   TableRef // the view's name: the table's old name
	Table TableRef // the renamed table
}

// Create creates the view and copies the table's SELECT, INSERT, UPDATE
// and DELETE grants to it (column grants are not copied).
func (v CompatView) Create() []Statement {
	grants := fmt.Sprintf(`
DECLARE
  g record;
BEGIN
  FOR g IN
    SELECT DISTINCT a.privilege_type,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee
    FROM pg_catalog.pg_class c, aclexplode(c.relacl) a
    LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
    WHERE c.oid = %s AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')
      AND a.grantee <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
  LOOP
    EXECUTE format('GRANT %%s ON %%s TO %%s', g.privilege_type, %s, g.grantee);
  END LOOP;
END
`, v.Table.regclass(), literal(v.Old.Quoted()))
	tag := dollarTag(grants)
	return []Statement{
		{
			SQL:    fmt.Sprintf("CREATE VIEW %s WITH (security_invoker = true) AS SELECT * FROM %s", v.Old.Quoted(), v.Table.Quoted()),
			Lock:   AccessShare,
			Tables: TableList{v.Table},
			Held:   HeldInstant,
			Done:   probeRelkind(v.Old, "v"),
		},
		{SQL: "DO " + tag + grants + tag, Held: HeldNone, Done: fmt.Sprintf(`SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c, aclexplode(c.relacl) a
  WHERE c.oid = %s AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')
    AND a.grantee <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class v, aclexplode(v.relacl) b
      WHERE v.oid = %s AND b.grantee = a.grantee AND b.privilege_type = a.privilege_type))`, v.Table.regclass(), v.Old.regclass())},
	}
}

// Drop drops the view (catalog only). Without CASCADE: a view someone
// built on the old name makes it fail rather than disappear.
func (v CompatView) Drop() Statement {
	return Statement{
		SQL:    "DROP VIEW IF EXISTS " + v.Old.Quoted(),
		Lock:   AccessExclusive,
		Tables: TableList{v.Old},
		Held:   HeldInstant,
		Done:   not(probeRelkind(v.Old, "v")),
	}
}

// RenameGuard refuses, failing the rename's transaction, what a view
// under the old name would not serve like the table: rules on the table,
// and trigger functions that read TG_TABLE_NAME or TG_RELNAME (they would
// see the new name for writes made through the old one). done skips it
// once the rename has run.
func RenameGuard(t TableRef, done string) []Statement {
	rules := assert(fmt.Sprintf("SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite WHERE ev_class = %s AND rulename <> '_RETURN')", t.regclass()),
		fmt.Sprintf("%s has rules: writes through a view under its old name would not behave as on the table; replace the rules by triggers, or rename the table in a maintenance window with every application stopped", t.String()))
	trig := assert(fmt.Sprintf(`SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_proc p ON p.oid = tg.tgfoid
  WHERE tg.tgrelid = %s AND NOT tg.tgisinternal AND p.prosrc ~* '\mTG_(TABLE_NAME|RELNAME)\M')`, t.regclass()),
		fmt.Sprintf("a trigger function of %s reads TG_TABLE_NAME or TG_RELNAME: after the rename it sees the new name, also for writes made through the old one; make it independent of the table's name first (compare TG_RELID), then rename", t.String()))
	rules.Done, trig.Done = done, done
	return []Statement{rules, trig}
}

// DependentViewGuard refuses, failing its transaction, to move a table
// aside while views are built on it: they would keep serving it under
// their own name, and its purge would fail.
func DependentViewGuard(t TableRef, done string) Statement {
	st := assert(fmt.Sprintf(`SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
  WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refobjid = %s AND r.ev_class <> d.refobjid)`, t.regclass()),
		fmt.Sprintf("views are built on %s: drop them first (they would keep using the table, and its purge would fail)", t.String()))
	st.Done = done
	return st
}

// DropTable drops a table for good (catalog only; its files are unlinked
// at commit). Without CASCADE.
func DropTable(t TableRef) Statement {
	return Statement{
		SQL:    "DROP TABLE IF EXISTS " + t.Quoted(),
		Lock:   AccessExclusive,
		Tables: TableList{t},
		Held:   HeldInstant,
	}
}

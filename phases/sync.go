package phases

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Sync is the trigger that keeps an old and a new column equal while two
// versions of an application run at once (rename_column, change_column_type).
//
// Direction is decided from the values a statement writes, never from
// search_path or session settings, so it works through PgBouncer and any ORM:
//
//   - INSERT: new NULL → new := up(old); otherwise old := down(new) (new wins
//     when both are set and disagree; old NULL is filled from new).
//   - UPDATE: new changed → old := down(new) (new wins when both changed and
//     disagree); only old changed, or new is NULL → new := up(old); neither
//     changed but they differ (a lossy conversion: up(down(x)) != x) →
//     old := down(new), so an old application's full-row UPDATE never
//     overwrites what a new one wrote.
//
// A WHEN clause skips the trigger function for rows already in agreement
// (new IS NOT DISTINCT FROM up(old)), which includes the backfill's own
// updates and the writes of an application that writes both columns.
//
// The trigger fires on every UPDATE, not only those of old or new: an
// update of another column (the key, say) fills a row not backfilled yet,
// so that no write can move a row the backfill has not done yet behind
// its cursor, and a range the backfill copied stays right (its copy proves
// it, see Backfill.KeptBy). For rows in agreement the WHEN clause costs
// one comparison; the row lock a BEFORE UPDATE row trigger takes is paid
// whatever the column list.
//
// BEFORE ROW triggers fire in name order: a user trigger that changes
// either column and sorts after planner_sync_<id> would act after the sync
// and could leave the columns apart.
//
// While old applications may write the old column the new column must have
// no DEFAULT: an old-app INSERT would carry the default in new, and new would
// win over the value the app wrote in old. Set the default at contract, once
// the old column is renamed away (Retarget) or removed.
type Sync struct {
	// ID is the change id; object names derive from it.
	ID string
	// Table is the table of both columns.
	Table TableRef
	// Old and New are the column names, unquoted.
	Old, New string
	// OldType and NewType are the column types as SQL (format_type), needed
	// when Up/Down are set or the types differ.
	OldType, NewType string
	// Up computes the new value from the old one, written with the old
	// column's name (e.g. `price * 100`); Down computes the old value from
	// the new one, written with the new column's name. Empty means identity
	// (a rename), with a cast when the types differ.
	Up, Down string
	// UpLabel and DownLabel declare the conversion functions' volatility;
	// the zero value is VOLATILE.
	UpLabel, DownLabel FunctionLabel
}

// FunctionLabel is the volatility and parallel safety a generated function
// is declared with: never more than its body has, since PostgreSQL trusts
// the declaration (an IMMUTABLE function may be folded at plan time, a
// STABLE one evaluated once per scan).
type FunctionLabel struct {
	// Volatility is IMMUTABLE, STABLE or VOLATILE ("" is VOLATILE).
	Volatility   string
	ParallelSafe bool
}

func (l FunctionLabel) String() string {
	v := l.Volatility
	if v == "" {
		v = "VOLATILE"
	}
	if l.ParallelSafe {
		return v + " PARALLEL SAFE"
	}
	return v
}

// TriggerName is the name of the trigger (and of its function).
func (s Sync) TriggerName() string { return objectName("planner_sync_", s.ID) }

// UpFunction and DownFunction name the conversion functions (created only
// when a conversion is needed, see needsUp/needsDown).
func (s Sync) UpFunction() string   { return objectName("planner_up_", s.ID) }
func (s Sync) DownFunction() string { return objectName("planner_down_", s.ID) }

// needsUp says whether computing new from old needs a conversion function.
func (s Sync) needsUp() bool { return s.Up != "" || s.typesDiffer() }

// needsDown says whether computing old from new needs a conversion function.
func (s Sync) needsDown() bool { return s.Down != "" || s.typesDiffer() }

func (s Sync) typesDiffer() bool {
	return s.OldType != "" && s.NewType != "" && !strings.EqualFold(s.OldType, s.NewType)
}

func (s Sync) qualified(name string) string {
	return pgx.Identifier{s.Table.SchemaOrPublic(), name}.Sanitize()
}

// UpExpr is the SQL expression computing the new column's value from arg
// (an SQL expression of the old column's type, e.g. a quoted column name).
// The backfill uses UpExpr(quoted old column) so that it converts exactly as
// the trigger does; it stays valid until Remove runs.
func (s Sync) UpExpr(arg string) string {
	if !s.needsUp() {
		return arg
	}
	return s.qualified(s.UpFunction()) + "(" + arg + ")"
}

// DownExpr is the SQL expression computing the old column's value from arg.
func (s Sync) DownExpr(arg string) string {
	if !s.needsDown() {
		return arg
	}
	return s.qualified(s.DownFunction()) + "(" + arg + ")"
}

// conversion builds a SQL-standard function body (RETURN expr): it is parsed
// when created, so later search_path changes cannot alter it, and the
// planner can inline it into the trigger's WHEN clause and the backfill's
// queries (when the label is no less volatile than the body). The
// expression is followed by a newline so that a trailing -- comment in it
// ends there.
func conversion(name, param, from, to, expr string, label FunctionLabel) string {
	if expr == "" {
		expr = pgx.Identifier{param}.Sanitize()
	}
	return fmt.Sprintf("CREATE OR REPLACE FUNCTION %s(%s %s) RETURNS %s LANGUAGE sql %s\nRETURN CAST((%s\n) AS %s)",
		name, pgx.Identifier{param}.Sanitize(), from, to, label, expr, to)
}

func (s Sync) triggerFunction() string {
	body := s.triggerBody()
	tag := dollarTag(body)
	return fmt.Sprintf("CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS %s%s%s",
		s.qualified(s.TriggerName()), tag, body, tag)
}

// functionStatement creates or replaces the trigger function; its effect
// is the function with exactly this body (contract replaces it).
func (s Sync) functionStatement() Statement {
	return Statement{SQL: s.triggerFunction(), Held: HeldNone,
		Effect: probeFunction(s.Table.SchemaOrPublic(), s.TriggerName(), s.triggerBody()),
		Object: functionObject(s.Table.SchemaOrPublic(), s.TriggerName())}
}

// triggerBody is the PL/pgSQL body of the trigger function.
func (s Sync) triggerBody() string {
	o := "NEW." + pgx.Identifier{s.Old}.Sanitize()
	n := "NEW." + pgx.Identifier{s.New}.Sanitize()
	oldN := "OLD." + pgx.Identifier{s.New}.Sanitize()
	body := fmt.Sprintf(`
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF %[1]s IS NULL THEN
      %[1]s := %[3]s;
    ELSE
      -- new is set: it wins (old NULL, a DEFAULT, or a disagreeing value)
      %[2]s := %[4]s;
    END IF;
  ELSIF %[1]s IS DISTINCT FROM %[5]s THEN
    -- new changed (alone, or with old and they disagree): new wins
    %[2]s := %[4]s;
  ELSIF %[2]s IS DISTINCT FROM %[6]s OR %[1]s IS NULL THEN
    -- only old changed, or the row is not backfilled yet
    %[1]s := %[3]s;
  ELSE
    -- neither changed but they differ (a lossy down conversion, rewritten
    -- by a full-row UPDATE): new wins, old is recomputed from it
    %[2]s := %[4]s;
  END IF;
  RETURN NEW;
END
`, n, o, s.UpExpr(o), s.DownExpr(n), oldN, "OLD."+pgx.Identifier{s.Old}.Sanitize())
	return body
}

// dollarTag returns a dollar-quote tag that does not occur in body (quoted
// identifiers may contain anything, "$sync$" included).
func dollarTag(body string) string {
	for i := 0; ; i++ {
		tag := "$sync$"
		if i > 0 {
			tag = fmt.Sprintf("$sync%d$", i)
		}
		if !strings.Contains(body, tag) {
			return tag
		}
	}
}

func (s Sync) triggerExists() string {
	return probeTrigger(s.Table, s.TriggerName())
}

// Install creates the conversion functions, the trigger function and the
// trigger. Run it in the same transaction as the ADD COLUMN of the new
// column, so no write slips between the two.
func (s Sync) Install() []Statement {
	var out []Statement
	if s.needsUp() {
		out = append(out, Statement{
			SQL:    conversion(s.qualified(s.UpFunction()), s.Old, s.OldType, s.NewType, s.Up, s.UpLabel),
			Held:   "no table lock",
			Effect: probeFunction(s.Table.SchemaOrPublic(), s.UpFunction(), ""),
			Object: functionObject(s.Table.SchemaOrPublic(), s.UpFunction()),
		})
	}
	if s.needsDown() {
		out = append(out, Statement{
			SQL:    conversion(s.qualified(s.DownFunction()), s.New, s.NewType, s.OldType, s.Down, s.DownLabel),
			Held:   "no table lock",
			Effect: probeFunction(s.Table.SchemaOrPublic(), s.DownFunction(), ""),
			Object: functionObject(s.Table.SchemaOrPublic(), s.DownFunction()),
		})
	}
	o := "NEW." + pgx.Identifier{s.Old}.Sanitize()
	n := "NEW." + pgx.Identifier{s.New}.Sanitize()
	out = append(out,
		s.functionStatement(),
		Statement{
			SQL: fmt.Sprintf("CREATE OR REPLACE TRIGGER %s\nBEFORE INSERT OR UPDATE ON %s\nFOR EACH ROW WHEN (%s IS DISTINCT FROM %s)\nEXECUTE FUNCTION %s()",
				pgx.Identifier{s.TriggerName()}.Sanitize(),
				s.Table.Quoted(), n, s.UpExpr(o), s.qualified(s.TriggerName())),
			Lock:   ShareRowExclusive,
			Tables: TableList{s.Table},
			Held:   "instant (catalog only)",
			Done:   s.triggerExists(),
			Object: triggerObject(s.Table, s.TriggerName()),
		},
	)
	return out
}

// Remove drops the trigger and its functions (purge, or rollback of
// expand). It must run before the old column is dropped: the trigger
// depends on both columns.
func (s Sync) Remove() []Statement {
	out := []Statement{
		{
			SQL:    fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", pgx.Identifier{s.TriggerName()}.Sanitize(), s.Table.Quoted()),
			Lock:   AccessExclusive,
			Tables: TableList{s.Table},
			Held:   "instant (catalog only)",
			Done:   "SELECT NOT (" + s.triggerExists() + ")",
			Object: triggerObject(s.Table, s.TriggerName()),
		},
		s.dropFunction(s.TriggerName(), "()"),
	}
	// Drop the conversion functions whatever the types: a spec edited
	// between install and remove must not leave one behind.
	return append(out, s.dropFunction(s.UpFunction(), ""), s.dropFunction(s.DownFunction(), ""))
}

func (s Sync) dropFunction(name, args string) Statement {
	return Statement{SQL: fmt.Sprintf("DROP FUNCTION IF EXISTS %s%s", s.qualified(name), args), Held: "no table lock",
		Effect: not(probeFunction(s.Table.SchemaOrPublic(), name, "")), Object: functionObject(s.Table.SchemaOrPublic(), name)}
}

// objectName is prefix+id, cut to PostgreSQL's 63-byte identifier limit with
// a hash of the full name so that two long ids never collide.
func objectName(prefix, id string) string {
	name := prefix + id
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := "_" + hex.EncodeToString(sum[:])[:8]
	cut := 63 - len(suffix)
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut] + suffix
}

// literal quotes s as an SQL string literal (standard_conforming_strings).
// Only for probes, which are fixed query strings without parameters.
func literal(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

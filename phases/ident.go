package phases

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// TableRef names a table, unquoted: the one form of a table's identity from
// the spec to the runner (package planner calls it TableName).
type TableRef struct {
	Schema string `json:"schema"` // "" means public
	Name   string `json:"name"`
}

// SchemaOrPublic returns the schema, defaulting to public.
func (t TableRef) SchemaOrPublic() string {
	if t.Schema == "" {
		return "public"
	}
	return t.Schema
}

// Quoted is the table's SQL identifier, always schema-qualified and quoted.
func (t TableRef) Quoted() string { return pgx.Identifier{t.SchemaOrPublic(), t.Name}.Sanitize() }

// String is the table as plans and messages name it: schema.table, unquoted.
func (t TableRef) String() string { return t.SchemaOrPublic() + "." + t.Name }

// Key is the table as a map key: "" made public, so that one table has one
// key, while two tables never share one (String does not tell "x.y".z from
// x."y.z"; Key does).
func (t TableRef) Key() TableRef { return TableRef{Schema: t.SchemaOrPublic(), Name: t.Name} }

// Equal says whether t and o name the same table ("" and public are one
// schema).
func (t TableRef) Equal(o TableRef) bool { return t.Key() == o.Key() }

// TableList lists tables: those a statement locks, a phase's partitions.
// Plans show it, in JSON too, as schema.table names.
type TableList []TableRef

// MarshalJSON writes the tables as schema.table strings (null when nil,
// as a nil []string would be).
func (l TableList) MarshalJSON() ([]byte, error) {
	if l == nil {
		return []byte("null"), nil
	}
	names := make([]string, len(l))
	for i, t := range l {
		names[i] = t.String()
	}
	return json.Marshal(names)
}

// String joins the tables with ", ".
func (l TableList) String() string {
	names := make([]string, len(l))
	for i, t := range l {
		names[i] = t.String()
	}
	return strings.Join(names, ", ")
}

// Contains says whether t is one of the tables.
func (l TableList) Contains(t TableRef) bool {
	return slices.ContainsFunc(l, t.Equal)
}

// regclass is an expression for the table's oid in a probe (NULL when the
// table does not exist, so probes answer false instead of failing).
func (t TableRef) regclass() string { return "to_regclass(" + literal(t.Quoted()) + ")" }

// Ident quotes one identifier.
func Ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// IdentList quotes and joins column names: "a", "b".
func IdentList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = Ident(n)
	}
	return strings.Join(q, ", ")
}

// DerivedName builds a name like PostgreSQL's own (<table>_<middle>_<suffix>),
// cut to 63 bytes deterministically: when too long, the parts are shortened
// and a hash of the full name keeps distinct names distinct.
func DerivedName(table, middle, suffix string) string {
	parts := []string{table}
	if middle != "" {
		parts = append(parts, middle)
	}
	full := strings.Join(append(parts, suffix), "_")
	if len(full) <= maxName {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	tail := "_" + hex.EncodeToString(sum[:])[:8] + "_" + suffix
	return cutUTF8(strings.Join(parts, "_"), maxName-len(tail)) + tail
}

// FitName returns name when it fits in 63 bytes, else a deterministic
// shortening with a hash of the full name.
func FitName(name string) string {
	if len(name) <= maxName {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	tail := "_" + hex.EncodeToString(sum[:])[:8]
	return cutUTF8(name, maxName-len(tail)) + tail
}

const maxName = 63

// cutUTF8 cuts s to at most n bytes without splitting a character.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Probes: queries returning one boolean, true when an effect is in place.
// Names are inlined as literals because a probe is a fixed query string.

func probeColumnExists(t TableRef, column string) string {
	return fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = %s AND attname = %s AND attnum > 0 AND NOT attisdropped)",
		t.regclass(), literal(column))
}

func probeNotNull(t TableRef, column string) string {
	return fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = %s AND attname = %s AND attnotnull AND NOT attisdropped)",
		t.regclass(), literal(column))
}

func probeConstraint(t TableRef, name string, validated bool) string {
	cond := ""
	if validated {
		cond = " AND convalidated"
	}
	return fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = %s AND conname = %s%s)",
		t.regclass(), literal(name), cond)
}

func probeValidIndex(schema, name string) string {
	return fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s AND i.indisvalid)",
		literal(schema), literal(name))
}

func probeTrigger(t TableRef, name string) string {
	return fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = %s AND tgname = %s)",
		t.regclass(), literal(name))
}

func probeHasDefault(t TableRef, column string) string {
	return fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = %s AND attname = %s AND atthasdef AND NOT attisdropped)",
		t.regclass(), literal(column))
}

// probeFunction: a function of that name exists in the schema (any
// arguments); with body, its source (prosrc) is exactly body.
func probeFunction(schema, name, body string) string {
	cond := ""
	if body != "" {
		cond = " AND p.prosrc = " + literal(body)
	}
	return fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s AND p.proname = %s%s)",
		literal(schema), literal(name), cond)
}

// functionObject and triggerObject are Statement.Object names.
func functionObject(schema, name string) string { return "function " + schema + "." + name }
func triggerObject(t TableRef, name string) string {
	return "trigger " + t.String() + "." + name
}

func not(probe string) string { return "SELECT NOT (" + probe + ")" }

func or(a, b string) string { return "SELECT (" + a + ") OR (" + b + ")" }

// Held descriptions, shared so the plan reads consistently.
const (
	HeldInstant = "instant (catalog only)"
	HeldScan    = "while scanning the table"
	HeldBuild   = "while building the index"
	HeldNone    = "no table lock"
)

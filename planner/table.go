package planner

import (
	"strings"

	"github.com/pgplanner/planner/phases"
)

// TableName is a possibly schema-qualified table name, unquoted: the same
// type as phases.TableRef, so a table keeps one identity from its spec to
// the statements that lock it.
type TableName = phases.TableRef

// ParseTableName splits "schema.table" (quotes allowed: "My Schema"."T").
func ParseTableName(s string) TableName {
	parts := splitQualified(s)
	if len(parts) == 2 {
		return TableName{Schema: parts[0], Name: parts[1]}
	}
	return TableName{Name: strings.Join(parts, ".")}
}

// splitQualified splits on dots outside double quotes and unquotes parts.
func splitQualified(s string) []string {
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' && quoted && i+1 < len(s) && s[i+1] == '"':
			cur.WriteByte('"')
			i++
		case c == '"':
			quoted = !quoted
		case c == '.' && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String())
}

// Table is what the catalogs say about a table, captured when a change is
// registered so that its phases compile the same way at every deploy.
type Table struct {
	Name    TableName    `json:"name"`
	Columns []Column     `json:"columns"`
	Key     []string     `json:"key"` // primary key, else a unique NOT NULL column set; empty: none
	Indexes []Index      `json:"indexes"`
	Checks  []Constraint `json:"constraints"` // CHECK, UNIQUE, FOREIGN KEY on this table
	// Referencing are foreign keys on other tables that reference this one.
	Referencing []Constraint `json:"referencing"`
	RowEstimate int64        `json:"row_estimate"`
	// Expressions holds, per expression text of the change, what the
	// catalog says about its volatility (filled by validate, next and plan).
	Expressions map[string]ExprFacts `json:"expressions,omitempty"`
	// Partitioning is set for a declaratively partitioned table (partition.go).
	Partitioning *Partitioning `json:"partitioning,omitempty"`
	// PartitionedReferrers are the tables among Referencing's that are
	// partitioned.
	PartitionedReferrers []TableName `json:"partitioned_referrers,omitempty"`
}

// Column is one column of a table.
type Column struct {
	Name      string `json:"name"`
	Type      string `json:"type"` // format_type(), e.g. "character varying(40)"
	NotNull   bool   `json:"not_null"`
	Default   string `json:"default,omitempty"`   // pg_get_expr of the default
	Generated bool   `json:"generated,omitempty"` // identity or generated column
}

// Index is a non-constraint index or the index behind a constraint.
type Index struct {
	Name       string   `json:"name"`
	Definition string   `json:"definition"` // pg_get_indexdef
	Columns    []string `json:"columns"`    // key columns; expression indexes list referenced columns
	Unique     bool     `json:"unique"`
	Primary    bool     `json:"primary"`
	Constraint string   `json:"constraint,omitempty"` // constraint it backs, if any
}

// Constraint is a CHECK, UNIQUE or FOREIGN KEY constraint.
type Constraint struct {
	Name       string    `json:"name"`
	Table      TableName `json:"table"`
	Type       string    `json:"type"`       // "c", "u", "f" as in pg_constraint.contype
	Definition string    `json:"definition"` // pg_get_constraintdef
	Columns    []string  `json:"columns"`
}

// Column returns the named column, or nil.
func (t *Table) Column(name string) *Column {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

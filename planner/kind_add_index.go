package planner

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/pgplanner/planner/phases"
)

func init() { Register("add_index", func() Kind { return &AddIndex{} }) }

// AddIndex builds an index with CREATE INDEX CONCURRENTLY.
type AddIndex struct {
	TableName string `yaml:"table" json:"table"`
	// Name defaults to <table>_<columns>_idx (or _key when unique).
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Columns are column names; an entry containing "(" is an expression,
	// e.g. lower(email).
	Columns []string `yaml:"columns" json:"columns"`
	Unique  bool     `yaml:"unique,omitempty" json:"unique,omitempty"`
	// Where makes a partial index.
	Where string `yaml:"where,omitempty" json:"where,omitempty"`
	// Using is the access method (default btree).
	Using  string `yaml:"using,omitempty" json:"using,omitempty"`
	Allows `yaml:",inline" json:",inline"`
}

func (k *AddIndex) Expressions() []Expression {
	var out []Expression
	for i, c := range k.Columns {
		if phases.IsExpression(c) {
			out = append(out, Expression{Field: fmt.Sprintf("columns[%d]", i), SQL: c})
		}
	}
	return append(out, Expression{Field: "where", SQL: k.Where})
}

// indexMethods are the access methods built into PostgreSQL.
var indexMethods = []string{"brin", "btree", "gin", "gist", "hash", "spgist"}

func (k *AddIndex) Table() TableName { return ParseTableName(k.TableName) }

// IndexName is the index's name, given or derived.
func (k *AddIndex) IndexName() string {
	if k.Name != "" {
		return k.Name
	}
	suffix := "idx"
	if k.Unique {
		suffix = "key"
	}
	return phases.DerivedName(k.Table().Name, nameFromColumns(k.Columns), suffix)
}

func (k *AddIndex) accessMethod() (string, string) { return "using", k.Using }

func (k *AddIndex) effect(string) effect {
	var e effect
	for i, c := range k.Columns {
		if phases.IsExpression(c) {
			e.exprs = append(e.exprs, fieldExpr{fmt.Sprintf("columns[%d]", i), c})
		} else {
			e.uses = append(e.uses, colRef{fmt.Sprintf("columns[%d]", i), c})
		}
	}
	e.exprs = append(e.exprs, fieldExpr{"where", k.Where})
	e.names = []objName{{"name", k.IndexName(), true}}
	e.indexes = []Index{{Name: k.IndexName(), Columns: plainColumns(k.Columns), Unique: k.Unique}}
	return e
}

// liveExpressions: the partial index's predicate.
func (k *AddIndex) liveExpressions(*Table) []expression {
	if k.Where == "" {
		return nil
	}
	return []expression{{field: "where", expr: k.Where, hint: hintCondition, onRows: true}}
}

func (k *AddIndex) method() string {
	if k.Using == "" {
		return "btree"
	}
	return strings.ToLower(k.Using)
}

func (k *AddIndex) Check() []Problem {
	ps := tableProblems(k.TableName)
	ps = append(ps, identifier("name", k.Name)...)
	var names []string
	for i, c := range k.Columns {
		if phases.IsExpression(c) {
			ps = append(ps, exprProblems(fmt.Sprintf("columns[%d]", i), c)...)
			names = append(names, fmt.Sprintf("expression %d", i)) // keeps requiredList's checks for names only
		} else {
			names = append(names, c)
		}
	}
	if len(k.Columns) == 0 {
		names = nil
	}
	ps = append(ps, requiredList("columns", names)...)
	ps = append(ps, exprProblems("where", k.Where)...)
	ps = append(ps, reachProblems(k, k.Table())...)
	if m := k.method(); !slices.Contains(indexMethods, m) {
		ps = append(ps, Problem{Field: "using", Message: fmt.Sprintf("%q is not an index access method", k.Using),
			Hint: "use one of " + strings.Join(indexMethods, ", ") + nearest(m, indexMethods)})
	} else if k.Unique && m != "btree" {
		ps = append(ps, Problem{Field: "unique", Message: fmt.Sprintf("only btree indexes can be unique, not %s", m), Hint: "drop `using` or `unique`"})
	}
	return ps
}

func (k *AddIndex) CheckLive(t *Table) []Problem {
	for _, ix := range t.Indexes {
		if ix.Name == k.IndexName() {
			return []Problem{{Field: "name", Message: fmt.Sprintf("an index named %q already exists on %s", ix.Name, t.Name), Hint: "pick another name"}}
		}
	}
	return nil
}

func (k *AddIndex) Compile(id string, target Target) ([]phases.Phase, error) {
	t := k.Table()
	ix := phases.Index{
		Table: t, Name: k.IndexName(),
		Unique: k.Unique, Using: k.Using, Columns: k.Columns, Where: k.Where,
	}
	if p := target.partitioned(); p != nil {
		if k.Unique {
			if ps := p.keyProblems(t, "columns", k.Columns); len(ps) > 0 {
				return nil, problemsError(ps)
			}
		}
		return partitionedIndexPhases(t, p, ix)
	}
	return []phases.Phase{{
		Name:       "build_index",
		Purpose:    fmt.Sprintf("build index %s on %s without blocking writes", ix.Name, t),
		Statements: ix.Create(),
		Rollback:   ix.Drop(),
	}}, nil
}

// nameFromColumns joins column names (and the words of expressions) for a
// derived index name: lower(email) gives lower_email.
func nameFromColumns(cols []string) string {
	var words []string
	for _, c := range cols {
		words = append(words, strings.FieldsFunc(c, func(r rune) bool {
			return !(r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r))
		})...)
	}
	return strings.Join(words, "_")
}

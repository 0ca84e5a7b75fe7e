// Package planner reads change specs, compiles them into phases, and runs
// those phases against a database one deploy at a time.
package planner

import (
	"sort"

	"github.com/pgplanner/planner/phases"
)

// Kind is one type of change (rename_column, add_index, ...). Each kind is a
// struct in a file of its own that registers itself with Register; its
// exported fields, tagged `yaml:"..."`, are the spec's fields for that kind.
type Kind interface {
	// Table is the table the change touches; changes on one table advance
	// one at a time.
	Table() TableName
	// Check validates the spec without a database. Problems name the field
	// (its yaml key) so the parser can point at file:line:col.
	Check() []Problem
	// Compile turns the spec into phases for the target server.
	Compile(id string, target Target) ([]phases.Phase, error)
}

// What a kind knows about itself beyond compiling is declared through the
// optional interfaces below, in the manner of database/sql's optional
// driver interfaces: a kind implements the ones that apply to it, and
// validate, next and plan ask every kind the same way, so one problem gets
// one message wherever it is found and adding a kind touches its own file
// only. The unexported ones can only be implemented inside this package,
// where the kinds live; they use the model types of sequence.go and
// validate.go.

// LiveChecker is implemented by kinds that have checks needing the live
// schema beyond the common ones (table and columns exist, key present):
// a name already taken, a column already NOT NULL.
type LiveChecker interface {
	CheckLive(t *Table) []Problem
}

// TypeNamer is implemented by kinds whose spec names column types
// (add_column's type). Validate, next and plan resolve each one with
// to_regtype and refuse an unknown one with one message (nameProblems).
type TypeNamer interface {
	TypeNames() map[string]string // yaml field → type
}

// accessMethodNamer is implemented by kinds that name an index access
// method (add_index's using); the live checks refuse one the server lacks.
// It returns the field and the name as written ("": the default).
type accessMethodNamer interface {
	accessMethod() (field, name string)
}

// effecter is implemented by every kind that reads or changes its table's
// columns, indexes or constraints: its effect is what the sequence model
// (sequence.go) checks against the earlier changes and then applies. A
// kind without it is invisible to the model. id is the change's id, for
// names derived from it.
type effecter interface {
	effect(id string) effect
}

// expressioner is implemented by the kinds that take SQL expressions
// (embedding Allows): Expressions lists them as written, for the checks
// without a database (reach, volatility, the plan's notes).
type expressioner interface {
	Expressions() []Expression
	Allowed() []string
}

// liveExpressioner is implemented by kinds whose expressions are checked
// against the live table: each planned against a copy of the table's
// columns (plus those the change adds) as it will run, assigned to a
// column of a type or as a condition, and optionally evaluated on
// existing rows. t is the table as the change finds it. The list may
// differ from Expressions: it is the expressions as the phases run them.
type liveExpressioner interface {
	liveExpressions(t *Table) []expression
}

// columnAdder is implemented by kinds that add columns their expressions
// (or copies) name before those run: the scratch copies of the table used
// to check and resolve expressions have them too. t is the table as the
// change finds it (a copy's type may be the source column's).
type columnAdder interface {
	addedColumns(t *Table) map[string]string // column → type
}

// castTargeter is implemented by kinds whose expressions become function
// bodies cast to a type (change_column_type: up to the new type, down to
// the old one), so that the cast counts in the volatility.
type castTargeter interface {
	castTargets(t *Table) map[string]string // field → type
}

// flagMetaer is implemented by kinds that move applications from one
// column to another: FlagMeta is published with the change's flags
// (table, old_column, new_column) for the applications' providers.
type flagMetaer interface {
	FlagMeta() map[string]string
}

// Problem is something wrong with a spec. Field is the yaml key it concerns
// ("" for the change as a whole); Hint says what to do instead.
type Problem struct {
	Field   string
	Message string
	Hint    string
	// offset is 1 + the byte offset in the field's value the problem is
	// at (0: the field as a whole), for the column in spec errors.
	offset int
}

// Target is what the compiler needs to know about the server.
type Target struct {
	// Version is the PostgreSQL major version (e.g. 18); it changes SQL.
	Version int
	// Table describes the change's table as it was when the change was
	// registered. Nil when planning offline: kinds then fill in what they
	// cannot know with clearly marked placeholders.
	Table *Table
	// LegacyContract compiles the contract as planners before the tombstone
	// did: one irreversible phase that drops the old column, no purge. Only
	// for changes registered by such a planner (compileStored), so that they
	// finish with the phases they started with.
	LegacyContract bool
}

// DefaultVersion is the server version `planner plan` assumes offline.
const DefaultVersion = 17

var kinds = map[string]func() Kind{}

// Register makes a kind available to specs under name. Called from init.
func Register(name string, new func() Kind) {
	if _, dup := kinds[name]; dup {
		panic("planner: kind registered twice: " + name)
	}
	kinds[name] = new
}

// KindNames lists the registered kinds, sorted.
func KindNames() []string {
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

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

// LiveChecker is implemented by kinds that have checks needing the live
// schema beyond the common ones (table and columns exist, key present).
type LiveChecker interface {
	CheckLive(t *Table) []Problem
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

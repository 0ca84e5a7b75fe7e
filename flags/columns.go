package flags

import (
	"context"

	"github.com/open-feature/go-sdk/openfeature"
)

// ColumnChoice says which column application code reads and which it
// writes for a change.
type ColumnChoice struct {
	// Read is the column to select.
	Read string
	// Write are the columns to set on INSERT and UPDATE (both during the
	// dual-write phase: old first, then new).
	Write []string
}

// Writes reports whether the choice writes column.
func (c ColumnChoice) Writes(column string) bool {
	for _, w := range c.Write {
		if w == column {
			return true
		}
	}
	return false
}

// Columns asks the flags of changeID which of oldCol and newCol to read and
// write. Whatever goes wrong (provider not ready, flag unknown, a value it
// does not know), it answers with the old column: until the planner says
// otherwise the old column is the one that exists and is kept current.
// Writing only the new column is also safe during a change: the sync
// trigger fills the old one.
//
//	cols := flags.Columns(ctx, client, "users-email", "email", "email_address")
//	row := db.QueryRow(ctx, "SELECT "+cols.Read+" FROM users WHERE id = $1", id)
func Columns(ctx context.Context, client *openfeature.Client, changeID, oldCol, newCol string) ColumnChoice {
	if client == nil {
		return ColumnChoice{Read: oldCol, Write: []string{oldCol}}
	}
	read := client.String(ctx, ReadKey(changeID), Old, openfeature.EvaluationContext{})
	write := client.String(ctx, WriteKey(changeID), Old, openfeature.EvaluationContext{})
	both := []string{oldCol, newCol} // one allocation whatever the answer
	c := ColumnChoice{Read: oldCol, Write: both[:1:1]}
	if read == New {
		c.Read = newCol
	}
	switch write {
	case Both:
		c.Write = both
	case New:
		c.Write = both[1:]
	}
	return c
}

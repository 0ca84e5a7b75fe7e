package phases

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// A reversible contract moves the old column out of the way instead of
// dropping it: it renames it to a tombstone name, which keeps its data,
// indexes and constraints (they follow the column by attnum), so rolling
// the contract back is one rename. A later purge phase drops it.

// TombstoneName is the name the old column of change id takes between
// contract and purge: planner_tomb_<hash of id>_<column>, cut to 63 bytes.
// The hash keeps it unique per change and recognisable in \d output.
func TombstoneName(id, column string) string {
	sum := sha256.Sum256([]byte(id))
	return cutUTF8("planner_tomb_"+hex.EncodeToString(sum[:])[:8]+"_"+column, maxName)
}

// Rename renames the column to to (catalog only). Probed: a resumed phase
// whose rename committed finds the column gone and skips it.
func (c Column) Rename(to string) Statement {
	st := c.alter(fmt.Sprintf("RENAME COLUMN %s TO %s", Ident(c.Name), Ident(to)))
	st.Done = not(probeColumnExists(c.Table, c.Name))
	return st
}

// Retarget replaces the trigger function so that it reads and writes the
// old column under the name old (the tombstone at contract, the original
// name when the contract is rolled back). PL/pgSQL resolves NEW.<column>
// when it runs, so the function must be rewritten with the rename, in the
// same transaction; the trigger's WHEN clause refers to the column by
// attnum and follows it by itself.
func (s Sync) Retarget(old string) Statement {
	s.Old = old
	return s.functionStatement()
}

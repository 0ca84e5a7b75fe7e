package flags

import (
	"context"

	"github.com/open-feature/go-sdk/openfeature"
)

// Table asks the flag of a rename_table or drop_table change which table
// name to use: newName once the flag says new, "" once it says dropped
// (the application stops using the table), oldName otherwise, including
// whenever the provider cannot answer: until the planner says otherwise
// the old name works (the table, or the view left under it).
//
//	name := flags.Table(ctx, client, "rename-users", "users", "customers")
func Table(ctx context.Context, client *openfeature.Client, changeID, oldName, newName string) string {
	if client == nil {
		return oldName
	}
	switch client.String(ctx, TableKey(changeID), Old, openfeature.EvaluationContext{}) {
	case New:
		return newName
	case Dropped:
		return ""
	}
	return oldName
}

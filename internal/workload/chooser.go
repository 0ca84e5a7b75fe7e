package workload

import "context"

// Variants of a change's flags, as the planner publishes them:
// <change>.read is old|new, <change>.write is old|both|new and
// <change>.table is old|new|dropped.
const (
	Old     = "old"
	Both    = "both"
	New     = "new"
	Dropped = "dropped"
)

// Choice says which column an application instance reads and which it
// writes for one request.
type Choice struct {
	Read  string // Old or New
	Write string // Old, Both or New
}

// ColumnChooser is how a "new" application instance decides, per request,
// which columns to use: in the real fleet it asks the feature flags.
type ColumnChooser interface {
	Choose(ctx context.Context) (Choice, error)
}

// Fixed always returns the same choice: an "old" instance is Fixed{Old, Old}.
type Fixed Choice

// Choose returns the fixed choice.
func (f Fixed) Choose(context.Context) (Choice, error) { return Choice(f), nil }

func (c Choice) valid() bool {
	return (c.Read == Old || c.Read == New) && (c.Write == Old || c.Write == Both || c.Write == New)
}

// TableChooser is how a new instance decides, per request, which name of
// its table to use after a rename_table, or that it uses none after a
// drop_table (""): in the real fleet it asks the table flag.
type TableChooser interface {
	Table(ctx context.Context) (string, error)
}

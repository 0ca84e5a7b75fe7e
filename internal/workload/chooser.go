package workload

import "context"

// Variants of a change's flags, as the planner publishes them:
// <change>.read is old|new and <change>.write is old|both|new.
const (
	Old  = "old"
	Both = "both"
	New  = "new"
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

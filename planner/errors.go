package planner

import "errors"

// Error categories; the CLI maps them to exit codes.
var (
	// ErrInput: a spec or argument is wrong; nothing was changed.
	ErrInput = errors.New("bad input")
	// ErrBusy: another planner holds the state lock.
	ErrBusy = errors.New("another planner is running")
)

// StateVersion is the version of the state schema this binary writes; a
// binary refuses state written by a newer one.
const StateVersion = 1

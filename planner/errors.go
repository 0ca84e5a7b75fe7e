package planner

import (
	"errors"
	"fmt"
)

// Error categories; the CLI maps them to exit codes.
var (
	// ErrInput: a spec or argument is wrong; nothing was changed.
	ErrInput = errors.New("bad input")
	// ErrConfig: the configuration or environment is wrong in a way a rerun
	// cannot fix (a transaction-mode pooler, a missing privilege).
	ErrConfig = errors.New("configuration problem")
	// ErrBusy: another planner holds the planner lease.
	ErrBusy = errors.New("another planner is running")
)

// StateVersion is the version of the state schema this binary writes; a
// binary refuses state written by a newer one. Version 2 replaced the
// session advisory lock with the lease table: a version 1 binary, which
// does not know the lease, must not run beside a version 2 one.
const StateVersion = 2

// wrapf says what was being done when err happened, in front of it: nil
// stays nil, and errors.Is and errors.As see through the wrapping.
func wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

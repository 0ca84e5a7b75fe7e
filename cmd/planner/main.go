// Command planner makes PostgreSQL schema changes with zero downtime.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgplanner/planner/planner"
)

// Exit codes, documented in the README for pipelines.
const (
	exitOK      = 0 // advanced, or nothing to do
	exitFailure = 1 // a statement failed, a lock could not be taken in time, ...
	exitInput   = 2 // bad spec, bad flag, edited in-flight spec: nothing changed
	exitWaiting = 3 // a gate is not met yet (backfill running, soak time): rerun later
	exitBusy    = 4 // another planner holds the lock for longer than --wait
)

func main() {
	// The first SIGINT or SIGTERM cancels the context: every command stops
	// at its next database call or batch boundary, leaving state a rerun
	// resumes. A second one kills at once (the default action is restored).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	root := newRoot()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var waiting *waitingError
	if errors.As(err, &waiting) {
		return exitWaiting
	}
	fmt.Fprintln(os.Stderr, "planner:", err)
	switch {
	case errors.Is(err, planner.ErrInput), isUsageError(err):
		return exitInput
	case errors.Is(err, planner.ErrBusy):
		return exitBusy
	}
	return exitFailure
}

// waitingError reports a gate not yet met; its message was already printed.
type waitingError struct{}

func (*waitingError) Error() string { return "waiting on a gate" }

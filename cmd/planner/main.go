// Command planner makes PostgreSQL schema changes with zero downtime.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes, documented in the README and in planner --help for pipelines.
const (
	exitOK      = 0 // advanced, or nothing to do
	exitFailure = 1 // transient: a statement failed, a lock not granted in time, a lost connection; a rerun resumes
	exitInput   = 2 // bad spec, bad flag, edited in-flight spec: nothing changed
	exitWaiting = 3 // a gate is not met yet (backfill running, soak time): rerun later
	exitBusy    = 4 // another planner holds the lease for longer than --wait
	exitConfig  = 5 // configuration or environment a rerun cannot fix: authentication, missing database or privilege, no database configured, a transaction-mode pooler, a planner compiling a change in flight differently
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
	jsonResult = nil
	cmd, err := root.ExecuteContextC(ctx)
	code, class, hint := classify(err)
	if g.output == "json" || (err != nil && asksForJSON(args)) {
		env := envelope{Command: commandName(cmd.CommandPath()), OK: code == exitOK || code == exitWaiting, ExitCode: code, Result: jsonResult}
		if code != exitOK && code != exitWaiting {
			env.Error = describe(err, class, hint)
		}
		if perr := printJSON(os.Stdout, env); perr != nil {
			fmt.Fprintln(os.Stderr, "planner:", perr)
		}
		return code
	}
	if err != nil && code != exitWaiting {
		fmt.Fprintln(os.Stderr, "planner:", err)
		if hint != "" {
			fmt.Fprintln(os.Stderr, "hint:", hint)
		}
	}
	return code
}

// waitingError reports a gate not yet met; its message was already printed.
type waitingError struct{}

func (*waitingError) Error() string { return "waiting on a gate" }

// asksForJSON: the arguments ask for JSON output even though parsing them
// failed (an unknown command or flag) before --output was read.
func asksForJSON(args []string) bool {
	for i, a := range args {
		switch {
		case a == "--output=json", a == "-ojson", a == "-o=json":
			return true
		case (a == "-o" || a == "--output") && i+1 < len(args) && args[i+1] == "json":
			return true
		}
	}
	return os.Getenv("PLANNER_OUTPUT") == "json"
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/clock"
)

// watchFlags keeps file equal to the flagd export of the flags until ctx
// ends (SIGINT or SIGTERM), which is a clean stop. It rewrites the file
// atomically whenever the export changes: at once on the engine's NOTIFY,
// and every poll interval in any case, which covers a connection that
// cannot LISTEN (a transaction-mode pooler) and a missed notification.
// A connection lost after the first export is retried; the file keeps the
// last export meanwhile. Failing before the first export is an error.
func watchFlags(ctx context.Context, log io.Writer, file string, poll time.Duration) error {
	var last []byte
	for ctx.Err() == nil {
		err := watchSession(ctx, log, file, poll, &last)
		if ctx.Err() != nil {
			break
		}
		if last == nil {
			return err // never connected: a configuration error to report, not to retry
		}
		fmt.Fprintf(log, "planner: flags export --watch: %v; retrying in %s\n", err, poll)
		clock.Sleep(ctx, poll)
	}
	return nil
}

// watchSession LISTENs, then exports after every notification or poll
// interval, until the connection fails or ctx ends.
func watchSession(ctx context.Context, log io.Writer, file string, poll time.Duration, last *[]byte) error {
	pool, err := connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Release()
	// LISTEN before the first read, so no publish falls between the two.
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{flags.Channel(g.stateSchema)}.Sanitize()); err != nil {
		return fmt.Errorf("listen for flag changes: %w", err)
	}
	for {
		list, err := flags.List(ctx, conn, g.stateSchema)
		if err != nil {
			return err
		}
		data, err := flags.ExportFlagd(list)
		if err != nil {
			return err
		}
		if !bytes.Equal(data, *last) {
			if err := writeAtomically(file, data); err != nil {
				return err
			}
			*last = data
			fmt.Fprintf(log, "planner: %s: %d flags written\n", file, len(list))
		}
		waitCtx, cancel := context.WithTimeout(ctx, poll)
		_, err = conn.Conn().WaitForNotification(waitCtx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && waitCtx.Err() == nil {
			return fmt.Errorf("wait for flag changes: %w", err) // the connection failed, not the poll interval
		}
	}
}

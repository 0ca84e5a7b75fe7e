// Package pooler tells whether a connection goes through a pooler that
// hands server sessions to other clients between transactions (PgBouncer,
// RDS Proxy or Supavisor in transaction or statement mode). Through such a
// pooler, session state — session advisory locks, SET, LISTEN, prepared
// statements — does not stay with the client that made it, and can be left
// behind on a server connection for another client.
package pooler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// stall is how long a bare SELECT may take before it counts as waiting for
// a server connection that another client holds; a direct connection never
// waits for one.
const stall = 2 * time.Second

// Direct reports whether conn talks to PostgreSQL itself: its server pid is
// the one it got at startup. A pooler hands its clients keys of its own, in
// every pool mode, so false means "a pooler, of some mode".
func Direct(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var pid uint32
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`, pgx.QueryExecModeSimpleProtocol).Scan(&pid); err != nil {
		return false, err
	}
	return pid == conn.PgConn().PID(), nil
}

// SharesSessions reports whether two client connections a and b to the same
// address share server sessions. It runs only SELECT pg_backend_pid(), in
// the simple protocol (nothing prepared is left behind), and leaves no
// session state. One probe:
//
//  1. a asks for its server pid;
//  2. b opens a transaction and asks for its pid: a pooler that reuses the
//     connection a just released gives b the same pid;
//  3. a asks again while b's transaction holds a server connection: its pid
//     changes, or it waits for a free server connection.
//
// A direct connection, and a pooler in session mode, keeps one server
// session per client: the pids of a never change and never match b's, so
// the probe never reports sharing falsely. On a busy pool one probe can miss
// it (b gets another server, and a its first one back), so up to three run.
func SharesSessions(ctx context.Context, a, b *pgx.Conn) (bool, error) {
	for range 3 {
		shared, err := probe(ctx, a, b)
		if err != nil || shared {
			return shared, err
		}
	}
	return false, nil
}

func probe(ctx context.Context, a, b *pgx.Conn) (bool, error) {
	simple := pgx.QueryExecModeSimpleProtocol
	pid := func(ctx context.Context, c *pgx.Conn) (int32, error) {
		var p int32
		err := c.QueryRow(ctx, `SELECT pg_backend_pid()`, simple).Scan(&p)
		return p, err
	}
	first, err := pid(ctx, a)
	if err != nil {
		return false, err
	}
	tx, err := b.Begin(ctx)
	if err != nil {
		// Statement pooling refuses transactions outright.
		return isPoolerRefusal(err), ignoreRefusal(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	held, err := pid(ctx, b)
	if err != nil {
		return isPoolerRefusal(err), ignoreRefusal(err)
	}
	if held == first {
		return true, nil
	}
	waitCtx, cancel := context.WithTimeout(ctx, stall)
	defer cancel()
	again, err := pid(waitCtx, a)
	if err != nil {
		if waitCtx.Err() != nil && ctx.Err() == nil {
			return true, nil
		}
		return false, err
	}
	return again != first, nil
}

// isPoolerRefusal: PgBouncer's statement mode answers BEGIN with an error
// of its own rather than a PostgreSQL one.
func isPoolerRefusal(err error) bool {
	var pe interface{ SQLState() string }
	return errors.As(err, &pe) && pe.SQLState() == "08P01"
}

func ignoreRefusal(err error) error {
	if isPoolerRefusal(err) {
		return nil
	}
	return err
}

// ErrSharedSessions says the connection goes through a transaction-mode pooler.
var ErrSharedSessions = errors.New("the database URL goes through a connection pooler in transaction or statement mode (two connections shared one server session)")

// RequireSessions fails with ErrSharedSessions, saying what to do, when
// pool's connections share server sessions. what names the command.
func RequireSessions(ctx context.Context, pool *pgxpool.Pool, what string) error {
	a, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	defer a.Release()
	if direct, err := Direct(ctx, a.Conn()); err != nil || direct {
		return err
	}
	b, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	defer b.Release()
	shared, err := SharesSessions(ctx, a.Conn(), b.Conn())
	if err != nil {
		return fmt.Errorf("check for a transaction-mode pooler: %w", err)
	}
	if shared {
		// Both connections may carry pooler state now; drop them.
		a.Conn().Close(ctx)
		b.Conn().Close(ctx)
		return fmt.Errorf("%w: %s needs a server session of its own for each connection (CREATE INDEX CONCURRENTLY cannot run in a transaction, so its timeouts are session settings). "+
			"Point it straight at PostgreSQL, or at a pool in session mode (PgBouncer pool_mode = session), with --database-url or DATABASE_URL; applications can stay on the transaction pool. Nothing was changed", ErrSharedSessions, what)
	}
	return nil
}

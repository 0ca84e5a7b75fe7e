package planner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/internal/clock"
	"github.com/pgplanner/planner/internal/pooler"
)

// The planner lock is a lease: one row in the state schema naming its
// holder, renewed in short transactions while the holder works, and free
// for the taking once it expires.
//
// Why a row and not a session advisory lock: a session lock lives as long
// as a server session, and behind a pooler that is not the holder's — it
// stays on a pooled server connection after the planner that took it is
// gone, and blocks every later planner. A row is held by whoever renews it,
// through any pooler; a holder killed with kill -9 or cut off from the
// network loses it when it expires, and its work resumes as after any
// crash. Waiting for the lease polls: no query of one planner ever waits,
// with a snapshot open, for another planner's transaction (CREATE INDEX
// CONCURRENTLY and VALIDATE wait for every older snapshot).

// leaseHolder describes a lease's holder, for messages.
type leaseHolder struct {
	host, deployID, command string
	pid                     int
	taken                   time.Time
	expiresIn               time.Duration
}

func (h *leaseHolder) String() string {
	return fmt.Sprintf("held by %s pid %d (%s, deploy %s) since %s, lease expires in %s unless renewed",
		h.host, h.pid, h.command, h.deployID, h.taken.UTC().Format(time.RFC3339), h.expiresIn.Round(100*time.Millisecond))
}

// lease is a held planner lease. Its context is cancelled, with a cause,
// when the lease cannot be renewed in time or was taken over: the work it
// guards stops at once (a cancelled statement rolls back; every phase and
// batch resumes on a rerun).
type lease struct {
	pool    *pgxpool.Pool
	table   string
	token   string
	ctx     context.Context
	cancel  context.CancelCauseFunc
	stopped chan struct{}
	stop    context.CancelFunc
}

// errLeaseLost is the cause of a lease context's cancellation.
var errLeaseLost = errors.New("lost the planner lease")

// acquire takes the planner lease, polling for up to Wait while another
// planner holds it. The state schema must exist (migrate first).
func (e *Engine) acquire(ctx context.Context, deployID, command string) (*lease, error) {
	set := e.settings()
	ttl := set.LeaseTTL
	host, _ := os.Hostname()
	token := fmt.Sprintf("%s/%d/%016x", host, os.Getpid(), rand.Uint64())
	table := e.state().table("lease")
	deadline := time.Now().Add(set.Wait)
	told := false
	for {
		var got bool
		err := e.Pool.QueryRow(ctx, `INSERT INTO `+table+` AS l (token, host, pid, deploy_id, command, taken, renewed, expires)
			VALUES ($1, $2, $3, $4, $5, clock_timestamp(), clock_timestamp(), clock_timestamp() + make_interval(secs => $6))
			ON CONFLICT (singleton) DO UPDATE SET token = EXCLUDED.token, host = EXCLUDED.host, pid = EXCLUDED.pid,
				deploy_id = EXCLUDED.deploy_id, command = EXCLUDED.command, taken = EXCLUDED.taken,
				renewed = EXCLUDED.renewed, expires = EXCLUDED.expires
			WHERE l.expires < clock_timestamp()
			RETURNING true`, token, host, os.Getpid(), deployID, command, ttl.Seconds()).Scan(&got)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("take the planner lease: %w", err)
		}
		if got {
			return e.startRenewing(ctx, table, token, ttl), nil
		}
		holder, err := e.leaseHolder(ctx, table)
		if err != nil {
			return nil, fmt.Errorf("read the planner lease: %w", err)
		}
		if holder == nil {
			continue // released just now: take it
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("%w (state schema %q, %s): waited %s; rerun when it has finished, or raise --wait", ErrBusy, e.schema(), holder, set.Wait)
		}
		if !told {
			e.logf("another planner is running (%s); waiting up to %s\n", holder, set.Wait)
			told = true
		}
		// Poll: a blocking wait would hold a snapshot open.
		pause := min(500*time.Millisecond+rand.N(250*time.Millisecond), time.Until(deadline))
		if holder.expiresIn > 0 {
			pause = min(pause, holder.expiresIn+10*time.Millisecond)
		}
		if err := clock.Sleep(ctx, pause); err != nil {
			return nil, wrapf(err, "waiting for the planner lease")
		}
	}
}

// leaseHolder reads the current holder; nil when the row just went away.
func (e *Engine) leaseHolder(ctx context.Context, table string) (*leaseHolder, error) {
	var h leaseHolder
	var secs float64
	err := e.Pool.QueryRow(ctx, `SELECT host, pid, deploy_id, command, taken,
			extract(epoch FROM expires - clock_timestamp())::float8 FROM `+table).
		Scan(&h.host, &h.pid, &h.deployID, &h.command, &h.taken, &secs)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	h.expiresIn = time.Duration(secs * float64(time.Second))
	return &h, err
}

// startRenewing renews the lease every quarter of its TTL. The lease's
// context ends when renewals have failed for half the TTL — before the row
// expires on the server, so no other planner can take it while this one
// still works — or when the row is no longer this holder's.
func (e *Engine) startRenewing(parent context.Context, table, token string, ttl time.Duration) *lease {
	l := &lease{pool: e.Pool, table: table, token: token, stopped: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancelCause(parent)
	var stopCtx context.Context
	stopCtx, l.stop = context.WithCancel(context.WithoutCancel(parent))
	go func() {
		defer close(l.stopped)
		tick := time.NewTicker(ttl / 4)
		defer tick.Stop()
		lastOK := time.Now()
		for {
			select {
			case <-stopCtx.Done():
				return
			case <-l.ctx.Done():
				return
			case <-tick.C:
			}
			sent := time.Now()
			rctx, cancel := context.WithTimeout(stopCtx, ttl/4)
			tag, err := l.pool.Exec(rctx, `UPDATE `+table+` SET renewed = clock_timestamp(),
				expires = clock_timestamp() + make_interval(secs => $2) WHERE token = $1`, token, ttl.Seconds())
			cancel()
			switch {
			case stopCtx.Err() != nil:
				return
			case err == nil && tag.RowsAffected() == 1:
				lastOK = sent
			case err == nil:
				l.cancel(fmt.Errorf("%w: another planner took it over after it expired", errLeaseLost))
				return
			case time.Since(lastOK) > ttl/2:
				l.cancel(fmt.Errorf("%w: could not renew it for %s: %v", errLeaseLost, time.Since(lastOK).Round(time.Millisecond), err))
				return
			}
		}
	}()
	return l
}

// lost returns the reason the lease's work must stop, or nil.
func (l *lease) lost() error {
	if cause := context.Cause(l.ctx); cause != nil && errors.Is(cause, errLeaseLost) {
		return fmt.Errorf("%w; stopped: rerun to resume", cause)
	}
	return nil
}

// release stops renewing and frees the lease for the next planner.
func (l *lease) release() {
	l.stop()
	<-l.stopped
	l.cancel(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Best effort: a lease that cannot be deleted expires.
	l.pool.Exec(ctx, `DELETE FROM `+l.table+` WHERE token = $1`, l.token)
}

// begin prepares a run that changes the database, once RequireSessions
// passed: it creates or upgrades the state schema and takes the planner
// lease.
func (e *Engine) begin(ctx context.Context, deployID, command string) (*lease, error) {
	if err := e.state().migrate(ctx, e.Pool); err != nil {
		return nil, err
	}
	return e.acquire(ctx, deployID, command)
}

// RequireSessions refuses (ErrConfig) a pool whose connections share
// server sessions: a pooler in transaction or statement mode. what names
// the command in the message.
func RequireSessions(ctx context.Context, pool *pgxpool.Pool, what string) error {
	err := pooler.RequireSessions(ctx, pool, what)
	if errors.Is(err, pooler.ErrSharedSessions) {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return err
}

// finish releases the lease; a run that failed because the lease was lost
// says so first.
func (l *lease) finish(err error) error {
	lost := l.lost()
	l.release()
	if lost != nil && err != nil && !errors.Is(err, errLeaseLost) {
		return fmt.Errorf("%w (%v)", lost, err)
	}
	return err
}

package backfill

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgplanner/planner/internal/clock"
)

// The replica-lag throttle. Before a batch (at most once a second per
// worker) Run reads pg_stat_replication on the primary and waits while a
// replica is behind by more than Options.MaxReplicaLagBytes of WAL or
// Options.MaxReplicaLag of time.
//
// Bytes are the WAL the primary flushed (what it can send) that the
// replica has not replayed: pg_wal_lsn_diff(pg_current_wal_flush_lsn(),
// replay_lsn). Time is replay_lag,
// but replay_lag is slow to see a stalled replica: it is NULL once a
// replica caught up on an idle primary, and while replay is stuck it
// stays at a stale value until the walsender's samples let it grow. So a
// replica whose replay position has not moved while WAL waits for it
// counts as behind by at least the time since a check first saw it there.
//
// A replica that leaves pg_stat_replication (disconnected, stopped,
// failed over) is logged once (Options.Log) and no longer waited for: it
// receives no WAL the backfill could pile up in its replay, and when it
// reconnects it shows up behind and the throttle waits for it again.
// Walsenders without a replay position (a pg_basebackup, a standby still
// starting) are not replicas to wait for yet.

// replicaLagSQL lists the walsenders: a display name, whether their state
// is hidden from this role (it lacks pg_read_all_stats, which pg_monitor
// includes), the replay position, the bytes not replayed and replay_lag.
const replicaLagSQL = `
SELECT pid, coalesce(nullif(application_name, ''), 'walsender ' || pid) || coalesce(' (' || host(client_addr) || ')', ''),
       state IS NULL, replay_lsn::text,
       coalesce(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_flush_lsn(), replay_lsn), 0)::int8,
       coalesce(extract(epoch FROM replay_lag), 0)::float8, current_user
FROM pg_catalog.pg_stat_replication`

// replicaWatch is what the lag checks of one Run remember between checks
// (shared by its workers).
type replicaWatch struct {
	mu    sync.Mutex
	stuck map[int32]stuckAt // per walsender pid, while it is behind
	seen  map[string]bool   // replicas at the last check
}

// stuckAt is a replay position and when it was first seen.
type stuckAt struct {
	lsn   string
	since time.Time
}

// replicaLag is one replica's lag at a check.
type replicaLag struct {
	name  string
	bytes int64
	lag   time.Duration
}

// check reads the replicas' lag and returns why the backfill must wait
// (empty: it need not), logging the replicas that disappeared since the
// last check.
func (w *replicaWatch) check(ctx context.Context, q Querier, o Options) (string, error) {
	rows, err := q.Query(ctx, replicaLagSQL)
	if err != nil {
		return "", fmt.Errorf("backfill: replica lag: %w", err)
	}
	type row struct {
		pid        int32
		name       string
		hidden     bool
		lsn        *string
		bytes      int64
		lagSeconds float64
	}
	var all []row
	var user string
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.pid, &r.name, &r.hidden, &r.lsn, &r.bytes, &r.lagSeconds, &user); err != nil {
			rows.Close()
			return "", fmt.Errorf("backfill: replica lag: %w", err)
		}
		all = append(all, r)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("backfill: replica lag: %w", err)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	stuck := map[int32]stuckAt{}
	seen := map[string]bool{}
	var lags []replicaLag
	hidden := 0
	for _, r := range all {
		if r.hidden {
			hidden++
			continue
		}
		if r.lsn == nil {
			continue
		}
		seen[r.name] = true
		l := replicaLag{name: r.name, bytes: r.bytes, lag: time.Duration(r.lagSeconds * float64(time.Second))}
		if r.bytes > 0 {
			s, ok := w.stuck[r.pid]
			if !ok || s.lsn != *r.lsn {
				s = stuckAt{lsn: *r.lsn, since: now}
			}
			stuck[r.pid] = s
			l.lag = max(l.lag, now.Sub(s.since))
		}
		lags = append(lags, l)
	}
	var gone []string
	for name := range w.seen {
		if !seen[name] {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	for _, name := range gone {
		if o.Log != nil {
			o.Log(fmt.Sprintf("replica %s disconnected (gone from pg_stat_replication): not waiting for it; if it reconnects behind, the backfill waits for it again", name))
		}
	}
	w.stuck, w.seen = stuck, seen
	if hidden > 0 {
		return "", fmt.Errorf("backfill: cannot measure replica lag: pg_stat_replication hides the state of %d walsender(s) from role %s, which lacks pg_monitor; "+
			"GRANT pg_monitor TO %s, or set no lag limits (--max-replica-lag=-1s --max-replica-lag-bytes=-1)",
			hidden, user, pgx.Identifier{user}.Sanitize())
	}
	return lagReason(lags, o), nil
}

// lagReason names the replicas over a limit, and by how much.
func lagReason(lags []replicaLag, o Options) string {
	var why []string
	for _, l := range lags {
		switch {
		case o.MaxReplicaLagBytes > 0 && l.bytes > o.MaxReplicaLagBytes:
			why = append(why, fmt.Sprintf("replica %s is %s behind (limit %s)", l.name, formatBytes(l.bytes), formatBytes(o.MaxReplicaLagBytes)))
		case o.MaxReplicaLag > 0 && l.lag > o.MaxReplicaLag:
			why = append(why, fmt.Sprintf("replica %s replays %s behind (limit %s)", l.name, l.lag.Round(100*time.Millisecond), o.MaxReplicaLag))
		}
	}
	return strings.Join(why, "; ")
}

// formatBytes prints a size in PostgreSQL's units (kB = 1024 bytes).
func formatBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d bytes", n)
	}
	f, unit := float64(n)/1024, "kB"
	for _, u := range []string{"MB", "GB", "TB"} {
		if f < 1024 {
			break
		}
		f, unit = f/1024, u
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", f), ".0") + " " + unit
}

// waitForReplicas blocks while a replica lags past a limit. Why it waits
// is stored in the job, for status in other processes, refreshed at every
// check and cleared when the wait ends.
func (r *runner) waitForReplicas(ctx context.Context) error {
	waited := false
	for {
		reason, err := r.replicas.check(ctx, r.pool, r.opts)
		if err != nil {
			return err
		}
		// Best effort, like the heartbeat: it only informs status.
		if reason != "" || waited {
			r.pool.Exec(ctx, fmt.Sprintf(`UPDATE %s SET throttled_by = nullif($2, ''), throttled_at = now() WHERE change_id = $1`,
				jobsTable(r.schema)), r.changeID, reason)
		}
		if reason == "" {
			return nil
		}
		waited = true
		r.throttledBy.Store(&reason)
		r.throttled.Add(1)
		// Often enough that status never reads the reason as stale.
		err = clock.Sleep(ctx, min(max(r.opts.Poll, time.Second), IdleAfter/3))
		r.throttled.Add(-1)
		if err != nil {
			// Stopped while waiting: the reason no longer holds.
			clear, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			r.pool.Exec(clear, fmt.Sprintf(`UPDATE %s SET throttled_by = NULL WHERE change_id = $1`, jobsTable(r.schema)), r.changeID)
			cancel()
			return err
		}
	}
}

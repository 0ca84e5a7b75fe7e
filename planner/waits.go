package planner

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Who a statement waits for. A statement blocked by a lock, or a concurrent
// index build or VALIDATE waiting for older snapshots (a virtualxid lock),
// is watched from another connection: the sessions blocking it
// (pg_blocking_pids) are logged while it waits, and the last ones seen are
// named if it fails on its lock timeout.

// waitReportEvery is how often a long wait is logged, once it has lasted
// waitLogAfter (runner.waitEvery and waitAfter replace them in tests).
const waitReportEvery, waitLogAfter = 5 * time.Second, 2 * time.Second

func (r *runner) waitTimes() (every, after time.Duration) {
	every, after = waitReportEvery, waitLogAfter
	if r.waitEvery > 0 {
		every, after = r.waitEvery, r.waitAfter
	}
	return every, after
}

// maxNamed is how many blocking sessions a message names; it says how many
// more there are.
const maxNamed = 10

// waitWatch watches one statement.
type waitWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	last   []string
}

// watchWaits starts watching the statement running on backend pid: the
// first look after first, then every waitReportEvery.
func (r *runner) watchWaits(ctx context.Context, pid uint32, sql string, first time.Duration) *waitWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &waitWatch{cancel: cancel, done: make(chan struct{})}
	start := time.Now()
	every, logAfter := r.waitTimes()
	go func() {
		defer close(w.done)
		t := time.NewTimer(first)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			blockers := r.blockers(ctx, pid)
			if ctx.Err() != nil {
				return
			}
			if len(blockers) > 0 {
				w.mu.Lock()
				w.last = blockers
				w.mu.Unlock()
				if waited := time.Since(start); waited >= logAfter {
					r.logf("  waiting %s (%s) for %s\n", waited.Round(time.Second), oneLine(sql, 60), strings.Join(blockers, "; "))
				}
			}
			t.Reset(every)
		}
	}()
	return w
}

// stop ends the watch and returns the blockers it saw last.
func (w *waitWatch) stop() []string {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// blockers describes the sessions backend pid waits for, oldest
// transaction first. Best effort: errors yield nothing.
func (r *runner) blockers(ctx context.Context, pid uint32) []string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rows, err := r.Pool.Query(ctx, `
		SELECT a.pid, coalesce(string_agg(DISTINCT h.mode, ', '), ''), coalesce(a.state, ''),
		       coalesce(a.application_name, ''), extract(epoch FROM now() - coalesce(a.xact_start, a.backend_start))::int,
		       left(coalesce(a.query, ''), 200),
		       CASE WHEN a.datid IS DISTINCT FROM w.datid THEN coalesce(a.datname, '') ELSE '' END
		FROM pg_stat_activity w
		CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS b(pid)
		JOIN pg_stat_activity a ON a.pid = b.pid
		LEFT JOIN pg_locks wl ON wl.pid = w.pid AND NOT wl.granted
		LEFT JOIN pg_locks h ON h.pid = a.pid AND h.granted AND h.locktype = wl.locktype
		     AND h.database IS NOT DISTINCT FROM wl.database AND h.relation IS NOT DISTINCT FROM wl.relation
		     AND h.transactionid IS NOT DISTINCT FROM wl.transactionid AND h.virtualxid IS NOT DISTINCT FROM wl.virtualxid
		     AND h.objid IS NOT DISTINCT FROM wl.objid AND h.page IS NOT DISTINCT FROM wl.page AND h.tuple IS NOT DISTINCT FROM wl.tuple
		WHERE w.pid = $1
		GROUP BY a.pid, a.state, a.application_name, a.xact_start, a.backend_start, a.query, a.datid, w.datid, a.datname
		ORDER BY a.xact_start NULLS LAST, a.backend_start, a.pid`, int64(pid))
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []string
	n := 0
	for rows.Next() {
		var bpid, age int
		var mode, st, app, query, otherDB string
		if rows.Scan(&bpid, &mode, &st, &app, &age, &query, &otherDB) != nil {
			return out
		}
		if n++; n > maxNamed {
			continue
		}
		var what []string
		if mode != "" {
			what = append(what, mode)
		}
		if otherDB != "" {
			what = append(what, "database "+otherDB)
		}
		out = append(out, describeSession(bpid, what, st, age, app, query))
	}
	if rows.Err() != nil {
		return out
	}
	if n > maxNamed {
		out = append(out, fmt.Sprintf("and %d more", n-maxNamed))
	}
	return out
}

// describeSession names a session for a message.
func describeSession(pid int, what []string, state string, age int, app, query string) string {
	what = append(what, state, fmt.Sprintf("transaction open %ds", age), fmt.Sprintf("application %q", app),
		fmt.Sprintf("last query %q", oneLine(query, 80)))
	return fmt.Sprintf("pid %d (%s)", pid, strings.Join(what, ", "))
}

package flags

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The fleet: every provider records, in the state schema, which flags its
// application instance has loaded (a heartbeat), so the planner's gates can
// wait for the instances that have not switched yet instead of counting
// deploys. One small upsert per heartbeat interval, from the provider's own
// goroutine, never on the evaluation path.

// DefaultHeartbeatInterval is how often a provider records its heartbeat.
const DefaultHeartbeatInterval = 5 * time.Second

func fleetTable(schema string) string { return pgx.Identifier{schema, "fleet"}.Sanitize() }

// fleetDDL creates the fleet table (run by Migrate).
func fleetDDL(schema string) string {
	return `CREATE TABLE IF NOT EXISTS ` + fleetTable(schema) + ` (
	instance_id text PRIMARY KEY,
	service     text NOT NULL,
	host        text NOT NULL,
	pid         int NOT NULL,
	started_at  timestamptz NOT NULL,
	last_seen   timestamptz NOT NULL,
	revision    timestamptz,
	flags       jsonb NOT NULL DEFAULT '{}'
)`
}

// Instance is one application instance as its heartbeats describe it.
type Instance struct {
	ID        string    `json:"id"`
	Service   string    `json:"service"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen"`
	// Revision is the newest flag change in the instance's snapshot.
	Revision *time.Time `json:"revision"`
	// Flags are the stored flags it has loaded: key → variant, and since
	// when it has had that variant (the zero time: since it started).
	Flags map[string]LoadedFlag `json:"flags"`
	// Live: it heartbeated within the expiry the caller asked for.
	Live bool `json:"live"`
}

// LoadedFlag is a flag's variant in an instance's snapshot.
type LoadedFlag struct {
	Variant string     `json:"variant"`
	Since   *time.Time `json:"since"` // nil: since the instance started
}

// instanceID names this process: service, host, pid and a random part, so
// a restarted process with a reused pid is another instance.
func instanceID(service string) (id, host string) {
	host, _ = os.Hostname()
	return fmt.Sprintf("%s/%s/%d/%06x", service, host, os.Getpid(), rand.Uint32()&0xffffff), host
}

func defaultService() string { return filepath.Base(os.Args[0]) }

// heartbeat upserts the instance's row. The server keeps, per flag, since
// when the instance has had its variant: a flag it reports first in its
// first heartbeat has had it since the instance started (-infinity), one
// whose variant changed since the last heartbeat since now().
func (p *Provider) heartbeat(ctx context.Context, conn *pgx.Conn, snap *snapshot) error {
	loaded := map[string]string{}
	var revision *time.Time
	for k, f := range snap.strings {
		loaded[k] = f.Variant
		if revision == nil || f.UpdatedAt.After(*revision) {
			t := f.UpdatedAt
			revision = &t
		}
	}
	doc, err := json.Marshal(loaded)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `INSERT INTO `+fleetTable(p.schema)+` AS f (instance_id, service, host, pid, started_at, last_seen, revision, flags)
VALUES ($1, $2, $3, $4, now(), now(), $5,
	(SELECT coalesce(jsonb_object_agg(e.key, jsonb_build_object('variant', e.value, 'since', '-infinity'::timestamptz)), '{}')
	 FROM jsonb_each_text($6::text::jsonb) e))
ON CONFLICT (instance_id) DO UPDATE SET last_seen = now(), revision = EXCLUDED.revision,
	flags = (SELECT coalesce(jsonb_object_agg(e.key, CASE WHEN f.flags -> e.key ->> 'variant' = e.value THEN f.flags -> e.key
		ELSE jsonb_build_object('variant', e.value, 'since', now()) END), '{}')
	 FROM jsonb_each_text($6::text::jsonb) e)`,
		p.instance, p.service, p.host, os.Getpid(), revision, string(doc))
	return err
}

// sendHeartbeat records a heartbeat when one is due or the snapshot
// changed. Without the privilege (or the table) it says so once and stops
// trying for a while: the flags are served all the same.
func (p *Provider) sendHeartbeat(ctx context.Context, conn *pgx.Conn, changed bool) {
	if p.heartbeatEvery <= 0 || time.Now().Before(p.nextHeartbeat) && !changed {
		return
	}
	p.mu.RLock()
	snap := p.current
	p.mu.RUnlock()
	if snap == nil {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := p.heartbeat(hctx, conn, snap)
	p.nextHeartbeat = time.Now().Add(p.heartbeatEvery)
	var pe *pgconn.PgError
	switch {
	case err == nil:
		p.heartbeatRefused = false
	case errors.As(err, &pe) && pe.Code == "42P01":
		// No fleet table yet: the planner creates it at its first deploy,
		// which may come after the application started. Try again soon.
		p.log.Debug("flags: no fleet table yet for the heartbeat", "error", err)
	case errors.As(err, &pe) && pe.Code == "42501":
		if !p.heartbeatRefused {
			p.log.Warn(fmt.Sprintf("flags: cannot record this instance's heartbeat (%s); the planner's gates then cannot see it and fall back to counting deploys; grant it: GRANT USAGE ON SCHEMA %s TO <role>; GRANT SELECT, INSERT, UPDATE ON %s TO <role>. Serving flags all the same",
				pe.Message, pgx.Identifier{p.schema}.Sanitize(), fleetTable(p.schema)))
		}
		p.heartbeatRefused = true
		p.nextHeartbeat = time.Now().Add(10 * time.Minute)
	default:
		p.log.Debug("flags: heartbeat failed", "error", err)
	}
}

// Fleet lists the instances that ever heartbeated, live first; an instance
// is live when it heartbeated within expiry.
func Fleet(ctx context.Context, q Querier, schema string, expiry time.Duration) ([]Instance, error) {
	rows, err := q.Query(ctx, `SELECT instance_id, service, host, pid, started_at, last_seen, revision, flags::text,
		last_seen > now() - make_interval(secs => $1)
		FROM `+fleetTable(schema)+` ORDER BY 9 DESC, service, host, pid, instance_id`, expiry.Seconds())
	if err != nil {
		return nil, fmt.Errorf("flags: fleet: %w", err)
	}
	defer rows.Close()
	var out []Instance
	for rows.Next() {
		var in Instance
		var doc string
		if err := rows.Scan(&in.ID, &in.Service, &in.Host, &in.PID, &in.StartedAt, &in.LastSeen, &in.Revision, &doc, &in.Live); err != nil {
			return nil, fmt.Errorf("flags: fleet: %w", err)
		}
		var raw map[string]struct {
			Variant string `json:"variant"`
			Since   string `json:"since"`
		}
		if err := json.Unmarshal([]byte(doc), &raw); err != nil {
			return nil, fmt.Errorf("flags: fleet: instance %s: %w", in.ID, err)
		}
		in.Flags = map[string]LoadedFlag{}
		for k, v := range raw {
			lf := LoadedFlag{Variant: v.Variant}
			if t, err := time.Parse(time.RFC3339Nano, v.Since); err == nil {
				lf.Since = &t
			}
			in.Flags[k] = lf
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// PurgeFleet deletes instances not seen for longer than olderThan.
func PurgeFleet(ctx context.Context, q Querier, schema string, olderThan time.Duration) error {
	_, err := q.Exec(ctx, `DELETE FROM `+fleetTable(schema)+` WHERE last_seen < now() - make_interval(secs => $1)`, olderThan.Seconds())
	if err != nil {
		return fmt.Errorf("flags: purge fleet: %w", err)
	}
	return nil
}

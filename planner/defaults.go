package planner

import (
	"time"

	"github.com/pgplanner/planner/backfill"
)

// Settings are an Engine's tunables, under the names of its fields.
type Settings struct {
	LockTimeout, StatementTimeout, LongStatementTimeout time.Duration
	Retries                                             int
	Wait, LeaseTTL                                      time.Duration
	MinSoak, FleetExpiry, PurgeAfter                    time.Duration
	Backfill                                            backfill.Options
}

// Defaults are the settings an Engine uses for a field left zero (and
// SQLScriptOptions for its timeouts); the planner command's flags default
// to them. Not to be modified.
var Defaults = Settings{
	LockTimeout:          500 * time.Millisecond,
	StatementTimeout:     30 * time.Second,
	LongStatementTimeout: 6 * time.Hour,
	Retries:              8,
	Wait:                 5 * time.Minute,
	LeaseTTL:             20 * time.Second,
	MinSoak:              0,
	FleetExpiry:          30 * time.Second,
	PurgeAfter:           24 * time.Hour,
	Backfill:             backfill.Defaults,
}

// settings are the engine's fields with Defaults for those left zero. A
// negative LongStatementTimeout, Wait or PurgeAfter means none (no limit,
// no wait, no delay) and comes back as 0; the other durations must be
// positive to count.
func (e *Engine) settings() Settings {
	d := Defaults
	positive := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	orNone := func(v, def time.Duration) time.Duration {
		switch {
		case v < 0:
			return 0
		case v == 0:
			return def
		}
		return v
	}
	s := Settings{
		LockTimeout:          positive(e.LockTimeout, d.LockTimeout),
		StatementTimeout:     positive(e.StatementTimeout, d.StatementTimeout),
		LongStatementTimeout: orNone(e.LongStatementTimeout, d.LongStatementTimeout),
		Retries:              e.Retries,
		Wait:                 orNone(e.Wait, d.Wait),
		LeaseTTL:             positive(e.LeaseTTL, d.LeaseTTL),
		MinSoak:              positive(e.MinSoak, d.MinSoak),
		FleetExpiry:          positive(e.FleetExpiry, d.FleetExpiry),
		PurgeAfter:           orNone(e.PurgeAfter, d.PurgeAfter),
		// The backfill package applies its own Defaults to what is zero.
		Backfill: e.Backfill,
	}
	if s.Retries <= 0 {
		s.Retries = d.Retries
	}
	return s
}

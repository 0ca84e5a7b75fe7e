package planner

import (
	"context"
	"strings"
	"testing"
	"time"
)

// timeoutProbe fails a VALIDATE with the timeouts it runs under; read-only
// evaluations (the sample before the first phase) pass.
const timeoutProbe = `
CREATE FUNCTION timeout_probe(bigint) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
	IF current_setting('transaction_read_only') = 'on' THEN
		RETURN true;
	END IF;
	RAISE EXCEPTION 'probe: statement_timeout=% lock_timeout=%', current_setting('statement_timeout'), current_setting('lock_timeout');
END $$;`

// shown is a duration as PostgreSQL shows a timeout set to it.
func shown(t *testing.T, f *engineFixture, d time.Duration) string {
	t.Helper()
	var s string
	if err := f.db.Pool.QueryRow(context.Background(), `SELECT set_config('statement_timeout', $1, false)`, pgDuration(d)).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// An Engine whose settings are left zero runs with Defaults: VALIDATE gets
// the long statement timeout; set, the field wins; negative, no limit.
func TestEngineWithZeroSettingsUsesDefaults(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	f.db.Exec(t, timeoutProbe)
	specs := f.specs(t, `
changes:
  - id: users-probe
    kind: add_check
    table: users
    name: users_probe
    check: timeout_probe(id)
`)
	zero := &Engine{Pool: f.db.Pool}
	if r, err := zero.Next(ctx, specs, "d1", false); err != nil || reportOf(t, r, "users-probe").Phase != "add_not_valid" {
		t.Fatalf("first phase: %v", err)
	}
	long := shown(t, f, Defaults.LongStatementTimeout)
	for _, c := range []struct {
		engine *Engine
		want   string
	}{
		{zero, "statement_timeout=" + long + " lock_timeout=" + long},
		{&Engine{Pool: f.db.Pool, LongStatementTimeout: 2 * time.Hour}, "statement_timeout=2h lock_timeout=2h"},
		{&Engine{Pool: f.db.Pool, LongStatementTimeout: -1}, "statement_timeout=0 lock_timeout=0"},
	} {
		_, err := c.engine.Next(ctx, specs, "d2", false)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("VALIDATE with LongStatementTimeout %v: want %q, got %v", c.engine.LongStatementTimeout, c.want, err)
		}
	}
	if long == "0" {
		t.Fatal("the default long statement timeout is no limit")
	}
	// Each setting left zero is its default.
	if got := zero.settings(); got.LockTimeout != Defaults.LockTimeout || got.StatementTimeout != Defaults.StatementTimeout ||
		got.Retries != Defaults.Retries || got.Wait != Defaults.Wait || got.LeaseTTL != Defaults.LeaseTTL ||
		got.MinSoak != Defaults.MinSoak || got.FleetExpiry != Defaults.FleetExpiry || got.PurgeAfter != Defaults.PurgeAfter {
		t.Fatalf("settings of an Engine left zero: %+v, defaults %+v", got, Defaults)
	}
}

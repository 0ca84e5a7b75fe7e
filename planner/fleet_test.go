package planner

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/pgplanner/planner/flags"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// startInstance runs a flags provider as an application instance would,
// heartbeating every 100ms; poll sets how soon it sees new flags (no LISTEN).
func startInstance(t *testing.T, url, service string, poll time.Duration) *flags.Provider {
	t.Helper()
	p := flags.NewProvider(url, flags.WithService(service), flags.WithoutListen(), flags.WithPollInterval(poll),
		flags.WithHeartbeat(100*time.Millisecond), flags.WithLogger(quietLog))
	if err := p.InitWithContext(context.Background(), openfeature.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Shutdown)
	return p
}

// waitHeartbeat waits until the instance has reported key=variant.
func waitHeartbeat(t *testing.T, f *engineFixture, p *flags.Provider, key, variant string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		list, err := flags.Fleet(context.Background(), f.db.Pool, "planner", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range list {
			if in.ID == p.InstanceID() && in.Flags[key].Variant == variant {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("instance %s never reported %s=%s", p.InstanceID(), key, variant)
}

// Enforce and contract wait for the application instances that report
// heartbeats: an instance stuck on older flags holds them, by name, until it
// catches up or expires.
func TestFleetGates(t *testing.T) {
	f := newEngineFixture(t)
	f.e.FleetExpiry = time.Second
	specs := f.specs(t, renameSpec)
	id := "users-email-rename"
	f.next(t, specs, "d1") // expand: read=old write=old
	stuck := startInstance(t, f.db.URL, "stuck-api", time.Hour)
	waitHeartbeat(t, f, stuck, id+".write", "old")
	f.next(t, specs, "d2") // backfill
	f.next(t, specs, "d3") // dual_write: read=new write=both
	current := startInstance(t, f.db.URL, "web", 100*time.Millisecond)
	waitHeartbeat(t, f, current, id+".write", "both")

	r := f.next(t, specs, "d4")
	c := reportOf(t, r, id)
	if c.Action != Waiting || c.Phase != "enforce" || !strings.Contains(c.Reason, stuck.InstanceID()) ||
		!strings.Contains(c.Reason, id+".write=old") || strings.Contains(c.Reason, current.InstanceID()) {
		t.Fatalf("enforce with an instance on old flags: %+v", c)
	}
	// An instance that will see the enforce flags only at its next poll.
	late := startInstance(t, f.db.URL, "late-worker", 3*time.Second)
	waitHeartbeat(t, f, late, id+".write", "both")
	stuck.Shutdown()
	time.Sleep(1500 * time.Millisecond) // past the expiry
	if c := reportOf(t, f.next(t, specs, "d5"), id); c.Action != Advanced || c.Phase != "enforce" {
		t.Fatalf("enforce once the stuck instance expired: %+v", c)
	}
	// contract: every live instance must have read=new write=new, for the soak.
	c = reportOf(t, f.next(t, specs, "d6"), id)
	if c.Action != Waiting || c.Phase != "contract" || !strings.Contains(c.Reason, late.InstanceID()) {
		t.Fatalf("contract with an instance still on dual-write flags: %+v", c)
	}
	f.e.MinSoak = 2 * time.Second
	waitHeartbeat(t, f, late, id+".write", "new")
	// enforce was applied more than the soak ago (late polls every 3s), but
	// the late instance switched only just.
	c = reportOf(t, f.next(t, specs, "d7"), id)
	if c.Action != Waiting || !strings.Contains(c.Reason, "minimum soak") {
		t.Fatalf("contract right after the last instance switched: %+v", c)
	}
	time.Sleep(2 * time.Second)
	if c := reportOf(t, f.next(t, specs, "d8"), id); c.Action != Advanced || c.Phase != "contract" {
		t.Fatalf("contract once every instance had the flags for the soak: %+v", c)
	}
}

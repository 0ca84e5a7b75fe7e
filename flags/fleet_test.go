package flags_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

// fleetOf waits until the instance appears with the wanted variant of key
// in the fleet of db (live: seen within a second).
func fleetOf(t *testing.T, db *pgtest.DB, id, key, want string) flags.Instance {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		list := fleet(t, db)
		for _, in := range list {
			if in.ID == id && in.Flags[key].Variant == want {
				return in
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s never reported %s=%s: %+v", id, key, want, list)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fleet(t *testing.T, db *pgtest.DB) []flags.Instance {
	t.Helper()
	list, err := flags.Fleet(context.Background(), db.Pool, "planner", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// The provider's heartbeat says which flags its instance has loaded, and
// since when it has had each variant (a flag it had from its start: nil).
func TestProviderHeartbeats(t *testing.T) {
	db := stateDB(t, "planner")
	publish(t, db, "planner", "users-email", "expand", phases.Flags{"users-email.read": "old", "users-email.write": "old"}, emailMeta)
	p := flags.NewProvider(db.URL, flags.WithLogger(quiet), flags.WithService("billing-api"),
		flags.WithHeartbeat(100*time.Millisecond), flags.WithPollInterval(100*time.Millisecond))
	register(t, p)
	in := fleetOf(t, db, p.InstanceID(), "users-email.read", "old")
	if in.Service != "billing-api" || !in.Live || in.Flags["users-email.read"].Since != nil || in.Revision == nil {
		t.Fatalf("first heartbeat: %+v", in)
	}
	before := time.Now()
	publish(t, db, "planner", "users-email", "dual_write", phases.Flags{"users-email.read": "new", "users-email.write": "both"}, emailMeta)
	in = fleetOf(t, db, p.InstanceID(), "users-email.write", "both")
	if s := in.Flags["users-email.write"].Since; s == nil || s.Before(before.Add(-time.Second)) {
		t.Fatalf("since of a changed flag: %v (published at %v)", s, before)
	}
	p.Shutdown()
	time.Sleep(1500 * time.Millisecond)
	for _, in := range fleet(t, db) {
		if in.ID == p.InstanceID() && in.Live {
			t.Fatalf("a stopped instance is still live after the expiry: %+v", in)
		}
	}
}

// Without the privilege to record heartbeats the provider says so once and
// serves flags all the same.
func TestProviderWithoutHeartbeatPrivilege(t *testing.T) {
	db := stateDB(t, "planner")
	publish(t, db, "planner", "users-email", "expand", phases.Flags{"users-email.read": "old", "users-email.write": "old"}, emailMeta)
	db.Exec(t, `CREATE ROLE app_reader LOGIN`)
	db.Exec(t, `GRANT USAGE ON SCHEMA planner TO app_reader`)
	db.Exec(t, `GRANT SELECT ON planner.flags TO app_reader`)
	var logs syncBuffer
	url := strings.Replace(db.URL, "planner_test@", "app_reader@", 1)
	p := flags.NewProvider(url, flags.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
		flags.WithHeartbeat(50*time.Millisecond), flags.WithPollInterval(50*time.Millisecond))
	c := register(t, p)
	waitValue(t, c, "users-email.read", "old", 5*time.Second)
	time.Sleep(500 * time.Millisecond)
	if n := strings.Count(logs.String(), "cannot record this instance's heartbeat"); n != 1 {
		t.Fatalf("%d warnings about the heartbeat, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "GRANT SELECT, INSERT, UPDATE ON") {
		t.Fatalf("the warning does not say what to grant:\n%s", logs.String())
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

package planner

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

const dropSpec = `
changes:
  - id: legacy-drop
    kind: drop_column
    table: users
    column: legacy_flags
`

// The purge waits for --purge-after after the contract; next and status
// say how long, and that rollback still restores the column until then.
func TestPurgeWaitsForPurgeAfter(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, dropSpec)
	f.e.PurgeAfter = time.Hour
	f.next(t, specs, "d1") // stop_using
	f.next(t, specs, "d2") // contract
	if engHasColumn(t, f.db, "users", "legacy_flags") {
		t.Fatal("contract left the column under its name")
	}
	r := f.next(t, specs, "d3")
	c := reportOf(t, r, "legacy-drop")
	if c.Action != Waiting || c.Phase != "purge" || c.Gate != "purge_after" || !r.Waiting() ||
		!strings.Contains(c.Reason, "the purge may run from") || !strings.Contains(c.Reason, "left, --purge-after 1h0m0s") ||
		!strings.Contains(c.Reason, "planner rollback legacy-drop restores the old column") {
		t.Fatalf("purge before --purge-after: %+v", c)
	}
	list, err := f.e.Status(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	if s := list[0]; s.Next != "purge" || s.GateMet == nil || *s.GateMet || !strings.Contains(s.GateReason, "the purge may run from") {
		t.Fatalf("status before --purge-after: %+v", s)
	}
	f.e.PurgeAfter = -1 // no delay
	r = f.next(t, specs, "d3")
	if c := reportOf(t, r, "legacy-drop"); c.Action != Advanced || c.Phase != "purge" {
		t.Fatalf("purge after --purge-after: %+v", c)
	}
	if n := engCount(t, f.db, `SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname LIKE 'planner_tomb_%' AND NOT attisdropped`); n != 0 {
		t.Fatal("purge left the tombstone")
	}
	_, err = f.e.Rollback(ctx, "legacy-drop", "r1")
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "phase purge cannot be rolled back: drops public.users.planner_tomb_") {
		t.Fatalf("rollback after purge: %v", err)
	}
}

// A change registered by a planner whose contract was irreversible (its
// stored phase count is the legacy one) finishes with that contract.
func TestLegacyChangeKeepsItsIrreversibleContract(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, dropSpec)
	f.next(t, specs, "d1") // stop_using
	// A planner of that time stored no fingerprints either.
	f.db.Exec(t, `UPDATE planner.changes SET total = 2, fingerprint = '{}' WHERE id = 'legacy-drop'`)
	r := f.next(t, specs, "d2")
	if c := reportOf(t, r, "legacy-drop"); c.Action != Advanced || c.Phase != "contract" || c.Total != 2 {
		t.Fatalf("legacy contract: %+v", c)
	}
	if st := f.change(t, "legacy-drop"); st.Status != StatusDone || st.Total != 2 {
		t.Fatalf("state after the legacy contract: %s %d/%d", st.Status, st.Applied, st.Total)
	}
	if n := engCount(t, f.db, `SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND (attname = 'legacy_flags' OR attname LIKE 'planner_tomb_%') AND NOT attisdropped`); n != 0 {
		t.Fatal("the legacy contract did not drop the column")
	}
	_, err := f.e.Rollback(ctx, "legacy-drop", "r1")
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "phase contract cannot be rolled back: drops public.users.legacy_flags and its data") {
		t.Fatalf("rollback of the legacy contract: %v", err)
	}
}

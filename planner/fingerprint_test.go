package planner

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

const fingerprintSpec = `
changes:
  - id: users-email-lower
    kind: add_column
    table: users
    column: email_lower
    type: text
    backfill: lower(email)
`

// storedFingerprint reads a change's fingerprints from the state tables.
func (f *engineFixture) storedFingerprint(t *testing.T, id string) []string {
	t.Helper()
	return f.change(t, id).Fingerprint
}

// A change stores one fingerprint per phase at registration, the same one
// every later run on the server computes, so reruns go on undisturbed.
func TestFingerprintStoredAtRegistrationIsStable(t *testing.T) {
	f := newEngineFixture(t)
	specs := f.specs(t, fingerprintSpec)
	f.next(t, specs, "d1")
	first := f.storedFingerprint(t, "users-email-lower")
	if c := f.change(t, "users-email-lower"); len(first) != c.Total || c.Total != 3 || slices.Contains(first, "") {
		t.Fatalf("fingerprints after registration: %q (%d phases)", first, c.Total)
	}
	if first[0] == first[1] || first[1] == first[2] {
		t.Fatalf("phases share a fingerprint: %q", first)
	}
	for _, deploy := range []string{"d2", "d3"} {
		r := f.next(t, specs, deploy)
		if c := reportOf(t, r, "users-email-lower"); c.Action != Advanced {
			t.Fatalf("deploy %s: %+v", deploy, c)
		}
		if got := f.storedFingerprint(t, "users-email-lower"); !slices.Equal(got, first) {
			t.Fatalf("deploy %s changed the fingerprints: %q, registered %q", deploy, got, first)
		}
	}
	if c := f.change(t, "users-email-lower"); c.Status != StatusDone {
		t.Fatalf("change not done: %+v", c)
	}
}

// A stored spec that compiles to other SQL than at registration (what a
// planner upgrade mid-change would do) is refused before anything runs,
// naming the first phase that differs; rollback refuses it too.
func TestFingerprintMismatchRefusesInFlightChange(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, fingerprintSpec)
	f.next(t, specs, "d1") // expand
	registered := f.storedFingerprint(t, "users-email-lower")
	// The backfill phase now compiles to other SQL.
	f.db.Exec(t, `UPDATE planner.changes SET spec = jsonb_set(spec, '{fields,backfill}', '"upper(email)"') WHERE id = 'users-email-lower'`)
	before := engCount(t, f.db, `SELECT count(*) FROM planner.history`)
	_, err := f.e.Next(ctx, specs, "d2", false)
	if !errors.Is(err, ErrConfig) || errors.Is(err, ErrInput) {
		t.Fatalf("next with a different compilation: want ErrConfig, got %v", err)
	}
	for _, want := range []string{`stored change "users-email-lower"`, "phase 2 (backfill)", "1 of 3 phases applied",
		"finish it, or roll it back, with the planner version that started it"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("refusal %q does not say %q", err, want)
		}
	}
	if c := f.change(t, "users-email-lower"); c.Applied != 1 || c.Status != StatusActive || !slices.Equal(c.Fingerprint, registered) {
		t.Fatalf("refused change was touched: %+v", c)
	}
	if n := engCount(t, f.db, `SELECT count(*) FROM planner.history`); n != before {
		t.Fatalf("history grew from %d to %d rows", before, n)
	}
	if n := engCount(t, f.db, `SELECT count(*) FROM users WHERE email_lower IS NOT NULL`); n != 0 {
		t.Fatalf("%d rows were backfilled", n)
	}
	if _, err := f.e.Rollback(ctx, "users-email-lower", "r1"); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "phase 2 (backfill)") {
		t.Fatalf("rollback with a different compilation: %v", err)
	}
	if !engHasColumn(t, f.db, "users", "email_lower") {
		t.Fatal("the refused rollback dropped the column")
	}
	// The first phase differing is named even when a later one differs too.
	f.db.Exec(t, `UPDATE planner.changes SET spec = jsonb_set(spec, '{fields,backfill}', '"lower(email)"'), fingerprint[1] = 'x' WHERE id = 'users-email-lower'`)
	if _, err := f.e.Next(ctx, specs, "d2", false); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "phase 1 (expand)") {
		t.Fatalf("next with a different first phase: %v", err)
	}
	// Restored, the change goes on.
	f.db.Exec(t, `UPDATE planner.changes SET fingerprint = $1 WHERE id = 'users-email-lower'`, registered)
	if c := reportOf(t, f.next(t, specs, "d2"), "users-email-lower"); c.Action != Advanced || c.Phase != "backfill" {
		t.Fatalf("next once the fingerprints match: %+v", c)
	}
}

// A finished change runs nothing more: a planner compiling it differently
// still advances the others, and refuses only to roll it back.
func TestFingerprintOfFinishedChangeIsCheckedOnRollback(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, fingerprintSpec)
	for _, d := range []string{"d1", "d2", "d3"} {
		f.next(t, specs, d)
	}
	f.db.Exec(t, `UPDATE planner.changes SET fingerprint[1] = 'x' WHERE id = 'users-email-lower'`)
	if r := f.next(t, specs, "d4"); reportOf(t, r, "users-email-lower").Action != Done {
		t.Fatalf("next over a finished change: %+v", r.Changes)
	}
	if _, err := f.e.Rollback(ctx, "users-email-lower", "r1"); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "phase 1 (expand)") {
		t.Fatalf("rollback of a finished change compiled differently: %v", err)
	}
}

// A change registered before fingerprints were stored (a state without the
// column, then one with it empty) resumes, and gets its fingerprints on
// that run; a status on the old state reads it.
func TestFingerprintFilledForChangesRegisteredWithout(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, fingerprintSpec)
	f.next(t, specs, "d1")
	registered := f.storedFingerprint(t, "users-email-lower")
	f.db.Exec(t, `ALTER TABLE planner.changes DROP COLUMN fingerprint`)
	list, err := f.e.Status(ctx, specs)
	if err != nil || len(list) != 1 || list[0].Applied != 1 {
		t.Fatalf("status of a state without fingerprints: %+v %v", list, err)
	}
	if c := reportOf(t, f.next(t, specs, "d2"), "users-email-lower"); c.Action != Advanced || c.Phase != "backfill" {
		t.Fatalf("next on a state without fingerprints: %+v", c)
	}
	if got := f.storedFingerprint(t, "users-email-lower"); !slices.Equal(got, registered) {
		t.Fatalf("filled fingerprints %q, want those of registration %q", got, registered)
	}
	// Filled, they are checked.
	f.db.Exec(t, `UPDATE planner.changes SET fingerprint[3] = 'x' WHERE id = 'users-email-lower'`)
	if _, err := f.e.Next(ctx, specs, "d3", false); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "phase 3 (dual_write)") {
		t.Fatalf("next once filled and then differing: %v", err)
	}
}

// planner adopt registers a change with the fingerprints of the phases it
// compiles from the table as it was before them; planner next goes on.
func TestFingerprintOfAdoptedChange(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, fingerprintSpec)
	f.db.Exec(t, `ALTER TABLE users ADD COLUMN email_lower text`)
	if _, err := f.e.Adopt(ctx, specs, "users-email-lower", "expand", "a1", false); err != nil {
		t.Fatalf("adopt: %v", err)
	}
	c := f.change(t, "users-email-lower")
	if c.Applied != 1 || len(c.Fingerprint) != c.Total {
		t.Fatalf("adopted change: %+v", c)
	}
	want, err := storedFingerprints(c)
	if err != nil || !slices.Equal(want, c.Fingerprint) {
		t.Fatalf("adopted fingerprints %q, compiled from the stored change %q (%v)", c.Fingerprint, want, err)
	}
	if r := reportOf(t, f.next(t, specs, "d1"), "users-email-lower"); r.Action != Advanced || r.Phase != "backfill" {
		t.Fatalf("next after adopt: %+v", r)
	}
}

// Status lists every change even when this planner refuses one of them:
// the refused change carries the refusal, a change on another table what
// next would do with it, a change queued behind the refused one its place;
// the list comes back with the refusal, an ErrConfig.
func TestFingerprintMismatchStatusShowsEveryChange(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, fingerprintSpec)
	f.next(t, specs, "d1") // expand
	f.db.Exec(t, `UPDATE planner.changes SET fingerprint[2] = 'x' WHERE id = 'users-email-lower'`)
	specs = f.specs(t, fingerprintSpec+`
  - id: users-email-check
    kind: add_check
    table: users
    name: users_email_at
    check: "email LIKE '%@%'"
  - id: orders-total-check
    kind: add_check
    table: orders
    name: orders_total_positive
    check: "total >= 0"
`)
	list, err := f.e.Status(ctx, specs)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `stored change "users-email-lower": its phase 2 (backfill)`) {
		t.Fatalf("status with a change compiled differently: want its refusal as ErrConfig, got %v", err)
	}
	byID := map[string]ChangeStatus{}
	for _, s := range list {
		byID[s.ID] = s
	}
	if len(list) != 3 {
		t.Fatalf("status lists %d changes, want 3: %+v", len(list), list)
	}
	if s := byID["users-email-lower"]; s.Error != err.Error() || s.Applied != 1 || s.NextAction != "" {
		t.Errorf("refused change: %+v", s)
	}
	if s := byID["users-email-check"]; s.Error != "" || s.NextAction != NothingToDo || !strings.Contains(s.NextReason, "queued behind change users-email-lower") {
		t.Errorf("change queued behind the refused one: %+v", s)
	}
	if s := byID["orders-total-check"]; s.Error != "" || s.NextAction != WouldApply {
		t.Errorf("change on another table: %+v", s)
	}
	if n := engCount(t, f.db, `SELECT count(*) FROM planner.changes`); n != 1 {
		t.Fatalf("status registered changes: %d stored", n)
	}
}

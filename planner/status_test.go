package planner

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Status says what `planner next --dry-run` would do, word for word, for
// every reason a change can wait or be held back.
func TestStatusAgreesWithDryRun(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, renameSpec+`  - id: users-name-not-null
    kind: set_not_null
    table: users
    column: name
    backfill: "'unknown'"
`)
	agree := func(step string, want map[string]Action) {
		t.Helper()
		statuses, err := f.e.Status(ctx, specs)
		if err != nil {
			t.Fatal(err)
		}
		dry, err := f.e.Next(ctx, specs, "probe", true)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range dry.Changes {
			var s *ChangeStatus
			for i := range statuses {
				if statuses[i].ID == c.ID {
					s = &statuses[i]
				}
			}
			reason := c.Reason
			if c.Error != "" {
				reason = c.Error
			}
			if s == nil || s.NextAction != c.Action || s.NextReason != reason {
				t.Fatalf("%s: %s: status says %+v; next --dry-run says %s %q", step, c.ID, s, c.Action, reason)
			}
			if w, ok := want[c.ID]; ok && c.Action != w {
				t.Fatalf("%s: %s: %s (%s), want %s", step, c.ID, c.Action, reason, w)
			}
			if (c.Action == Waiting) != (s.GateMet != nil && !*s.GateMet) {
				t.Fatalf("%s: %s: gate_met %v for action %s", step, c.ID, s.GateMet, c.Action)
			}
		}
	}
	agree("before anything", map[string]Action{"users-email-rename": WouldApply, "users-name-not-null": NothingToDo})
	f.e.Async = true
	f.next(t, specs, "d1") // expand
	f.next(t, specs, "d2") // backfill starts in the background
	agree("async backfill, no worker", map[string]Action{"users-email-rename": Waiting, "users-name-not-null": NothingToDo})
	f.e.Async = false
	agree("the same, next without --async", map[string]Action{"users-email-rename": WouldApply})
	f.e.MinSoak = time.Hour
	for d := 3; d < 10; d++ {
		r := f.next(t, specs, "d"+string(rune('0'+d)))
		if reportOf(t, r, "users-email-rename").Action == Waiting {
			break
		}
	}
	agree("soak time left", map[string]Action{"users-email-rename": Waiting})
	statuses, _ := f.e.Status(ctx, specs)
	if !strings.Contains(statuses[0].NextReason, "minimum soak") {
		t.Fatalf("soak reason: %q", statuses[0].NextReason)
	}
}

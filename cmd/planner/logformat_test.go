package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// jsonEvents decodes stderr written under --log-format json: every line
// must be one JSON object.
func jsonEvents(t *testing.T, stderr string) []map[string]any {
	t.Helper()
	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if line == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("stderr line is not a JSON event: %q (%v)", line, err)
		}
		events = append(events, ev)
	}
	return events
}

func findEvent(events []map[string]any, msg string, attrs map[string]any) map[string]any {
	for _, ev := range events {
		if ev["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range attrs {
			ok = ok && ev[k] == v
		}
		if ok {
			return ev
		}
	}
	return nil
}

// --log-format json turns every phase, backfill progress and unmet gate
// into a structured event with stable attribute names; text stays lines.
func TestLogFormatJSON(t *testing.T) {
	c, _ := newCLI(t)
	dir := "--dir=" + c.dir
	r := c.run(nil, "next", dir, "--deploy-id=1")
	c.expect(r, 0, "users-email-rename: phase 1/6 expand (")
	if strings.Contains(r.stderr, `"msg"`) {
		t.Fatalf("text log has JSON:\n%s", r.stderr)
	}
	var all []map[string]any
	for i := 2; i <= 4; i++ {
		r = c.run(nil, "next", dir, "--log-format=json", "--deploy-id="+strconv.Itoa(i))
		c.expect(r, 0)
		all = append(all, jsonEvents(t, r.stderr)...)
	}
	start := findEvent(all, "phase_start", map[string]any{"change": "users-email-rename", "phase": "backfill", "deploy_id": "2", "phase_index": 1.0, "phases": 6.0})
	if start == nil || start["level"] != "INFO" || start["time"] == nil {
		t.Fatalf("no phase_start event for the backfill: %v", all)
	}
	end := findEvent(all, "phase_end", map[string]any{"change": "users-email-rename", "phase": "enforce", "deploy_id": "4"})
	if d, ok := end["duration_ms"].(float64); end == nil || !ok || d <= 0 {
		t.Fatalf("no phase_end event with duration_ms for enforce: %v", all)
	}
	if ev := findEvent(all, "backfill_progress", map[string]any{"change": "users-email-rename", "verified": true, "rows": 500.0}); ev == nil {
		t.Fatalf("no final backfill_progress event: %v", all)
	}
	r = c.run(nil, "next", dir, "--log-format=json", "--deploy-id=5", "--min-soak=1h")
	c.expect(r, 3)
	gate := findEvent(jsonEvents(t, r.stderr), "gate_not_met", map[string]any{"change": "users-email-rename", "phase": "contract", "gate": "flags_soaked", "deploy_id": "5"})
	if reason, _ := gate["reason"].(string); !strings.Contains(reason, "soak") {
		t.Fatalf("no gate_not_met event with the reason: %s", r.stderr)
	}
	r = c.run(nil, "rollback", "users-email-rename", "--log-format=json", "--deploy-id=6")
	c.expect(r, 0)
	events := jsonEvents(t, r.stderr)
	if findEvent(events, "rollback_start", map[string]any{"change": "users-email-rename", "phase": "enforce"}) == nil ||
		findEvent(events, "rollback_end", map[string]any{"change": "users-email-rename", "phase": "enforce", "deploy_id": "6"}) == nil {
		t.Fatalf("no rollback events: %s", r.stderr)
	}
	c.expect(c.run(nil, "next", dir, "--log-format=xml", "--deploy-id=7"), 2, "--log-format must be text or json")
}

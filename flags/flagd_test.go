package flags_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/phases"
)

// TestExportFlagdShape checks the documented flagd shape on a generic decode.
func TestExportFlagdShape(t *testing.T) {
	db := stateDB(t, "planner")
	publish(t, db, "planner", "users-email", "dual_write", phases.Flags{"users-email.read": "new", "users-email.write": "both"}, emailMeta)
	publish(t, db, "planner", "orders-note", "expand", phases.Flags{"orders-note.read": "old", "orders-note.write": "old"}, nil)
	l, err := flags.List(t.Context(), db.Pool, "planner")
	if err != nil {
		t.Fatal(err)
	}
	out, err := flags.ExportFlagd(l)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if doc["$schema"] != "https://flagd.dev/schema/v0/flags.json" {
		t.Errorf("$schema = %v", doc["$schema"])
	}
	fl, _ := doc["flags"].(map[string]any)
	want := map[string]struct {
		variants map[string]any
		def      string
	}{
		"users-email.read":      {map[string]any{"old": "old", "new": "new"}, "new"},
		"users-email.write":     {map[string]any{"old": "old", "both": "both", "new": "new"}, "both"},
		"users-email.read_new":  {map[string]any{"on": true, "off": false}, "on"},
		"users-email.write_old": {map[string]any{"on": true, "off": false}, "on"},
		"users-email.write_new": {map[string]any{"on": true, "off": false}, "on"},
		"orders-note.read":      {map[string]any{"old": "old", "new": "new"}, "old"},
		"orders-note.write":     {map[string]any{"old": "old", "both": "both", "new": "new"}, "old"},
		"orders-note.read_new":  {map[string]any{"on": true, "off": false}, "off"},
		"orders-note.write_old": {map[string]any{"on": true, "off": false}, "on"},
		"orders-note.write_new": {map[string]any{"on": true, "off": false}, "off"},
	}
	if len(fl) != len(want) {
		t.Errorf("%d flags, want %d:\n%s", len(fl), len(want), out)
	}
	for key, w := range want {
		f, ok := fl[key].(map[string]any)
		if !ok {
			t.Errorf("flag %s missing", key)
			continue
		}
		if f["state"] != "ENABLED" || f["defaultVariant"] != w.def || !reflect.DeepEqual(f["variants"], w.variants) {
			t.Errorf("%s: %v", key, f)
		}
		meta, _ := f["metadata"].(map[string]any)
		for _, k := range []string{"change_id", "phase", "updated_at"} {
			if _, ok := meta[k].(string); !ok {
				t.Errorf("%s: metadata %s missing", key, k)
			}
		}
	}
	if m := fl["users-email.read"].(map[string]any)["metadata"].(map[string]any); m["new_column"] != "email_address" || m["phase"] != "dual_write" {
		t.Errorf("metadata: %v", m)
	}
	again, _ := flags.ExportFlagd(l)
	if string(again) != string(out) {
		t.Error("export is not deterministic")
	}
}

func TestExportFlagdRoundTrip(t *testing.T) {
	db := stateDB(t, "planner")
	publish(t, db, "planner", "users-email", "enforce", phases.Flags{"users-email.read": "new", "users-email.write": "new"}, emailMeta)
	publish(t, db, "planner", "drop-legacy", "dual_write", phases.Flags{"drop-legacy.read": "new"}, map[string]string{"table": "app.t"})
	l, err := flags.List(t.Context(), db.Pool, "planner")
	if err != nil {
		t.Fatal(err)
	}
	out, err := flags.ExportFlagd(l)
	if err != nil {
		t.Fatal(err)
	}
	back, err := flags.ParseFlagd(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(l) {
		t.Fatalf("round trip: %d flags, want %d", len(back), len(l))
	}
	for i := range l {
		a, b := l[i], back[i]
		if a.Key != b.Key || a.Variant != b.Variant || a.ChangeID != b.ChangeID || a.Phase != b.Phase ||
			!a.UpdatedAt.Equal(b.UpdatedAt) || !reflect.DeepEqual(a.Metadata, b.Metadata) {
			t.Errorf("round trip:\n got %+v\nwant %+v", b, a)
		}
	}
}

func TestExportFlagdRefusesBadState(t *testing.T) {
	if _, err := flags.ExportFlagd([]flags.Flag{{Key: "c.read", Variant: "both"}}); err == nil {
		t.Error("read=both exported")
	}
	bad := []string{
		`not json`,
		`{"$schema": "other", "flags": {}}`,
		`{"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": {"c.read": {"state": "ENABLED", "variants": {"old": "old"}, "defaultVariant": "new"}}}`,
	}
	for _, in := range bad {
		if _, err := flags.ParseFlagd([]byte(in)); err == nil {
			t.Errorf("ParseFlagd(%s): want an error", in)
		}
	}
}

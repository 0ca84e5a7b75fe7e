package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/pgtest"
)

func TestFlagsCommand(t *testing.T) {
	c, _ := newCLI(t)
	c.expect(c.run(nil, "flags"), 0, "no flags")
	c.expect(c.run(nil, "next", "--dir="+c.dir, "--deploy-id=d1"), 0, "expand")

	c.expect(c.run(nil, "flags"), 0, "KEY", "VARIANT", "users-email-rename.read", "users-email-rename.write", "expand")
	r := c.run(nil, "flags", "-o", "json")
	c.expect(r, 0)
	var listed []flags.Flag
	if err := unmarshalResult(r.stdout, &listed); err != nil {
		t.Fatalf("flags -o json: %v\n%s", err, r.stdout)
	}
	if len(listed) != 2 || listed[0].Key != "users-email-rename.read" || listed[0].Variant != "old" ||
		listed[0].Metadata["new_column"] != "email_address" {
		t.Fatalf("flags -o json: %+v", listed)
	}

	// export to stdout and to a file: the same document, round-tripping the state
	r = c.run(nil, "flags", "export", "--format", "flagd")
	c.expect(r, 0, `"$schema": "https://flagd.dev/schema/v0/flags.json"`, `"defaultVariant": "old"`)
	file := filepath.Join(t.TempDir(), "flags.json")
	c.expect(c.run(nil, "flags", "export", "--format=flagd", "--file", file), 0)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != r.stdout {
		t.Errorf("file and stdout differ:\n%s\n---\n%s", data, r.stdout)
	}
	back, err := flags.ParseFlagd(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range back {
		if i >= len(listed) || back[i].Key != listed[i].Key || back[i].Variant != listed[i].Variant ||
			!back[i].UpdatedAt.Equal(listed[i].UpdatedAt) || !reflect.DeepEqual(back[i].Metadata, listed[i].Metadata) {
			t.Fatalf("round trip:\n%+v\nwant\n%+v", back, listed)
		}
	}
	if len(back) != len(listed) {
		t.Fatalf("round trip: %d flags, want %d", len(back), len(listed))
	}

	c.expect(c.run(nil, "flags", "export", "--format", "yaml"), 2, "--format must be flagd")
}

// TestFlagsExportThroughPooler: an export job may run behind the
// applications' PgBouncer in transaction mode. Each run is a new client on
// the same server connections: nothing one run prepared may trip the next.
func TestFlagsExportThroughPooler(t *testing.T) {
	c, db := newCLI(t)
	c.expect(c.run(nil, "next", "--dir="+c.dir, "--deploy-id=d1"), 0, "expand")
	direct := c.run(nil, "flags", "export", "--format", "flagd")
	c.expect(direct, 0, `"defaultVariant": "old"`)
	pooled := []string{"DATABASE_URL=" + pgtest.NewPgBouncer(t, db, "transaction", 1)}
	for range 3 {
		r := c.run(pooled, "flags", "export", "--format", "flagd")
		c.expect(r, 0)
		if r.stdout != direct.stdout {
			t.Fatalf("through the pooler:\n%s\nwant\n%s", r.stdout, direct.stdout)
		}
		c.expect(c.run(pooled, "flags"), 0, "users-email-rename.write")
	}
}

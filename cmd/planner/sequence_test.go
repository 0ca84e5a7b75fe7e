package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A sequence that contradicts itself is refused by plan (offline and
// connected), validate and next, naming both changes, with exit 2; next
// creates nothing.
func TestSequenceContradictionRefusedEverywhere(t *testing.T) {
	c, _ := newCLI(t)
	os.WriteFile(filepath.Join(c.dir, "02.yaml"), []byte(`changes:
  - id: users-email-drop
    kind: drop_column
    table: users
    column: email
`), 0o644)
	words := []string{"users-email-drop", "users-email-rename", `renamed to "email_address"`}
	c.expect(c.run(nil, "plan", "--offline", c.dir), 2, words...)
	c.expect(c.run(nil, "plan", c.dir), 2, words...)
	c.expect(c.run(nil, "validate", "--dir="+c.dir), 2, append(words, "FAIL")...)
	c.expect(c.run(nil, "next", "--dir="+c.dir, "--deploy-id=d1"), 2, words...)
	c.expect(c.run(nil, "status", "--dir="+c.dir), 0)
	if r := c.run(nil, "history"); strings.Contains(r.stdout, "expand") {
		t.Fatalf("next ran a phase of a refused sequence:\n%s", r.stdout)
	}
}

func TestStateSchemaFlagRefusals(t *testing.T) {
	c, _ := newCLI(t)
	c.expect(c.run(nil, "validate", "--dir="+c.dir, "--state-schema="+strings.Repeat("x", 64)), 2, "64 bytes", "63")
	c.expect(c.run(nil, "next", "--dir="+c.dir, "--deploy-id=d1", "--state-schema=public"), 2, `schema "public" holds tables that are not the planner's (users)`)
	c.expect(c.run(nil, "validate", "--dir="+c.dir, "--state-schema=public"), 2, "ok    users-email-rename", "not the planner's")
}

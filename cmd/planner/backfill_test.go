package main

import (
	"testing"

	"github.com/pgplanner/planner/backfill"
)

// TestBackfillCommands drives an --async backfill through the CLI: status,
// pause, a run that stops when paused, resume, a run to verification.
func TestBackfillCommands(t *testing.T) {
	c, db := newCLI(t)
	dir := "--dir=" + c.dir
	c.expect(c.run(nil, "backfill", "status"), 0, "no backfills")
	c.expect(c.run(nil, "backfill", "run"), 0, "no unfinished backfill")
	c.expect(c.run(nil, "next", dir, "--deploy-id=d1"), 0, "expand")
	c.expect(c.run(nil, "next", dir, "--deploy-id=d2", "--async"), 3, "backfill")
	c.expect(c.run(nil, "backfill", "status"), 0, "users-email-rename", `public.users."email_address"`, "backfill", "0/500 rows")

	c.expect(c.run(nil, "backfill", "pause", "users-email-rename"), 0, "backfill users-email-rename paused")
	c.expect(c.run(nil, "backfill", "status"), 0, "paused (planner backfill resume users-email-rename)")
	c.expect(c.run(nil, "backfill", "run", "users-email-rename", "--stop-when-paused"), 1, "backfill paused")
	c.expect(c.run(nil, "backfill", "resume", "users-email-rename"), 0, "resumed")
	c.expect(c.run(nil, "backfill", "run", "--workers=2"), 0, "users-email-rename: 500 rows backfilled (500 changed), verified")

	r := c.run(nil, "backfill", "status", "-o", "json")
	c.expect(r, 0)
	var all []backfill.Progress
	if err := unmarshalResult(r.stdout, &all); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r.stdout)
	}
	if len(all) != 1 || !all[0].Verified || all[0].Rows != 500 {
		t.Fatalf("status: %+v", all)
	}
	var bad int
	if err := db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM users WHERE email_address IS DISTINCT FROM email`).Scan(&bad); err != nil || bad != 0 {
		t.Fatalf("%d rows differ (%v)", bad, err)
	}
	// The gate is open: the next deploy advances.
	c.expect(c.run(nil, "next", dir, "--deploy-id=d3"), 0, "1 advanced")

	c.expect(c.run(nil, "backfill", "pause", "no-such-change"), 2, "no backfill job")
	c.expect(c.run(nil, "backfill", "run", "no-such-change"), 2, "no backfill job")
	c.expect(c.run(nil, "backfill", "run", "--workers=-1"), 2, "--workers")
	c.expect(c.run(nil, "backfill", "run", "--max-workers=0"), 2, "--max-workers")
}

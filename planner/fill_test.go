package planner

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestNullWritesBeforeEnforce: applications that do not set a column keep
// inserting (and updating it to NULL) between a verified backfill and the
// enforce phase. The fill trigger gives those rows the fill value, so
// enforce succeeds, and once NOT NULL holds the trigger is gone.
func TestNullWritesBeforeEnforce(t *testing.T) {
	cases := []struct {
		name, spec, column string
		// write leaves the column NULL; want is the value the row must get.
		write, want string
	}{
		{
			name:   "add_column without a default",
			column: "status",
			spec: `kind: add_column
    table: users
    column: status
    type: text
    not_null: true
    backfill: "'n:' || coalesce(users.name, email)"`,
			write: `INSERT INTO users (id, email, name) VALUES (5001, 'late@example.com', 'late')`,
			want:  "n:late",
		},
		{
			name:   "set_not_null",
			column: "name",
			spec: `kind: set_not_null
    table: users
    column: name
    backfill: "split_part(email, '@', 1)"`,
			write: `INSERT INTO users (id, email, name) VALUES (5001, 'late@example.com', NULL)`,
			want:  "late",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newEngineFixture(t)
			specs := f.specs(t, "changes:\n  - id: fill\n    "+c.spec+"\n")
			for deploy := 1; ; deploy++ {
				r := f.next(t, specs, "d"+string(rune('0'+deploy)))
				cr := reportOf(t, r, "fill")
				if cr.Action == Done {
					break
				}
				if cr.Action != Advanced && cr.Action != Waiting {
					t.Fatalf("deploy %d: %+v", deploy, cr)
				}
				if cr.Phase == "backfill" && cr.Action == Advanced {
					// After the verified backfill: a writer that leaves the
					// column NULL, and one that sets it NULL on an old row.
					f.db.Exec(t, c.write)
					f.db.Exec(t, `UPDATE users SET `+c.column+` = NULL WHERE id = 7`)
				}
				if deploy > 10 {
					t.Fatalf("not done after 10 deploys, last %+v", cr)
				}
			}
			var got string
			if err := f.db.Pool.QueryRow(ctx, `SELECT `+c.column+` FROM users WHERE id = 5001`).Scan(&got); err != nil || got != c.want {
				t.Errorf("row written after the backfill: %q (%v), want %q", got, err, c.want)
			}
			if n := engCount(t, f.db, `SELECT count(*) FROM users WHERE `+c.column+` IS NULL`); n != 0 {
				t.Errorf("%d NULL rows", n)
			}
			if n := engCount(t, f.db, `SELECT count(*) FROM pg_trigger WHERE tgrelid = 'users'::regclass AND NOT tgisinternal`); n != 0 {
				t.Errorf("%d triggers left on users after enforce", n)
			}
			if n := engCount(t, f.db, `SELECT count(*) FROM pg_proc WHERE proname LIKE 'planner_fill%'`); n != 0 {
				t.Errorf("%d fill functions left after enforce", n)
			}
		})
	}
}

// TestSetNotNullRollbackInterrupted: the rollback of set_not_null's
// backfill fails (its DROP TRIGGER cannot get its lock past a row lock held
// for longer than its retries). The phase is then marked partly applied,
// and every way on ends right: rollback finishes with the data as before;
// next redoes the phase, also from the state a kill later in the rollback
// leaves (trigger gone, some rows set back and their records deleted).
func TestSetNotNullRollbackInterrupted(t *testing.T) {
	for _, then := range []string{"rollback", "next", "next after a partial restore"} {
		t.Run(then, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newEngineFixture(t)
			f.e.LockTimeout, f.e.Retries = 50*time.Millisecond, 2
			original := dataOf(t, f.db, "users")
			specs := f.specs(t, `changes:
  - id: names
    kind: set_not_null
    table: users
    column: name
    backfill: "'(none)'"
`)
			if cr := reportOf(t, f.next(t, specs, "d1"), "names"); cr.Action != Advanced || cr.Phase != "backfill" {
				t.Fatalf("%+v", cr)
			}
			blocker, err := f.db.Pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := blocker.Exec(ctx, `SELECT 1 FROM users WHERE id = 7 FOR UPDATE`); err != nil {
				t.Fatal(err)
			}
			_, err = f.e.Rollback(ctx, "names", "down-1")
			blocker.Rollback(ctx)
			if err == nil || !strings.Contains(err.Error(), "lock") {
				t.Fatalf("rollback behind a lock held past its retries: %v", err)
			}
			if c := f.change(t, "names"); c.Status != StatusApplying || c.Applied != 0 {
				t.Fatalf("after the failed rollback: applied %d, status %s; want the backfill phase marked partly applied", c.Applied, c.Status)
			}
			if then == "next after a partial restore" {
				f.db.Exec(t, `DROP TRIGGER "planner_fill_names" ON users;
WITH gone AS (DELETE FROM planner.backfill_undo WHERE key IN (SELECT key FROM planner.backfill_undo LIMIT 10) RETURNING key)
UPDATE users SET name = NULL FROM gone WHERE users.id = gone.key[1]::bigint`)
			}
			if then != "rollback" {
				if cr := reportOf(t, f.next(t, specs, "d2"), "names"); cr.Action != Advanced || cr.Phase != "backfill" {
					t.Fatalf("next after the failed rollback: %+v", cr)
				}
				if n := engCount(t, f.db, `SELECT count(*) FROM users WHERE name IS NULL`); n != 0 {
					t.Fatalf("%d NULL names after the backfill ran again", n)
				}
				if n := engCount(t, f.db, `SELECT count(*) FROM pg_trigger WHERE tgname = 'planner_fill_names'`); n != 1 {
					t.Fatal("the fill trigger is not back")
				}
			}
			if _, err := f.e.Rollback(ctx, "names", "down-2"); err != nil {
				t.Fatal(err)
			}
			if c := f.change(t, "names"); c.Status != StatusPending || c.Applied != 0 {
				t.Fatalf("after the rollback: applied %d, status %s", c.Applied, c.Status)
			}
			if dataOf(t, f.db, "users") != original {
				t.Fatal("the data is not as before the change")
			}
		})
	}
}

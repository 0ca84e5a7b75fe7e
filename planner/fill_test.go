package planner

import (
	"context"
	"testing"
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

package planner

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgplanner/planner/phases"
)

// partitionedSetup makes events, range-partitioned by day into parts
// partitions of 10 days each plus a default partition, with rows in every
// one of them (days 0..10*parts+9), an index, a unique constraint (which
// includes the partition key) and a foreign key to users.
func partitionedSetup(parts, rows int) string {
	var b strings.Builder
	b.WriteString(`CREATE TABLE events (id bigint NOT NULL, day int NOT NULL, email text NOT NULL, note text, legacy int,
	amount numeric(12,2) NOT NULL DEFAULT 0, user_id bigint, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
`)
	for i := 0; i < parts; i++ {
		fmt.Fprintf(&b, "CREATE TABLE events_p%d PARTITION OF events FOR VALUES FROM (%d) TO (%d);\n", i, i*10, i*10+10)
	}
	b.WriteString("CREATE TABLE events_pdef PARTITION OF events DEFAULT;\n")
	fmt.Fprintf(&b, `CREATE INDEX events_email_idx ON events (email);
ALTER TABLE events ADD CONSTRAINT events_email_day_key UNIQUE (email, day);
ALTER TABLE events ADD CONSTRAINT events_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id);
INSERT INTO events SELECT g, g %% %d, 'e' || g || '@example.com', CASE WHEN g %% 5 = 0 THEN NULL ELSE 'note ' || g END,
	g %% 3, (g %% 100) * 1.5, 1 + g %% 2000 FROM generate_series(1, %d) g;
ANALYZE events;
`, parts*10+10, rows)
	return b.String()
}

func partitionTables(parts int) []string {
	out := []string{"events", "events_pdef"}
	for i := 0; i < parts; i++ {
		out = append(out, fmt.Sprintf("events_p%d", i))
	}
	return out
}

// onEveryPartition is true when cond (with p the partition's oid) holds
// for every partition of events.
func onEveryPartition(cond string) string {
	return `SELECT bool_and(` + cond + `) AND count(*) > 0 FROM (SELECT inhrelid AS p FROM pg_inherits WHERE inhparent = 'events'::regclass) s`
}

// The stairway (stairway_test.go) of every kind on a partitioned table:
// range partitions and a default partition, rows in all of them.
func TestStairwayPartitioned(t *testing.T) {
	const parts, rows = 2, 300
	setup := partitionedSetup(parts, rows)
	tables := partitionTables(parts)
	cases := []struct {
		kind, spec  string
		after       map[string][]string
		final       []string
		extraTables []string
		// extraSetup runs after the shared setup.
		extraSetup string
		tomb       *tombWrites
	}{
		{
			kind: "rename_column",
			spec: `kind: rename_column
    table: events
    column: email
    to: email_address`,
			tomb: &tombWrites{
				write: `UPDATE events SET email_address = 'moved' || id || '@example.com' WHERE id <= 20;
					INSERT INTO events (id, day, email_address) VALUES (100001, 25, 'new@example.com')`,
				checks: []string{
					`SELECT count(*) = 20 FROM events WHERE id <= 20 AND email = 'moved' || id || '@example.com'`,
					`SELECT email = 'new@example.com' FROM events WHERE id = 100001`,
					`SELECT count(*) = 0 FROM events WHERE email IS DISTINCT FROM email_address`,
				},
				cleanup: `UPDATE events SET email = 'e' || id || '@example.com' WHERE id <= 20; DELETE FROM events WHERE id = 100001`,
			},
			after: map[string][]string{
				"expand": {onEveryPartition(`EXISTS (SELECT FROM pg_trigger WHERE tgrelid = p AND tgname = 'planner_sync_stair' AND tgparentid <> 0)`)},
				"enforce": {
					`SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_email_address_idx'::regclass`,
					onEveryPartition(`EXISTS (SELECT FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indexrelid
						WHERE i.indrelid = p AND h.inhparent = 'events_email_address_idx'::regclass AND i.indisvalid)`),
					`SELECT convalidated FROM pg_constraint WHERE conrelid = 'events'::regclass AND conname = 'events_email_address_day_key'`,
				},
			},
			final: []string{
				`SELECT count(*) = 300 FROM events WHERE email_address = 'e' || id || '@example.com'`,
				onEveryPartition(`(SELECT attnotnull FROM pg_attribute WHERE attrelid = p AND attname = 'email_address')`),
				`SELECT NOT EXISTS (SELECT FROM pg_trigger WHERE tgname LIKE 'planner%')`,
			},
		},
		{
			kind: "add_column",
			spec: `kind: add_column
    table: events
    column: status
    type: text
    not_null: true
    backfill: "'active'"
    default: "'active'"`,
			after: map[string][]string{
				"expand": {onEveryPartition(`EXISTS (SELECT FROM pg_trigger WHERE tgrelid = p AND tgname = 'planner_fill_stair')`)},
			},
			final: []string{
				`SELECT count(*) = 300 FROM events WHERE status = 'active'`,
				onEveryPartition(`(SELECT attnotnull FROM pg_attribute WHERE attrelid = p AND attname = 'status')`),
			},
		},
		{
			kind: "change_column_type",
			spec: `kind: change_column_type
    table: events
    column: amount
    type: bigint
    up: "round(amount * 100)::bigint"
    down: "(amount_cents / 100.0)::numeric(12,2)"
    new_column: amount_cents`,
			tomb: &tombWrites{
				write: `UPDATE events SET amount_cents = 12345 WHERE id <= 20;
					INSERT INTO events (id, day, email) VALUES (100001, 25, 'x1@example.com')`,
				checks: []string{
					`SELECT count(*) = 20 FROM events WHERE id <= 20 AND amount = 123.45`,
					`SELECT amount = 0 AND amount_cents = 0 FROM events WHERE id = 100001`,
					`SELECT count(*) = 0 FROM events WHERE amount IS DISTINCT FROM (amount_cents / 100.0)::numeric(12,2)`,
				},
				cleanup: `UPDATE events SET amount = (id % 100) * 1.5 WHERE id <= 20; DELETE FROM events WHERE id = 100001`,
			},
			final: []string{`SELECT count(*) = 300 FROM events WHERE amount_cents = (id % 100) * 150`},
		},
		{
			// Copies events_email_idx and events_email_day_key per
			// partition beside what the change adds.
			kind: "alter_column",
			spec: `kind: alter_column
    table: events
    column: email
    to: email_address
    up: "lower(email)"
    default: "'unknown@example.com'"
    check: "email_address LIKE '%@%'"`,
			tomb: &tombWrites{
				write: `UPDATE events SET email_address = 'moved' || id || '@example.com' WHERE id <= 20;
					INSERT INTO events (id, day) VALUES (100001, 25)`,
				checks: []string{
					`SELECT count(*) = 20 FROM events WHERE id <= 20 AND email = 'moved' || id || '@example.com'`,
					`SELECT email = 'unknown@example.com' FROM events WHERE id = 100001`,
					`SELECT count(*) = 0 FROM events WHERE email IS DISTINCT FROM email_address`,
				},
				cleanup: `UPDATE events SET email = 'e' || id || '@example.com' WHERE id <= 20; DELETE FROM events WHERE id = 100001`,
			},
			final: []string{
				`SELECT count(*) = 300 FROM events WHERE email_address = 'e' || id || '@example.com'`,
				onEveryPartition(`(SELECT attnotnull FROM pg_attribute WHERE attrelid = p AND attname = 'email_address')`),
				onEveryPartition(`EXISTS (SELECT FROM pg_constraint WHERE conrelid = p AND conname = 'events_email_address_check' AND convalidated)`),
				onEveryPartition(`EXISTS (SELECT FROM pg_constraint WHERE conrelid = p AND contype = 'u' AND conparentid =
					(SELECT oid FROM pg_constraint WHERE conrelid = 'events'::regclass AND conname = 'events_email_address_day_key'))`),
				`SELECT count(*) = 3 FROM pg_inherits WHERE inhparent = 'events_email_address_idx'::regclass`,
			},
		},
		{
			// not_null: false: the old column's NOT NULL is dropped on the
			// parent and every partition at enforce.
			kind: "alter_column",
			spec: `kind: alter_column
    table: events
    column: amount
    to: amount_due
    type: numeric(14,2)
    up: "amount::numeric(14,2)"
    down: "amount_due::numeric(12,2)"
    not_null: false`,
			after: map[string][]string{
				"enforce": {onEveryPartition(`(SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = p AND attname = 'amount')`)},
			},
			tomb: &tombWrites{
				write: `UPDATE events SET amount_due = NULL WHERE id <= 20;
					INSERT INTO events (id, day, email, amount_due) VALUES (100001, 25, 'x1@example.com', 7.5)`,
				checks: []string{
					`SELECT count(*) = 20 FROM events WHERE id <= 20 AND amount IS NULL`,
					`SELECT amount = 7.5 FROM events WHERE id = 100001`,
					`SELECT count(*) = 0 FROM events WHERE amount IS DISTINCT FROM amount_due`,
				},
				cleanup: `UPDATE events SET amount = (id % 100) * 1.5 WHERE id <= 20; DELETE FROM events WHERE id = 100001`,
			},
			final: []string{
				`SELECT count(*) = 300 FROM events WHERE amount_due = (id % 100) * 1.5`,
				onEveryPartition(`(SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = p AND attname = 'amount_due')`),
			},
		},
		{
			kind: "set_not_null",
			spec: `kind: set_not_null
    table: events
    column: note
    backfill: "'(none)'"`,
			final: []string{
				`SELECT count(*) = 300 / 5 FROM events WHERE note = '(none)'`,
				onEveryPartition(`(SELECT attnotnull FROM pg_attribute WHERE attrelid = p AND attname = 'note')`),
			},
		},
		{
			kind: "drop_column",
			spec: `kind: drop_column
    table: events
    column: legacy`,
			tomb: &tombWrites{
				// Nothing writes the tombstone: rows keep their values.
				write: `UPDATE events SET note = 'renamed' WHERE id = 1;
					INSERT INTO events (id, day, email) VALUES (100001, 25, 'x1@example.com')`,
				checks: []string{
					`SELECT count(*) = 300 FROM events WHERE legacy = id % 3`,
					`SELECT legacy IS NULL FROM events WHERE id = 100001`,
				},
				cleanup: `UPDATE events SET note = 'note 1' WHERE id = 1; DELETE FROM events WHERE id = 100001`,
			},
			final: []string{`SELECT NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'events_p0'::regclass AND attname = 'legacy' AND NOT attisdropped)`},
		},
		{
			kind: "sql",
			spec: `kind: sql
    table: events
    up: |
      ALTER TABLE events ADD COLUMN tag text;
      ALTER TABLE events ADD CONSTRAINT events_tag_short CHECK (length(tag) < 20) NOT VALID;
    down: |
      ALTER TABLE events DROP CONSTRAINT events_tag_short;
      ALTER TABLE events DROP COLUMN tag;
    allow: [ban-drop-column]
    reason: the down drops only the column the up added`,
			final: []string{onEveryPartition(`EXISTS (SELECT FROM pg_attribute WHERE attrelid = p AND attname = 'tag' AND NOT attisdropped)`)},
		},
		{
			kind: "add_index",
			spec: `kind: add_index
    table: events
    name: events_note_idx
    columns: [note]
    where: "note IS NOT NULL"`,
			final: []string{
				`SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_note_idx'::regclass`,
				`SELECT count(*) = 3 FROM pg_inherits WHERE inhparent = 'events_note_idx'::regclass`,
			},
		},
		{
			kind: "add_unique",
			spec: `kind: add_unique
    table: events
    name: events_note_day_key
    columns: [note, day]`,
			final: []string{
				`SELECT contype = 'u' FROM pg_constraint WHERE conrelid = 'events'::regclass AND conname = 'events_note_day_key'`,
				onEveryPartition(`EXISTS (SELECT FROM pg_constraint WHERE conrelid = p AND contype = 'u' AND conparentid =
					(SELECT oid FROM pg_constraint WHERE conrelid = 'events'::regclass AND conname = 'events_note_day_key'))`),
			},
		},
		{
			kind: "add_foreign_key", extraTables: []string{"users"},
			spec: `kind: add_foreign_key
    table: events
    name: events_user_fk
    columns: [user_id]
    references:
      table: users
      columns: [id]`,
			final: []string{
				`SELECT convalidated FROM pg_constraint WHERE conrelid = 'events'::regclass AND conname = 'events_user_fk'`,
				onEveryPartition(`EXISTS (SELECT FROM pg_constraint WHERE conrelid = p AND conname = 'events_user_fk' AND convalidated AND conparentid <> 0)`),
			},
		},
		{
			// A new plain table referencing the partitioned one (creating
			// a partitioned table is not a create_table feature).
			kind: "create_table", extraTables: []string{"event_notes"},
			spec: `kind: create_table
    table: event_notes
    columns:
      - {name: id, type: bigint, not_null: true}
      - {name: event_id, type: bigint, not_null: true}
      - {name: event_day, type: int, not_null: true}
      - {name: body, type: text}
    primary_key: [id]
    foreign_keys:
      - {columns: [event_id, event_day], references: {table: events, columns: [id, day]}}`,
			final: []string{`SELECT convalidated FROM pg_constraint WHERE conrelid = 'event_notes'::regclass AND contype = 'f'`},
		},
		{
			kind: "rename_table", extraTables: []string{"happenings"},
			spec: `kind: rename_table
    table: events
    to: happenings`,
			after: map[string][]string{
				"rename": {
					`SELECT relkind = 'v' FROM pg_class WHERE oid = 'events'::regclass`,
					`SELECT relkind = 'p' FROM pg_class WHERE oid = 'happenings'::regclass`,
					// Routed to its partition through the view.
					`WITH i AS (INSERT INTO events (id, day, email) VALUES (100002, 15, 'v@example.com') RETURNING amount) SELECT amount = 0 FROM i`,
					`SELECT tableoid::regclass::text = 'events_p1' FROM happenings WHERE id = 100002`,
					`WITH d AS (DELETE FROM events WHERE id = 100002 RETURNING id) SELECT count(*) = 1 FROM d`,
				},
			},
			tomb: &tombWrites{
				write:   `UPDATE happenings SET note = 'moved' WHERE id <= 10`,
				checks:  []string{`SELECT count(*) = 10 FROM events WHERE note = 'moved'`},
				cleanup: `UPDATE happenings SET note = CASE WHEN id % 5 = 0 THEN NULL ELSE 'note ' || id END WHERE id <= 10`,
			},
			final: []string{`SELECT to_regclass('events') IS NULL`, `SELECT count(*) = 300 FROM happenings`},
		},
		{
			kind: "drop_table", extraTables: []string{phases.TombstoneName("stair", "events")},
			spec: `kind: drop_table
    table: events`,
			tomb: &tombWrites{
				write:   `UPDATE ` + phases.TombstoneName("stair", "events") + ` SET note = 'late' WHERE id <= 10`,
				checks:  []string{`SELECT count(*) = 10 FROM events WHERE note = 'late'`},
				cleanup: `UPDATE events SET note = CASE WHEN id % 5 = 0 THEN NULL ELSE 'note ' || id END WHERE id <= 10`,
			},
			final: []string{`SELECT to_regclass('events') IS NULL`, `SELECT to_regclass('events_p0') IS NULL`},
		},
		{
			kind: "add_check",
			spec: `kind: add_check
    table: events
    name: events_amount_positive
    check: "amount >= 0"`,
			final: []string{onEveryPartition(`EXISTS (SELECT FROM pg_constraint WHERE conrelid = p AND conname = 'events_amount_positive' AND convalidated)`)},
		},
		{
			kind: "drop_constraint", extraSetup: `ALTER TABLE events ADD CONSTRAINT events_amount_check CHECK (amount >= 0)`,
			spec: `kind: drop_constraint
    table: events
    constraint: events_amount_check`,
			final: []string{`SELECT NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'events_amount_check')`},
		},
		{
			kind: "rename_index",
			spec: `kind: rename_index
    table: events
    index: events_email_idx
    to: events_by_email_idx`,
			final: []string{`SELECT to_regclass('events_email_idx') IS NULL AND to_regclass('events_by_email_idx') IS NOT NULL`},
		},
		{
			kind: "rename_constraint", extraSetup: `ALTER TABLE events ADD CONSTRAINT events_amount_check CHECK (amount >= 0)`,
			spec: `kind: rename_constraint
    table: events
    constraint: events_amount_check
    to: events_amount_nonnegative`,
			final: []string{onEveryPartition(`EXISTS (SELECT FROM pg_constraint WHERE conrelid = p AND conname = 'events_amount_nonnegative')`)},
		},
		{
			kind: "set_default",
			spec: `kind: set_default
    table: events
    column: note
    default: "'none'"`,
			final: []string{onEveryPartition(`EXISTS (SELECT FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = p AND a.attname = 'note')`)},
		},
		{
			kind: "drop_default",
			spec: `kind: drop_default
    table: events
    column: amount`,
			final: []string{onEveryPartition(`NOT EXISTS (SELECT FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = p AND a.attname = 'amount')`)},
		},
		{
			kind: "drop_not_null",
			spec: `kind: drop_not_null
    table: events
    column: email`,
			final: []string{onEveryPartition(`NOT (SELECT attnotnull FROM pg_attribute WHERE attrelid = p AND attname = 'email')`)},
		},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.kind] = true
	}
	for k := range refusedOnPartitioned {
		covered[k] = true // TestPartitionedRefusals
	}
	for _, k := range KindNames() {
		if !covered[k] {
			t.Errorf("kind %s has no partitioned stairway case", k)
		}
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			t.Parallel()
			stairway(t, setup+c.extraSetup, c.spec, append(tables, c.extraTables...), c.after, c.final, c.tomb)
		})
	}
}

// Many partitions: the per-partition index build and a rename (which
// copies an index, a unique constraint and a foreign key per partition).
func TestStairwayManyPartitions(t *testing.T) {
	const parts = 63 // and the default partition: 64
	setup := partitionedSetup(parts, 1000)
	tables := partitionTables(parts)
	t.Run("add_index", func(t *testing.T) {
		t.Parallel()
		stairway(t, setup, `kind: add_index
    table: events
    columns: [note]`, tables, nil, []string{
			`SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_note_idx'::regclass`,
			`SELECT count(*) = 64 FROM pg_inherits WHERE inhparent = 'events_note_idx'::regclass`,
		}, nil)
	})
	t.Run("rename_column", func(t *testing.T) {
		t.Parallel()
		stairway(t, setup, `kind: rename_column
    table: events
    column: user_id
    to: account_id`, tables, nil, []string{
			`SELECT count(*) = 64 FROM pg_constraint WHERE conname = 'events_account_id_fkey' AND convalidated AND conparentid <> 0`,
			`SELECT count(*) = 1000 FROM events WHERE account_id = 1 + id % 2000`,
		}, &tombWrites{
			write: `UPDATE events SET account_id = 2 WHERE id <= 20;
				INSERT INTO events (id, day, email, account_id) VALUES (100001, 5, 'x1@example.com', 3)`,
			checks: []string{
				`SELECT count(*) = 20 FROM events WHERE id <= 20 AND user_id = 2`,
				`SELECT user_id = 3 FROM events WHERE id = 100001`,
				`SELECT count(*) = 0 FROM events WHERE user_id IS DISTINCT FROM account_id`,
			},
			cleanup: `UPDATE events SET user_id = 1 + id % 2000 WHERE id <= 20; DELETE FROM events WHERE id = 100001`,
		})
	})
}

// A partition attached or detached while a change is in flight: a phase
// that works per partition is refused, before it runs anything, with what
// to do; restoring the partitions lets it go on. Phases that work on the
// parent alone go on: the new partition gets the sync trigger from
// PostgreSQL and its rows from the backfill.
func TestPartitionAttachedInFlight(t *testing.T) {
	ctx := context.Background()
	f := newEngineFixture(t)
	f.db.Exec(t, partitionedSetup(2, 200))
	specs := f.specs(t, `changes:
  - id: ren
    kind: rename_column
    table: events
    column: email
    to: email_address
`)
	if cr := reportOf(t, f.next(t, specs, "d1"), "ren"); cr.Action != Advanced || cr.Phase != "expand" {
		t.Fatalf("expand: %+v", cr)
	}
	// The default partition holds days 20..29: move them to a new partition
	// attached after expand, with the new column already (ATTACH requires it).
	f.db.Exec(t, `CREATE TABLE events_p2 (LIKE events INCLUDING DEFAULTS);
		WITH moved AS (DELETE FROM events WHERE day >= 20 AND day < 30 RETURNING *) INSERT INTO events_p2 SELECT * FROM moved;
		ALTER TABLE events ATTACH PARTITION events_p2 FOR VALUES FROM (20) TO (30);
		UPDATE events SET email_address = NULL;`)
	checkQueries(t, f, "attached", []string{
		`SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'events_p2'::regclass AND tgname = 'planner_sync_ren' AND tgparentid <> 0)`,
		`SELECT count(*) > 0 FROM events_p2`,
	})
	// A write into the new partition is synced by the cloned trigger.
	f.db.Exec(t, `INSERT INTO events (id, day, email) VALUES (10001, 25, 'new@example.com')`)
	checkQueries(t, f, "synced", []string{`SELECT email_address = 'new@example.com' FROM events WHERE id = 10001`})
	for _, d := range []string{"d2", "d3"} {
		if cr := reportOf(t, f.next(t, specs, d), "ren"); cr.Action != Advanced {
			t.Fatalf("%s: %+v", d, cr)
		}
	}
	checkQueries(t, f, "backfilled", []string{`SELECT count(*) = 0 FROM events WHERE email_address IS DISTINCT FROM email`})
	// enforce copies the index and the unique constraint per partition.
	_, err := f.e.Next(ctx, specs, "d4", false)
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "attached since: public.events_p2") || !strings.Contains(err.Error(), "planner rollback ren") {
		t.Fatalf("enforce with a partition attached since registration: %v", err)
	}
	if c := f.change(t, "ren"); c.Applied != 3 || c.Status == StatusApplying {
		t.Fatalf("the refused phase changed the state: %+v", c)
	}
	checkQueries(t, f, "nothing ran", []string{`SELECT NOT EXISTS (SELECT FROM pg_class WHERE relname = 'events_email_address_idx')`})
	// Restore the partitions as they were: the phase runs.
	f.db.Exec(t, `ALTER TABLE events DETACH PARTITION events_p2;
		WITH moved AS (DELETE FROM events_p2 RETURNING *) INSERT INTO events SELECT * FROM moved;`)
	if cr := reportOf(t, f.next(t, specs, "d5"), "ren"); cr.Action != Advanced || cr.Phase != "enforce" {
		t.Fatalf("enforce after restoring: %+v", cr)
	}
	checkQueries(t, f, "enforced", []string{`SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_email_address_idx'::regclass`})
}

// A partition detached before a per-partition phase: refused likewise;
// rollback to the start and next plan the change for the partitions as
// they are.
func TestPartitionDetachedBeforeIndex(t *testing.T) {
	ctx := context.Background()
	f := newEngineFixture(t)
	f.db.Exec(t, partitionedSetup(2, 200))
	specs := f.specs(t, `changes:
  - id: uq
    kind: add_unique
    table: events
    columns: [note, day]
`)
	if cr := reportOf(t, f.next(t, specs, "d1"), "uq"); cr.Action != Advanced || cr.Phase != "build_index" {
		t.Fatalf("build_index: %+v", cr)
	}
	f.db.Exec(t, `ALTER TABLE events DETACH PARTITION events_p1`)
	_, err := f.e.Next(ctx, specs, "d2", false)
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "detached since: public.events_p1") {
		t.Fatalf("attach with a partition detached: %v", err)
	}
	if _, err := f.e.Rollback(ctx, "uq", "r1"); err != nil {
		t.Fatalf("rollback with a partition detached: %v", err)
	}
	checkQueries(t, f, "rolled back", []string{`SELECT NOT EXISTS (SELECT FROM pg_class WHERE relname LIKE '%events_note_day_key')`})
	for _, d := range []string{"d3", "d4"} {
		if cr := reportOf(t, f.next(t, specs, d), "uq"); cr.Action != Advanced {
			t.Fatalf("%s: %+v", d, cr)
		}
	}
	checkQueries(t, f, "done", []string{
		`SELECT count(*) = 2 FROM pg_constraint WHERE contype = 'u' AND conparentid = (SELECT oid FROM pg_constraint WHERE conname = 'events_note_day_key' AND conrelid = 'events'::regclass)`,
	})
}

// A unique index or constraint without the partition key is refused at
// plan time with the safe alternative.
func TestPartitionedUniqueNeedsKey(t *testing.T) {
	f := newEngineFixture(t)
	db := f.db
	db.Exec(t, partitionedSetup(2, 10))
	table, err := LoadTable(context.Background(), db.Pool, TableName{Name: "events"})
	if err != nil {
		t.Fatal(err)
	}
	if p := table.Partitioning; p == nil || p.Strategy != "range" || strings.Join(p.Key, ",") != "day" || len(p.Partitions) != 3 {
		t.Fatalf("partitioning: %+v", p)
	}
	if strings.Join(table.Key, ",") != "id,day" || table.RowEstimate != 10 {
		t.Fatalf("key %v, estimate %d", table.Key, table.RowEstimate)
	}
	for _, spec := range []string{
		"kind: add_unique\n    table: events\n    columns: [note]",
		"kind: add_index\n    table: events\n    unique: true\n    columns: [note]",
	} {
		specs := f.specs(t, "changes:\n  - id: u\n    "+spec+"\n")
		_, err := Compile(specs[0], Target{Version: 15, Table: table})
		if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "must include every partition key column; day is missing") ||
			!strings.Contains(err.Error(), "safe alternative: add day to the columns") {
			t.Fatalf("%s: %v", spec, err)
		}
	}
}

// kill -9 inside the per-partition index build, at several points, then a
// rerun finishes it; a build killed midway rolls back to the schema it
// started from.
func TestPartitionedIndexKilledMidBuild(t *testing.T) {
	ctx := context.Background()
	f := newEngineFixture(t)
	f.db.Exec(t, partitionedSetup(2, 200))
	tables := partitionTables(2)
	f.specs(t, `changes:
  - id: ix
    kind: add_index
    table: events
    columns: [note]
`)
	f.e.LeaseTTL = time.Second
	before := schemaOf(t, f.db, tables...)
	killed := func(deploy, env string) {
		t.Helper()
		cmd, out := f.helper(t, deploy, env, "PLANNER_TEST_LEASE_TTL=1s")
		err := cmd.Wait()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("%s %s: helper was not killed: %v\n%s", deploy, env, err, out)
		}
	}
	// After the parent's ON ONLY index, after the first partition's build,
	// then (the rerun skipping what is done) after a later step.
	killed("d1", "PLANNER_TEST_CRASH_AFTER_COMMIT=1")
	killed("d1", "PLANNER_TEST_CRASH_AFTER_COMMIT=3")
	killed("d1", "PLANNER_TEST_CRASH_AFTER=4")
	checkQueries(t, f, "killed midway", []string{
		`SELECT NOT indisvalid FROM pg_index WHERE indexrelid = 'events_note_idx'::regclass`,
		`SELECT count(*) BETWEEN 1 AND 2 FROM pg_inherits WHERE inhparent = 'events_note_idx'::regclass`,
	})
	if c := f.change(t, "ix"); c.Status != StatusApplying {
		t.Fatalf("status after kills: %s", c.Status)
	}
	// Rolled back from there: as before the change.
	if res, err := f.e.Rollback(ctx, "ix", "r1"); err != nil || !res.Partial {
		t.Fatalf("rollback of the killed build: %+v %v", res, err)
	}
	if got := schemaOf(t, f.db, tables...); got != before {
		t.Fatalf("rollback did not restore the schema:\n%s", diffLines(before, got))
	}
	// Killed again, then finished by a rerun.
	killed("d2", "PLANNER_TEST_CRASH_AFTER_COMMIT=5")
	cmd, out := f.helper(t, "d2", "PLANNER_TEST_LEASE_TTL=1s")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	checkQueries(t, f, "finished", []string{
		`SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_note_idx'::regclass`,
		`SELECT count(*) = 3 FROM pg_inherits WHERE inhparent = 'events_note_idx'::regclass`,
		`SELECT count(*) = 4 FROM pg_class WHERE relname LIKE '%events_note_idx'`,
	})
	if c := f.change(t, "ix"); c.Status != StatusDone {
		t.Fatalf("status: %s", c.Status)
	}
}

// A foreign key of a partitioned table that references the renamed
// column: one constraint to copy (not one per partition), refused before
// PostgreSQL 18, which cannot add it NOT VALID on a partitioned table.
func TestPartitionedReferrer(t *testing.T) {
	f := newEngineFixture(t)
	f.db.Exec(t, partitionedSetup(2, 10)+`
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);
UPDATE events SET email = 'user' || id || '@example.com';
ALTER TABLE events ADD CONSTRAINT events_email_fkey FOREIGN KEY (email) REFERENCES users (email);`)
	table, err := LoadTable(context.Background(), f.db.Pool, TableName{Name: "users"})
	if err != nil {
		t.Fatal(err)
	}
	if len(table.Referencing) != 2 || len(table.PartitionedReferrers) != 1 { // events_user_id_fkey, events_email_fkey
		t.Fatalf("referencing %+v, partitioned %+v", table.Referencing, table.PartitionedReferrers)
	}
	specs := f.specs(t, "changes:\n  - id: r\n    kind: rename_column\n    table: users\n    column: email\n    to: email_address\n")
	_, err = Compile(specs[0], Target{Version: 17, Table: table})
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "the foreign key events_email_fkey of partitioned table public.events") {
		t.Fatalf("PostgreSQL 17: %v", err)
	}
	plan, err := Compile(specs[0], Target{Version: 18, Table: table})
	if err != nil {
		t.Fatalf("PostgreSQL 18: %v", err)
	}
	var adds int
	for _, st := range plan.Phases[3].Statements {
		if strings.Contains(st.SQL, "FOREIGN KEY") {
			adds++
		}
	}
	if adds != 1 {
		t.Fatalf("enforce adds %d foreign keys, want 1:\n%+v", adds, plan.Phases[3].Statements)
	}
}

// The guard before the parent's ADD CONSTRAINT ... UNIQUE: a partition the
// phase did not prepare (attached between the engine's check and the
// statement) fails the transaction instead of letting PostgreSQL build
// that partition's index in place, which would block its writes.
func TestPartitionGuardRefusesUnpreparedPartition(t *testing.T) {
	f := newEngineFixture(t)
	f.db.Exec(t, partitionedSetup(2, 100))
	u := phases.PartitionedUnique{
		Index:   phases.Index{Table: phases.TableRef{Schema: "public", Name: "events"}, Name: "events_note_day_key", Unique: true, Columns: []string{"note", "day"}},
		Columns: []string{"note", "day"},
		// events_pdef left out, as if attached after the phase was planned.
		Partitions: []phases.TableRef{{Schema: "public", Name: "events_p0"}, {Schema: "public", Name: "events_p1"}},
	}
	err := testRunner(f.db).Run(context.Background(), append(u.Build(), u.Attach()...), nil)
	if err == nil || !strings.Contains(err.Error(), "the partitions of public.events changed while this phase ran") {
		t.Fatalf("attach with an unprepared partition: %v", err)
	}
	checkQueries(t, f, "refused", []string{
		`SELECT NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'events_note_day_key')`,
		`SELECT NOT EXISTS (SELECT FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
			WHERE i.indrelid = 'events_pdef'::regclass AND a.attname = 'note')`,
		`SELECT count(*) = 2 FROM pg_constraint WHERE conname IN ('events_p0_events_note_day_key', 'events_p1_events_note_day_key')`,
	})
}

// kill -9 inside both phases of add_unique on a partitioned table (the
// per-partition builds, then the per-partition constraints before the
// parent's): reruns finish them, and rolling both back restores the schema.
func TestPartitionedUniqueKilledMidPhase(t *testing.T) {
	ctx := context.Background()
	f := newEngineFixture(t)
	f.db.Exec(t, partitionedSetup(2, 200))
	f.e.LeaseTTL = time.Second
	tables := partitionTables(2)
	f.specs(t, `changes:
  - id: uq
    kind: add_unique
    table: events
    columns: [note, day]
`)
	before := schemaOf(t, f.db, tables...)
	for _, s := range []struct{ deploy, crash string }{
		{"d1", "PLANNER_TEST_CRASH_AFTER_COMMIT=3"}, // build_index: after the first partition's build and the second's leftover drop
		{"d2", "PLANNER_TEST_CRASH_AFTER_COMMIT=2"}, // attach: after two partitions' constraints
	} {
		cmd, out := f.helper(t, s.deploy, s.crash, "PLANNER_TEST_LEASE_TTL=1s")
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("%s: helper was not killed: %v\n%s", s.deploy, err, out)
		}
		cmd, out = f.helper(t, s.deploy, "PLANNER_TEST_LEASE_TTL=1s")
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s: rerun: %v\n%s", s.deploy, err, out)
		}
	}
	checkQueries(t, f, "done", []string{
		`SELECT count(*) = 3 FROM pg_constraint WHERE contype = 'u' AND conparentid = (SELECT oid FROM pg_constraint WHERE conname = 'events_note_day_key' AND conrelid = 'events'::regclass)`,
	})
	for _, r := range []string{"r1", "r2"} {
		if _, err := f.e.Rollback(ctx, "uq", r); err != nil {
			t.Fatalf("rollback %s: %v", r, err)
		}
	}
	if got := schemaOf(t, f.db, tables...); got != before {
		t.Fatalf("rollback did not restore the schema:\n%s", diffLines(before, got))
	}
}

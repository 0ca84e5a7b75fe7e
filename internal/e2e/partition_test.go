package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgplanner/planner/internal/workload"
	"github.com/pgplanner/planner/planner"
)

// partitionedScenario: users range-partitioned by id (the key must include
// the partition key) into two partitions and a default partition, which
// also takes every row the fleet inserts. One spec file holds a change of
// every kind on it; they run one after another (one table), the fleet
// following the rename's flags and writing throughout. Each column is
// changed by the kinds of one purpose: alter_column replaces title, which
// no other change uses (the catalog kinds' index, default and NOT NULL
// changes name the columns they act on, which alter_column would replace).
func partitionedScenario() scenario {
	return scenario{
		name: "partitioned",
		setup: `CREATE TABLE refs (id bigint PRIMARY KEY);
			INSERT INTO refs SELECT generate_series(1, 100);
			CREATE TABLE users (id bigserial, email text NOT NULL, name text, note text DEFAULT 'none', legacy int,
				amount numeric(12,2) NOT NULL DEFAULT 0, ref_id bigint, title text, PRIMARY KEY (id)) PARTITION BY RANGE (id);
			CREATE TABLE users_p0 PARTITION OF users FOR VALUES FROM (MINVALUE) TO (4000);
			CREATE TABLE users_p1 PARTITION OF users FOR VALUES FROM (4000) TO (8000);
			CREATE TABLE users_pdef PARTITION OF users DEFAULT;
			CREATE INDEX users_email_idx ON users (email);
			INSERT INTO users (email, name, note, amount, ref_id, title)
				SELECT 'user' || g || '@example.com', 'name ' || g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g END,
				       (g % 1000) / 4.0, 1 + g % 100, CASE WHEN g % 7 = 0 THEN NULL ELSE 'title ' || g END FROM generate_series(1, $1::int) g`,
		spec: `changes:
  - id: users-email-rename
    kind: rename_column
    table: users
    column: email
    to: email_address
  - id: users-status-add
    kind: add_column
    table: users
    column: status
    type: text
    not_null: true
    backfill: "'active'"
    default: "'active'"
  - id: users-amount-cents
    kind: change_column_type
    table: users
    column: amount
    type: bigint
    up: "round(amount * 100)::bigint"
    down: "(amount_cents / 100.0)::numeric(12,2)"
    new_column: amount_cents
  - id: users-note-not-null
    kind: set_not_null
    table: users
    column: note
    backfill: "'none'"
  - id: users-legacy-drop
    kind: drop_column
    table: users
    column: legacy
  - id: users-name-index
    kind: add_index
    table: users
    columns: [name]
  - id: users-email-unique
    kind: add_unique
    table: users
    columns: [email_address, id]
  - id: users-ref-fk
    kind: add_foreign_key
    table: users
    columns: [ref_id]
    references:
      table: refs
      columns: [id]
  - id: users-cents-check
    kind: add_check
    table: users
    check: "amount_cents >= 0"
  - id: users-title-alter
    kind: alter_column
    table: users
    column: title
    to: headline
    type: varchar(100)
    up: "COALESCE(title, '(none)')::varchar(100)"
    down: "headline::text"
    not_null: true
    default: "'(none)'"
    check: "headline <> ''"
  - id: users-name-index-rename
    kind: rename_index
    table: users
    index: users_name_idx
    to: users_by_name_idx
  - id: users-cents-check-rename
    kind: rename_constraint
    table: users
    constraint: users_users-cents-check_check
    to: users_cents_nonnegative
  - id: users-name-default
    kind: set_default
    table: users
    column: name
    default: "'anonymous'"
  - id: users-ref-default
    kind: set_default
    table: users
    column: ref_id
    default: "1"
  - id: users-ref-default-drop
    kind: drop_default
    table: users
    column: ref_id
  - id: users-note-nullable
    kind: drop_not_null
    table: users
    column: note
`,
		change: "users-email-rename",
		fleet:  workload.Config{Table: "users", Old: "email", New: "email_address", Kind: workload.Synced},
	}
}

// TestEveryKindOnPartitionedTableUnderLoad: no request fails and no write
// is lost while every kind runs on a partitioned table.
func TestEveryKindOnPartitionedTableUnderLoad(t *testing.T) {
	sc := partitionedScenario()
	ctx := context.Background()
	env := newEnv(t, sc)
	fleet := env.startFleet(t, sc, 41)
	eng := env.engine(t, 500*time.Millisecond)
	done := map[string]bool{}
	for deploy := 1; len(done) < len(env.specs); deploy++ {
		if deploy > 60 {
			t.Fatalf("not done after 60 deploys: done %v", done)
		}
		env.deploy(t, fleet, sc.change)
		time.Sleep(dwell)
		rep, err := eng.Next(ctx, env.specs, fmt.Sprintf("deploy-%d", deploy), false)
		if err != nil {
			t.Fatalf("deploy-%d: next: %v", deploy, err)
		}
		for _, c := range rep.Changes {
			switch c.Action {
			case planner.Done:
				done[c.ID] = true
			case planner.Advanced:
				t.Logf("deploy-%d: %s %s (%d/%d)", deploy, c.ID, c.Phase, c.Applied, c.Total)
				if c.Applied == c.Total {
					done[c.ID] = true
				}
			case planner.Failed:
				t.Fatalf("deploy-%d: %s failed: %s", deploy, c.ID, c.Error)
			}
		}
	}
	env.deploy(t, fleet, sc.change)
	time.Sleep(dwell)
	finish(t, ctx, fleet)
	requireFinalFlags(t, env.db, sc.change)
	requireColumns(t, env.db, "users", map[string]string{"email": "", "email_address": "NOT NULL", "status": "NOT NULL",
		"amount": "", "amount_cents": "NOT NULL", "note": "NULL", "legacy": "", "title": "", "headline": "NOT NULL"})
	for _, q := range []string{
		// Every index of the parent is valid and has one attached per partition.
		`SELECT bool_and(i.indisvalid AND (SELECT count(*) FROM pg_inherits h WHERE h.inhparent = i.indexrelid) = 3)
		 FROM pg_index i WHERE i.indrelid = 'users'::regclass`,
		`SELECT count(*) = 4 FROM pg_index WHERE indrelid = 'users'::regclass`, // key, copied email index, name index, unique
		`SELECT count(*) = 4 FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype IN ('u', 'f', 'c') AND convalidated`,
		// alter_column's new column: its type, its default, its check on every partition, no NULL left.
		`SELECT format_type(atttypid, atttypmod) = 'character varying(100)' FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'headline'`,
		`SELECT (SELECT count(*) FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE a.attname = 'headline' AND d.adrelid = 'users'::regclass) = 1`,
		`SELECT count(*) = 3 FROM pg_constraint WHERE conname = 'users_headline_check' AND convalidated AND conrelid IN ('users_p0'::regclass, 'users_p1'::regclass, 'users_pdef'::regclass)`,
		`SELECT count(*) FILTER (WHERE headline = '(none)') > 0 FROM users`,
		`SELECT NOT EXISTS (SELECT FROM pg_trigger WHERE tgname LIKE 'planner%')`,
		`SELECT to_regclass('users_by_name_idx') IS NOT NULL AND EXISTS (SELECT FROM pg_constraint WHERE conrelid = 'users_p1'::regclass AND conname = 'users_cents_nonnegative')`,
		`SELECT (SELECT count(*) FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE a.attname = 'name' AND d.adrelid IN ('users'::regclass, 'users_p0'::regclass, 'users_pdef'::regclass)) = 3`,
		`SELECT count(*) > 0 FROM users_p0`, `SELECT count(*) > 0 FROM users_p1`, `SELECT count(*) > 0 FROM users_pdef`,
	} {
		var ok bool
		if err := env.db.Pool.QueryRow(ctx, q).Scan(&ok); err != nil || !ok {
			t.Errorf("check failed (%v): %s", err, q)
		}
	}
}

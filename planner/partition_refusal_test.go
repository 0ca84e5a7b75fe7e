package planner

import (
	"context"
	"strings"
	"testing"

	"github.com/pgplanner/planner/internal/pgtest"
)

// refusedOnPartitioned are kinds with no partitioned stairway: on a
// partitioned table they refuse (TestPartitionedRefusals; drop_index:
// PostgreSQL has no DROP INDEX CONCURRENTLY there).
var refusedOnPartitioned = map[string]bool{"drop_index": true}

// TestPartitionedRefusals: what is not built for partitioned tables is
// refused against the live catalog with the reason and a safe alternative,
// while a check on the same table compiles.
func TestPartitionedRefusals(t *testing.T) {
	ctx := context.Background()
	db := pgtest.NewDB(t)
	db.Exec(t, `CREATE TABLE users (id bigint PRIMARY KEY); INSERT INTO users SELECT generate_series(1, 2000);`+partitionedSetup(2, 10)+
		`ALTER TABLE events ADD CONSTRAINT events_amount_check CHECK (amount >= 0);`)
	table, err := LoadTable(ctx, db.Pool, TableName{Name: "events"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		change Kind
		refuse bool
	}{
		{&DropIndex{TableName: "events", Index: "events_email_idx"}, true},
		{&DropConstraint{TableName: "events", Constraint: "events_email_day_key"}, true},
		{&DropConstraint{TableName: "events", Constraint: "events_user_id_fkey"}, true},
		{&DropConstraint{TableName: "events", Constraint: "events_amount_check"}, false},
	} {
		_, err := Compile(Spec{ID: "p", Change: c.change}, Target{Version: db.ServerVersion(t), Table: table})
		switch {
		case c.refuse && (err == nil || !strings.Contains(err.Error(), "is partitioned") || !strings.Contains(err.Error(), "safe alternative")):
			t.Errorf("%+v: %v, want a refusal naming the partitioned table and a safe alternative", c.change, err)
		case !c.refuse && err != nil:
			t.Errorf("%+v: %v", c.change, err)
		}
	}
}

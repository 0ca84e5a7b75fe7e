package planner

import (
	"bytes"
	"strings"
	"testing"
)

// goldenPartitionedOrders is orders as a range-partitioned table (by
// created_at, so its key includes it) with a default partition.
func goldenPartitionedOrders() *Table {
	t := goldenOrders()
	t.Key = []string{"id", "created_at"}
	t.Indexes[0].Definition = "CREATE UNIQUE INDEX orders_pkey ON ONLY public.orders USING btree (id, created_at)"
	t.Indexes[0].Columns = []string{"id", "created_at"}
	t.Indexes[1].Definition = "CREATE INDEX orders_status_total_idx ON ONLY public.orders USING btree (status, total DESC)"
	t.Partitioning = &Partitioning{Strategy: "range", Key: []string{"created_at"}, Partitions: []Partition{
		{Table: TableName{Schema: "public", Name: "orders_2026_01"}, Bound: "FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00')", Kind: "r"},
		{Table: TableName{Schema: "public", Name: "orders_2026_02"}, Bound: "FOR VALUES FROM ('2026-02-01 00:00:00+00') TO ('2026-03-01 00:00:00+00')", Kind: "r"},
		{Table: TableName{Schema: "public", Name: "orders_default"}, Bound: "DEFAULT", Kind: "r"},
	}}
	return t
}

// Golden plans of the orders examples (plans/) on a partitioned orders:
// the index built per partition and attached to an ON ONLY parent index,
// the foreign key per partition before PostgreSQL 18 and on the parent
// from 18, the check on the parent.
func TestGoldenPartitioned(t *testing.T) {
	for _, s := range goldenSpecs(t) {
		if s.Change.Table().Name != "orders" {
			continue
		}
		for _, v := range []struct {
			name    string
			version int
		}{{"partitioned-pg17", 17}, {"partitioned-pg18", 18}} {
			p, err := Compile(s, Target{Version: v.version, Table: goldenPartitionedOrders()})
			if refusedOnPartitioned[s.Kind] {
				// Refused with the reason and what to do instead.
				if err == nil || !strings.Contains(err.Error(), "is partitioned") || !strings.Contains(err.Error(), "safe alternative") {
					t.Errorf("%s %s: %v, want a refusal saying the table is partitioned", s.ID, v.name, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s %s: %v", s.ID, v.name, err)
			}
			var text bytes.Buffer
			if err := RenderText(&text, []Plan{p}, false); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, s.ID+"."+v.name+".md", text.Bytes())
			if s.Kind == "add_index" {
				var js bytes.Buffer
				if err := RenderJSON(&js, []Plan{p}, false); err != nil {
					t.Fatal(err)
				}
				checkGolden(t, s.ID+"."+v.name+".json", js.Bytes())
			}
		}
	}
}

// Per-partition steps need every partition to be a plain table: a
// sub-partitioned or foreign partition is refused with the reason, while
// kinds that work on the parent alone still compile.
func TestPartitionKindsRefused(t *testing.T) {
	for _, kind := range []string{"p", "f"} {
		table := goldenPartitionedOrders()
		table.Partitioning.Partitions[1].Kind = kind
		for _, s := range goldenSpecs(t) {
			if s.Change.Table().Name != "orders" {
				continue
			}
			_, err := Compile(s, Target{Version: 17, Table: table})
			// These build indexes or constraints per partition (alter_column's
			// example copies an index of its column).
			perPartition := s.Kind == "add_index" || s.Kind == "add_foreign_key" || s.Kind == "change_column_type" || s.Kind == "alter_column"
			switch {
			case refusedOnPartitioned[s.Kind]:
			case perPartition && (err == nil || !strings.Contains(err.Error(), "partition public.orders_2026_02 is")):
				t.Errorf("%s with a partition of kind %s: %v", s.ID, kind, err)
			case !perPartition && err != nil:
				t.Errorf("%s with a partition of kind %s: %v", s.ID, kind, err)
			}
		}
	}
}

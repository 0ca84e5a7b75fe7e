package phases_test

import (
	"encoding/json"
	"testing"

	"github.com/pgplanner/planner/phases"
)

// A foreign key referencing its own table locks it once, however the two
// names spell the default schema; plans list the tables as schema.table.
func TestSelfReferenceLocksItsTableOnce(t *testing.T) {
	fk := phases.Constraint{Table: phases.TableRef{Name: "nodes"}, Name: "nodes_parent_fkey",
		Definition: "FOREIGN KEY (parent) REFERENCES nodes (id)", References: &phases.TableRef{Schema: "public", Name: "nodes"}}
	st := fk.AddNotValid()
	got, err := json.Marshal(st.Tables)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `["public.nodes"]` {
		t.Errorf("tables = %s, want [\"public.nodes\"]", got)
	}
	other := phases.TableRef{Schema: "app", Name: "nodes"}
	fk.References = &other
	if got := fk.AddNotValid().Tables.String(); got != "public.nodes, app.nodes" {
		t.Errorf("tables = %q, want both tables", got)
	}
}

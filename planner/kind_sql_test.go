package planner

import (
	"reflect"
	"testing"

	"github.com/pgplanner/planner/phases"
)

// The sql kind's statements lock the tables the lint names, each with its
// schema and name as written: a dot inside a quoted part stays in it.
func TestSQLLockedTablesKeepQuotedDots(t *testing.T) {
	k := &SQL{TableName: `"a.b"."c.d"`, Up: `CREATE TABLE "a.b"."e.f" (id bigint PRIMARY KEY);
ALTER TABLE "a.b"."c.d" ADD CONSTRAINT c_d_e_f FOREIGN KEY (e) REFERENCES "a.b"."e.f" (id) NOT VALID;
COMMENT ON TABLE "a.b"."c.d" IS 'x'`}
	if ps := k.Check(); len(ps) > 0 {
		t.Fatalf("check: %+v", ps)
	}
	if got, want := k.Table(), (TableName{Schema: "a.b", Name: "c.d"}); got != want {
		t.Fatalf("table %+v, want %+v", got, want)
	}
	p, err := Compile(Spec{ID: "s", Change: k}, Target{Version: 17})
	if err != nil {
		t.Fatal(err)
	}
	cd, ef := phases.TableRef{Schema: "a.b", Name: "c.d"}, phases.TableRef{Schema: "a.b", Name: "e.f"}
	want := []phases.TableList{
		nil, // CREATE TABLE locks no existing table
		{cd, ef},
		{cd}, // the lint names no table: the change's
	}
	sts := p.Phases[0].Statements
	if len(sts) != len(want) {
		t.Fatalf("%d statements, want %d", len(sts), len(want))
	}
	for i, w := range want {
		if !reflect.DeepEqual(sts[i].Tables, w) && !(len(sts[i].Tables) == 0 && len(w) == 0) {
			t.Errorf("statement %d (%s) locks %+v, want %+v", i, sts[i].SQL, sts[i].Tables, w)
		}
	}
}

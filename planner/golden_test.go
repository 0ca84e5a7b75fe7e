package planner

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Golden files for `planner plan`: every example spec in plans/, as text
// and JSON, offline and with a catalog snapshot built here (not read from a
// server, so the files are stable), on PostgreSQL 17 and 18.
// Run `go test ./planner -run TestGolden -update` to rewrite them.

var updateGolden = flag.Bool("update", false, "rewrite golden files")

func goldenSpecs(t *testing.T) []Spec {
	t.Helper()
	specs, err := Load(filepath.Join("..", "plans"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for i := range specs {
		specs[i].File = "plans/" + filepath.Base(specs[i].File)
		specs[i].Checksum = "" // the parser's business; keeps these files stable
		kinds[specs[i].Kind] = true
	}
	for _, k := range KindNames() {
		if !kinds[k] {
			t.Errorf("plans/ has no example of %s", k)
		}
	}
	return specs
}

// goldenTable is the catalog snapshot of the spec's table, with the
// example expressions immutable and parallel safe, as resolveExpressions
// finds them on a real server (TestResolveExpressionsExamples).
func goldenTable(s Spec) *Table {
	t := goldenCatalog(s)
	if ex, ok := s.Change.(expressioner); ok && t != nil {
		t.Expressions = map[string]ExprFacts{}
		for _, e := range ex.Expressions() {
			if e.SQL != "" {
				t.Expressions[e.SQL] = ExprFacts{Volatility: Immutable, ParallelSafe: true}
			}
		}
	}
	return t
}

func goldenCatalog(s Spec) *Table {
	switch s.Change.Table().Name {
	case "users":
		return goldenUsers()
	case "orders":
		return goldenOrders()
	case "User Accounts":
		return &Table{
			Name:    TableName{Schema: "app", Name: "User Accounts"},
			Columns: []Column{{Name: "id", Type: "integer", NotNull: true}, {Name: "login", Type: "text", NotNull: true}},
			Key:     []string{"id"},
			Indexes: []Index{{Name: "User Accounts_pkey", Definition: `CREATE UNIQUE INDEX "User Accounts_pkey" ON app."User Accounts" USING btree (id)`, Columns: []string{"id"}, Unique: true, Primary: true, Constraint: "User Accounts_pkey"}},
		}
	}
	return nil
}

func goldenOrders() *Table {
	orders := TableName{Schema: "public", Name: "orders"}
	return &Table{
		Name: orders,
		Columns: []Column{
			{Name: "id", Type: "bigint", NotNull: true, Default: "nextval('orders_id_seq'::regclass)"},
			{Name: "user_id", Type: "bigint", NotNull: true},
			{Name: "total", Type: "numeric(12,2)", NotNull: true, Default: "0"},
			{Name: "status", Type: "text", NotNull: true, Default: "'open'::text"},
			{Name: "created_at", Type: "timestamp with time zone", NotNull: true},
		},
		Key: []string{"id"},
		Indexes: []Index{
			{Name: "orders_pkey", Definition: "CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)", Columns: []string{"id"}, Unique: true, Primary: true, Constraint: "orders_pkey"},
			{Name: "orders_status_total_idx", Definition: "CREATE INDEX orders_status_total_idx ON public.orders USING btree (status, total DESC)", Columns: []string{"status", "total"}},
		},
		Checks: []Constraint{
			{Name: "orders_total_check", Table: orders, Type: "c", Definition: "CHECK ((total >= (0)::numeric))", Columns: []string{"total"}},
		},
		RowEstimate: 5000000,
	}
}

func TestGolden(t *testing.T) {
	specs := goldenSpecs(t)
	variants := []struct {
		name    string
		version int
		catalog bool
	}{
		{"offline-pg17", 17, false},
		{"catalog-pg17", 17, true},
		{"catalog-pg18", 18, true},
	}
	for _, s := range specs {
		for _, v := range variants {
			target := Target{Version: v.version}
			if v.catalog {
				target.Table = goldenTable(s)
			}
			p, err := Compile(s, target)
			if err != nil {
				t.Fatalf("%s %s: %v", s.ID, v.name, err)
			}
			var text, js bytes.Buffer
			if err := RenderText(&text, []Plan{p}, !v.catalog); err != nil {
				t.Fatal(err)
			}
			if err := RenderJSON(&js, []Plan{p}, !v.catalog); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, s.ID+"."+v.name+".md", text.Bytes())
			checkGolden(t, s.ID+"."+v.name+".json", js.Bytes())
		}
	}
	// The whole directory, as `planner plan plans/` prints it.
	var all []Plan
	for _, s := range specs {
		p, err := Compile(s, Target{Version: DefaultVersion})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p)
	}
	var text bytes.Buffer
	if err := RenderText(&text, all, true); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "all.offline-pg17.md", text.Bytes())
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update and review the diff):\n%s", name, firstDiff(string(want), string(got)))
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\n want: " + wl + "\n  got: " + gl
		}
	}
	return ""
}

// TestExamplesAreOneSequence: the examples in plans/ are one sequence of
// changes (`planner plan plans/` plans them together), so no example may
// contradict an earlier one.
func TestExamplesAreOneSequence(t *testing.T) {
	specs := goldenSpecs(t)
	res := checkSequence(specs, nil, nil)
	for id, ps := range res.Problems {
		for _, p := range ps {
			t.Errorf("%s %s: %s", id, p.Field, p.Message)
		}
	}
}

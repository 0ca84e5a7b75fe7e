package planner

import (
	"strings"
	"testing"
)

// The catalog kinds refuse what they cannot do safely, naming the field
// and the safe alternative: offline from the spec alone, online from the
// table's snapshot.
func TestCatalogKindsRefuse(t *testing.T) {
	users, orders := goldenUsers(), goldenOrders()
	tests := []struct {
		name   string
		change Kind
		table  *Table // nil: offline
		field  string
		want   []string // in the message or hint
	}{
		{"volatile default", &SetDefault{TableName: "orders", Column: "status", Default: "md5(random()::text)"}, nil,
			"default", []string{"VOLATILE", "allow: [volatile]", "stable expression"}},
		{"subquery default", &SetDefault{TableName: "orders", Column: "status", Default: "(SELECT 'x')"}, nil,
			"default", []string{"subquery", "DEFAULT"}},
		{"default of a generated column", &SetDefault{TableName: "users", Column: "gen", Default: "1"}, users,
			"column", []string{"identity or generated"}},
		{"default missing", &DropDefault{TableName: "users", Column: "email"}, users, "column", []string{"has no default", "remove this change"}},
		{"index of a constraint", &DropIndex{TableName: "users", Index: "users_email_key"}, users,
			"index", []string{"backs the constraint users_email_key", "kind: drop_constraint"}},
		{"index of the primary key", &DropIndex{TableName: "users", Index: "users_pkey"}, users, "index", []string{"primary key"}},
		{"unknown index", &DropIndex{TableName: "orders", Index: "orders_status_totl_idx"}, orders, "index", []string{`did you mean "orders_status_total_idx"`}},
		{"referenced unique", &DropConstraint{TableName: "users", Constraint: "users_email_key"}, users,
			"constraint", []string{"orders_user_email_fkey", "drop those foreign keys first"}},
		{"primary key", &DropConstraint{TableName: "users", Constraint: "users_pkey"}, users, "constraint", []string{"is the primary key"}},
		{"rename a constraint's index", &RenameIndex{TableName: "users", Index: "users_email_key", To: "x"}, users,
			"index", []string{"kind: rename_constraint"}},
		{"rename onto a taken name", &RenameConstraint{TableName: "users", Constraint: "users_email_check", To: "users_email_key"}, users,
			"to", []string{"already has"}},
		{"nullable already", &DropNotNull{TableName: "users", Column: "name"}, users, "column", []string{"already nullable"}},
		{"primary key column", &DropNotNull{TableName: "users", Column: "id"}, users, "column", []string{"primary key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(Spec{ID: "c", File: "plans/c.yaml", Line: 3, Change: tc.change}, Target{Version: 17, Table: tc.table})
			ce, ok := err.(*ChangeError)
			if !ok || len(ce.Problems) == 0 {
				t.Fatalf("want a refusal, got %v", err)
			}
			p := ce.Problems[0]
			text := p.Message + " | " + p.Hint
			if p.Field != tc.field || p.Hint == "" {
				t.Errorf("field %q hint %q, want field %q and a hint", p.Field, p.Hint, tc.field)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("%q lacks %q", text, w)
				}
			}
			if !strings.Contains(err.Error(), "plans/c.yaml:3") {
				t.Errorf("no file:line in %v", err)
			}
		})
	}
	// Allowed volatile default: compiles, catalog only.
	k := &SetDefault{TableName: "orders", Column: "status", Default: "md5(random()::text)", Allows: Allows{Allow: []string{allowVolatile}}}
	if _, err := Compile(Spec{ID: "c", Change: k}, Target{Version: 17}); err != nil {
		t.Errorf("allowed volatile default: %v", err)
	}
}

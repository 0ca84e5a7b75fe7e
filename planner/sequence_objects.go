package planner

// How the kinds that drop or rename indexes and constraints, or change
// defaults, change the modeled catalog (sequence.go), so that a later
// change is judged against the table as they leave it.

func changesDefault(k Kind) bool {
	switch k.(type) {
	case *SetDefault, *DropDefault:
		return true
	}
	return false
}

func applyObjects(k Kind, t *Table) {
	switch k := k.(type) {
	case *DropIndex:
		t.Indexes = without(t.Indexes, func(ix Index) bool { return ix.Name == k.Index })
	case *DropConstraint:
		t.Checks = without(t.Checks, func(c Constraint) bool { return c.Name == k.Constraint })
		t.Indexes = without(t.Indexes, func(ix Index) bool { return ix.Constraint == k.Constraint })
	case *RenameIndex:
		for i := range t.Indexes {
			if t.Indexes[i].Name == k.Index {
				t.Indexes[i].Name = k.To
			}
		}
	case *RenameConstraint:
		for i := range t.Checks {
			if t.Checks[i].Name == k.Constraint {
				t.Checks[i].Name = k.To
			}
		}
		for i := range t.Indexes {
			if t.Indexes[i].Constraint == k.Constraint {
				t.Indexes[i].Name, t.Indexes[i].Constraint = k.To, k.To
			}
		}
	case *SetDefault:
		if c := t.Column(k.Column); c != nil {
			c.Default = k.Default
		}
	case *DropDefault:
		if c := t.Column(k.Column); c != nil {
			c.Default = ""
		}
	}
}

// without returns a copy of list without the entries drop matches (the
// model's lists are shared with snapshots handed out earlier).
func without[T any](list []T, drop func(T) bool) []T {
	out := make([]T, 0, len(list))
	for _, x := range list {
		if !drop(x) {
			out = append(out, x)
		}
	}
	return out
}

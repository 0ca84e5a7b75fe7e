package planner

import "github.com/pgplanner/planner/phases"

// Spec is one change as declared in a spec file.
type Spec struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Change holds the kind's fields (a *RenameColumn, ...).
	Change Kind `json:"-"`
	// File and Line locate the change in its spec file; Order is its
	// position across all loaded files (file name order, then list order).
	File  string `json:"file"`
	Line  int    `json:"line"`
	Order int    `json:"order"`
	// Checksum is a sha256 of the kind and its fields, canonicalized: it
	// changes when the spec's meaning changes, not when comments do.
	Checksum string `json:"checksum"`
}

// Plan is a spec compiled for one target.
type Plan struct {
	Spec   Spec           `json:"spec"`
	Phases []phases.Phase `json:"phases"`
	// Expressions says, for each SQL expression of the spec, its
	// volatility and what it is allowed to reach.
	Expressions []ExpressionNote `json:"expressions,omitempty"`
	// Partitioned, for a partitioned table, says what differs (partition.go).
	Partitioned string `json:"partitioned,omitempty"`
}

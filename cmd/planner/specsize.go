package main

import (
	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/planner"
)

// addSpecSizeFlag gives a command that reads spec files --max-spec-size
// (also PLANNER_MAX_SPEC_SIZE, as every flag).
func addSpecSizeFlag(cmd *cobra.Command) {
	cmd.Flags().Var(byteSize{&planner.MaxSpecSize}, "max-spec-size", "largest spec file read, e.g. 16MB")
}

package main

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/planner"
)

// specSource is where a command reads its specs: a positional PATH (a file
// or a directory), else --dir.
type specSource struct {
	dir string
	// optional: a missing default directory means no specs, not an error.
	optional bool
}

func (s *specSource) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.dir, "dir", "plans", "directory (or file) of change specs; a PATH argument does the same")
	addSpecSizeFlag(cmd)
}

// load reads the specs; path is the positional argument, or "".
func (s *specSource) load(cmd *cobra.Command, path string) ([]planner.Spec, error) {
	given := cmd.Flags().Changed("dir")
	dir := s.dir
	if path != "" {
		if given && path != s.dir {
			return nil, usageErrorf("specs given twice (--dir %s and %s): give one", s.dir, path)
		}
		dir, given = path, true
	}
	if !given && s.optional {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
	}
	return planner.Load(dir)
}

// firstArg is args[0], or "".
func firstArg(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return ""
}

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/planner"
)

// specSizeEnv raises the spec file size limit when --max-spec-size is not
// given.
const specSizeEnv = "PLANNER_MAX_SPEC_SIZE"

// specSize is the --max-spec-size flag: bytes, or a number with KiB, MiB or
// GiB (K, M, G and KB, MB, GB mean the same).
type specSize struct{}

func (specSize) String() string { return strconv.FormatInt(planner.MaxSpecSize, 10) }
func (specSize) Type() string   { return "size" }

func (specSize) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	planner.MaxSpecSize = n
	return nil
}

func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffixes []string
		mult     int64
	}{
		{[]string{"GIB", "GB", "G"}, 1 << 30},
		{[]string{"MIB", "MB", "M"}, 1 << 20},
		{[]string{"KIB", "KB", "K"}, 1 << 10},
		{[]string{"B"}, 1},
	} {
		for _, suf := range u.suffixes {
			if rest, ok := strings.CutSuffix(t, suf); ok {
				t, mult = strings.TrimSpace(rest), u.mult
				goto parsed
			}
		}
	}
parsed:
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size: write bytes or a number with KiB, MiB or GiB, e.g. 16MiB", s)
	}
	return n * mult, nil
}

// addSpecSizeFlag gives a command that reads spec files --max-spec-size.
func addSpecSizeFlag(cmd *cobra.Command) {
	cmd.Flags().Var(specSize{}, "max-spec-size", fmt.Sprintf("largest spec file read, e.g. 16MiB (default $%s, else 4MiB)", specSizeEnv))
}

// applySpecSizeEnv applies $PLANNER_MAX_SPEC_SIZE unless the flag was given.
func applySpecSizeEnv(cmd *cobra.Command) error {
	if f := cmd.Flags().Lookup("max-spec-size"); f != nil && f.Changed {
		return nil
	}
	v := os.Getenv(specSizeEnv)
	if v == "" {
		return nil
	}
	n, err := parseSize(v)
	if err != nil {
		return usageErrorf("$%s: %v", specSizeEnv, err)
	}
	planner.MaxSpecSize = n
	return nil
}

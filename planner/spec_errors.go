// Spec errors: one problem with its file:line:col, and the list of them all.

package planner

import (
	"fmt"
	"sort"
	"strings"
)

// SpecError is one problem in a spec file. Line and Col are 1-based; 0 means
// unknown (e.g. a file that cannot be read).
type SpecError struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Path    string `json:"path,omitempty"` // e.g. changes[1].references.table
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

func (e SpecError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInput) true: a bad spec is bad input.
func (e SpecError) Is(target error) bool { return target == ErrInput }

// SpecErrors is every problem found, in file then position order.
type SpecErrors []SpecError

func (es SpecErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInput) true.
func (es SpecErrors) Is(target error) bool { return target == ErrInput }

func (es SpecErrors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

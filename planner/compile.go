package planner

import (
	"fmt"
	"strings"

	"github.com/pgplanner/planner/phases"
)

// Compile turns a spec into its phases for target. Problems with the spec
// (Check, and CheckLive when target.Table is known) come back as a
// *ChangeError, which wraps ErrInput.
func Compile(spec Spec, target Target) (Plan, error) {
	if spec.Change == nil {
		return Plan{}, fmt.Errorf("change %q has no fields (kind %q): %w", spec.ID, spec.Kind, ErrInput)
	}
	if target.Version == 0 {
		target.Version = DefaultVersion
	}
	ps := spec.Change.Check()
	if target.Table != nil {
		if lc, ok := spec.Change.(LiveChecker); ok {
			ps = append(ps, lc.CheckLive(target.Table)...)
		}
		if ex, ok := spec.Change.(expressioner); ok {
			ps = append(ps, liveVolatilityProblems(ex, target.Table)...)
		}
	}
	if len(ps) > 0 {
		return Plan{}, spec.problems(ps)
	}
	out, err := spec.Change.Compile(spec.ID, target)
	if err != nil {
		if ce, ok := err.(*ChangeError); ok {
			return Plan{}, spec.problems(ce.Problems)
		}
		return Plan{}, fmt.Errorf("change %s: %w", spec.ID, err)
	}
	return Plan{Spec: spec, Phases: out, Expressions: expressionNotes(spec.Change, target.Table), Partitioned: target.partitionedNote()}, nil
}

// ChangeError lists what is wrong with one change and how to do it safely.
type ChangeError struct {
	ID, File string
	Line     int
	Problems []Problem
}

func (e *ChangeError) Error() string {
	var b strings.Builder
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if where != "" {
		where += ": "
	}
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("\n")
		}
		field := ""
		if p.Field != "" {
			field = " " + p.Field
		}
		fmt.Fprintf(&b, "%schange %s%s: %s", where, e.ID, field, p.Message)
		if p.Hint != "" {
			fmt.Fprintf(&b, "\n  safe alternative: %s", p.Hint)
		}
	}
	return b.String()
}

func (e *ChangeError) Unwrap() error { return ErrInput }

func (s Spec) problems(ps []Problem) *ChangeError {
	return &ChangeError{ID: s.ID, File: s.File, Line: s.Line, Problems: ps}
}

// problemsError is how a kind's Compile refuses; Compile adds the spec's
// location.
func problemsError(ps []Problem) error { return &ChangeError{Problems: ps} }

// notValidThenValidate is the two-phase pattern for CHECK and FOREIGN KEY.
func notValidThenValidate(c phases.Constraint, what string) []phases.Phase {
	add := c.AddNotValid()
	dropNoCommit := c.Drop()
	return []phases.Phase{
		{
			Name:       "add_not_valid",
			Purpose:    fmt.Sprintf("add %s as %s, enforced for new writes only (brief lock, no scan)", c.Name, what),
			Statements: []phases.Statement{add},
			Rollback:   []phases.Statement{c.Drop()},
		},
		{
			Name:       "validate",
			Purpose:    fmt.Sprintf("check the existing rows against %s without blocking reads or writes", c.Name),
			Statements: []phases.Statement{c.Validate()},
			// A validated constraint cannot be marked NOT VALID again:
			// drop it and add it back NOT VALID (both instant), which is
			// exactly the state after add_not_valid.
			Rollback: []phases.Statement{dropNoCommit, add},
		},
	}
}

func constraintNameLive(t *Table, name string) []Problem {
	if name == "" {
		return nil
	}
	for _, c := range t.Checks {
		if c.Name == name {
			return []Problem{{Field: "name", Message: fmt.Sprintf("a constraint named %q already exists on %s", name, t.Name), Hint: "pick another name"}}
		}
	}
	return nil
}

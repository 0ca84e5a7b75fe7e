package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Validation is the outcome of checking one spec against the live schema.
type Validation struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Table    string    `json:"table"`
	File     string    `json:"file"`
	Line     int       `json:"line"`
	Problems []Problem `json:"problems"`
	// Phases lists the phase names the spec compiles to on this server.
	Phases []string `json:"phases"`
	// Warnings do not refuse the change: a backfill that would take more
	// than an hour, a check that sampled rows violate.
	Warnings []Problem `json:"-"`
	// State says how far a change that already started is ("" for one
	// that has not): it runs as registered and is not checked again.
	State string `json:"state"`
}

// MarshalJSON writes problems with lower-case keys, like the rest of the
// JSON output.
func (v Validation) MarshalJSON() ([]byte, error) {
	type problem struct {
		Field   string `json:"field"`
		Message string `json:"message"`
		Hint    string `json:"hint"`
	}
	type validation Validation
	out := struct {
		validation
		Problems []problem `json:"problems"`
		Warnings []problem `json:"warnings"`
		OK       bool      `json:"ok"`
	}{validation: validation(v), OK: v.OK()}
	for _, p := range v.Problems {
		out.Problems = append(out.Problems, problem{Field: p.Field, Message: p.Message, Hint: p.Hint})
	}
	for _, p := range v.Warnings {
		out.Warnings = append(out.Warnings, problem{Field: p.Field, Message: p.Message, Hint: p.Hint})
	}
	return json.Marshal(out)
}

// OK reports whether no problem was found.
func (v Validation) OK() bool { return len(v.Problems) == 0 }

// Validate checks specs against the live schema without changing anything:
// the table and columns exist, a key exists for backfills, types are known,
// expressions are valid SQL for the table, and the kind's own live checks.
// The whole sequence is applied to a model of the schema first, so that a
// change is judged against the table as the earlier changes leave it and
// contradictions between changes are refused naming both. It reports
// specs edited after their change started and missing privileges per
// change; a newer state or a state schema that cannot be created come back
// as a *PreflightError along with the results. Problems carry a hint
// naming the safe alternative.
func (e *Engine) Validate(ctx context.Context, specs []Spec) ([]Validation, error) {
	return e.ValidateWith(ctx, specs, ValidateOptions{})
}

// ValidateOptions tune Validate.
type ValidateOptions struct {
	// Full evaluates expressions on every existing row (in batches, each
	// in a read-only transaction) rather than on a sample.
	Full bool
}

// ValidateWith is Validate with options.
func (e *Engine) ValidateWith(ctx context.Context, specs []Spec, opts ValidateOptions) ([]Validation, error) {
	if err := checkUniqueIDs(specs); err != nil {
		return nil, err
	}
	pf, err := e.preflight(ctx, specs)
	if err != nil {
		return nil, err
	}
	batch := newLiveBatch()
	batch.sample, batch.full, batch.catalog = true, opts.Full, pf.tables
	out := make([]Validation, len(specs))
	finish := make([]func() ([]Problem, []Problem), len(specs))
	// The expressions' volatility, for every change at once (one
	// transaction, each repeated question asked once).
	var resolve []resolveItem
	for _, s := range specs {
		if t := pf.seq.Before[s.ID]; t != nil && s.Change != nil && !pf.started[s.ID] {
			resolve = append(resolve, resolveItem{Table: t, Change: s.Change})
		}
	}
	if err := resolveAll(ctx, e.Pool, resolve); err != nil {
		return nil, err
	}
	for i, s := range specs {
		v := Validation{ID: s.ID, Kind: s.Kind, File: s.File, Line: s.Line}
		if s.Change == nil {
			v.Problems = append(v.Problems, Problem{Message: "the spec has no fields"})
			out[i] = v
			continue
		}
		name := s.Change.Table()
		v.Table = name.String()
		if c := pf.stored[s.ID]; pf.edited[s.ID] {
			v.Problems = append(v.Problems, Problem{Message: editedMessage(s, c)})
			out[i] = v
			continue
		} else if pf.started[s.ID] {
			// It runs as registered, against its own snapshot.
			v.State = fmt.Sprintf("in flight, phase %d of %d applied", c.Applied, c.Total)
			if c.Status == StatusDone {
				v.State = "complete"
			}
			if plan, err := Compile(s, Target{Version: c.ServerVersion, Table: c.Catalog}); err == nil {
				v.Phases = phaseNames(plan)
			}
			out[i] = v
			continue
		}
		if ps := pf.seq.Problems[s.ID]; len(ps) > 0 {
			v.Problems = append(v.Problems, ps...)
			out[i] = v
			continue
		}
		table := pf.seq.Before[s.ID]
		if table == nil && !createsTable(s.Change) {
			v.Problems = append(v.Problems, Problem{Field: "table", Message: fmt.Sprintf("table %s does not exist", name),
				Hint: "check the name; schema-qualify it (schema.table) when it is not in public"})
			out[i] = v
			continue
		}
		plan, err := Compile(s, Target{Version: pf.version, Table: table})
		if err != nil {
			v.Problems = append(v.Problems, problemsOf(err)...)
			out[i] = v
			continue
		}
		v.Phases = phaseNames(plan)
		finish[i] = batch.collect(s, plan, table)
		out[i] = v
	}
	if err := batch.run(ctx, e.Pool); err != nil {
		return nil, err
	}
	for i, s := range specs {
		if finish[i] != nil {
			ps, ws := finish[i]()
			out[i].Problems = append(out[i].Problems, ps...)
			out[i].Warnings = ws
		}
		out[i].Problems = append(out[i].Problems, pf.perChange[s.ID]...)
	}
	if len(pf.global) > 0 {
		return out, &PreflightError{Problems: pf.global}
	}
	return out, nil
}

func phaseNames(p Plan) []string {
	var names []string
	for _, ph := range p.Phases {
		names = append(names, ph.Name)
	}
	return names
}

// problemsOf turns a compile error into problems.
func problemsOf(err error) []Problem {
	var ce *ChangeError
	if errors.As(err, &ce) {
		return ce.Problems
	}
	return []Problem{{Message: err.Error()}}
}

// liveProblems runs the checks that need the live schema. Next runs them
// before a change's first phase; Validate runs them for every spec, in one
// batch.
func (e *Engine) liveProblems(ctx context.Context, s Spec, plan Plan, table *Table) ([]Problem, error) {
	b := newLiveBatch()
	b.sample = true
	problems := b.collect(s, plan, table)
	if err := b.run(ctx, e.Pool); err != nil {
		return nil, err
	}
	ps, warnings := problems()
	for _, w := range warnings {
		e.logf("warning: change %s %s: %s\n", s.ID, w.Field, w.Message)
	}
	return ps, nil
}

// expression is one SQL expression of a change as the live checks see it
// (declared by the kind: liveExpressioner).
type expression struct {
	field string
	expr  string
	// column: the expression is assigned to column, of type typ (and
	// checked as the UPDATE of a backfill would assign it); "": it is a
	// boolean condition.
	column, typ string
	hint        string
	// onRows: it also runs on existing rows (backfills, conversions,
	// checks, index predicates), so it is evaluated on a sample of them
	// (all with validate --full); rowsExpr is the form that runs there
	// when it differs from expr.
	onRows   bool
	rowsExpr string
	// constraint: a condition existing rows must satisfy (a CHECK): rows
	// where it is false are reported.
	constraint bool
	// adds are the columns the change adds before the expression runs
	// (columnAdder, those the table lacks), by name → type.
	adds map[string]string
}

// Hints of the live expression checks, shared by the kinds.
const (
	hintAssign    = "write an expression over the table's columns that yields the column's type, e.g. lower(email), price * 100, COALESCE(x, 0)"
	hintDefault   = "use a constant or a non-volatile expression of the column's type"
	hintCondition = "write a boolean expression over the table's columns"
)

// liveExpressionsOf is the kind's live expressions against table, each
// with the columns the change adds.
func liveExpressionsOf(k Kind, table *Table) []expression {
	lx, ok := k.(liveExpressioner)
	if !ok {
		return nil
	}
	adds := map[string]string{}
	if a, ok := k.(columnAdder); ok {
		for c, typ := range a.addedColumns(table) {
			if table.Column(c) == nil && typ != "" {
				adds[c] = typ
			}
		}
	}
	out := lx.liveExpressions(table)
	for i := range out {
		out[i].adds = adds
	}
	return out
}

// String renders problems for a terminal.
func (v Validation) String() string {
	var b strings.Builder
	if v.OK() {
		fmt.Fprintf(&b, "ok    %s (%s on %s): %s", v.ID, v.Kind, v.Table, strings.Join(v.Phases, " → "))
		if v.State != "" {
			b.WriteString(" (" + v.State + ")")
		}
	} else {
		fmt.Fprintf(&b, "FAIL  %s (%s on %s) at %s:%d", v.ID, v.Kind, v.Table, v.File, v.Line)
	}
	write := func(prefix string, ps []Problem) {
		for _, p := range ps {
			b.WriteString("\n      " + prefix)
			if p.Field != "" {
				b.WriteString(p.Field + ": ")
			}
			b.WriteString(p.Message)
			if p.Hint != "" {
				b.WriteString("\n        safe alternative: " + p.Hint)
			}
		}
	}
	write("- ", v.Problems)
	write("warning: ", v.Warnings)
	return b.String()
}

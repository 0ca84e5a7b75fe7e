package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
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
	var resolve []Resolve
	for _, s := range specs {
		if t := pf.seq.Before[s.ID]; t != nil && s.Change != nil && !pf.started[s.ID] {
			resolve = append(resolve, Resolve{Table: t, Change: s.Change})
		}
	}
	if err := ResolveAll(ctx, e.Pool, resolve); err != nil {
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

// specFieldMap returns the spec's fields as a generic map (the stored JSON
// form), for checks common to several kinds.
func specFieldMap(s Spec) map[string]any {
	b, err := encodeSpec(s)
	if err != nil {
		return nil
	}
	var enc struct {
		Fields map[string]any `json:"fields"`
	}
	if json.Unmarshal(b, &enc) != nil {
		return nil
	}
	return enc.Fields
}

// expression is one SQL expression of a change to check.
type expression struct {
	field string
	expr  string
	// assign: the expression is assigned to column (type: its type);
	// otherwise it is a boolean condition.
	column, typ string
	// extra columns the change adds before the expression runs.
	adds map[string]string
	hint string
}

func expressionsOf(s Spec, plan Plan, fields map[string]any, table *Table) []expression {
	str := func(k string) string { v, _ := fields[k].(string); return v }
	var out []expression
	newType := str("type")
	// Columns the change adds: the backfill targets that do not exist yet.
	adds := map[string]string{}
	if col := str("column"); col != "" && newType != "" && table.Column(col) == nil {
		adds[col] = newType // add_column
	}
	for _, p := range plan.Phases {
		if b := p.Backfill; b != nil && table.Column(b.Column) == nil {
			typ := newType
			if typ == "" {
				if old := table.Column(str("column")); old != nil {
					typ = old.Type
				}
			}
			if typ != "" {
				adds[b.Column] = typ
			}
		}
	}
	typeOf := func(col string) string {
		if c := table.Column(col); c != nil {
			return c.Type
		}
		return adds[col]
	}
	for _, p := range plan.Phases {
		if b := p.Backfill; b != nil && typeOf(b.Column) != "" {
			field, expr := "backfill", b.Expr
			if up := str("up"); up != "" {
				// The backfill calls a function the expand phase creates
				// from up; check up itself.
				field, expr = "up", up
			} else if strings.Contains(expr, "planner_up_") {
				// A conversion function made by expand from a cast.
				if old := table.Column(str("column")); old != nil {
					field, expr = "type", "CAST("+pgx.Identifier{old.Name}.Sanitize()+" AS "+typeOf(b.Column)+")"
				}
			}
			out = append(out, expression{field: field, expr: expr, column: b.Column, typ: typeOf(b.Column), adds: adds,
				hint: "write an expression over the table's columns that yields the column's type, e.g. lower(email), price * 100, COALESCE(x, 0)"})
		}
	}
	if down := str("down"); down != "" {
		if old := table.Column(str("column")); old != nil {
			out = append(out, expression{field: "down", expr: down, column: old.Name, typ: old.Type, adds: adds,
				hint: "write the inverse of up using the new column's name, yielding the old column's type"})
		}
	}
	if def := str("default"); def != "" && newType != "" {
		out = append(out, expression{field: "default", expr: def, column: str("column"), typ: newType, adds: adds,
			hint: "use a constant or a non-volatile expression of the column's type"})
	}
	for _, f := range []string{"check", "where"} {
		if cond := str(f); cond != "" {
			out = append(out, expression{field: f, expr: cond, adds: adds,
				hint: "write a boolean expression over the table's columns"})
		}
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

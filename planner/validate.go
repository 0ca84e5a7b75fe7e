package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
		OK       bool      `json:"ok"`
	}{validation: validation(v), OK: v.OK()}
	for _, p := range v.Problems {
		out.Problems = append(out.Problems, problem{Field: p.Field, Message: p.Message, Hint: p.Hint})
	}
	return json.Marshal(out)
}

// OK reports whether no problem was found.
func (v Validation) OK() bool { return len(v.Problems) == 0 }

// Validate checks specs against the live schema without changing anything:
// the table and columns exist, a key exists for backfills, types are known,
// expressions are valid SQL for the table, and the kind's own live checks.
// Problems carry a hint naming the safe alternative.
func (e *Engine) Validate(ctx context.Context, specs []Spec) ([]Validation, error) {
	if err := checkUniqueIDs(specs); err != nil {
		return nil, err
	}
	version, err := serverVersion(ctx, e.Pool)
	if err != nil {
		return nil, err
	}
	var out []Validation
	for _, s := range specs {
		v := Validation{ID: s.ID, Kind: s.Kind, File: s.File, Line: s.Line}
		if s.Change == nil {
			v.Problems = append(v.Problems, Problem{Message: "the spec has no fields"})
			out = append(out, v)
			continue
		}
		name := s.Change.Table()
		v.Table = name.String()
		table, err := loadTable(ctx, e.Pool, name)
		if errors.Is(err, ErrInput) {
			v.Problems = append(v.Problems, Problem{Field: "table", Message: fmt.Sprintf("table %s does not exist", name),
				Hint: "check the name; schema-qualify it (schema.table) when it is not in public"})
			out = append(out, v)
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := ResolveExpressions(ctx, e.Pool, table, s.Change); err != nil {
			return nil, err
		}
		plan, err := Compile(s, Target{Version: version, Table: table})
		if err != nil {
			v.Problems = append(v.Problems, problemsOf(err)...)
			out = append(out, v)
			continue
		}
		for _, p := range plan.Phases {
			v.Phases = append(v.Phases, p.Name)
		}
		ps, err := e.liveProblems(ctx, s, plan, table)
		if err != nil {
			return nil, err
		}
		v.Problems = append(v.Problems, ps...)
		out = append(out, v)
	}
	return out, nil
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
// before a change's first phase; Validate runs them for every spec.
func (e *Engine) liveProblems(ctx context.Context, s Spec, plan Plan, table *Table) ([]Problem, error) {
	var ps []Problem
	if lc, ok := s.Change.(LiveChecker); ok && table != nil {
		ps = append(ps, lc.CheckLive(table)...)
	}
	needsKey := false
	for _, p := range plan.Phases {
		needsKey = needsKey || p.Backfill != nil
	}
	if needsKey && table != nil && len(table.Key) == 0 {
		ps = append(ps, Problem{Field: "table",
			Message: fmt.Sprintf("%s has neither a primary key nor a unique index on NOT NULL columns, and this change backfills rows in batches paginated on one", table.Name),
			Hint:    "add a primary key first without blocking writes: CREATE UNIQUE INDEX CONCURRENTLY t_pkey_idx ON t (id); ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_pkey_idx"})
	}
	fields := specFieldMap(s)
	// Types named by the spec must exist.
	for _, f := range []string{"type"} {
		typ, ok := fields[f].(string)
		if !ok || typ == "" {
			continue
		}
		if msg, err := e.checkType(ctx, typ); err != nil {
			return nil, err
		} else if msg != "" {
			ps = append(ps, Problem{Field: f, Message: msg, Hint: "write a type PostgreSQL knows, e.g. text, bigint, varchar(80), numeric(12,2), timestamptz; create custom types before the change"})
		}
	}
	if table == nil {
		return ps, nil
	}
	// Expressions must be valid against the table, as they will run: each is
	// planned (never executed) in a transaction that is rolled back, against
	// a temporary copy of the table's columns plus the columns the change
	// adds.
	for _, x := range expressionsOf(s, plan, fields, table) {
		msg, err := e.checkExpression(ctx, table, x)
		if err != nil {
			return nil, err
		}
		if msg != "" {
			ps = append(ps, Problem{Field: x.field, Message: msg, Hint: x.hint})
		}
	}
	return ps, nil
}

// specFieldMap returns the spec's fields as a generic map (the stored JSON
// form), for checks common to several kinds.
func specFieldMap(s Spec) map[string]any {
	b, err := EncodeSpec(s)
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

// checkType returns a message when typ is not a known type.
func (e *Engine) checkType(ctx context.Context, typ string) (string, error) {
	var known bool
	err := e.Pool.QueryRow(ctx, `SELECT to_regtype($1) IS NOT NULL`, typ).Scan(&known)
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%q is not a valid type: %s", typ, pe.Message), nil
	}
	if err != nil {
		return "", err
	}
	if !known {
		return fmt.Sprintf("type %q does not exist", typ), nil
	}
	return "", nil
}

// checkExpression plans the expression against a temporary table with the
// target table's columns (plus the ones the change adds) in a transaction
// that is always rolled back. It returns PostgreSQL's complaint, if any.
func (e *Engine) checkExpression(ctx context.Context, table *Table, x expression) (string, error) {
	tx, err := e.Pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = '10s'; SET LOCAL lock_timeout = '1s'`); err != nil {
		return "", err
	}
	scratch := pgx.Identifier{"planner_validate"}.Sanitize()
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE `+scratch+` (LIKE `+table.Name.Quoted()+`) ON COMMIT DROP`); err != nil {
		return "", fmt.Errorf("validate: copy the columns of %s: %w", table.Name, err)
	}
	cols := make([]string, 0, len(x.adds))
	for c := range x.adds {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	for _, c := range cols {
		if _, err := tx.Exec(ctx, `ALTER TABLE `+scratch+` ADD COLUMN `+pgx.Identifier{c}.Sanitize()+` `+x.adds[c]); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				return fmt.Sprintf("column %s of type %s: %s", c, x.adds[c], pe.Message), nil
			}
			return "", err
		}
	}
	// The alias is the table's own name, so expressions qualified with it
	// (users.email) resolve too.
	alias := pgx.Identifier{table.Name.Name}.Sanitize()
	var sql string
	if x.column != "" {
		// UPDATE applies assignment casts exactly as the backfill will.
		sql = `EXPLAIN UPDATE ` + scratch + ` AS ` + alias + ` SET ` + pgx.Identifier{x.column}.Sanitize() + ` = (` + x.expr + "\n)"
	} else {
		sql = `EXPLAIN SELECT 1 FROM ` + scratch + ` AS ` + alias + ` WHERE (` + x.expr + "\n)"
	}
	if err := execOne(ctx, tx.Conn().PgConn(), sql); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			msg := pe.Message
			if pe.Hint != "" {
				msg += " (" + pe.Hint + ")"
			}
			return fmt.Sprintf("%q is not valid for %s: %s", oneLine(x.expr, 80), table.Name, msg), nil
		}
		return "", err
	}
	return "", nil
}

// describeValidation renders problems for a terminal.
func (v Validation) String() string {
	if v.OK() {
		return fmt.Sprintf("ok    %s (%s on %s): %s", v.ID, v.Kind, v.Table, strings.Join(v.Phases, " → "))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "FAIL  %s (%s on %s) at %s:%d", v.ID, v.Kind, v.Table, v.File, v.Line)
	for _, p := range v.Problems {
		b.WriteString("\n      - ")
		if p.Field != "" {
			b.WriteString(p.Field + ": ")
		}
		b.WriteString(p.Message)
		if p.Hint != "" {
			b.WriteString("\n        safe alternative: " + p.Hint)
		}
	}
	return b.String()
}

// LiveProblems runs, for one compiled spec, the live-schema checks that
// Validate and Next run (a key for backfills, types, expressions, the
// kind's own), so that `planner plan` with a database refuses the same.
func (e *Engine) LiveProblems(ctx context.Context, s Spec, plan Plan, table *Table) ([]Problem, error) {
	return e.liveProblems(ctx, s, plan, table)
}

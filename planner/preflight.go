package planner

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// preflight is everything validate and next check before anything runs,
// read in a few queries and changing nothing: the state (its version,
// edited in-flight specs), the state schema, the tables with the role's
// privileges on them, and the whole sequence of changes applied to a model
// of the schema.
type preflight struct {
	version int
	stored  map[string]*ChangeState
	tables  map[TableName]*Table
	// global are problems of the run rather than of one change.
	global []Problem
	// perChange are problems of one change (privileges).
	perChange map[string][]Problem
	// privileges counts the problems that are missing privileges: a
	// configuration to fix, not an input (exit 5 when they are all).
	privileges int
	// started are changes that already started (their stored spec is
	// what runs); edited those of them whose file changed since.
	started map[string]bool
	edited  map[string]bool
	seq     sequenceResult
}

// PreflightError lists what makes a run impossible before it starts
// (state, state schema, privileges, contradictions between changes).
type PreflightError struct {
	Problems []Problem
	// Privileges: every problem is a missing privilege (ErrConfig).
	Privileges bool
}

func (e *PreflightError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("\n")
		}
		if p.Field != "" {
			b.WriteString(p.Field + ": ")
		}
		b.WriteString(p.Message)
		if p.Hint != "" {
			b.WriteString("\n  what to do: " + p.Hint)
		}
	}
	return b.String()
}

func (e *PreflightError) Unwrap() error {
	if e.Privileges {
		return ErrConfig
	}
	return ErrInput
}

// CheckStateSchemaName refuses a state schema name PostgreSQL would
// truncate, or an empty one.
func CheckStateSchemaName(name string) error {
	if name == "" {
		return fmt.Errorf("the state schema name is empty: %w", ErrInput)
	}
	if len(name) > maxIdentifier {
		return fmt.Errorf("the state schema name %q is %d bytes long; PostgreSQL would cut it to %d: choose a shorter one: %w", name, len(name), maxIdentifier, ErrInput)
	}
	return nil
}

// plannerRelations are the tables the planner and its packages keep in the
// state schema.
var plannerRelations = []string{"meta", "changes", "history", "flags", "backfill_jobs", "backfill_ranges", "backfill_undo", "statement_baselines"}

// preflight reads and checks; it returns an error only when the database
// cannot answer.
func (e *Engine) preflight(ctx context.Context, specs []Spec) (*preflight, error) {
	pf := &preflight{stored: map[string]*ChangeState{}, perChange: map[string][]Problem{},
		started: map[string]bool{}, edited: map[string]bool{}}
	var err error
	if pf.version, err = ServerVersion(ctx, e.Pool); err != nil {
		return nil, err
	}
	st := e.state()
	if err := CheckStateSchemaName(st.schema); err != nil {
		pf.global = append(pf.global, Problem{Field: "state-schema", Message: strings.TrimSuffix(err.Error(), ": "+ErrInput.Error())})
	} else if err := e.checkStateSchema(ctx, pf); err != nil {
		return nil, err
	}
	for _, s := range specs {
		c := pf.stored[s.ID]
		if c == nil {
			continue
		}
		switch {
		case c.Checksum != s.Checksum && !(c.Status == StatusPending && c.Applied == 0):
			pf.edited[s.ID] = true
		case c.Checksum == s.Checksum && (c.Applied > 0 || c.Status != StatusPending):
			pf.started[s.ID] = true
		}
	}
	// Changes in the state but no longer in the files do not advance
	// (next reports them missing): the catalog shows what they did.
	var all []Spec
	for _, s := range specs {
		if pf.edited[s.ID] {
			// The stored version is what runs.
			if stored, err := decodeSpec(pf.stored[s.ID].Spec); err == nil {
				stored.File, stored.Line, stored.Order = s.File, s.Line, s.Order
				pf.started[s.ID] = true
				all = append(all, stored)
				continue
			}
		}
		all = append(all, s)
	}
	var names []TableName
	for _, s := range all {
		if s.Change == nil {
			continue
		}
		names = append(names, s.Change.Table())
		switch k := s.Change.(type) {
		case *AddForeignKey:
			names = append(names, ParseTableName(k.References.Table))
		case *CreateTable:
			for _, fk := range k.Foreign {
				names = append(names, ParseTableName(fk.References.Table))
			}
		case *RenameTable:
			names = append(names, k.NewName())
		}
	}
	if pf.tables, err = loadTables(ctx, e.Pool, names); err != nil {
		return nil, err
	}
	if err := e.checkPrivileges(ctx, pf, specs); err != nil {
		return nil, err
	}
	pf.seq = checkSequence(all, pf.tables, pf.started)
	return pf, nil
}

// editedMessage says what to do about a spec edited after its change
// started.
func editedMessage(s Spec, c *ChangeState) string {
	what := fmt.Sprintf("phase %d of %d applied", c.Applied, c.Total)
	if c.Status == StatusDone {
		what = "complete"
	}
	return fmt.Sprintf("change %q (%s:%d) was edited after it started (%s): revert the edit, or roll the change back (planner rollback %s, repeated until no phase is applied) before editing it, or leave it and declare a new change with a new id",
		s.ID, s.File, s.Line, what, s.ID)
}

// checkStateSchema reads the state (refusing a newer one) and, when it does
// not exist yet, checks that it can be created where asked: a schema of
// the planner's own (not one holding the application's tables), and CREATE
// on the database or the schema.
func (e *Engine) checkStateSchema(ctx context.Context, pf *preflight) error {
	st := e.state()
	_, err := st.version(ctx, e.Pool)
	if err != nil {
		if strings.Contains(err.Error(), "newer planner") {
			pf.global = append(pf.global, Problem{Field: "state", Message: err.Error()})
			return nil
		}
		return err
	}
	exists, err := st.exists(ctx, e.Pool)
	if err != nil {
		return err
	}
	if exists {
		stored, err := st.changes(ctx, e.Pool)
		if err != nil {
			return err
		}
		for _, c := range stored {
			pf.stored[c.ID] = c
		}
		return nil
	}
	var schemaExists, canCreate bool
	var others []string
	var role string
	err = e.Pool.QueryRow(ctx, `
SELECT current_user, EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = $1),
       CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = $1)
            THEN pg_catalog.has_schema_privilege($1, 'CREATE')
            ELSE pg_catalog.has_database_privilege(current_database(), 'CREATE') END,
       ARRAY(SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname <> ALL ($2::text[])
             ORDER BY c.relname LIMIT 5)`, st.schema, plannerRelations).Scan(&role, &schemaExists, &canCreate, &others)
	if err != nil {
		return fmt.Errorf("check the state schema: %w", err)
	}
	if len(others) > 0 {
		pf.global = append(pf.global, Problem{Field: "state-schema",
			Message: fmt.Sprintf("schema %q holds tables that are not the planner's (%s): the planner keeps its state in a schema of its own", st.schema, strings.Join(others, ", ")),
			Hint:    "pass --state-schema with a new name (default planner)"})
	}
	if !canCreate {
		pf.privileges++
		where := fmt.Sprintf("the database (to create schema %q)", st.schema)
		if schemaExists {
			where = fmt.Sprintf("schema %q", st.schema)
		}
		pf.global = append(pf.global, Problem{Field: "state-schema",
			Message: fmt.Sprintf("the state schema %q does not exist yet and role %s has no CREATE privilege on %s", st.schema, role, where),
			Hint:    fmt.Sprintf("GRANT CREATE ON DATABASE to the planner's role, or create schema %q owned by it beforehand", st.schema)})
	}
	return nil
}

// checkPrivileges: every change still to run alters its table (and, for
// the column-moving kinds and drop_column, the tables whose foreign keys
// reference it), which takes ownership of the table or membership in the
// owning role; a foreign key also needs REFERENCES on the referenced table.
func (e *Engine) checkPrivileges(ctx context.Context, pf *preflight, specs []Spec) error {
	type need struct {
		spec  Spec
		table TableName
		refs  bool // REFERENCES rather than ownership
	}
	var needs []need
	for _, s := range specs {
		if s.Change == nil || pf.edited[s.ID] {
			continue
		}
		if c := pf.stored[s.ID]; c != nil && c.Status == StatusDone {
			continue
		}
		name := s.Change.Table()
		needs = append(needs, need{spec: s, table: name})
		switch k := s.Change.(type) {
		case *AddForeignKey:
			needs = append(needs, need{spec: s, table: ParseTableName(k.References.Table), refs: true})
		case *RenameColumn, *ChangeColumnType, *DropColumn:
			if t := pf.tables[name.Key()]; t != nil {
				for _, r := range t.Referencing {
					needs = append(needs, need{spec: s, table: r.Table})
				}
			}
		}
	}
	if len(needs) == 0 {
		return nil
	}
	seen := map[TableName]bool{}
	var schemas, rels []string
	for _, n := range needs {
		if !seen[n.table.Key()] {
			seen[n.table.Key()] = true
			schemas, rels = append(schemas, n.table.SchemaOrPublic()), append(rels, n.table.Name)
		}
	}
	rows, err := e.Pool.Query(ctx, `
SELECT n.nspname, c.relname, pg_catalog.pg_get_userbyid(c.relowner),
       pg_catalog.pg_has_role(c.relowner, 'USAGE'), pg_catalog.has_table_privilege(c.oid, 'REFERENCES')
FROM unnest($1::text[], $2::text[]) AS w(nspname, relname)
JOIN pg_catalog.pg_namespace n ON n.nspname = w.nspname
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.relname`, schemas, rels)
	if err != nil {
		return fmt.Errorf("check privileges: %w", err)
	}
	type priv struct {
		owner       string
		owns, refer bool
	}
	privs := map[TableName]priv{}
	for rows.Next() {
		var schema, rel string
		var p priv
		if err := rows.Scan(&schema, &rel, &p.owner, &p.owns, &p.refer); err != nil {
			rows.Close()
			return fmt.Errorf("check privileges: %w", err)
		}
		privs[TableName{Schema: schema, Name: rel}] = p
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check privileges: %w", err)
	}
	var role string
	if err := e.Pool.QueryRow(ctx, `SELECT current_user`).Scan(&role); err != nil {
		return fmt.Errorf("check privileges: %w", err)
	}
	for _, n := range needs {
		p, ok := privs[n.table.Key()]
		if !ok {
			continue // a missing table is reported as such
		}
		switch {
		case n.refs && !p.refer:
			pf.privileges++
			pf.perChange[n.spec.ID] = append(pf.perChange[n.spec.ID], Problem{Field: "references.table",
				Message: fmt.Sprintf("role %s lacks the REFERENCES privilege on %s, which the foreign key needs", role, n.table),
				Hint:    fmt.Sprintf("GRANT REFERENCES ON %s TO %s", n.table.Quoted(), quoteIfNeeded(role))})
		case !n.refs && !p.owns:
			pf.privileges++
			pf.perChange[n.spec.ID] = append(pf.perChange[n.spec.ID], Problem{Field: "table",
				Message: fmt.Sprintf("role %s may not alter %s: the table is owned by %s, and only its owner (or a member of the owning role) may", role, n.table, p.owner),
				Hint:    fmt.Sprintf("run the planner as %s, or GRANT %s TO %s", quoteIfNeeded(p.owner), quoteIfNeeded(p.owner), quoteIfNeeded(role))})
		}
	}
	return nil
}

// err gathers the preflight's refusals as one error (nil: none),
// sequence contradictions included, for next.
func (pf *preflight) err(specs []Spec) error {
	ps := append([]Problem{}, pf.global...)
	var changes []error
	total := len(ps)
	for _, s := range specs {
		var mine []Problem
		mine = append(mine, pf.perChange[s.ID]...)
		mine = append(mine, pf.seq.Problems[s.ID]...)
		if len(mine) > 0 {
			changes = append(changes, s.problems(mine))
		}
		total += len(mine)
	}
	if len(ps) == 0 && len(changes) == 0 {
		return nil
	}
	if len(changes) > 0 {
		ps = append(ps, Problem{Message: errors.Join(changes...).Error()})
	}
	return &PreflightError{Problems: ps, Privileges: pf.privileges == total}
}

package planner

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Export formats: revisions for the migration runner a team keeps.
const (
	ExportGoose   = "goose"
	ExportAlembic = "alembic"
	ExportSQL     = "sql"
)

// ExportOptions say how Export writes revisions.
type ExportOptions struct {
	SQLScriptOptions
	// Format is ExportGoose, ExportAlembic or ExportSQL.
	Format string
	// Start is the number of the first revision (default 1), to follow a
	// directory's existing revisions.
	Start int
	// AlembicDownRevision is the revision the first Alembic revision
	// follows (empty: none, the first of the history).
	AlembicDownRevision string
}

// revision is one phase as one exported revision.
type revision struct {
	phaseSQL
	Number int
	// Name is the file name's stem: NNNNN_<change>_<phase>.
	Name string
}

// Export writes one revision per phase of every plan into dir, numbered in
// plan order, and returns the files it wrote. Each revision runs its
// phase's SQL under the same lock_timeout and statement_timeout guards as
// planner next, says its gate in a comment, and undoes the phase on the way
// down. Gates and flags are left to the team: the runner applies what it is
// told.
func Export(dir string, plans []Plan, opts ExportOptions) ([]string, error) {
	if opts.Start <= 0 {
		opts.Start = 1
	}
	var revs []revision
	for i, ps := range phasesSQL(plans, opts.SQLScriptOptions) {
		n := opts.Start + i
		revs = append(revs, revision{phaseSQL: ps, Number: n, Name: fmt.Sprintf("%05d_%s_%s", n, ps.Spec.ID, ps.Phase.Name)})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files map[string]string
	switch opts.Format {
	case ExportGoose:
		files = gooseFiles(revs, opts)
	case ExportAlembic:
		files = alembicFiles(dir, revs, opts)
	case ExportSQL:
		files = sqlFiles(revs, opts)
	default:
		return nil, fmt.Errorf("export format %q: want goose, alembic or sql", opts.Format)
	}
	var written []string
	for _, name := range slices.Sorted(maps.Keys(files)) {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return written, err
		}
		if err := writeFileAtomic(path, files[name]); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}

// header is the comment lines that head a revision, without comment markers.
func (r revision) header(opts ExportOptions) []string {
	ph := r.Phase
	lines := []string{
		fmt.Sprintf("planner export: %s (%s), phase %d of %d: %s", r.Spec.ID, r.Spec.Kind, r.Index+1, r.Total, ph.Name),
		ph.Purpose,
		"gate: " + r.Gate() + " (the runner does not check it: deploy this revision only once it holds)",
	}
	if len(ph.Flags) > 0 {
		lines = append(lines, "flags after this phase (planner next publishes them; this revision does not): "+flagList(ph.Flags))
	}
	if ph.Irreversible != "" {
		lines = append(lines, "down: refused, irreversible: "+ph.Irreversible)
	}
	if ph.Backfill != nil && ph.Backfill.Undo {
		lines = append(lines, "down: keeps the values this backfill filled in (planner rollback sets them back to NULL from the keys it records; this revision records none)")
	}
	if opts.Offline {
		lines = append(lines, "NOT FOR RUNNING AS IS: "+OfflineNote)
	}
	return lines
}

// sqlFiles are plain SQL files, NNNNN_<change>_<phase>.up.sql and
// .down.sql, for psql or any runner that sends a file as written.
func sqlFiles(revs []revision, opts ExportOptions) map[string]string {
	files := map[string]string{}
	for _, r := range revs {
		files[r.Name+".up.sql"] = sqlFile(r.header(opts), r.Up)
		down := r.Down
		if r.Phase.Irreversible != "" {
			down = []sqlUnit{irreversibleUnit(r)}
		}
		files[r.Name+".down.sql"] = sqlFile(r.header(opts), down)
	}
	return files
}

func sqlFile(header []string, units []sqlUnit) string {
	var b strings.Builder
	for _, l := range header {
		b.WriteString("-- " + l + "\n")
	}
	if len(units) == 0 {
		b.WriteString("-- no SQL: nothing to do in the schema\n")
	}
	for _, u := range units {
		b.WriteString(u.commented())
	}
	return b.String()
}

// irreversibleUnit fails a down migration of a phase that cannot be undone,
// so a runner stops there instead of recording a rollback that did nothing.
func irreversibleUnit(r revision) sqlUnit {
	msg := fmt.Sprintf("%s phase %s is irreversible: %s", r.Spec.ID, r.Phase.Name, r.Phase.Irreversible)
	return sqlUnit{
		Comment: "irreversible: refuse to go down",
		SQL:     fmt.Sprintf("DO $planner$ BEGIN RAISE EXCEPTION '%%', %s; END $planner$;", quoteLiteral(msg)),
	}
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func writeFileAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".planner-export-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

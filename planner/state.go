package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/pgq"
)

// The planner's state lives in the target database, in a schema of its own:
//
//	meta     one row: the state version, so an older binary refuses newer state
//	changes  one row per registered change: its spec and the catalog snapshot
//	         it compiles against, how many phases are applied, its status
//	history  one row per phase applied, rolled back, or failed
//	statement_baselines  per change that removes a column or a table
//	         name, the pg_stat_statements counts of the statements naming
//	         it, at enforce and at the contract gate's last check, and for
//	         rename_table the entries that name the table (statements.go)
//
// plus the flags and backfill packages' tables, created in the same
// transaction.

// Change statuses.
const (
	StatusPending  = "pending"  // registered, no phase applied
	StatusApplying = "applying" // a phase started and did not finish (killed or failed midway)
	StatusActive   = "active"   // some phases applied, more to come
	StatusDone     = "done"     // every phase applied
	StatusFailed   = "failed"   // the last attempt failed; rerun resumes it
)

// Directions of a history row.
const (
	Up   = "up"
	Down = "down"
)

// ChangeState is a change as recorded in the state schema.
type ChangeState struct {
	ID       string    `json:"id"`
	File     string    `json:"file"`
	Order    int       `json:"order"`
	Kind     string    `json:"kind"`
	Table    TableName `json:"table"`
	Checksum string    `json:"checksum"`
	// Spec is encodeSpec's output; Catalog the table as it was when the
	// change started (or was registered); ServerVersion the major version
	// it compiles for. Together they make every deploy compile the same
	// phases.
	Spec          json.RawMessage `json:"spec"`
	Catalog       *Table          `json:"catalog"`
	ServerVersion int             `json:"server_version"`
	// Fingerprint holds one hash per compiled phase, taken at registration
	// (fingerprint.go); empty for a change registered before they were
	// stored, until its next run.
	Fingerprint []string  `json:"fingerprint"`
	Applied     int       `json:"applied"` // phases applied
	Total       int       `json:"total"`
	Status      string    `json:"status"`
	LastError   string    `json:"last_error"`
	Registered  time.Time `json:"registered"`
	Updated     time.Time `json:"updated"`
}

// HistoryEntry is one phase applied, rolled back, or failed.
type HistoryEntry struct {
	ID         int64      `json:"id"`
	Change     string     `json:"change"`
	PhaseIndex int        `json:"phase_index"` // 0-based
	Phase      string     `json:"phase"`
	Direction  string     `json:"direction"`
	DeployID   string     `json:"deploy_id"`
	Started    time.Time  `json:"started"`
	Finished   *time.Time `json:"finished"`
	Error      string     `json:"error"`
	// Note says how the row came to be when it is not a phase the planner
	// ran: "adopted ..." for a phase recorded by planner adopt.
	Note string `json:"note"`
}

// state reads and writes the state tables of one schema.
type state struct{ schema string }

func (s state) table(name string) string { return pgx.Identifier{s.schema, name}.Sanitize() }

// exists says whether the state schema has been created.
func (s state) exists(ctx context.Context, q Querier) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, s.table("meta")).Scan(&ok)
	return ok, wrapf(err, "looking for the state schema %q", s.schema)
}

// version reads the state version, refusing state written by a newer
// binary. It returns 0 when the schema does not exist yet.
func (s state) version(ctx context.Context, q Querier) (int, error) {
	ok, err := s.exists(ctx, q)
	if err != nil || !ok {
		return 0, err
	}
	var v int
	err = q.QueryRow(ctx, `SELECT version FROM `+s.table("meta")).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read state version: %w", err)
	}
	if v > StateVersion {
		return v, fmt.Errorf("the state in schema %q was written by a newer planner (state version %d; this binary understands up to %d): upgrade planner", s.schema, v, StateVersion)
	}
	return v, nil
}

// migrate creates or upgrades the state schema, and the flags and backfill
// tables, in one transaction. Idempotent; a transaction-scoped advisory lock
// keeps two first runs from racing on CREATE.
func (s state) migrate(ctx context.Context, q pgq.Beginner) error {
	tx, err := q.Begin(ctx)
	if err != nil {
		return wrapf(err, "migrating the state schema %q", s.schema)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockClass, "migrate:"+s.schema); err != nil {
		return wrapf(err, "locking the state schema %q for its migration", s.schema)
	}
	v, err := s.version(ctx, tx)
	if err != nil {
		return err
	}
	if v < StateVersion {
		var schemaExists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, s.schema).Scan(&schemaExists); err != nil {
			return wrapf(err, "looking for the state schema %q", s.schema)
		}
		ddl := s.ddl()
		if schemaExists {
			// A schema created beforehand (e.g. by a DBA, owned by the
			// planner's role) needs no CREATE privilege on the database.
			ddl = ddl[1:]
		}
		for _, stmt := range ddl {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("create state schema %q: %w (the planner's role needs CREATE on the database, or a schema of that name it owns)", s.schema, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.table("meta")+` (version) VALUES ($1)
			ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version`, StateVersion); err != nil {
			return wrapf(err, "recording the version of the state schema %q", s.schema)
		}
	}
	// Columns added after state version 2; older binaries neither read
	// nor write them.
	if err := s.addColumn(ctx, tx, "history", "note", `text NOT NULL DEFAULT ''`); err != nil {
		return fmt.Errorf("state schema %q: %w", s.schema, err)
	}
	if err := s.addColumn(ctx, tx, "changes", "fingerprint", `text[] NOT NULL DEFAULT '{}'`); err != nil {
		return fmt.Errorf("state schema %q: %w", s.schema, err)
	}
	if err := s.ensureStatementBaselines(ctx, tx); err != nil {
		return fmt.Errorf("state schema %q: %w", s.schema, err)
	}
	if err := s.addColumn(ctx, tx, "statement_baselines", "ignored", `jsonb`); err != nil {
		return fmt.Errorf("state schema %q: %w", s.schema, err)
	}
	// The other packages' migrations are idempotent and cheap; running them
	// every time lets them add tables without a state version bump.
	if err := flags.Migrate(ctx, tx, s.schema); err != nil {
		return fmt.Errorf("create flag tables: %w", err)
	}
	if err := backfill.Migrate(ctx, tx, s.schema); err != nil {
		return fmt.Errorf("create backfill tables: %w", err)
	}
	return wrapf(tx.Commit(ctx), "committing the migration of the state schema %q", s.schema)
}

func (s state) ddl() []string {
	return []string{
		`CREATE SCHEMA IF NOT EXISTS ` + pgx.Identifier{s.schema}.Sanitize(),
		`CREATE TABLE IF NOT EXISTS ` + s.table("meta") + ` (
			singleton bool PRIMARY KEY DEFAULT true CHECK (singleton),
			version int NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + s.table("changes") + ` (
			id text PRIMARY KEY,
			file text NOT NULL DEFAULT '',
			ord int NOT NULL DEFAULT 0,
			kind text NOT NULL,
			table_schema text NOT NULL,
			table_name text NOT NULL,
			checksum text NOT NULL,
			spec jsonb NOT NULL,
			catalog jsonb,
			server_version int NOT NULL DEFAULT 0,
			applied int NOT NULL DEFAULT 0,
			total int NOT NULL DEFAULT 0,
			status text NOT NULL DEFAULT 'pending',
			last_error text NOT NULL DEFAULT '',
			registered timestamptz NOT NULL DEFAULT now(),
			updated timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE IF NOT EXISTS ` + s.table("history") + ` (
			id bigserial PRIMARY KEY,
			change text NOT NULL REFERENCES ` + s.table("changes") + ` (id) ON DELETE CASCADE,
			phase_index int NOT NULL,
			phase text NOT NULL,
			direction text NOT NULL CHECK (direction IN ('up', 'down')),
			deploy_id text NOT NULL,
			started timestamptz NOT NULL,
			finished timestamptz,
			error text NOT NULL DEFAULT '')`,
		`CREATE INDEX IF NOT EXISTS history_change_idx ON ` + s.table("history") + ` (change, id)`,
		// The planner lease (lease.go): at most one row, its holder.
		`CREATE TABLE IF NOT EXISTS ` + s.table("lease") + ` (
			singleton bool PRIMARY KEY DEFAULT true CHECK (singleton),
			token text NOT NULL,
			host text NOT NULL,
			pid int NOT NULL,
			deploy_id text NOT NULL,
			command text NOT NULL,
			taken timestamptz NOT NULL,
			renewed timestamptz NOT NULL,
			expires timestamptz NOT NULL)`,
	}
}

// addColumn adds a column to a state table unless it is there. The
// catalog is read first: ALTER TABLE takes an ACCESS EXCLUSIVE lock even
// when there is nothing to add.
func (s state) addColumn(ctx context.Context, q Querier, table, column, definition string) error {
	var has bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
		WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped)`, s.table(table), column).Scan(&has); err != nil || has {
		return err
	}
	_, err := q.Exec(ctx, `ALTER TABLE `+s.table(table)+` ADD COLUMN IF NOT EXISTS `+pgx.Identifier{column}.Sanitize()+` `+definition)
	return err
}

// changeColumns reads the fingerprint through to_jsonb: a state not
// migrated since it was added reads too.
const changeColumns = `c.id, c.file, c.ord, c.kind, c.table_schema, c.table_name, c.checksum, c.spec, c.catalog,
	c.server_version, coalesce(to_jsonb(c) -> 'fingerprint', '[]'), c.applied, c.total, c.status, c.last_error, c.registered, c.updated`

func scanChange(row pgx.Row) (*ChangeState, error) {
	var c ChangeState
	var catalog []byte
	err := row.Scan(&c.ID, &c.File, &c.Order, &c.Kind, &c.Table.Schema, &c.Table.Name, &c.Checksum, &c.Spec,
		&catalog, &c.ServerVersion, &c.Fingerprint, &c.Applied, &c.Total, &c.Status, &c.LastError, &c.Registered, &c.Updated)
	if err != nil {
		return nil, err
	}
	if len(catalog) > 0 && string(catalog) != "null" {
		c.Catalog = new(Table)
		if err := json.Unmarshal(catalog, c.Catalog); err != nil {
			return nil, fmt.Errorf("change %s: stored catalog: %w", c.ID, err)
		}
	}
	return &c, nil
}

// changes lists every registered change in registration order.
func (s state) changes(ctx context.Context, q Querier) ([]*ChangeState, error) {
	rows, err := q.Query(ctx, `SELECT `+changeColumns+` FROM `+s.table("changes")+` c ORDER BY c.ord, c.id`)
	if err != nil {
		return nil, wrapf(err, "reading the registered changes")
	}
	defer rows.Close()
	var out []*ChangeState
	for rows.Next() {
		c, err := scanChange(rows)
		if err != nil {
			return nil, wrapf(err, "reading the registered changes")
		}
		out = append(out, c)
	}
	return out, wrapf(rows.Err(), "reading the registered changes")
}

// change reads one change; nil when it is not registered.
func (s state) change(ctx context.Context, q Querier, id string) (*ChangeState, error) {
	c, err := scanChange(q.QueryRow(ctx, `SELECT `+changeColumns+` FROM `+s.table("changes")+` c WHERE c.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return c, wrapf(err, "reading the state of change %q", id)
}

// register inserts a new change, or replaces a pending one's spec. Its
// callers say which change failed to register.
func (s state) register(ctx context.Context, q Querier, c *ChangeState) error {
	catalog, err := json.Marshal(c.Catalog)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `INSERT INTO `+s.table("changes")+` (id, file, ord, kind, table_schema, table_name,
			checksum, spec, catalog, server_version, total, fingerprint, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending')
		ON CONFLICT (id) DO UPDATE SET file = EXCLUDED.file, ord = EXCLUDED.ord, kind = EXCLUDED.kind,
			table_schema = EXCLUDED.table_schema, table_name = EXCLUDED.table_name,
			checksum = EXCLUDED.checksum, spec = EXCLUDED.spec, catalog = EXCLUDED.catalog,
			server_version = EXCLUDED.server_version, total = EXCLUDED.total,
			fingerprint = EXCLUDED.fingerprint, updated = now()`,
		c.ID, c.File, c.Order, c.Kind, c.Table.SchemaOrPublic(), c.Table.Name, c.Checksum, string(c.Spec),
		string(catalog), c.ServerVersion, c.Total, fingerprintArray(c.Fingerprint))
	return err
}

// setPosition records the file and order of an unchanged spec (files may be
// renamed or reordered without changing the spec's meaning).
func (s state) setPosition(ctx context.Context, q Querier, id, file string, ord int) error {
	_, err := q.Exec(ctx, `UPDATE `+s.table("changes")+` SET file = $2, ord = $3 WHERE id = $1 AND (file, ord) IS DISTINCT FROM ($2, $3)`, id, file, ord)
	return wrapf(err, "recording the file and order of change %q", id)
}

// fillFingerprint records the fingerprints of a change registered before
// they were stored; a change that has them keeps them.
func (s state) fillFingerprint(ctx context.Context, q Querier, id string, fingerprint []string) error {
	_, err := q.Exec(ctx, `UPDATE `+s.table("changes")+` SET fingerprint = $2 WHERE id = $1 AND fingerprint = '{}'`, id, fingerprintArray(fingerprint))
	return err
}

// fingerprintArray is a fingerprint as a text[] parameter (never NULL).
func fingerprintArray(f []string) []string {
	if f == nil {
		return []string{}
	}
	return f
}

// setStatus updates a change's progress.
func (s state) setStatus(ctx context.Context, q Querier, id string, applied int, status, lastError string) error {
	_, err := q.Exec(ctx, `UPDATE `+s.table("changes")+` SET applied = $2, status = $3, last_error = $4, updated = now() WHERE id = $1`,
		id, applied, status, lastError)
	return wrapf(err, "recording the status of change %q", id)
}

// addHistory appends a history row.
func (s state) addHistory(ctx context.Context, q Querier, h HistoryEntry) error {
	_, err := q.Exec(ctx, `INSERT INTO `+s.table("history")+` (change, phase_index, phase, direction, deploy_id, started, finished, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		h.Change, h.PhaseIndex, h.Phase, h.Direction, h.DeployID, h.Started, h.Finished, h.Error)
	return wrapf(err, "recording phase %s of change %q in the history", h.Phase, h.Change)
}

// recordStart notes, once, that a phase started and goes on in the
// background (an async backfill): a history row with no finish time.
func (s state) recordStart(ctx context.Context, q Querier, change string, idx int, phase, deploy string, started time.Time) error {
	_, err := q.Exec(ctx, `INSERT INTO `+s.table("history")+` (change, phase_index, phase, direction, deploy_id, started)
		SELECT $1, $2, $3, 'up', $4, $5
		WHERE NOT EXISTS (SELECT FROM `+s.table("history")+` h WHERE h.change = $1 AND h.phase_index = $2
			AND h.direction = 'up' AND h.finished IS NULL AND h.error = ''
			AND h.id > coalesce((SELECT max(id) FROM `+s.table("history")+` WHERE change = $1 AND direction = 'down'), 0))`,
		change, idx, phase, deploy, started)
	return wrapf(err, "recording the start of phase %s of change %q", phase, change)
}

// recordAdopted appends the history row of a phase planner adopt recorded
// without running it.
func (s state) recordAdopted(ctx context.Context, q Querier, h HistoryEntry) error {
	_, err := q.Exec(ctx, `INSERT INTO `+s.table("history")+` (change, phase_index, phase, direction, deploy_id, started, finished, note)
			VALUES ($1, $2, $3, 'up', $4, $5, clock_timestamp(), $6)`, h.Change, h.PhaseIndex, h.Phase, h.DeployID, h.Started, h.Note)
	return wrapf(err, "recording adopted phase %s of change %q", h.Phase, h.Change)
}

// recordFinish appends the history row of a phase that finished now, in
// the transaction that records its effect.
func (s state) recordFinish(ctx context.Context, q Querier, change string, idx int, phase, direction, deploy string, started time.Time) error {
	_, err := q.Exec(ctx, `INSERT INTO `+s.table("history")+` (change, phase_index, phase, direction, deploy_id, started, finished)
			VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp())`, change, idx, phase, direction, deploy, started)
	return wrapf(err, "recording the end of phase %s of change %q", phase, change)
}

// lastFinishedUp is the latest finished, successful application of phase
// idx of a change and how long ago it finished (pgx.ErrNoRows if none): the
// soak gate's clock.
func (s state) lastFinishedUp(ctx context.Context, q Querier, change string, idx int) (h HistoryEntry, age time.Duration, err error) {
	err = q.QueryRow(ctx, `SELECT deploy_id, finished, clock_timestamp() - finished
			FROM `+s.table("history")+` WHERE change = $1 AND phase_index = $2 AND direction = 'up' AND error = '' AND finished IS NOT NULL
			ORDER BY id DESC LIMIT 1`, change, idx).Scan(&h.DeployID, &h.Finished, &age)
	return h, age, wrapf(err, "reading when phase %d of change %q was applied", idx+1, change)
}

// lastUp is the deploy and finish time of the latest successful application
// of phase idx of a change, with the database's clock (pgx.ErrNoRows if
// none): the purge gate's clock.
func (s state) lastUp(ctx context.Context, q Querier, change string, idx int) (deploy string, finished, now time.Time, err error) {
	err = q.QueryRow(ctx, `SELECT deploy_id, finished, clock_timestamp()
		FROM `+s.table("history")+` WHERE change = $1 AND phase_index = $2 AND direction = 'up' AND error = ''
		ORDER BY id DESC LIMIT 1`, change, idx).Scan(&deploy, &finished, &now)
	return deploy, finished, now, wrapf(err, "reading when phase %d of change %q was applied", idx+1, change)
}

// history lists history rows, oldest first; change "" means every change.
func (s state) history(ctx context.Context, q Querier, change string) ([]HistoryEntry, error) {
	// The note is read through to_jsonb: a state not migrated since it
	// was added reads too.
	rows, err := q.Query(ctx, `SELECT id, change, phase_index, phase, direction, deploy_id, started, finished, error,
			coalesce(to_jsonb(h) ->> 'note', '')
		FROM `+s.table("history")+` h WHERE $1 = '' OR change = $1 ORDER BY id`, change)
	if err != nil {
		return nil, wrapf(err, "reading the history")
	}
	defer rows.Close()
	var out []HistoryEntry
	for rows.Next() {
		var h HistoryEntry
		if err := rows.Scan(&h.ID, &h.Change, &h.PhaseIndex, &h.Phase, &h.Direction, &h.DeployID, &h.Started, &h.Finished, &h.Error, &h.Note); err != nil {
			return nil, wrapf(err, "reading the history")
		}
		out = append(out, h)
	}
	return out, wrapf(rows.Err(), "reading the history")
}

// lastSuccess returns the latest successful history row of a change (nil if none).
func (s state) lastSuccess(ctx context.Context, q Querier, change string) (*HistoryEntry, error) {
	var h HistoryEntry
	err := q.QueryRow(ctx, `SELECT id, change, phase_index, phase, direction, deploy_id, started, finished, error
		FROM `+s.table("history")+` WHERE change = $1 AND error = '' AND finished IS NOT NULL ORDER BY id DESC LIMIT 1`, change).
		Scan(&h.ID, &h.Change, &h.PhaseIndex, &h.Phase, &h.Direction, &h.DeployID, &h.Started, &h.Finished, &h.Error)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, wrapf(err, "reading the history of change %q", change)
	}
	return &h, nil
}

// advancedIn returns the ids of changes that completed a phase in deploy.
func (s state) advancedIn(ctx context.Context, q Querier, deploy string) (map[string]HistoryEntry, error) {
	rows, err := q.Query(ctx, `SELECT id, change, phase_index, phase, direction, deploy_id, started, finished, error
		FROM `+s.table("history")+` WHERE deploy_id = $1 AND direction = 'up' AND error = '' AND finished IS NOT NULL ORDER BY id`, deploy)
	if err != nil {
		return nil, wrapf(err, "reading the history of deploy %q", deploy)
	}
	defer rows.Close()
	out := map[string]HistoryEntry{}
	for rows.Next() {
		var h HistoryEntry
		if err := rows.Scan(&h.ID, &h.Change, &h.PhaseIndex, &h.Phase, &h.Direction, &h.DeployID, &h.Started, &h.Finished, &h.Error); err != nil {
			return nil, wrapf(err, "reading the history of deploy %q", deploy)
		}
		out[h.Change] = h
	}
	return out, wrapf(rows.Err(), "reading the history of deploy %q", deploy)
}

// lockClass is the first key of the planner's transaction advisory locks ("plnr").
const lockClass = 0x706c6e72

// Package flags publishes which column application code should read and
// write during a change, and serves those flags to applications through an
// OpenFeature provider backed by the planner's state in the same database.
//
// Keys derive from the change id:
//
//	<change>.read    string: "old" | "new"           which column to read
//	<change>.write   string: "old" | "both" | "new"  which columns to write
//
// and three boolean views of them for code that prefers switches:
//
//	<change>.read_new   read == "new"
//	<change>.write_old  write is "old" or "both"
//	<change>.write_new  write is "both" or "new"
//
// The engine stores flags with Publish inside the transaction that completes
// a phase, which also sends a NOTIFY on Channel(schema); the Provider LISTENs
// and reloads, and polls as a fallback.
package flags

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/internal/pgq"
	"github.com/pgplanner/planner/phases"
)

// Flag is one stored flag.
type Flag struct {
	Key      string `json:"key"`
	Variant  string `json:"variant"`
	ChangeID string `json:"change_id"`
	Phase    string `json:"phase"`
	// Metadata is what the change kind says about the flag: table,
	// old_column, new_column (change_id, phase and updated_at are fields).
	Metadata  map[string]string `json:"metadata"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// Suffixes of the stored flag keys.
const (
	ReadSuffix  = ".read"
	WriteSuffix = ".write"
	// TableSuffix: the table kinds' flag, which table name applications
	// use (rename_table: old|new; drop_table: old|dropped).
	TableSuffix = ".table"
)

// Variants of the stored flags.
const (
	Old  = "old"
	Both = "both"
	New  = "new"
	// Dropped: applications stop using the table (drop_table).
	Dropped = "dropped"
)

// ReadKey and WriteKey are the flag keys of a change.
func ReadKey(changeID string) string  { return changeID + ReadSuffix }
func WriteKey(changeID string) string { return changeID + WriteSuffix }

// TableKey is the table flag of a rename_table or drop_table change.
func TableKey(changeID string) string { return changeID + TableSuffix }

// Variants lists the allowed variants of a stored flag key, in the order a
// change moves through them; nil for keys of no known kind.
func Variants(key string) []string {
	switch {
	case strings.HasSuffix(key, ReadSuffix):
		return []string{Old, New}
	case strings.HasSuffix(key, WriteSuffix):
		return []string{Old, Both, New}
	case strings.HasSuffix(key, TableSuffix):
		return []string{Old, New, Dropped}
	}
	return nil
}

// Querier is what List needs: a pool, a connection or a transaction.
type Querier = pgq.Querier

// noPrepare runs a query in one round trip with an unnamed statement:
// nothing is left on a server connection a pooler may hand to another client.
const noPrepare = pgx.QueryExecModeExec

func table(schema string) string { return pgx.Identifier{schema, "flags"}.Sanitize() }

// Migrate creates the flags table in schema. Idempotent; the engine runs it
// inside its state migration transaction.
func Migrate(ctx context.Context, tx pgx.Tx, schema string) error {
	// CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when
	// the schema exists: skip it for a schema made beforehand.
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		return fmt.Errorf("flags: migrate: %w", err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
			return fmt.Errorf("flags: migrate: %w", err)
		}
	}
	_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+table(schema)+` (
	key        text PRIMARY KEY,
	variant    text NOT NULL,
	change_id  text NOT NULL,
	phase      text NOT NULL,
	metadata   jsonb NOT NULL DEFAULT '{}',
	updated_at timestamptz NOT NULL DEFAULT now()
)`)
	if err != nil {
		return fmt.Errorf("flags: migrate: %w", err)
	}
	if _, err := tx.Exec(ctx, fleetDDL(schema)); err != nil {
		return fmt.Errorf("flags: migrate: %w", err)
	}
	return nil
}

// Channel is the NOTIFY channel of the flags in schema. It fits PostgreSQL's
// 63-byte identifier limit (longer names would be cut by LISTEN but refused
// by pg_notify).
func Channel(schema string) string {
	name := schema + ".flags"
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "planner_flags_" + hex.EncodeToString(sum[:])[:16]
}

// Publish stores values (flag key → variant) for a change and notifies
// listeners, in tx: the flags change exactly when the phase commits.
// updated_at moves only when a flag's variant changes, so it says how long
// the current value has been live.
func Publish(ctx context.Context, tx pgx.Tx, schema, changeID, phase string, values phases.Flags, meta map[string]string) error {
	if len(values) == 0 {
		return nil
	}
	keys := make([]string, 0, len(values))
	for k, v := range values {
		if allowed := Variants(k); allowed != nil && !slices.Contains(allowed, v) {
			return fmt.Errorf("flags: %s: variant %q is not one of %s", k, v, strings.Join(allowed, ", "))
		}
		keys = append(keys, k)
	}
	sort.Strings(keys) // a fixed order avoids deadlocks between publishers
	// change_id, phase and updated_at are columns: keep them out of the
	// metadata so that every consumer (provider, flagd export) sees one value.
	stored := map[string]string{}
	for k, v := range meta {
		if k != "change_id" && k != "phase" && k != "updated_at" && k != "key" {
			stored[k] = v
		}
	}
	metaJSON, err := json.Marshal(stored)
	if err != nil {
		return fmt.Errorf("flags: metadata: %w", err)
	}
	for _, k := range keys {
		_, err := tx.Exec(ctx, `INSERT INTO `+table(schema)+` AS f (key, variant, change_id, phase, metadata, updated_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (key) DO UPDATE SET variant = EXCLUDED.variant, change_id = EXCLUDED.change_id,
	phase = EXCLUDED.phase, metadata = EXCLUDED.metadata,
	updated_at = CASE WHEN f.variant IS DISTINCT FROM EXCLUDED.variant THEN EXCLUDED.updated_at ELSE f.updated_at END`,
			k, values[k], changeID, phase, metaJSON)
		if err != nil {
			return fmt.Errorf("flags: publish %s: %w", k, err)
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel(schema), changeID); err != nil {
		return fmt.Errorf("flags: notify: %w", err)
	}
	return nil
}

// Forget deletes a change's flags (e.g. when a change is abandoned before
// its flags matter) and notifies listeners.
func Forget(ctx context.Context, tx pgx.Tx, schema, changeID string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM `+table(schema)+` WHERE change_id = $1`, changeID); err != nil {
		return fmt.Errorf("flags: forget %s: %w", changeID, err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel(schema), changeID); err != nil {
		return fmt.Errorf("flags: notify: %w", err)
	}
	return nil
}

// List returns the flags stored in schema, ordered by key. A schema without
// a flags table (the planner never ran) has no flags. Its queries prepare
// nothing on the server whatever q's default mode, so they work through a
// pooler in transaction mode (the flagd export, applications' own pools).
func List(ctx context.Context, q Querier, schema string) ([]Flag, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, noPrepare, table(schema)).Scan(&exists); err != nil {
		return nil, fmt.Errorf("flags: list: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := q.Query(ctx, `SELECT key, variant, change_id, phase, metadata, updated_at FROM `+table(schema)+` ORDER BY key`, noPrepare)
	if err != nil {
		return nil, fmt.Errorf("flags: list: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Flag, error) {
		var f Flag
		err := row.Scan(&f.Key, &f.Variant, &f.ChangeID, &f.Phase, &f.Metadata, &f.UpdatedAt)
		f.UpdatedAt = f.UpdatedAt.UTC()
		if len(f.Metadata) == 0 {
			f.Metadata = nil
		}
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("flags: list: %w", err)
	}
	return out, nil
}

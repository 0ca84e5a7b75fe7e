// Package pgq is the database interface the packages share, so that every
// function that runs queries takes a pool, a connection or a transaction
// alike: *pgxpool.Pool, *pgxpool.Conn, *pgx.Conn and pgx.Tx all satisfy it.
package pgq

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier runs statements and queries.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Beginner starts transactions, for work that must be one transaction
// whatever it is given (a pgx.Tx begins a savepoint).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

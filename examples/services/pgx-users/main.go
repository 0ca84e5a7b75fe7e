// Command pgx-users is the users API on plain pgx, written the way sqlc
// generates code: one fixed, named query per column choice, picked by the
// planner's flags on every request.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/examples/services/users"
	"github.com/pgplanner/planner/flags"
)

// Queries, as a sqlc query file would hold them: one per column choice.
const (
	getUserOld = `SELECT email FROM users WHERE id = $1`
	getUserNew = `SELECT email_address FROM users WHERE id = $1`

	createUserOld  = `INSERT INTO users (email) VALUES ($1) RETURNING id`
	createUserBoth = `INSERT INTO users (email, email_address) VALUES ($1, $1) RETURNING id`
	createUserNew  = `INSERT INTO users (email_address) VALUES ($1) RETURNING id`

	updateUserOld  = `UPDATE users SET email = $2 WHERE id = $1`
	updateUserBoth = `UPDATE users SET email = $2, email_address = $2 WHERE id = $1`
	updateUserNew  = `UPDATE users SET email_address = $2 WHERE id = $1`
)

// pick returns the query for the columns written: old only, both, or new only.
func pick(cols flags.ColumnChoice, old, both, new string) string {
	switch {
	case cols.Writes(users.OldCol) && cols.Writes(users.NewCol):
		return both
	case cols.Writes(users.NewCol):
		return new
	}
	return old
}

type store struct{ pool *pgxpool.Pool }

func (s store) Get(ctx context.Context, cols flags.ColumnChoice, id int64) (string, error) {
	q := getUserOld
	if cols.Read == users.NewCol {
		q = getUserNew
	}
	var email string
	err := s.pool.QueryRow(ctx, q, id).Scan(&email)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", users.ErrNotFound
	}
	return email, err
}

func (s store) Create(ctx context.Context, cols flags.ColumnChoice, email string) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, pick(cols, createUserOld, createUserBoth, createUserNew), email).Scan(&id)
	return id, err
}

func (s store) Update(ctx context.Context, cols flags.ColumnChoice, id int64, email string) error {
	tag, err := s.pool.Exec(ctx, pick(cols, updateUserOld, updateUserBoth, updateUserNew), id, email)
	if err == nil && tag.RowsAffected() == 0 {
		return users.ErrNotFound
	}
	return err
}

func open(ctx context.Context, url string) (users.Store, func(), error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	return store{pool: pool}, pool.Close, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	if err := users.Serve("pgx-users", *addr, open); err != nil {
		fmt.Fprintln(os.Stderr, "pgx-users:", err)
		os.Exit(1)
	}
}

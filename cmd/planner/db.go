package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/internal/pooler"
	"github.com/pgplanner/planner/planner"
)

// connect opens a pool to the target database (see databaseURL).
func connect(ctx context.Context) (*pgxpool.Pool, error) {
	return openPool(ctx, "planner", 0)
}

// openPool opens a pool of at most maxConns connections (0: pgx's
// default) named appName in pg_stat_activity, checks that the server
// answers, and refuses a transaction-mode pooler (exit 5): the planner's
// commands need server sessions of their own.
func openPool(ctx context.Context, appName string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL())
	if err != nil {
		return nil, usageErrorf("database URL: %v", err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = appName
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		if !databaseConfigured() {
			return nil, fmt.Errorf("%w: no database is configured (%w)", planner.ErrConfig, err)
		}
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pooler.RequireSessions(ctx, pool, "planner"); err != nil {
		pool.Close()
		if errors.Is(err, pooler.ErrSharedSessions) {
			return nil, fmt.Errorf("%w: %w", planner.ErrConfig, err)
		}
		return nil, err
	}
	return pool, nil
}

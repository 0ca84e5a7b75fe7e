package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgplanner/planner/planner"
)

// connect opens a pool for a command that only reads, or writes in single
// statements: its queries prepare and cache nothing on the server
// (QueryExecModeExec), so it also works through a transaction-mode pooler.
func connect(ctx context.Context) (*pgxpool.Pool, error) {
	return openPool(ctx, "planner", 0, false)
}

// openPool opens a pool of at most maxConns connections (0: pgx's
// default) named appName in pg_stat_activity and checks that the server
// answers. With sessions, its queries may rely on session state (cached
// statements, scratch tables); without, they prepare nothing (Exec mode).
func openPool(ctx context.Context, appName string, maxConns int32, sessions bool) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL())
	if err != nil {
		return nil, usageErrorf("database URL: %v", err)
	}
	sessionParams(cfg, appName)
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	if !sessions {
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		if !databaseConfigured() {
			return nil, fmt.Errorf("%w: no database is configured (%w)", planner.ErrConfig, err)
		}
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

// sessionPool is openPool for a command that needs a server session of its
// own per connection (backfill batches, validation's scratch tables): a
// transaction-mode pooler is refused (exit 5).
func sessionPool(ctx context.Context, appName string, maxConns int32) (*pgxpool.Pool, error) {
	pool, err := openPool(ctx, appName, maxConns, true)
	if err != nil {
		return nil, err
	}
	if err := planner.RequireSessions(ctx, pool, "planner"); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// sessionParams names the application and turns standard_conforming_strings
// on: spec expressions are lexed that way, and the server must read them the
// same way (PgBouncer tracks this setting across server connections).
func sessionParams(cfg *pgxpool.Config, application string) {
	cfg.ConnConfig.RuntimeParams["application_name"] = application
	cfg.ConnConfig.RuntimeParams["standard_conforming_strings"] = "on"
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"
)

// connect opens a pool to the target database (see databaseURL).
func connect(ctx context.Context) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL())
	if err != nil {
		return nil, usageErrorf("database URL: %v", err)
	}
	sessionParams(cfg, "planner")
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
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

// printJSON writes v as indented JSON (for --output json).
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

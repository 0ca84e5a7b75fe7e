package pooler

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgplanner/planner/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestSharesSessions(t *testing.T) {
	db := pgtest.NewDB(t)
	cases := []struct {
		name string
		url  string
		want bool
	}{
		{"direct", db.URL, false},
		{"session mode", pgtest.NewPgBouncer(t, db, "session", 5), false},
		{"transaction mode, one server connection", pgtest.NewPgBouncer(t, db, "transaction", 1), true},
		{"transaction mode, five server connections", pgtest.NewPgBouncer(t, db, "transaction", 5), true},
		{"statement mode", pgtest.NewPgBouncer(t, db, "statement", 5), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// Warm the pool so idle server connections exist, as in production.
			for range 3 {
				c, err := pgx.Connect(ctx, tc.url)
				if err != nil {
					t.Fatal(err)
				}
				c.Exec(ctx, `SELECT 1`, pgx.QueryExecModeSimpleProtocol)
				c.Close(ctx)
			}
			a, err := pgx.Connect(ctx, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close(ctx)
			b, err := pgx.Connect(ctx, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(ctx)
			got, err := SharesSessions(ctx, a, b)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("SharesSessions = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDirect(t *testing.T) {
	db := pgtest.NewDB(t)
	ctx := context.Background()
	for _, tc := range []struct {
		url  string
		want bool
	}{{db.URL, true}, {pgtest.NewPgBouncer(t, db, "session", 2), false}, {pgtest.NewPgBouncer(t, db, "transaction", 2), false}} {
		c, err := pgx.Connect(ctx, tc.url)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Direct(ctx, c)
		c.Close(ctx)
		if err != nil || got != tc.want {
			t.Fatalf("Direct(%s) = %v, %v; want %v", tc.url, got, err, tc.want)
		}
	}
}

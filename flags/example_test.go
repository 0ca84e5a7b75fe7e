package flags_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/pgtest"
	"github.com/pgplanner/planner/phases"
)

// Application code during a rename of users.email to users.email_address:
// one call says which column to read and which to write, and follows the
// planner's phases as they are published.
func Example() {
	// A throwaway server; an application uses its own DATABASE_URL.
	cluster, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Stop()
	ctx := context.Background()
	url := cluster.URL("postgres")
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	// What `planner next` does in the expand phase (simplified): add the
	// column, install the sync trigger, publish the flags.
	expand(ctx, db)

	// Application start-up: register the provider once.
	if err := openfeature.SetNamedProviderAndWait("example-app", flags.NewProvider(url)); err != nil {
		log.Fatal(err)
	}
	defer openfeature.SetNamedProviderAndWait("example-app", openfeature.NoopProvider{})
	client := openfeature.NewClient("example-app")
	changed := make(chan struct{}, 8)
	onChange := func(openfeature.EventDetails) { changed <- struct{}{} }
	client.AddHandler(openfeature.ProviderConfigChange, &onChange)

	// A request handler.
	saveAndLoad := func(id int, email string) {
		cols := flags.Columns(ctx, client, "users-email", "email", "email_address")
		sets := make([]string, len(cols.Write))
		args := []any{id}
		for i, c := range cols.Write {
			sets[i] = pgx.Identifier{c}.Sanitize() + " = $2"
		}
		args = append(args, email)
		if _, err := db.Exec(ctx, "UPDATE users SET "+strings.Join(sets, ", ")+" WHERE id = $1", args...); err != nil {
			log.Fatal(err)
		}
		var got string
		if err := db.QueryRow(ctx, "SELECT "+pgx.Identifier{cols.Read}.Sanitize()+" FROM users WHERE id = $1", id).Scan(&got); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("read %s, write %v: %s\n", cols.Read, cols.Write, got)
	}
	saveAndLoad(1, "a@example.com")

	// The next deploy's `planner next` moves to dual_write.
	publish := func(phase, read, write string) {
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			return flags.Publish(ctx, tx, "planner", "users-email", phase,
				phases.Flags{"users-email.read": read, "users-email.write": write},
				map[string]string{"table": "public.users", "old_column": "email", "new_column": "email_address"})
		})
		if err != nil {
			log.Fatal(err)
		}
		// The provider heard the NOTIFY. A lost event must not hang the
		// example: the line printed instead fails its output check.
		select {
		case <-changed:
		case <-time.After(30 * time.Second):
			fmt.Printf("no configuration change event for %s within 30s\n", phase)
		}
	}
	publish("dual_write", "new", "both")
	saveAndLoad(1, "b@example.com")
	publish("enforce", "new", "new")
	saveAndLoad(1, "c@example.com")

	var old string
	_ = db.QueryRow(ctx, "SELECT email FROM users WHERE id = 1").Scan(&old)
	fmt.Println("old column kept by the trigger:", old)
	// Output:
	// read email, write [email]: a@example.com
	// read email_address, write [email email_address]: b@example.com
	// read email_address, write [email_address]: c@example.com
	// old column kept by the trigger: c@example.com
}

func expand(ctx context.Context, db *pgxpool.Pool) {
	sync := phases.Sync{ID: "users-email", Table: phases.TableRef{Name: "users"}, Old: "email", New: "email_address", OldType: "text", NewType: "text"}
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL)"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO users VALUES (1, 'x@example.com')"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE users ADD COLUMN email_address text"); err != nil {
			return err
		}
		for _, s := range sync.Install() {
			if _, err := tx.Exec(ctx, s.SQL); err != nil {
				return err
			}
		}
		if err := flags.Migrate(ctx, tx, "planner"); err != nil {
			return err
		}
		return flags.Publish(ctx, tx, "planner", "users-email", "expand",
			phases.Flags{"users-email.read": "old", "users-email.write": "old"}, nil)
	})
	if err != nil {
		log.Fatal(err)
	}
}

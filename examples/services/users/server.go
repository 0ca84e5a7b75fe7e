// Package users is the HTTP side shared by the example services: a tiny
// users API whose storage (GORM or plain pgx) asks the planner's flags, on
// every request, which column holds the e-mail address.
package users

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/pgplanner/planner/flags"
)

// The change the examples follow: plans/01_rename_users_email.yaml.
const (
	ChangeID = "users-email-rename"
	OldCol   = "email"
	NewCol   = "email_address"
)

// ErrNotFound is a user id with no row.
var ErrNotFound = errors.New("no such user")

// Store reads and writes users; cols (from flags.Columns, per request)
// says which column to read and which to write.
type Store interface {
	Get(ctx context.Context, cols flags.ColumnChoice, id int64) (string, error)
	Create(ctx context.Context, cols flags.ColumnChoice, email string) (int64, error)
	Update(ctx context.Context, cols flags.ColumnChoice, id int64, email string) error
}

// User is the API's JSON.
type User struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
}

// Handler serves GET /users/{id}, POST /users and PUT /users/{id}.
func Handler(store Store, client *openfeature.Client) http.Handler {
	cols := func(r *http.Request) flags.ColumnChoice {
		return flags.Columns(r.Context(), client, ChangeID, OldCol, NewCol)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		email, err := store.Get(r.Context(), cols(r), id)
		reply(w, User{ID: id, Email: email}, err)
	})
	mux.HandleFunc("POST /users", func(w http.ResponseWriter, r *http.Request) {
		var u User
		if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		id, err := store.Create(r.Context(), cols(r), u.Email)
		reply(w, User{ID: id, Email: u.Email}, err)
	})
	mux.HandleFunc("PUT /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		var u User
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || json.NewDecoder(r.Body).Decode(&u) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		reply(w, User{ID: id, Email: u.Email}, store.Update(r.Context(), cols(r), id, u.Email))
	})
	return mux
}

func reply(w http.ResponseWriter, u User, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	case err != nil:
		slog.Error("request failed", "error", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(u)
	}
}

// Serve connects the planner's OpenFeature provider to DATABASE_URL,
// listens on addr (":0" picks a port) and serves until SIGINT or SIGTERM.
// It prints "listening on HOST:PORT" once ready.
func Serve(service, addr string, open func(ctx context.Context, url string) (Store, func(), error)) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return errors.New("DATABASE_URL is not set")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	provider := flags.NewProvider(url, flags.WithService(service))
	if err := openfeature.SetProviderAndWait(provider); err != nil {
		return fmt.Errorf("flags: %w", err)
	}
	defer openfeature.Shutdown()
	store, closeStore, err := open(ctx, url)
	if err != nil {
		return err
	}
	defer closeStore()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: Handler(store, openfeature.NewClient(service)), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgplanner/planner/internal/pooler"
	"github.com/pgplanner/planner/planner"
)

// With --output json every command prints one document, errors included:
// the envelope below, its result the command's own document (null when it
// failed before it had one). Its shape is docs/schema/envelope.json.
type envelope struct {
	Command  string     `json:"command"`
	OK       bool       `json:"ok"`
	ExitCode int        `json:"exit_code"`
	Result   any        `json:"result"`
	Error    *errorInfo `json:"error"`
}

// errorInfo is a failure as a pipeline reads it.
type errorInfo struct {
	// Code names the exit code's class: failure, input, busy or config.
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Hint    *string `json:"hint"`
	// File and Line locate a spec problem (the first, when there are many).
	File     *string             `json:"file"`
	Line     *int                `json:"line"`
	Problems []planner.SpecError `json:"problems"`
}

// jsonResult is the document of the running command (set through emit).
var jsonResult any

// emit records the command's JSON document; run prints it in the envelope.
func emit(v any) error {
	jsonResult = v
	return nil
}

// emitRaw records a document already encoded as JSON.
func emitRaw(render func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := render(&buf); err != nil {
		return err
	}
	return emit(json.RawMessage(buf.Bytes()))
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// classify maps an error to its exit code, class and a hint saying what to do.
func classify(err error) (code int, class, hint string) {
	var waiting *waitingError
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	switch {
	case err == nil:
		return exitOK, "", ""
	case errors.As(err, &waiting):
		return exitWaiting, "waiting", ""
	case errors.Is(err, pooler.ErrSharedSessions):
		return exitConfig, "config", "point --database-url (or DATABASE_URL) straight at PostgreSQL, or at a session-mode pool"
	case errors.As(err, &pe) && configSQLState(pe.Code) != "":
		return exitConfig, "config", configSQLState(pe.Code)
	case errors.As(err, &ce) && !databaseConfigured():
		return exitConfig, "config", "no database is configured: pass --database-url postgres://USER@HOST:PORT/DB, or set DATABASE_URL (or PLANNER_DATABASE_URL, or the PG* variables such as PGHOST and PGDATABASE)"
	case errors.Is(err, planner.ErrConfig):
		return exitConfig, "config", ""
	case errors.Is(err, planner.ErrInput), isUsageError(err):
		return exitInput, "input", ""
	case errors.Is(err, planner.ErrBusy):
		return exitBusy, "busy", "rerun when the other planner has finished, or raise --wait"
	case errors.As(err, &ce):
		return exitFailure, "failure", "could not connect to the database given by --database-url or DATABASE_URL: check that it is up and reachable; a rerun resumes"
	}
	return exitFailure, "failure", ""
}

// configSQLState says what to fix for server errors a rerun cannot fix.
func configSQLState(code string) string {
	switch code {
	case "28P01", "28000":
		return "authentication failed: check the user and password of the database URL (or PGPASSWORD, ~/.pgpass)"
	case "3D000":
		return "the database named in the database URL does not exist: check its name"
	case "42501":
		return "the planner's role lacks a privilege it needs (ownership of the tables it changes, CREATE for the state schema): see README, State and privileges"
	}
	return ""
}

// databaseConfigured: a URL or a PG* variable names the database.
func databaseConfigured() bool {
	if databaseURL() != "" {
		return true
	}
	for _, v := range []string{"PGHOST", "PGDATABASE", "PGSERVICE", "PGPORT", "PGUSER"} {
		if os.Getenv(v) != "" {
			return true
		}
	}
	return false
}

// describe builds the error object of the JSON envelope.
func describe(err error, class, hint string) *errorInfo {
	info := &errorInfo{Code: class, Message: err.Error()}
	var specErrs planner.SpecErrors
	var specErr planner.SpecError
	var one *planner.SpecError
	switch {
	case errors.As(err, &specErrs):
		info.Problems = specErrs
	case errors.As(err, &specErr):
		info.Problems = []planner.SpecError{specErr}
	case errors.As(err, &one):
		info.Problems = []planner.SpecError{*one}
	}
	if len(info.Problems) > 0 {
		first := info.Problems[0]
		info.File, info.Line = &first.File, &first.Line
		if hint == "" && first.Hint != "" {
			hint = first.Hint
		}
	}
	if hint != "" {
		info.Hint = &hint
	}
	return info
}

// commandName is the command path without the program name, e.g. "backfill run".
func commandName(path string) string {
	return strings.TrimSpace(strings.TrimPrefix(path, "planner"))
}

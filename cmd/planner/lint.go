package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgplanner/planner/internal/sqllint"
	"github.com/pgplanner/planner/planner"
)

func init() { commands = append(commands, lintCmd) }

// lintFile is one file's statements in `planner lint -o json`.
type lintFile struct {
	File       string              `json:"file"`
	Statements []sqllint.Statement `json:"statements"`
}

// lintFinding is a finding with its file, for pipelines that read a flat list.
type lintFinding struct {
	File string `json:"file"`
	sqllint.Finding
	Lock string `json:"lock"`
}

type lintResult struct {
	Files    []lintFile    `json:"files"`
	Findings []lintFinding `json:"findings"`
	Unsafe   int           `json:"unsafe"`
	Advice   int           `json:"advice"`
}

func lintCmd() *cobra.Command {
	var pgVersion int
	cmd := &cobra.Command{
		Use:   "lint FILE.sql...",
		Short: "Check migration SQL for statements that block traffic, rewrite tables or break applications",
		Long: `Checks each statement of hand-written migration SQL files ("-" reads standard
input) against the rules the planner follows: the table lock each statement
takes, table rewrites, CREATE/DROP INDEX and REINDEX without CONCURRENTLY,
CHECK and FOREIGN KEY constraints without NOT VALID, volatile defaults,
SET NOT NULL without a validated check, type changes, renames and drops,
VACUUM FULL, CLUSTER, LOCK TABLE, statements outside a lock_timeout, and
the rest of squawk's and strong_migrations' PostgreSQL rules (see the
README). Each finding is printed with file:line:col, the rule, what is wrong
and the safe alternative. Exit 2 when any finding is unsafe; advice alone
exits 0. Needs no database.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pgVersion < 12 {
				return usageErrorf("--pg-version %d: PostgreSQL 12 or later is required", pgVersion)
			}
			res := lintResult{Files: []lintFile{}, Findings: []lintFinding{}}
			var bad planner.SpecErrors
			out := cmd.OutOrStdout()
			statements := 0
			for _, path := range args {
				src, err := readSQL(cmd.InOrStdin(), path)
				if err != nil {
					return err
				}
				stmts, err := sqllint.Lint(src, sqllint.Options{Version: pgVersion})
				if le, ok := err.(*sqllint.Error); ok {
					bad = append(bad, planner.SpecError{File: path, Line: le.Line, Col: le.Column, Path: "sql", Message: le.Message, Hint: le.Hint})
					continue
				} else if err != nil {
					return err
				}
				statements += len(stmts)
				res.Files = append(res.Files, lintFile{File: path, Statements: stmts})
				for _, s := range stmts {
					if g.verbose && g.output == "text" {
						printStatement(out, path, s)
					}
					for _, f := range s.Findings {
						res.Findings = append(res.Findings, lintFinding{File: path, Finding: f, Lock: s.Lock})
						if f.Severity == sqllint.Unsafe {
							res.Unsafe++
						} else {
							res.Advice++
						}
						if g.output == "text" {
							printFinding(out, path, s, f)
						}
					}
				}
			}
			if g.output == "json" {
				emit(res)
			} else {
				fmt.Fprintf(out, "%d file(s), %d statement(s): %d unsafe, %d advice\n", len(res.Files), statements, res.Unsafe, res.Advice)
			}
			if len(bad) > 0 {
				return bad
			}
			if res.Unsafe > 0 {
				return &lintError{res.Unsafe}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&pgVersion, "pg-version", planner.DefaultVersion, "PostgreSQL major the SQL is for")
	return cmd
}

// printStatement is one line per statement with its lock (--verbose).
func printStatement(w io.Writer, path string, s sqllint.Statement) {
	sql, _, _ := strings.Cut(s.SQL, "\n")
	fmt.Fprintf(w, "%s:%d:%d: %s: %s\n", path, s.Line, s.Column, lockText(s), sql)
}

func lockText(s sqllint.Statement) string {
	if s.Lock == "" {
		return "no table lock"
	}
	l := s.Lock
	for i, t := range s.Tables {
		if i == 0 {
			l += " on "
		} else {
			l += ", "
		}
		l += t.String()
	}
	return l
}

func printFinding(w io.Writer, path string, s sqllint.Statement, f sqllint.Finding) {
	fmt.Fprintf(w, "%s:%d:%d: %s (%s; %s): %s\n  safe alternative: %s\n", path, f.Line, f.Column, f.Rule, f.Severity, lockText(s), f.Message, f.Safe)
}

// lintError: unsafe findings, which are bad input (exit 2).
type lintError struct{ unsafe int }

func (e *lintError) Error() string {
	return fmt.Sprintf("%d unsafe finding(s): change each statement as its safe alternative says", e.unsafe)
}

func (e *lintError) Unwrap() error { return planner.ErrInput }

// readSQL reads a regular file, or standard input for "-".
func readSQL(stdin io.Reader, path string) (string, error) {
	if path == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, planner.MaxSpecSize+1))
		if err == nil && int64(len(b)) > planner.MaxSpecSize {
			err = fmt.Errorf("standard input is larger than %d bytes: %w", planner.MaxSpecSize, planner.ErrInput)
		}
		return string(b), err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, planner.ErrInput)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file: %w", path, planner.ErrInput)
	}
	if fi.Size() > planner.MaxSpecSize {
		return "", fmt.Errorf("%s is %d bytes, over the %d-byte limit: %w", path, fi.Size(), planner.MaxSpecSize, planner.ErrInput)
	}
	b, err := os.ReadFile(path)
	return string(b), err
}

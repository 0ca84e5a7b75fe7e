package planner

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/flags"
)

const adoptRename = `changes:
  - id: users-email-rename
    kind: rename_column
    table: users
    column: email
    to: email_address
`

// byHand runs the statements of the change's first n phases as a person
// would from planner plan --format sql, and fills a backfill with UPDATE.
func byHand(t *testing.T, f *engineFixture, s Spec, n int) {
	t.Helper()
	ctx := context.Background()
	table, err := LoadTable(ctx, f.db.Pool, s.Change.Table())
	if err != nil {
		t.Fatal(err)
	}
	version, err := ServerVersion(ctx, f.db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Compile(s, Target{Version: version, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plan.Phases[:n] {
		for _, st := range p.Statements {
			f.db.Exec(t, st.SQL)
		}
		if b := p.Backfill; b != nil {
			f.db.Exec(t, `UPDATE `+TableName{Schema: b.Schema, Name: b.Table}.Quoted()+` SET `+b.Column+` = `+b.Expr)
		}
	}
}

func TestAdoptRenameByHandThenNext(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, adoptRename)
	byHand(t, f, specs[0], 4) // expand, backfill, dual_write, enforce

	dry, err := f.e.Adopt(ctx, specs, "users-email-rename", "enforce", "adopt-1", true)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if !dry.DryRun || !dry.Registered || dry.Applied != 4 || dry.From != 0 || len(dry.Backfills) != 1 || dry.Backfills[0].Rows != 2000 {
		t.Fatalf("dry run result: %+v", dry)
	}
	if ok, _ := f.e.state().exists(ctx, f.db.Pool); ok {
		if c, _ := f.e.state().change(ctx, f.db.Pool, "users-email-rename"); c != nil {
			t.Fatalf("dry run registered the change: %+v", c)
		}
	}

	res, err := f.e.Adopt(ctx, specs, "users-email-rename", "enforce", "adopt-1", false)
	if err != nil {
		t.Fatalf("adopt: %v", err)
	}
	for _, c := range res.Checks {
		if c.Result == CheckMissing {
			t.Errorf("check missing: %+v", c)
		}
	}
	c := f.change(t, "users-email-rename")
	if c.Applied != 4 || c.Status != StatusActive {
		t.Fatalf("state after adopt: applied %d status %s", c.Applied, c.Status)
	}
	hist, err := f.e.History(ctx, "users-email-rename")
	if err != nil || len(hist) != 4 {
		t.Fatalf("history: %v %+v", err, hist)
	}
	for _, h := range hist {
		if !strings.HasPrefix(h.Note, "adopted") || h.DeployID != "adopt-1" || h.Finished == nil {
			t.Errorf("history row: %+v", h)
		}
	}
	fl, err := flags.List(ctx, f.db.Pool, "planner")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, x := range fl {
		got[x.Key] = x.Variant
	}
	if got["users-email-rename.read"] != "new" || got["users-email-rename.write"] != "new" {
		t.Fatalf("flags after adopt: %v", got)
	}
	if p, err := backfill.Get(ctx, f.db.Pool, "planner", "users-email-rename"); err != nil || !p.Verified {
		t.Fatalf("backfill job: %+v %v", p, err)
	}

	// Again: nothing to do; an earlier phase: that is a rollback.
	if again, err := f.e.Adopt(ctx, specs, "users-email-rename", "enforce", "adopt-2", false); err != nil || !again.NothingToDo {
		t.Fatalf("adopt again: %+v %v", again, err)
	}
	if _, err := f.e.Adopt(ctx, specs, "users-email-rename", "expand", "adopt-2", false); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "planner rollback users-email-rename --to expand") {
		t.Fatalf("adopt backwards: %v", err)
	}

	// planner next continues: contract, then purge.
	if r := reportOf(t, f.next(t, specs, "d1"), "users-email-rename"); r.Action != Advanced || r.Phase != "contract" {
		t.Fatalf("d1: %+v", r)
	}
	if r := reportOf(t, f.next(t, specs, "d2"), "users-email-rename"); r.Action != Advanced || r.Phase != "purge" {
		t.Fatalf("d2: %+v", r)
	}
	if c := f.change(t, "users-email-rename"); c.Status != StatusDone {
		t.Fatalf("final status %s", c.Status)
	}
	var cols string
	f.db.Pool.QueryRow(ctx, `SELECT string_agg(attname || ':' || attnotnull, ',' ORDER BY attnum) FROM pg_attribute
		WHERE attrelid = 'users'::regclass AND attnum > 0 AND NOT attisdropped`).Scan(&cols)
	if cols != "id:true,name:false,legacy_flags:false,created_at:true,email_address:true" {
		t.Fatalf("columns at the end: %s", cols)
	}
}

func TestAdoptRefusesWhatIsMissing(t *testing.T) {
	f := newEngineFixture(t)
	ctx := context.Background()
	specs := f.specs(t, adoptRename+`  - id: orders-created-at-index
    kind: add_index
    table: orders
    columns: [created_at]
`)
	unrecorded := func(id string) {
		t.Helper()
		if ok, _ := f.e.state().exists(ctx, f.db.Pool); ok {
			if c, _ := f.e.state().change(ctx, f.db.Pool, id); c != nil {
				t.Fatalf("a refused adopt registered %s: %+v", id, c)
			}
		}
	}
	// Nothing done: the new column is missing.
	_, err := f.e.Adopt(ctx, specs, "users-email-rename", "expand", "a1", false)
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), `phase 1 expand, statement 1: ALTER TABLE "public"."users" ADD COLUMN IF NOT EXISTS "email_address"`) {
		t.Fatalf("missing column: %v", err)
	}
	unrecorded("users-email-rename")
	// A missing index.
	_, err = f.e.Adopt(ctx, specs, "orders-created-at-index", "build_index", "a1", false)
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "phase 1 build_index, statement 2: CREATE INDEX CONCURRENTLY") {
		t.Fatalf("missing index: %v", err)
	}
	unrecorded("orders-created-at-index")
	// Expand by hand, but not the backfill.
	byHand(t, f, specs[0], 1)
	f.db.Exec(t, `UPDATE users SET email_address = email WHERE id <= 1500`)
	_, err = f.e.Adopt(ctx, specs, "users-email-rename", "backfill", "a1", false)
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "phase 2 backfill: 500 of 2000 rows of public.users have email_address differing") ||
		!strings.Contains(err.Error(), "(id)=(1501)") {
		t.Fatalf("backfill not done: %v", err)
	}
	unrecorded("users-email-rename")
	// Expand adopted alone works; enforce without its statements does not.
	if _, err := f.e.Adopt(ctx, specs, "users-email-rename", "expand", "a2", false); err != nil {
		t.Fatalf("adopt expand: %v", err)
	}
	f.db.Exec(t, `UPDATE users SET email_address = email`)
	_, err = f.e.Adopt(ctx, specs, "users-email-rename", "enforce", "a3", false)
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "phase 4 enforce") {
		t.Fatalf("enforce not done: %v", err)
	}
	if c := f.change(t, "users-email-rename"); c.Applied != 1 {
		t.Fatalf("a refused adopt moved the change to %d", c.Applied)
	}
}

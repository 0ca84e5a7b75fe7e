package workload

import (
	"context"
	"fmt"
	"time"

	"github.com/open-feature/go-sdk/openfeature"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/internal/clock"
	"github.com/pgplanner/planner/internal/pgq"
)

// FlagsChooser is how a new application instance chooses columns in real
// code: one call to flags.Columns through an OpenFeature client backed by
// the planner's provider.
type FlagsChooser struct {
	Client   *openfeature.Client
	ChangeID string
	Old, New string // column names
}

// Choose asks the flags and maps the columns back to variants.
func (f FlagsChooser) Choose(ctx context.Context) (Choice, error) {
	cols := flags.Columns(ctx, f.Client, f.ChangeID, f.Old, f.New)
	c := Choice{Read: Old}
	switch cols.Read {
	case f.Old:
	case f.New:
		c.Read = New
	default:
		return c, fmt.Errorf("flags.Columns answered read=%q, neither %q nor %q", cols.Read, f.Old, f.New)
	}
	switch {
	case len(cols.Write) == 2 && cols.Writes(f.Old) && cols.Writes(f.New):
		c.Write = Both
	case len(cols.Write) == 1 && cols.Writes(f.Old):
		c.Write = Old
	case len(cols.Write) == 1 && cols.Writes(f.New):
		c.Write = New
	default:
		return c, fmt.Errorf("flags.Columns answered write=%v", cols.Write)
	}
	return c, nil
}

// FlagsTable is how a new instance chooses the table's name in real code:
// flags.Table through the planner's provider.
type FlagsTable struct {
	Client   *openfeature.Client
	ChangeID string
	Old, New string // table names (New "" for a drop_table)
}

// Table asks the table flag.
func (f FlagsTable) Table(ctx context.Context) (string, error) {
	return flags.Table(ctx, f.Client, f.ChangeID, f.Old, f.New), nil
}

// PublishedTable reads the table flag the planner has published for
// changeID (old, new or dropped): old until the first phase publishes.
func PublishedTable(ctx context.Context, q pgq.Querier, schema, changeID string) (string, error) {
	list, err := flags.List(ctx, q, schema)
	if err != nil {
		return "", err
	}
	for _, f := range list {
		if f.Key == flags.TableKey(changeID) {
			return f.Variant, nil
		}
	}
	return Old, nil
}

// Published reads the flags the planner has published for changeID from
// its state schema: old/old until the first phase publishes.
func Published(ctx context.Context, q pgq.Querier, schema, changeID string) (Choice, error) {
	list, err := flags.List(ctx, q, schema)
	if err != nil {
		return Choice{}, err
	}
	c := Choice{Read: Old, Write: Old}
	for _, f := range list {
		switch f.Key {
		case flags.ReadKey(changeID):
			c.Read = f.Variant
		case flags.WriteKey(changeID):
			c.Write = f.Variant
		}
	}
	return c, nil
}

// Deploy is the application rollout that follows a `planner next`: it
// waits until the new instances see the flags the planner published for
// changeID (through their provider), and once those say write=new, or the
// table flag (with Config.Tables) says new or dropped, it retires the old
// instances (unless Config.KeepOld), as a rolling deploy would before the
// old column or the old table name goes away. It returns the published
// column choice.
func (w *Workload) Deploy(ctx context.Context, q pgq.Querier, schema, changeID string, timeout time.Duration) (Choice, error) {
	want, err := Published(ctx, q, schema, changeID)
	if err != nil {
		return want, err
	}
	table, wantTable := Old, w.cfg.Table
	if w.cfg.Tables != nil {
		if table, err = PublishedTable(ctx, q, schema, changeID); err != nil {
			return want, err
		}
		switch table {
		case New:
			wantTable = w.cfg.NewTable
		case Dropped:
			wantTable = ""
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		got, err := w.cfg.Chooser.Choose(ctx)
		gotTable := w.cfg.Table
		if err == nil && w.cfg.Tables != nil {
			gotTable, err = w.cfg.Tables.Table(ctx)
		}
		if err == nil && got == want && gotTable == wantTable {
			break
		}
		if time.Now().After(deadline) {
			return want, fmt.Errorf("workload: new instances see read=%s write=%s table %q (err %v) %s after the planner published read=%s write=%s table=%s",
				got.Read, got.Write, gotTable, err, timeout, want.Read, want.Write, table)
		}
		if err := clock.Sleep(ctx, 10*time.Millisecond); err != nil {
			return want, err
		}
	}
	if (want.Write == New || table != Old) && !w.cfg.KeepOld {
		w.RetireOld()
	}
	return want, nil
}

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
// changeID (through their provider), and once those say write=new it
// retires the old instances (unless Config.KeepOld), as a rolling deploy
// would before the old column can be dropped. It returns the published
// choice.
func (w *Workload) Deploy(ctx context.Context, q pgq.Querier, schema, changeID string, timeout time.Duration) (Choice, error) {
	want, err := Published(ctx, q, schema, changeID)
	if err != nil {
		return want, err
	}
	deadline := time.Now().Add(timeout)
	for {
		got, err := w.cfg.Chooser.Choose(ctx)
		if err == nil && got == want {
			break
		}
		if time.Now().After(deadline) {
			return want, fmt.Errorf("workload: new instances see read=%s write=%s (err %v) %s after the planner published read=%s write=%s",
				got.Read, got.Write, err, timeout, want.Read, want.Write)
		}
		if err := clock.Sleep(ctx, 10*time.Millisecond); err != nil {
			return want, err
		}
	}
	if want.Write == New && !w.cfg.KeepOld {
		w.RetireOld()
	}
	return want, nil
}

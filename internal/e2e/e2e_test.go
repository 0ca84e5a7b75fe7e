package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgplanner/planner/internal/workload"
	"github.com/pgplanner/planner/planner"
)

// dwell is how long the fleet runs between two deploys, on each phase's flags.
const dwell = 300 * time.Millisecond

// advance runs one deploy per loop turn (the fleet rolls forward to the
// published flags, then `next`) until the change is done, and returns the
// phases applied in order.
func advance(t *testing.T, ctx context.Context, env *env, eng *planner.Engine, fleet *workload.Workload, change string, h hooks) []string {
	t.Helper()
	var applied []string
	others := map[string]bool{} // the other changes done
	mine := false               // the fleet's change is done
	for deploy := 1; ; deploy++ {
		if limit := 20 + 3*len(env.specs); deploy > limit {
			t.Fatalf("change %s not done after %d deploys (applied %v; others done: %v)", change, limit, applied, others)
		}
		env.deploy(t, fleet, change)
		time.Sleep(dwell)
		if h.before != nil {
			h.before(deploy)
		}
		rep, err := eng.Next(ctx, env.specs, fmt.Sprintf("deploy-%d", deploy), false)
		if err != nil {
			t.Fatalf("deploy-%d: next: %v", deploy, err)
		}
		if len(rep.Changes) != len(env.specs) {
			t.Fatalf("deploy-%d: report has %d changes, want %d", deploy, len(rep.Changes), len(env.specs))
		}
		// Changes after the fleet's own (the first) on its table run one
		// after another once it is done.
		for _, o := range rep.Changes[1:] {
			switch o.Action {
			case planner.Advanced:
				t.Logf("deploy-%d: %s %s (%d/%d)", deploy, o.ID, o.Phase, o.Applied, o.Total)
				if o.Applied == o.Total {
					others[o.ID] = true
				}
			case planner.Done:
				others[o.ID] = true
			case planner.Waiting, planner.NothingToDo:
			default:
				t.Fatalf("deploy-%d: %s %s: %s %s", deploy, o.ID, o.Action, o.Reason, o.Error)
			}
		}
		c := rep.Changes[0]
		if c.ID != change {
			t.Fatalf("deploy-%d: first change in the report is %s, want %s", deploy, c.ID, change)
		}
		if h.after != nil {
			h.after(deploy, c)
		}
		st := fleet.Stats()
		t.Logf("deploy-%d: %s %s (%d/%d) %s; fleet: %d requests, %d failed, longest stall %s",
			deploy, c.Action, c.Phase, c.Applied, c.Total, c.Reason, st.Ops, st.Failed, st.LongestStall.Round(time.Millisecond))
		switch c.Action {
		case planner.Advanced:
			applied = append(applied, c.Phase)
			mine = mine || c.Applied == c.Total
		case planner.Waiting:
		case planner.Done:
			mine = true
		default:
			t.Fatalf("deploy-%d: %s: %s %s", deploy, c.Action, c.Reason, c.Error)
		}
		if mine && len(others) == len(env.specs)-1 {
			env.deploy(t, fleet, change)
			time.Sleep(dwell)
			return applied
		}
	}
}

// hooks run around each deploy's Next.
type hooks struct {
	before func(deploy int)
	after  func(deploy int, c planner.ChangeReport)
}

// TestChangesUnderLoad drives each change kind through every phase with the
// engine while old and new application instances read and write: no request
// may fail and every row must hold the last value written.
func TestChangesUnderLoad(t *testing.T) {
	for i, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			ctx := context.Background()
			env := newEnv(t, sc)
			fleet := env.startFleet(t, sc, uint64(i+1))
			eng := env.engine(t, 500*time.Millisecond)
			applied := advance(t, ctx, env, eng, fleet, sc.change, hooks{})
			finish(t, ctx, fleet)
			st := changeStatus(t, ctx, eng, env.specs, sc.change)
			if st.Status != planner.StatusDone || !slices.Equal(applied, st.Phases) {
				t.Errorf("status %s, applied %v, want done with every phase of %v", st.Status, applied, st.Phases)
			}
			sc.after(t, env.db)
			requireFinal(t, env.db, sc, workload.New)
		})
	}
}

// TestBlockingTransactionDuringExpand holds a transaction that blocks the
// expand phase's ALTER TABLE for three seconds. The phase must wait under
// lock_timeout and retry, so application requests are never queued behind
// it for much longer than the lock timeout, and it completes once the
// blocker is gone.
func TestBlockingTransactionDuringExpand(t *testing.T) {
	// The bound is generous (the machine may be busy with other tests) but
	// well below the blocker's hold: without lock_timeout every request
	// would queue behind the waiting ALTER TABLE for the whole hold.
	const (
		lockTimeout = 200 * time.Millisecond
		margin      = 1500 * time.Millisecond
		hold        = 3 * time.Second
	)
	sc := scenarios()[0]
	ctx := context.Background()
	env := newEnv(t, sc)
	fleet := env.startFleet(t, sc, 11)
	eng := env.engine(t, lockTimeout)
	eng.Verbose = true
	var engineLog lockedBuffer
	eng.Log = io.MultiWriter(eng.Log, &engineLog)

	var expandDone time.Time
	releasedAt := make(chan time.Time, 1)
	applied := advance(t, ctx, env, eng, fleet, sc.change, hooks{before: func(deploy int) {
		if deploy != 1 {
			return
		}
		// An idle reporting query's transaction: it holds only ACCESS SHARE,
		// which blocks nothing the application does, but would block the
		// ALTER TABLE, and everything queued behind that, for as long as it
		// stays open.
		tx, err := env.db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE users IN ACCESS SHARE MODE"); err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(hold)
			releasedAt <- time.Now()
			tx.Rollback(ctx)
		}()
	}, after: func(deploy int, c planner.ChangeReport) {
		if c.Action == planner.Advanced && c.Phase == "expand" {
			expandDone = time.Now()
		}
	}})
	var released time.Time
	select {
	case released = <-releasedAt:
	default:
		t.Fatal("the blocker never ran, or was still held when expand completed")
	}
	if expandDone.IsZero() || expandDone.Before(released) {
		t.Errorf("expand finished at %v, blocker released at %v: want after", expandDone, released)
	}
	if !strings.Contains(engineLog.String(), "lock not available") {
		t.Error("the engine never waited for the lock: the blocker did not block")
	}
	r, _ := finish(t, ctx, fleet)
	if limit := lockTimeout + margin; r.LongestStall > limit {
		t.Errorf("longest application stall %s, want at most lock_timeout %s + %s", r.LongestStall, lockTimeout, margin)
	}
	if applied[0] != "expand" {
		t.Errorf("phases applied %v", applied)
	}
	sc.after(t, env.db)
}

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

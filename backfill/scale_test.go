package backfill

import (
	"context"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgplanner/planner/phases"
)

// scaleWith runs scale against simulated workers whose rates together
// follow capacity (rows per second for n workers), with batches that
// held their rows slack past their statements on top of a round trip to
// the server, until it settles, and returns how many workers then run and
// the notes it wrote.
func scaleWith(t *testing.T, maxWorkers int, capacity func(n int) float64, roundTrip, slack time.Duration) (int, []string) {
	t.Helper()
	notes := make(chan string, 16)
	// The simulated counter lags the clock by up to a tick per worker,
	// several ms when the machine is busy (as a real one lags by a batch):
	// over 300ms that moves a rate by a few percent, less than the gap
	// between scaleGain and the gain of a worker that adds a twentieth.
	r := &runner{opts: Options{MaxWorkers: maxWorkers, scaleWindow: 300 * time.Millisecond,
		Log: func(msg string) { notes <- msg }}.withDefaults()}
	r.leastSlack.Store(-1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var running atomic.Int32
	c := newCrew(func(retired *atomic.Bool) error {
		running.Add(1)
		defer running.Add(-1)
		last := time.Now()
		for !retired.Load() && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
			now, n := time.Now(), running.Load()
			// The rows this worker's share of the capacity did since the
			// last look: the rate is right however late the look.
			r.done.Add(int64(capacity(int(n)) / float64(n) * now.Sub(last).Seconds()))
			r.noteSlack(roundTrip + slack)
			r.noteRoundTrip(roundTrip)
			last = now
		}
		return nil
	}, cancel)
	c.add()
	settled := make(chan struct{})
	go func() {
		defer close(settled)
		r.scale(ctx, c)
	}()
	var said []string
	deadline := time.After(30 * time.Second)
	for {
		select {
		case msg := <-notes:
			said = append(said, msg)
			if !regexp.MustCompile(`trying again|not adding`).MatchString(msg) {
				continue
			}
		case <-settled:
		case <-deadline:
			t.Fatalf("scale did not settle; it said %q", said)
		}
		break
	}
	time.Sleep(100 * time.Millisecond) // a retired worker returns after its batch in flight
	return int(running.Load()), said
}

// countNoted is the worker count a note of scale begins with.
var countNoted = regexp.MustCompile(`^(\d+) workers?:`)

// Workers are added while each raises the rate by scaleGain: where the
// capacity runs out, the one added last is retired; where it grows with
// every worker, up to MaxWorkers; where one worker has it all, or the
// machine is so busy that batches hold their rows well past their
// statements, one stays. A few milliseconds of slack (more than a tenth
// of the default 40ms cap), or a distant server's round trip, the least
// any batch shows, are not taken for a busy machine.
func TestScaleAddsWorkersWhileTheyPayOff(t *testing.T) {
	spare := func(n int) float64 { return 1e6 * float64(n) }
	for _, tc := range []struct {
		name             string
		capacity         func(n int) float64
		max              int
		roundTrip, slack time.Duration
		want             int
	}{
		{"two cores", func(n int) float64 { return 1e6 * float64(min(n, 2)) }, 4, 0, 0, 2},
		{"one busy core", func(n int) float64 { return 1e6 }, 4, 0, 0, 1},
		{"second worker adds a twentieth", func(n int) float64 { return 1e6 * (1 + 0.05*float64(min(n, 2)-1)) }, 4, 0, 0, 1},
		{"capacity to spare", spare, 3, 0, 0, 3},
		{"saturated machine", spare, 3, 0, 40 * time.Millisecond, 1},
		{"shared machine's few ms", spare, 3, 0, 7 * time.Millisecond, 3},
		{"distant server", spare, 3, 30 * time.Millisecond, 0, 3},
		{"saturated distant server", spare, 3, 30 * time.Millisecond, 40 * time.Millisecond, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, said := scaleWith(t, tc.max, tc.capacity, tc.roundTrip, tc.slack)
			if got != tc.want {
				t.Fatalf("%d workers run, want %d; scale said %q", got, tc.want, said)
			}
			if len(said) == 0 {
				t.Fatal("scale said nothing about the workers it kept")
			}
			last := countNoted.FindStringSubmatch(said[len(said)-1])
			if last == nil || last[1] != strconv.Itoa(tc.want) {
				t.Errorf("its last note %q does not say %d workers", said[len(said)-1], tc.want)
			}
		})
	}
}

// With Workers 0 a real backfill starts with one worker and adds others
// as they pay off, retiring one that does not: every row is done exactly
// once and the job is verified, whatever the count the measurements led to.
func TestAutoWorkersBackfillIsExact(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, old text, new text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 30000) g; ANALYZE t`)
	countUpdates(t, db, "t", "new")
	if err := Start(ctx, db.Pool, state, "c1", phases.Backfill{Table: "t", Column: "new", Expr: "old"}, nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var notes []string
	p, err := Run(ctx, db.Pool, state, "c1", Options{MaxWorkers: 3, MinBatch: 50, MaxBatch: 100, scaleWindow: 60 * time.Millisecond,
		Log: func(msg string) { mu.Lock(); notes = append(notes, msg); mu.Unlock() }})
	if err != nil || !p.Verified || p.Rows != 30000 || p.Updated != 30000 {
		t.Fatalf("Run = %+v, %v", p, err)
	}
	assertAllRight(t, db, "t", "new = old AND n_updates = 1")
	mu.Lock()
	defer mu.Unlock()
	if len(notes) == 0 {
		t.Fatal("in 300 batches the workers were never measured: no note")
	}
	for _, n := range notes {
		if m := countNoted.FindStringSubmatch(n); m == nil || m[1] < "1" || m[1] > "3" {
			t.Errorf("note %q: want a count of at most 3 workers", n)
		}
	}
	t.Logf("notes: %q", notes)
}

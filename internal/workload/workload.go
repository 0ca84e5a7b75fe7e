// Package workload simulates an application fleet writing to a table while
// a schema change advances, then proves that nothing was lost: every row
// must hold the last value the fleet wrote to it, in every column that
// exists, and every application request must have succeeded.
//
// The fleet is a set of workers. Each worker owns a slice of the rows (the
// ones that existed at start with key mod workers == its number, plus the
// ones it inserts), so each row has a single writer and the last value
// written is known exactly. Each request of a worker is served by an "old"
// instance (reads and writes only the old column) or a "new" one (asks a
// ColumnChooser, i.e. the feature flags), like a user whose requests a load
// balancer spreads over a fleet in the middle of a rolling deploy.
// RetireOld finishes that deploy: from then on every request goes to a new
// instance, which is what must happen before the old column is dropped.
//
// A table change (rename_table, drop_table) moves the table instead: old
// instances always use its old name, new ones the name a TableChooser (the
// table flag) gives per request, and none at all once it says the table is
// dropped.
package workload

// This file is long because the simulated fleet and its verdict share the
// model of every row (its writer, its last value, whether a failed write
// may have landed): starting, each request, and the final comparison must
// agree on it. The column choosers are in chooser.go and flags.go, the
// report in report.go.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Kind says how the new column relates to the old one.
type Kind int

const (
	// Synced: the two columns hold one logical value (rename_column,
	// change_column_type); a sync trigger keeps them equal, so writing either
	// column writes both. The new column holds Up(old).
	Synced Kind = iota
	// Added: the new column is independent (add_column). It holds Up(v) for
	// the last v a new instance wrote while writing the new column, or Fill
	// for rows no new instance wrote it on (the backfill or default).
	Added
)

// Config describes the table and the fleet.
type Config struct {
	// Pool is the fleet's connection. Through a pooler in transaction mode,
	// configure it with an exec mode that prepares nothing on the server
	// (ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec), as an
	// application there must.
	Pool *pgxpool.Pool
	// Schema ("" means public) and Table name the table, unquoted.
	Schema, Table string
	// Key is a bigint key column with a default (bigserial or identity);
	// default "id".
	Key string
	// Old is the column old instances use; New the column the change adds.
	Old, New string
	Kind     Kind
	// Up turns a value written to the old column into the text form of the
	// new column's value (a type change's conversion). Nil: identity.
	Up func(old string) string
	// Fill (Added only) is the text form of the new column for rows no new
	// instance wrote it on.
	Fill string
	// Value generates the values written to the old column. Nil: random text.
	Value func(r *rand.Rand) string
	// Chooser decides columns for new instances (the flags). Nil: new
	// instances behave like old ones.
	Chooser ColumnChooser
	// NewTable is the table's name after a rename_table. Tables decides,
	// per request of a new instance, which name it uses (Table, NewTable,
	// or "" once the application stops using the table); old instances
	// always use Table. Nil: every instance uses Table.
	NewTable string
	Tables   TableChooser
	// OldShare is the fraction of requests old instances serve until
	// RetireOld; 0 sends every request to a new instance.
	OldShare float64
	// KeepOld stops Deploy from retiring the old instances when write=new
	// is published: for changes that never take away what old instances
	// use (add_column), so they keep running through every phase.
	KeepOld bool
	// Workers run requests concurrently (default 4). The pool needs at least
	// this many connections.
	Workers int
	// Rate is the target of requests per second over all workers (default 200).
	Rate float64
	// Duration and MaxOps bound the run (0: until Stop).
	Duration time.Duration
	MaxOps   int64
	// Mix weighs the request types (default 2 inserts, 4 updates, 1 delete, 3 reads).
	Mix Mix
	// Seed makes the request sequence repeatable.
	Seed uint64
	// Trace keeps every request made on each row, so a failed
	// verification can show the row's history.
	Trace bool
	// OpTimeout bounds one request (default 30s). Stop lets requests in
	// flight finish rather than cancelling them, so their outcome is known.
	OpTimeout time.Duration
}

// Mix weighs the request types.
type Mix struct{ Insert, Update, Delete, Read int }

// Op is a request type.
type Op int

const (
	OpInsert Op = iota
	OpUpdate
	OpDelete
	OpRead
	numOps
)

func (o Op) String() string {
	return [...]string{"insert", "update", "delete", "read"}[o]
}

// Workload is a running fleet. Start it, advance the schema change, call
// RetireOld before the old column goes away, then Stop (or Wait) and Verify.
type Workload struct {
	cfg      Config
	table    string // quoted
	newTable string // quoted
	key      string // quoted
	oldCol   string // quoted
	newCol   string // quoted
	mix      [numOps]int

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	started  time.Time
	elapsed  time.Duration
	workers  []*worker
	opCount  atomic.Int64
	failed   atomic.Int64
	mismatch atomic.Int64
	unknown  atomic.Int64
	maxLat   atomic.Int64 // nanoseconds
	oldOps   atomic.Int64
	newOps   atomic.Int64
	idle     atomic.Int64 // requests not made: the table is dropped

	// retired is set by RetireOld; oldInFlight lets it wait for the old
	// instances' requests in flight to finish.
	retired     atomic.Bool
	oldInFlight sync.RWMutex

	problemsMu sync.Mutex
	errs       []string       // first errors, in order
	errCounts  map[string]int // by message
	mismatches []string       // first read mismatches
}

const keepProblems = 20

type worker struct {
	id   int
	rng  *rand.Rand
	rows map[int64]*row
	live []int64
	pos  map[int64]int // index in live
	lat  []time.Duration
	ops  [numOps]int64
}

// row is what the fleet last did to one row. nil values are NULL (or, for
// an Added new column, "not written": expect Fill).
type row struct {
	old, new *string
	deleted  bool
	// unknown: a request on the row failed without a server error, so it
	// may or may not have committed; the row is not verified.
	unknown bool
	trace   []string // Config.Trace
}

func (w *Workload) trace(r *row, begin time.Time, op Op, c Choice, detail string, err error) {
	if !w.cfg.Trace || r == nil {
		return
	}
	s := fmt.Sprintf("+%s %s read=%s write=%s %s", begin.Sub(w.started).Round(time.Millisecond), op, c.Read, c.Write, detail)
	if err != nil {
		s += fmt.Sprintf(" (error: %v)", err)
	}
	r.trace = append(r.trace, s)
}

// Start snapshots the table's rows, assigns them to workers, and starts the
// fleet. It returns once the workers run.
func Start(ctx context.Context, cfg Config) (*Workload, error) {
	if cfg.Pool == nil || cfg.Table == "" || cfg.Old == "" {
		return nil, errors.New("workload: Pool, Table and Old are required")
	}
	if cfg.New == "" && (cfg.Kind == Added || cfg.Chooser != nil) {
		return nil, errors.New("workload: New is required with a Chooser or Kind Added")
	}
	if cfg.NewTable != "" && cfg.Tables == nil {
		return nil, errors.New("workload: NewTable needs Tables, which says when to use it")
	}
	if cfg.Schema == "" {
		cfg.Schema = "public"
	}
	if cfg.Key == "" {
		cfg.Key = "id"
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 200
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 30 * time.Second
	}
	if cfg.Mix == (Mix{}) {
		cfg.Mix = Mix{Insert: 2, Update: 4, Delete: 1, Read: 3}
	}
	if cfg.Up == nil {
		cfg.Up = func(s string) string { return s }
	}
	if cfg.Value == nil {
		cfg.Value = func(r *rand.Rand) string { return fmt.Sprintf("v%016x", r.Uint64()) }
	}
	if cfg.Chooser == nil {
		cfg.Chooser = Fixed{Read: Old, Write: Old}
	}
	w := &Workload{
		cfg:       cfg,
		table:     pgx.Identifier{cfg.Schema, cfg.Table}.Sanitize(),
		newTable:  pgx.Identifier{cfg.Schema, cfg.NewTable}.Sanitize(),
		key:       pgx.Identifier{cfg.Key}.Sanitize(),
		oldCol:    pgx.Identifier{cfg.Old}.Sanitize(),
		newCol:    pgx.Identifier{cfg.New}.Sanitize(),
		mix:       [numOps]int{cfg.Mix.Insert, cfg.Mix.Update, cfg.Mix.Delete, cfg.Mix.Read},
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		errCounts: map[string]int{},
	}
	for i := range cfg.Workers {
		w.workers = append(w.workers, &worker{
			id:   i,
			rng:  rand.New(rand.NewPCG(cfg.Seed, uint64(i))),
			rows: map[int64]*row{},
			pos:  map[int64]int{},
		})
	}
	if err := w.snapshot(ctx); err != nil {
		return nil, err
	}
	w.started = time.Now()
	var wg sync.WaitGroup
	for _, wk := range w.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx, wk)
		}()
	}
	go func() {
		wg.Wait()
		w.elapsed = time.Since(w.started)
		close(w.done)
	}()
	return w, nil
}

// snapshot records the rows as they are before the fleet starts: they are
// the baseline the verification expects for rows the fleet never writes.
func (w *Workload) snapshot(ctx context.Context) error {
	cols, err := existingColumns(ctx, w.cfg.Pool, w.cfg.Schema, w.cfg.Table)
	if err != nil {
		return err
	}
	if !cols[w.cfg.Old] {
		return fmt.Errorf("workload: column %s.%s.%s does not exist", w.cfg.Schema, w.cfg.Table, w.cfg.Old)
	}
	newExpr := "NULL::text"
	if w.cfg.New != "" && cols[w.cfg.New] {
		newExpr = w.newCol + "::text"
	}
	rows, err := w.cfg.Pool.Query(ctx, fmt.Sprintf("SELECT %s, %s::text, %s FROM %s", w.key, w.oldCol, newExpr, w.table))
	if err != nil {
		return fmt.Errorf("workload: snapshot: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var old, nw *string
		if err := rows.Scan(&id, &old, &nw); err != nil {
			return fmt.Errorf("workload: snapshot: %w", err)
		}
		r := &row{old: old, new: nw}
		if w.cfg.Kind == Synced && old != nil {
			up := w.cfg.Up(*old)
			r.new = &up
		}
		w.workers[uint64(id)%uint64(len(w.workers))].add(id, r)
	}
	return rows.Err()
}

func existingColumns(ctx context.Context, pool *pgxpool.Pool, schema, table string) (map[string]bool, error) {
	rows, err := pool.Query(ctx, `
		SELECT a.attname FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped`, schema, table)
	if err != nil {
		return nil, fmt.Errorf("workload: columns of %s.%s: %w", schema, table, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("workload: columns of %s.%s: %w", schema, table, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("workload: table %s.%s does not exist", schema, table)
	}
	cols := map[string]bool{}
	for _, n := range names {
		cols[n] = true
	}
	return cols, nil
}

func (wk *worker) add(id int64, r *row) {
	wk.rows[id] = r
	wk.pos[id] = len(wk.live)
	wk.live = append(wk.live, id)
}

func (wk *worker) remove(id int64) {
	i := wk.pos[id]
	last := wk.live[len(wk.live)-1]
	wk.live[i] = last
	wk.pos[last] = i
	wk.live = wk.live[:len(wk.live)-1]
	delete(wk.pos, id)
}

// RetireOld completes the rolling deploy: once it returns, no old instance
// serves requests and none is still running one.
func (w *Workload) RetireOld() {
	w.retired.Store(true)
	w.oldInFlight.Lock()
	//lint:ignore SA2001 an empty critical section waits for old requests in flight.
	w.oldInFlight.Unlock()
}

// Stop ends the run and waits for requests in flight to finish.
func (w *Workload) Stop() Report {
	w.stopOnce.Do(func() { close(w.stop) })
	return w.Wait()
}

// Wait waits for the run to end (Duration or MaxOps reached, or Stop).
func (w *Workload) Wait() Report {
	<-w.done
	return w.report()
}

func (w *Workload) run(ctx context.Context, wk *worker) {
	interval := time.Duration(float64(time.Second) * float64(len(w.workers)) / w.cfg.Rate)
	var deadline <-chan time.Time
	if w.cfg.Duration > 0 {
		t := time.NewTimer(w.cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	// Spread the workers' first requests over one interval.
	next := time.Now().Add(time.Duration(wk.rng.Int64N(int64(interval) + 1)))
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-ctx.Done():
			return
		case <-deadline:
			return
		case <-timer.C:
		}
		if w.cfg.MaxOps > 0 && w.opCount.Add(1) > w.cfg.MaxOps {
			return
		}
		w.request(ctx, wk)
		next = next.Add(interval)
		if now := time.Now(); next.Before(now) {
			// Fell behind (a stalled request): carry on at the normal pace
			// rather than bursting to catch up.
			next = now
		}
		timer.Reset(time.Until(next))
	}
}

// request runs one application request and records its outcome.
func (w *Workload) request(ctx context.Context, wk *worker) {
	op := w.pickOp(wk)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.OpTimeout)
	defer cancel()
	begin := time.Now()
	choice, table, release, err := w.choose(ctx, wk)
	if err == nil && table == "" {
		// The application stopped using the table: no request is made.
		release()
		w.idle.Add(1)
		return
	}
	if err == nil {
		err = w.do(ctx, wk, op, choice, table)
		release()
	}
	lat := time.Since(begin)
	wk.lat = append(wk.lat, lat)
	wk.ops[op]++
	for {
		cur := w.maxLat.Load()
		if int64(lat) <= cur || w.maxLat.CompareAndSwap(cur, int64(lat)) {
			break
		}
	}
	if err != nil {
		w.failed.Add(1)
		w.noteError(fmt.Sprintf("%s: %v", op, err))
	}
}

func (w *Workload) pickOp(wk *worker) Op {
	if len(wk.live) == 0 {
		return OpInsert
	}
	total := 0
	for _, n := range w.mix {
		total += n
	}
	n := wk.rng.IntN(total)
	for op, weight := range w.mix {
		if n < weight {
			return Op(op)
		}
		n -= weight
	}
	return OpRead
}

// choose routes the request to an old or a new instance, and returns the
// columns and the quoted table it uses ("": none, the table is dropped). An
// old instance holds oldInFlight (shared) until the request ends, so
// RetireOld can wait.
func (w *Workload) choose(ctx context.Context, wk *worker) (Choice, string, func(), error) {
	if !w.retired.Load() && wk.rng.Float64() < w.cfg.OldShare {
		w.oldInFlight.RLock()
		if !w.retired.Load() {
			w.oldOps.Add(1)
			return Choice{Read: Old, Write: Old}, w.table, w.oldInFlight.RUnlock, nil
		}
		w.oldInFlight.RUnlock()
	}
	c, err := w.cfg.Chooser.Choose(ctx)
	table := w.table
	if err != nil {
		err = fmt.Errorf("choose columns: %w", err)
	} else if !c.valid() {
		err = fmt.Errorf("choose columns: invalid choice read=%q write=%q", c.Read, c.Write)
	} else {
		table, err = w.chooseTable(ctx)
	}
	if err != nil || table != "" {
		w.newOps.Add(1) // a request not made is counted as idle instead
	}
	return c, table, func() {}, err
}

// chooseTable is the quoted table a new instance uses ("": none).
func (w *Workload) chooseTable(ctx context.Context) (string, error) {
	if w.cfg.Tables == nil {
		return w.table, nil
	}
	name, err := w.cfg.Tables.Table(ctx)
	switch {
	case err != nil:
		return "", fmt.Errorf("choose table: %w", err)
	case name == w.cfg.Table:
		return w.table, nil
	case name == w.cfg.NewTable && name != "":
		return w.newTable, nil
	case name == "":
		return "", nil
	}
	return "", fmt.Errorf("choose table: %q is neither %q nor %q", name, w.cfg.Table, w.cfg.NewTable)
}

// writeColumns says which columns a write touches: old instances and
// write=old touch the old column only. For a Synced change write=new touches
// only the new column (the trigger fills the old one); for an Added column
// the old column is an ordinary column every instance keeps writing.
func (w *Workload) writeColumns(c Choice) (old, new bool) {
	switch {
	case c.Write == Old:
		return true, false
	case c.Write == Both || w.cfg.Kind == Added:
		return true, true
	default:
		return false, true
	}
}

func (w *Workload) do(ctx context.Context, wk *worker, op Op, c Choice, table string) error {
	pool := w.cfg.Pool
	begin := time.Now()
	switch op {
	case OpRead:
		id := wk.live[wk.rng.IntN(len(wk.live))]
		r := wk.rows[id]
		col, want := w.oldCol, r.old
		if c.Read == New {
			col, want = w.newCol, w.expectedNew(r)
		}
		var got *string
		err := pool.QueryRow(ctx, fmt.Sprintf("SELECT %s::text FROM %s WHERE %s = $1", col, table, w.key), id).Scan(&got)
		w.trace(r, begin, op, c, fmt.Sprintf("%s.%s -> %s", table, col, show(got)), err)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("row %d is gone", id)
		}
		if err != nil {
			w.markIfAmbiguous(r, err)
			return err
		}
		if !r.unknown && !equal(got, want) {
			w.mismatch.Add(1)
			w.noteMismatch(fmt.Sprintf("row %d: read %s=%s, last written %s", id, col, show(got), show(want)))
		}
		return nil
	case OpDelete:
		id := wk.live[wk.rng.IntN(len(wk.live))]
		r := wk.rows[id]
		tag, err := pool.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s = $1", table, w.key), id)
		w.trace(r, begin, op, c, "", err)
		if err != nil {
			w.markIfAmbiguous(r, err)
			return err
		}
		r.deleted = true
		wk.remove(id)
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("delete of row %d affected %d rows", id, tag.RowsAffected())
		}
		return nil
	}
	v := w.cfg.Value(wk.rng)
	up := w.cfg.Up(v)
	writeOld, writeNew := w.writeColumns(c)
	var cols []string
	var args []any
	if writeOld {
		cols, args = append(cols, w.oldCol), append(args, v)
	}
	if writeNew {
		cols, args = append(cols, w.newCol), append(args, up)
	}
	apply := func(r *row) {
		r.old = &v
		if w.cfg.Kind == Synced || writeNew {
			r.new = &up
		}
	}
	if op == OpInsert {
		params := make([]string, len(cols))
		for i := range cols {
			params[i] = fmt.Sprintf("$%d", i+1)
		}
		var id int64
		err := pool.QueryRow(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) RETURNING %s",
			table, strings.Join(cols, ", "), strings.Join(params, ", "), w.key), args...).Scan(&id)
		if err != nil {
			if !serverError(err) {
				w.unknown.Add(1) // a row may exist that the fleet cannot account for
			}
			return err
		}
		r := &row{}
		apply(r)
		w.trace(r, begin, op, c, fmt.Sprintf("id %d: %s = %q", id, strings.Join(cols, ", "), v), nil)
		wk.add(id, r)
		return nil
	}
	id := wk.live[wk.rng.IntN(len(wk.live))]
	r := wk.rows[id]
	set := make([]string, len(cols))
	for i, c := range cols {
		set[i] = fmt.Sprintf("%s = $%d", c, i+1)
	}
	tag, err := pool.Exec(ctx, fmt.Sprintf("UPDATE %s SET %s WHERE %s = $%d",
		table, strings.Join(set, ", "), w.key, len(cols)+1), append(args, id)...)
	w.trace(r, begin, op, c, fmt.Sprintf("%s = %q", strings.Join(cols, ", "), v), err)
	if err != nil {
		w.markIfAmbiguous(r, err)
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("update of row %d affected %d rows", id, tag.RowsAffected())
	}
	apply(r)
	return nil
}

// expectedNew is what the new column should hold for r.
func (w *Workload) expectedNew(r *row) *string {
	if r.new == nil && w.cfg.Kind == Added {
		return &w.cfg.Fill
	}
	return r.new
}

// markIfAmbiguous: a server error means the statement rolled back; any other
// failure (timeout, lost connection) may have committed or not.
func (w *Workload) markIfAmbiguous(r *row, err error) {
	if !serverError(err) && !r.unknown {
		r.unknown = true
		w.unknown.Add(1)
	}
}

func serverError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}

func (w *Workload) noteError(msg string) {
	w.problemsMu.Lock()
	defer w.problemsMu.Unlock()
	if len(w.errs) < keepProblems {
		w.errs = append(w.errs, msg)
	}
	w.errCounts[msg]++
}

func (w *Workload) noteMismatch(msg string) {
	w.problemsMu.Lock()
	defer w.problemsMu.Unlock()
	if len(w.mismatches) < keepProblems {
		w.mismatches = append(w.mismatches, msg)
	}
}

func equal(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func show(s *string) string {
	if s == nil {
		return "NULL"
	}
	return fmt.Sprintf("%q", *s)
}

// Retired says whether RetireOld has run.
func (w *Workload) Retired() bool { return w.retired.Load() }

package backfill

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// How a backfill batch bounds the application's waits.
//
// An application statement can only wait for a batch's row locks, from the
// moment the batch takes them until its transaction ends. So:
//
//   - a batch waits at most rowLockWait for a row an application
//     transaction holds; then it is rolled back and done again taking its
//     rows first with FOR NO KEY UPDATE SKIP LOCKED: it does not queue
//     behind the application (nor, in the queue for a row, in front of
//     other application statements). The keys it skipped are recorded
//     (backfill_skipped) in the batch's own commit, and revisited later;
//     the range is done only when they are. (Locking first costs a WAL
//     record per row, so batches do it only after such a conflict.)
//   - the whole batch is one statement (find the end key, lock, update,
//     record the skipped keys, advance the range's cursor) followed by
//     COMMIT in the same round trip, in a segment of its own: locks are held
//     for the statement and the commit only, never across a round trip to
//     this process, which a saturated machine may not schedule in time;
//   - the statement runs under a statement_timeout derived from
//     Options.MaxAppWait: the server cancels a batch that overruns, its
//     transaction is rolled back by the queued COMMIT at once, and the
//     batch is retried with fewer rows (see sizer.go for the sizes).
//
// A revisit locks the skipped keys the same way, with SKIP LOCKED. A key
// still locked after revisitWaitAfter revisits (a transaction left open
// for many seconds) is waited for instead, alone in its batch and under
// lock_timeout: only statements that wait for that row anyway queue behind
// the backfill, and a lock held for good ends in Run's retry limit.

// rowLockWait is the lock_timeout of a batch that does not lock its rows
// first.
const rowLockWait = 10 * time.Millisecond

// revisitWaitAfter is the number of revisits that skip a locked key before
// one waits for it.
const revisitWaitAfter = 8

// revisitBatch is the most skipped keys one revisit takes.
const revisitBatch = 1000

// argList numbers a statement's parameters as they are added. Values are
// sent as text: keys are stored as text and cast back in SQL.
type argList []any

func (a *argList) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// keyArgs is key as a row of parameters cast to the key's types.
func (t *target) keyArgs(a *argList, key []string) string {
	parts := make([]string, len(key))
	for i, v := range key {
		parts[i] = a.add(v) + "::text::" + t.key.types[i]
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// keyTextArgs is key as a text[] of parameters.
func keyTextArgs(a *argList, key []string) string {
	if key == nil {
		return "NULL::text[]"
	}
	parts := make([]string, len(key))
	for i, v := range key {
		parts[i] = a.add(v) + "::text"
	}
	return "ARRAY[" + strings.Join(parts, ", ") + "]"
}

// typedKey casts a text[] key (e.g. "d.key") back to the key's row.
func (t *target) typedKey(arr string) string {
	parts := make([]string, len(t.key.types))
	for i, typ := range t.key.types {
		parts[i] = fmt.Sprintf("%s[%d]::%s", arr, i+1, typ)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// lockedKeys names the key columns of a sweep's locked rows, renamed so
// that they do not clash with the table's in the UPDATE that joins them.
func lockedKeys(prefix string, n int) string {
	parts := make([]string, n)
	for i := range n {
		parts[i] = prefix + fmt.Sprintf(`"planner key %d"`, i+1)
	}
	return strings.Join(parts, ", ")
}

// lockedKeyAs selects the key columns under the names of lockedKeys.
func (t *target) lockedKeyAs() string {
	parts := make([]string, len(t.key.cols))
	for i, c := range t.key.cols {
		parts[i] = fmt.Sprintf(`%s AS "planner key %d"`, pgx.Identifier{c}.Sanitize(), i+1)
	}
	return strings.Join(parts, ", ")
}

// typedKeyList is typedKey without the parentheses: a select list.
func (t *target) typedKeyList(arr string) string {
	k := t.typedKey(arr)
	return k[1 : len(k)-1]
}

func (t *target) orderByDesc() string {
	order := make([]string, len(t.key.cols))
	for i, c := range t.key.cols {
		order[i] = t.name + "." + pgx.Identifier{c}.Sanitize() + " DESC"
	}
	return strings.Join(order, ", ")
}

// sweepSQL is one backfill batch of range c, up to size keys after its
// cursor, in one statement (see above); with skipLocked it locks the rows
// first and skips those locked, retry being the first revisit's delay. It returns the keys gone through, the rows
// updated, the keys skipped, whether the range's keys are all swept, 1 (the
// range row updated) and the microseconds since planner.batch_start.
func (r *runner) sweepSQL(c claim, size int, skipLocked bool, retry time.Duration) (string, []any) {
	t := r.t
	var a argList
	after := "true"
	if c.cursor != nil {
		after = t.tuple() + " > " + t.keyArgs(&a, c.cursor)
	}
	within := after
	if c.cursor == nil {
		after = t.firstKeyCond()
	}
	upper := ""
	if c.upper != nil {
		upper = t.keyArgs(&a, c.upper)
		within += " AND " + t.tuple() + " <= " + upper
	}
	upperText := keyTextArgs(&a, c.upper)
	cursorText := keyTextArgs(&a, c.cursor)
	sz := a.add(size) + "::int"
	ch, no := a.add(r.changeID)+"::text", a.add(c.no)+"::int"
	differs := t.column + " IS DISTINCT FROM " + t.value
	keys := t.keyList("")
	// The batch's last key: the size-th after the cursor or, with fewer
	// left, the range's last key (open range: the last key there is).
	upTo := fmt.Sprintf("%s AND %s <= (SELECT %s FROM hi)", after, t.tuple(), keys)
	last := "NOT s.full"
	if c.upper != nil {
		last += fmt.Sprintf(" OR (SELECT %s FROM bound) = %s", t.tuple(), upper)
	}
	returning, record := t.changed((*[]any)(&a))
	// The rows' update: directly, or after locking the rows free.
	work := fmt.Sprintf(`done AS (
  UPDATE %[1]s SET %[2]s = %[3]s WHERE %[4]s AND %[5]s RETURNING %[6]s
)%[7]s, skip AS (SELECT 1 WHERE false)`, t.name, t.column, t.value, upTo, differs, returning, record)
	if skipLocked {
		retryMS := a.add(retry.Milliseconds()) + "::int"
		work = fmt.Sprintf(`locked AS MATERIALIZED (
  SELECT %[1]s FROM %[2]s WHERE %[3]s AND %[4]s FOR NO KEY UPDATE SKIP LOCKED
), done AS (
  UPDATE %[2]s SET %[5]s = %[6]s FROM locked l WHERE (%[7]s) = (%[8]s) RETURNING %[9]s
)%[10]s, skip AS (
  INSERT INTO %[11]s (change_id, range_no, key, retry_at)
  SELECT %[12]s, %[13]s, ARRAY[%[14]s], now() + %[15]s * interval '1 millisecond'
  FROM (SELECT %[16]s FROM %[2]s WHERE %[3]s AND %[4]s) b
  WHERE NOT EXISTS (SELECT 1 FROM locked l WHERE (%[8]s) = (%[17]s))
  ON CONFLICT DO NOTHING RETURNING 1
)`, t.lockedKeyAs(), t.name, upTo, differs, t.column, t.value, t.keyListOf(t.name+".", ""),
			lockedKeys("l.", len(t.key.cols)), returning, record, skippedTable(r.schema), ch, no,
			t.keyListOf("b.", "::text"), retryMS, keys, t.keyListOf("b.", ""))
	}
	sql := fmt.Sprintf(`WITH bound AS MATERIALIZED (
  SELECT %[2]s FROM %[1]s WHERE %[3]s ORDER BY %[4]s LIMIT 1 OFFSET %[5]s - 1
), hi AS MATERIALIZED (
  (SELECT %[2]s FROM bound) UNION ALL (SELECT %[2]s FROM %[1]s WHERE %[3]s ORDER BY %[6]s LIMIT 1) LIMIT 1
), %[7]s, step AS MATERIALIZED (
  SELECT s.full,
         CASE WHEN s.full THEN %[5]s::bigint ELSE (SELECT count(*) FROM %[1]s WHERE %[3]s) END AS n_rows,
         %[11]s AS is_last,
         CASE WHEN s.full THEN (SELECT ARRAY[%[12]s] FROM bound)
              ELSE coalesce(%[13]s, (SELECT ARRAY[%[12]s] FROM hi), %[14]s) END AS new_cursor
  FROM (SELECT EXISTS (SELECT 1 FROM bound) AS full) s
), rng AS (
  UPDATE %[15]s SET cursor = s.new_cursor, rows_done = rows_done + s.n_rows,
    rows_updated = rows_updated + (SELECT count(*) FROM done), batch_size = %[5]s, batches = batches + 1,
    updated_at = now(), swept = s.is_last,
    done_at = CASE WHEN s.is_last AND NOT EXISTS (SELECT 1 FROM skip)
                    AND NOT EXISTS (SELECT 1 FROM %[8]s WHERE change_id = %[9]s AND range_no = %[10]s) THEN now() END
  FROM step s WHERE change_id = %[9]s AND range_no = %[10]s
  RETURNING 1
)
SELECT s.n_rows, (SELECT count(*) FROM done), (SELECT count(*) FROM skip), s.is_last, (SELECT count(*) FROM rng),
  (extract(epoch FROM clock_timestamp() - current_setting('planner.batch_start')::timestamptz) * 1e6)::bigint
FROM step s`,
		t.name, keys, within, t.orderBy(), sz, t.orderByDesc(), work, skippedTable(r.schema), ch, no, last,
		t.keyListOf("", "::text"), upperText, cursorText, rangesTable(r.schema))
	return sql, a
}

// revisitSQL takes up to limit of range c's skipped keys that are due:
// the rows now free are updated and their keys forgotten; keys still locked wait for a
// later revisit, twice as late each time. With wait, it takes the key
// skipped most often, alone, and waits for its lock. The range is done
// when no skipped key is left. It returns the keys taken, the rows updated
// and the keys still locked.
func (r *runner) revisitSQL(c claim, limit int, wait bool, retry time.Duration) (string, []any) {
	t := r.t
	var a argList
	ch, no := a.add(r.changeID)+"::text", a.add(c.no)+"::int"
	skip := " SKIP LOCKED"
	if wait {
		limit, skip = 1, ""
	}
	retryMS := a.add(retry.Milliseconds()) + "::int"
	differs := t.column + " IS DISTINCT FROM " + t.value
	keys := t.keyList("")
	returning, record := t.changed((*[]any)(&a))
	sql := fmt.Sprintf(`WITH due AS MATERIALIZED (
  SELECT key FROM %[1]s WHERE change_id = %[2]s AND range_no = %[3]s AND retry_at <= now()
  ORDER BY tries DESC, key LIMIT %[4]d
), locked AS MATERIALIZED (
  SELECT %[5]s FROM %[6]s WHERE %[7]s IN (SELECT %[18]s FROM due d) AND %[9]s FOR NO KEY UPDATE%[10]s
), done AS (
  UPDATE %[6]s SET %[11]s = %[12]s WHERE %[7]s IN (SELECT %[5]s FROM locked) AND %[9]s RETURNING %[13]s
)%[14]s, still AS MATERIALIZED (
  SELECT d.key FROM due d
  WHERE NOT EXISTS (SELECT 1 FROM locked l WHERE (%[15]s) = %[8]s)
    AND EXISTS (SELECT 1 FROM %[6]s WHERE %[7]s = %[8]s AND %[9]s)
), cleared AS (
  DELETE FROM %[1]s s WHERE s.change_id = %[2]s AND s.key IN (SELECT key FROM due) AND s.key NOT IN (SELECT key FROM still)
  RETURNING 1
), again AS (
  UPDATE %[1]s s SET tries = tries + 1,
    retry_at = now() + least(5000, %[16]s * power(2, least(tries + 1, 20))) * interval '1 millisecond'
  WHERE s.change_id = %[2]s AND s.key IN (SELECT key FROM still)
  RETURNING 1
), rng AS (
  UPDATE %[17]s SET rows_updated = rows_updated + (SELECT count(*) FROM done), batches = batches + 1, updated_at = now(),
    done_at = CASE WHEN (SELECT count(*) FROM %[1]s WHERE change_id = %[2]s AND range_no = %[3]s) = (SELECT count(*) FROM cleared)
                   THEN now() END
  WHERE change_id = %[2]s AND range_no = %[3]s
  RETURNING 1
)
SELECT (SELECT count(*) FROM due), (SELECT count(*) FROM done), (SELECT count(*) FROM still), (SELECT count(*) FROM rng)`,
		skippedTable(r.schema), ch, no, limit, keys, t.name, t.tuple(), t.typedKey("d.key"), differs, skip,
		t.column, t.value, returning, record, t.keyListOf("l.", ""), retryMS, rangesTable(r.schema), t.typedKeyList("d.key"))
	return sql, a
}

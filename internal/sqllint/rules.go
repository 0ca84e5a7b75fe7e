package sqllint

// Severity says whether a finding refuses a statement.
type Severity string

const (
	// Unsafe: the statement blocks application traffic for longer than a
	// catalog change, rewrites or scans a table under a lock that blocks
	// writes, or breaks applications still using what it changes.
	Unsafe Severity = "unsafe"
	// Advice: schema style that costs later (a 32-bit key, varchar(n)),
	// reported but never refusing.
	Advice Severity = "advice"
)

// Rule is one check: its name (what `allow` lists), what is wrong, the safe
// alternative, and the peers' names for it.
type Rule struct {
	Name     string   `json:"name"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	Safe     string   `json:"safe_alternative"`
	// Squawk and StrongMigrations name the equivalent rule or check of
	// those tools ("" when they have none).
	Squawk           string `json:"squawk"`
	StrongMigrations string `json:"strong_migrations"`
}

// Rules are the lint rules, in the order the README lists them.
var Rules = []Rule{
	{"require-timeout-settings", Unsafe,
		"takes a lock that blocks traffic with no lock_timeout set: while it waits for the lock, every later query on the table queues behind it",
		"start the script with SET lock_timeout = '500ms' and SET statement_timeout = '30s' (or SET LOCAL inside each transaction), and retry on timeout; the planner's sql kind does both",
		"require-timeout-settings", "lock and statement timeouts"},
	{"require-concurrent-index-creation", Unsafe,
		"CREATE INDEX without CONCURRENTLY holds a SHARE lock, blocking every write to the table, for the whole build",
		"CREATE INDEX CONCURRENTLY IF NOT EXISTS, outside a transaction (the add_index kind also drops and rebuilds an INVALID index a failed build leaves)",
		"require-concurrent-index-creation", "adding an index non-concurrently"},
	{"require-concurrent-index-deletion", Unsafe,
		"DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table, blocking reads and writes while it waits for and holds the lock",
		"DROP INDEX CONCURRENTLY IF EXISTS, outside a transaction",
		"require-concurrent-index-deletion", "removing an index non-concurrently"},
	{"require-concurrent-reindex", Unsafe,
		"REINDEX without CONCURRENTLY blocks writes to the table (and reads that use the index) for the whole rebuild",
		"REINDEX INDEX CONCURRENTLY (PostgreSQL 12+), outside a transaction",
		"require-concurrent-reindex", ""},
	{"require-concurrent-partition-detach", Unsafe,
		"DETACH PARTITION without CONCURRENTLY takes ACCESS EXCLUSIVE on the parent, blocking reads and writes of every partition",
		"ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY (PostgreSQL 14+), outside a transaction",
		"require-concurrent-partition-detach", ""},
	{"require-concurrent-refresh", Unsafe,
		"REFRESH MATERIALIZED VIEW without CONCURRENTLY takes ACCESS EXCLUSIVE on the view, blocking its readers for the whole refresh",
		"REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index on the view)",
		"", ""},
	{"ban-concurrent-index-creation-in-transaction", Unsafe,
		"a CONCURRENTLY statement cannot run inside a transaction block: PostgreSQL refuses it",
		"run it outside BEGIN ... COMMIT, on its own",
		"ban-concurrent-index-creation-in-transaction", ""},
	{"constraint-missing-not-valid", Unsafe,
		"adding a CHECK or FOREIGN KEY constraint without NOT VALID checks every existing row under the statement's lock (ACCESS EXCLUSIVE for a check, SHARE ROW EXCLUSIVE on both tables for a foreign key)",
		"ADD CONSTRAINT ... NOT VALID (instant), then ALTER TABLE ... VALIDATE CONSTRAINT in a later transaction, which blocks no reads or writes (the add_check and add_foreign_key kinds)",
		"constraint-missing-not-valid", "adding a check constraint; adding a foreign key"},
	{"validate-in-same-transaction", Unsafe,
		"VALIDATE CONSTRAINT in the transaction that added the constraint NOT VALID scans the table while that transaction still holds the ADD's ACCESS EXCLUSIVE lock",
		"commit after ADD CONSTRAINT ... NOT VALID and validate in a later transaction (a later sql change, or the add_check/add_foreign_key kinds)",
		"constraint-missing-not-valid", "adding a check constraint"},
	{"adding-foreign-key-constraint", Unsafe,
		"ADD COLUMN ... REFERENCES adds a validated foreign key, locking both tables against writes",
		"add the column without REFERENCES, then ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID and VALIDATE CONSTRAINT in a later transaction (the add_foreign_key kind)",
		"adding-foreign-key-constraint", "adding a reference"},
	{"disallowed-unique-constraint", Unsafe,
		"ADD UNIQUE builds its index under ACCESS EXCLUSIVE, blocking reads and writes for the whole build",
		"CREATE UNIQUE INDEX CONCURRENTLY, then ALTER TABLE ... ADD CONSTRAINT ... UNIQUE USING INDEX (instant; the add_unique kind)",
		"disallowed-unique-constraint", "adding a unique constraint"},
	{"adding-primary-key-constraint", Unsafe,
		"ADD PRIMARY KEY builds its index under ACCESS EXCLUSIVE (and sets NOT NULL, scanning), blocking reads and writes for the whole build",
		"CREATE UNIQUE INDEX CONCURRENTLY on the key columns (already NOT NULL), then ALTER TABLE ... ADD CONSTRAINT ... PRIMARY KEY USING INDEX (instant)",
		"adding-serial-primary-key-field", ""},
	{"adding-exclusion-constraint", Unsafe,
		"ADD EXCLUDE builds its index and checks every row under ACCESS EXCLUSIVE; PostgreSQL has no concurrent form",
		"add it while the table is small or in a maintenance window (acknowledge it with allow), or enforce the rule with a unique index built CONCURRENTLY where one can express it",
		"", "adding an exclusion constraint"},
	{"adding-field-with-default", Unsafe,
		"ADD COLUMN with a volatile default (random(), clock_timestamp(), gen_random_uuid(), nextval(), ...) rewrites the whole table under ACCESS EXCLUSIVE",
		"add the column without a default, SET DEFAULT in a later statement (only new rows get it), then fill the existing rows in batches (the add_column kind with backfill)",
		"adding-field-with-default", "adding a column with a volatile default value"},
	{"adding-auto-increment-column", Unsafe,
		"ADD COLUMN of type serial/bigserial or GENERATED ... AS IDENTITY fills every existing row, rewriting the table under ACCESS EXCLUSIVE",
		"add a nullable bigint column, create a sequence and SET DEFAULT nextval(...) for new rows, fill the existing rows in batches, then enforce NOT NULL (the add_column kind)",
		"adding-serial-primary-key-field", "adding an auto-incrementing column"},
	{"adding-stored-generated-column", Unsafe,
		"ADD COLUMN ... GENERATED ALWAYS AS (...) STORED computes every existing row, rewriting the table under ACCESS EXCLUSIVE",
		"add a plain column filled by a trigger for new writes and backfilled in batches; on PostgreSQL 18 a VIRTUAL generated column is instant",
		"adding-field-with-default", "adding a stored generated column"},
	{"adding-required-field", Unsafe,
		"ADD COLUMN ... NOT NULL without a default fails on a table that has rows, and breaks inserts of applications that do not set the column yet",
		"add the column nullable (or with a constant default), backfill, then enforce NOT NULL (the add_column kind with not_null and backfill)",
		"adding-required-field", ""},
	{"adding-not-nullable-field", Unsafe,
		"SET NOT NULL scans the whole table under ACCESS EXCLUSIVE unless a validated CHECK (column IS NOT NULL) proves it",
		"ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c in a later transaction; then SET NOT NULL (instant) and DROP CONSTRAINT c (the set_not_null kind)",
		"adding-not-nullable-field", "setting NOT NULL on an existing column"},
	{"changing-column-type", Unsafe,
		"ALTER COLUMN ... TYPE rewrites the table and rebuilds its indexes under ACCESS EXCLUSIVE, unless the change is binary coercible (varchar(n) to a longer varchar or text, numeric to a larger precision), and applications on the old type may break",
		"the change_column_type kind (a new column kept in sync by a trigger, backfilled, then swapped); acknowledge with allow only a binary coercible change",
		"changing-column-type", "changing the type of a column"},
	{"rewriting-table", Unsafe,
		"SET TABLESPACE, SET LOGGED and SET UNLOGGED rewrite the table (and its indexes) under ACCESS EXCLUSIVE",
		"copy into a new table kept in sync by triggers and switch over, or acknowledge with allow for a small table",
		"", ""},
	{"renaming-column", Unsafe,
		"RENAME COLUMN breaks every application instance still using the old name, at once",
		"the rename_column kind: a new column kept in sync, flags telling applications which to use, the old one dropped when none does",
		"renaming-column", "renaming a column"},
	{"renaming-table", Unsafe,
		"RENAME TO breaks every application instance still using the old table name, at once",
		"the rename_table kind (a view under the old name until no application uses it), or create the new table, write both and switch reads",
		"renaming-table", "renaming a table"},
	{"ban-drop-column", Unsafe,
		"DROP COLUMN breaks application instances still reading or writing the column, and loses its data for good",
		"the drop_column kind: stop using it first (flags), move it aside reversibly, purge later",
		"ban-drop-column", "removing a column"},
	{"ban-drop-table", Unsafe,
		"DROP TABLE breaks application instances still using the table, and loses its data for good",
		"stop using the table in every application first, then drop it (the drop_table kind moves it aside reversibly before the purge)",
		"ban-drop-table", "creating a table with the force option"},
	{"ban-drop-database", Unsafe,
		"DROP DATABASE destroys every table in it",
		"never from a migration; do it by hand after checking that nothing uses the database",
		"ban-drop-database", ""},
	{"ban-truncate-cascade", Unsafe,
		"TRUNCATE ... CASCADE also empties every table that references this one, under ACCESS EXCLUSIVE on all of them",
		"delete the rows you mean to delete, table by table, in batches",
		"ban-truncate-cascade", ""},
	{"prefer-repack", Unsafe,
		"VACUUM FULL and CLUSTER rewrite the table under ACCESS EXCLUSIVE, blocking reads and writes for the whole rewrite",
		"pg_repack (or pg_squeeze), which rewrite the table online; plain VACUUM blocks nothing",
		"prefer-repack", ""},
	{"ban-lock-table", Unsafe,
		"LOCK TABLE holds a lock for the rest of the transaction; in its default mode (ACCESS EXCLUSIVE) it blocks reads and writes",
		"drop it: each statement takes the lock it needs; keep transactions short and under lock_timeout",
		"", ""},
	{"backfill-in-migration", Unsafe,
		"UPDATE or DELETE of the whole table in one statement locks every row it touches until commit and writes all of them in one go",
		"fill or delete in short batches by key, outside the schema change (the add_column and set_not_null kinds backfill in batches)",
		"", "backfilling data"},
	{"ban-alter-domain-with-add-constraint", Unsafe,
		"ALTER DOMAIN ... ADD CONSTRAINT checks every column of every table that uses the domain, under locks that block writes",
		"ALTER DOMAIN ... ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT later; or a CHECK on the table (add_check)",
		"ban-alter-domain-with-add-constraint", ""},
	{"transaction-nesting", Unsafe,
		"a transaction control statement where it does not belong: BEGIN inside an open transaction (it does nothing, and the COMMIT after it ends the outer one), or any transaction control in statements the planner runs in a transaction of its own",
		"one BEGIN ... COMMIT per transaction; in the sql kind, none (each side runs in one transaction)",
		"transaction-nesting", ""},
	{"ban-uncommitted-transaction", Unsafe,
		"the script opens a transaction it never commits",
		"end every BEGIN with COMMIT",
		"ban-uncommitted-transaction", ""},
	{"ban-drop-not-null", Advice,
		"DROP NOT NULL lets NULLs in that application code may not expect",
		"make sure every reader handles NULL before dropping the constraint",
		"ban-drop-not-null", ""},
	{"ban-create-domain-with-constraint", Advice,
		"a domain with a constraint makes every later change of it (ALTER DOMAIN ADD CONSTRAINT) scan every table using it",
		"a plain domain (or type) and CHECK constraints on the tables",
		"ban-create-domain-with-constraint", ""},
	{"require-enum-value-ordering", Advice,
		"ALTER TYPE ... ADD VALUE without BEFORE or AFTER appends the value at the end, which may not be the order queries sort by",
		"say where it goes: ADD VALUE 'x' BEFORE 'y' or AFTER 'y'",
		"require-enum-value-ordering", ""},
	{"prefer-robust-stmts", Advice,
		"a CONCURRENTLY statement runs outside a transaction: if it fails halfway, rerunning it fails on what the first try left",
		"CREATE INDEX CONCURRENTLY IF NOT EXISTS / DROP INDEX CONCURRENTLY IF EXISTS (and drop an INVALID index a failed build left)",
		"prefer-robust-stmts", ""},
	{"index-too-many-columns", Advice,
		"a non-unique index on more than three columns is rarely used beyond its first columns and costs on every write",
		"index the one to three most selective columns",
		"", "keeping non-unique indexes to three columns"},
	{"prefer-jsonb", Advice,
		"json has no equality operator (SELECT DISTINCT and some ORMs fail on it) and is reparsed on every access",
		"use jsonb",
		"", "adding a json column"},
	{"ban-char-field", Advice,
		"char(n) pads with spaces and is no faster than text",
		"text (with a CHECK on its length if needed)",
		"ban-char-field", ""},
	{"prefer-text-field", Advice,
		"varchar(n) needs an ACCESS EXCLUSIVE lock (and, when shortened, a scan) to change its length later",
		"text with a CHECK (length(col) <= n) constraint, which can be replaced NOT VALID",
		"prefer-text-field", ""},
	{"prefer-bigint-over-int", Advice,
		"a 32-bit integer key runs out at 2,147,483,647, and widening it later rewrites the table",
		"bigint (bigserial, or bigint GENERATED ... AS IDENTITY)",
		"prefer-bigint-over-int", ""},
	{"prefer-bigint-over-smallint", Advice,
		"a 16-bit integer runs out at 32,767, and widening it later rewrites the table",
		"bigint",
		"prefer-bigint-over-smallint", ""},
	{"prefer-identity", Advice,
		"serial types create a sequence with its own owner and privileges, outside the column's definition",
		"bigint GENERATED BY DEFAULT AS IDENTITY",
		"prefer-identity", ""},
	{"prefer-timestamptz", Advice,
		"timestamp without time zone stores wall-clock times whose zone is lost",
		"timestamptz",
		"prefer-timestamptz", ""},
	{"identifier-too-long", Advice,
		"PostgreSQL truncates identifiers to 63 bytes, silently: two long names may end up the same",
		"use a name of at most 63 bytes",
		"identifier-too-long", ""},
}

// RuleByName finds a rule.
func RuleByName(name string) (Rule, bool) {
	for _, r := range Rules {
		if r.Name == name {
			return r, true
		}
	}
	return Rule{}, false
}

// RuleNames lists every rule's name.
func RuleNames() []string {
	names := make([]string, len(Rules))
	for i, r := range Rules {
		names[i] = r.Name
	}
	return names
}

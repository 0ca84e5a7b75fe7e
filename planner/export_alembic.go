package planner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// alembicFiles are Alembic revisions, versions/NNNNN_<change>_<phase>.py,
// chained by down_revision in plan order, plus env.py and alembic.ini
// when dir has no env.py of its own.
//
// upgrade() and downgrade() run every unit in autocommit_block(), so each
// transaction's own BEGIN ... COMMIT, its SET LOCAL guards and statements
// that cannot run in a transaction run as written, on Alembic's one
// connection.
func alembicFiles(dir string, revs []revision, opts ExportOptions) map[string]string {
	files := map[string]string{}
	if _, err := os.Stat(filepath.Join(dir, "env.py")); err != nil {
		files["env.py"] = alembicEnv
		files["alembic.ini"] = alembicINI
		files["script.py.mako"] = alembicMako
	}
	down := opts.AlembicDownRevision
	for _, r := range revs {
		// Alembic refuses "-" in a revision id and stores at most 32
		// characters; the number keeps ids unique.
		id := strings.ReplaceAll(r.Name, "-", "_")
		if len(id) > 32 {
			id = id[:32]
		}
		var b strings.Builder
		b.WriteString(`"""` + pyDocstring(strings.Join(r.header(opts), "\n\n")) + "\n\n")
		fmt.Fprintf(&b, "Revision ID: %s\nRevises: %s\n\"\"\"\nfrom alembic import op\n\n", id, down)
		fmt.Fprintf(&b, "revision = %s\ndown_revision = %s\nbranch_labels = None\ndepends_on = None\n\n", pyString(id), pyOptional(down))
		b.WriteString(`
def run(sql):
    # Outside Alembic's transaction: each string is a whole transaction
    # (BEGIN ... COMMIT) or a statement that cannot run in one.
    with op.get_context().autocommit_block():
        op.execute(sql)

`)
		b.WriteString("\ndef upgrade():\n")
		alembicUnits(&b, r.Up)
		b.WriteString("\n\ndef downgrade():\n")
		if r.Phase.Irreversible != "" {
			fmt.Fprintf(&b, "    raise RuntimeError(%s)\n", pyString(fmt.Sprintf("%s phase %s is irreversible: %s", r.Spec.ID, r.Phase.Name, r.Phase.Irreversible)))
		} else {
			alembicUnits(&b, r.Down)
		}
		files[filepath.Join("versions", r.Name+".py")] = b.String()
		down = id
	}
	return files
}

func alembicUnits(b *strings.Builder, units []sqlUnit) {
	if len(units) == 0 {
		b.WriteString("    pass  # no SQL: nothing to do in the schema\n")
	}
	for _, u := range units {
		if u.Comment != "" {
			b.WriteString("    # " + u.Comment + "\n")
		}
		for _, s := range []string{u.Setup, u.SQL, u.Teardown} {
			if s != "" {
				b.WriteString("    run(" + pyString(escapeBinds(s)) + ")\n")
			}
		}
	}
}

// escapeBinds keeps SQLAlchemy's text(), which op.execute applies to a
// string, from reading ":name" as a bind parameter: it becomes "\:name",
// which text() turns back into ":name" (and "\:name" into "\\:name", since
// text() drops the backslash of "\:name" too). A "::" cast is left alone,
// as text() leaves it.
func escapeBinds(sql string) string {
	var b strings.Builder
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		if c == ':' && i+1 < len(sql) && isWord(sql[i+1]) && (i == 0 || !(isWord(sql[i-1]) || sql[i-1] == ':')) {
			j := i + 1
			for j < len(sql) && isWord(sql[j]) {
				j++
			}
			if j >= len(sql) || sql[j] != ':' {
				b.WriteByte('\\')
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isWord(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

var tripleQuoteSafe = regexp.MustCompile(`"""|\\$`)

// pyString is a Python string literal of s: a raw triple-quoted string
// when s allows it (readable SQL), else a JSON string, which Python reads
// the same.
func pyString(s string) string {
	if !strings.ContainsRune(s, '\n') && !strings.ContainsAny(s, `"\`) {
		return `"` + s + `"`
	}
	if !tripleQuoteSafe.MatchString(s) && !strings.HasSuffix(s, `"`) {
		return `r"""` + s + `"""`
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSpace(buf.String())
}

func pyOptional(s string) string {
	if s == "" {
		return "None"
	}
	return pyString(s)
}

// pyDocstring keeps text from ending the docstring it is in.
func pyDocstring(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"""`, `\"\"\"`).Replace(s)
}

const alembicINI = `# Written by planner export. Run: alembic -c alembic.ini upgrade +1
# The database URL: DATABASE_URL, or -x url=postgresql://..., or
# sqlalchemy.url below.
[alembic]
script_location = %(here)s
sqlalchemy.url =

[loggers]
keys = root,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARN
handlers = console

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
`

const alembicEnv = `# Written by planner export: a minimal env.py that runs the revisions in
# versions/ online against one database.
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)


def database_url():
    url = (context.get_x_argument(as_dictionary=True).get("url")
           or os.environ.get("DATABASE_URL")
           or config.get_main_option("sqlalchemy.url"))
    if not url:
        raise SystemExit("no database: set DATABASE_URL, pass -x url=..., or set sqlalchemy.url in alembic.ini")
    # SQLAlchemy knows PostgreSQL as postgresql://, not postgres://.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    return url


def run_migrations_online():
    engine = create_engine(database_url())
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("these revisions run online only: their transactions are their own")
run_migrations_online()
`

const alembicMako = `"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""
from alembic import op
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade():
    ${upgrades if upgrades else "pass"}


def downgrade():
    ${downgrades if downgrades else "pass"}
`

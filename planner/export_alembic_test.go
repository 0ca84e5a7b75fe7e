package planner

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgplanner/planner/internal/pgtest"
)

// SQL written into an Alembic revision reaches PostgreSQL as written:
// through the Python literal, SQLAlchemy's text() (which op.execute
// applies; ":name" would be a bind parameter) and psycopg2 ("%").
func TestAlembicSQLRoundTrip(t *testing.T) {
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import sqlalchemy, psycopg2").CombinedOutput(); err != nil {
		t.Fatalf("Debian's alembic is needed: apt-get install python3-alembic python3-psycopg2 (make test installs them): %v\n%s", err, out)
	}
	db := pgtest.NewDB(t)
	values := []string{
		`:name and :x::text, a:b, ::regclass, x := 1, "q""uote"`,
		`100% and %s and %(x)s`,
		"multi\nline\twith \\ backslashes \\n and a trailing \\",
		`ends with a quote "`,
		`three """ quotes and ''' and \:already`,
		"ünïcødé :ñ",
		`:a$b $1:x`,
	}
	var b strings.Builder
	b.WriteString("import json, sys\nfrom sqlalchemy import create_engine, text\n")
	b.WriteString("engine = create_engine(sys.argv[1])\nout = []\nwith engine.connect() as c:\n")
	for _, v := range values {
		sql := "SELECT $v$" + v + "$v$"
		b.WriteString("    out.append(c.execute(text(" + pyString(escapeBinds(sql)) + ")).scalar())\n")
	}
	b.WriteString("print(json.dumps(out))\n")
	script := filepath.Join(t.TempDir(), "roundtrip.py")
	if err := os.WriteFile(script, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "postgresql://" + strings.TrimPrefix(strings.TrimPrefix(db.URL, "postgres://"), "postgresql://")
	out, err := exec.Command(python, script, url).Output()
	if err != nil {
		t.Fatalf("python: %v\n%s\n%s", err, out, b.String())
	}
	var got []string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for i, v := range values {
		if got[i] != v {
			t.Errorf("sent %q, PostgreSQL got %q", v, got[i])
		}
	}
}

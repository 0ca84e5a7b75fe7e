package planner

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds the spec parser arbitrary bytes. It must never panic;
// it returns either valid specs or SpecErrors that all name the file, and
// valid specs survive encodeSpec/decodeSpec unchanged.
func FuzzParse(f *testing.F) {
	err := filepath.WalkDir("testdata/specs", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err == nil {
			f.Add(data)
		}
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		"",
		"changes: []",
		"changes: [{id: a, kind: drop_column, table: t, column: c}]",
		"x-a: &a {table: t}\nchanges: [{id: a, kind: add_index, table: *a, columns: [*a]}]",
		"changes:\n  - id: a\n    kind: add_foreign_key\n    table: t\n    columns: [a]\n    references: {table: u, columns: [id]}\n",
		"changes:\n  - &x {id: a, kind: drop_column, table: t, column: c}\n  - *x\n",
		"changes:\n  - id: a\n    kind: add_column\n    table: '\"a\"\"b\".\"c d\"'\n    column: \"\\u0000\"\n    type: text\n",
		"{\"changes\": [{\"id\": \"a\", \"kind\": \"rename_column\", \"table\": \"t\", \"column\": \"a\", \"to\": \"b\"}]}",
		"x-d: &d {table: t, column: c}\nchanges:\n  - id: a\n    kind: drop_column\n    <<: [*d, {column: e}]\n",
		"x-d: &d {<<: {table: t}}\nchanges:\n  - {id: a, kind: drop_column, <<: *d, column: c}\n",
		"changes: !!map {? a}",
		"[[[[[[[[[[",
		"\t- id",
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "fuzz.yaml"
		specs, err := Parse(file, data)
		if err != nil {
			if specs != nil {
				t.Fatalf("specs returned with an error: %v", err)
			}
			if !errors.Is(err, ErrInput) {
				t.Fatalf("error is not ErrInput: %v", err)
			}
			var es SpecErrors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is %T, not SpecErrors: %v", err, err)
			}
			for _, e := range es {
				if e.File != file || e.Message == "" || e.Line < 0 || e.Col < 0 {
					t.Fatalf("malformed error %#v", e)
				}
				if strings.Contains(e.Message, "internal error") {
					t.Fatalf("internal error for input %q: %v", data, e)
				}
			}
			return
		}
		if len(specs) == 0 {
			t.Fatal("no specs and no error")
		}
		for i, s := range specs {
			if s.ID == "" || s.Change == nil || len(s.Checksum) != 64 || s.Order != i || s.File != file || s.Line < 1 {
				t.Fatalf("malformed spec %#v", s)
			}
			enc, err := encodeSpec(s)
			if err != nil {
				t.Fatalf("encode %s: %v", s.ID, err)
			}
			dec, err := decodeSpec(enc)
			if err != nil {
				t.Fatalf("decode %s: %v", enc, err)
			}
			if !reflect.DeepEqual(dec, s) {
				t.Fatalf("round trip changed the spec:\n got %#v\nwant %#v", dec, s)
			}
		}
	})
}

// Loading specs: from a file or every spec file of a directory (Load), or
// from bytes already read (Parse).

package planner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Load reads specs from a file or from every *.yaml and *.yml file in a
// directory.
func Load(path string) ([]Spec, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, SpecErrors{{File: path, Message: describeOSError(err)}}
	}
	if st.IsDir() {
		return loadDir(path)
	}
	return parseFile(path)
}

// parseFile reads and parses one spec file (a regular file of at most
// MaxSpecSize bytes).
func parseFile(path string) ([]Spec, error) {
	data, err := readSpecFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// loadDir parses the *.yaml and *.yml files of dir (not its subdirectories)
// in name order. Change ids must be unique across all of them; Order counts
// across files.
func loadDir(dir string) ([]Spec, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, SpecErrors{{File: dir, Message: describeOSError(err)}}
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") {
			continue
		}
		if ext := filepath.Ext(n); ext == ".yaml" || ext == ".yml" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, SpecErrors{{File: dir, Message: "no spec files (*.yaml, *.yml) in directory"}}
	}
	var (
		specs []Spec
		errs  SpecErrors
		first = map[string]parsedSpec{}
	)
	for _, n := range names {
		path := filepath.Join(dir, n)
		data, err := readSpecFile(path)
		if err != nil {
			errs = append(errs, err.(SpecErrors)...)
			continue
		}
		p := newSpecParser(path, kinds)
		got := p.parse(data)
		for _, s := range got {
			if f, dup := first[s.ID]; dup {
				errs = append(errs, SpecError{
					File: s.File, Line: s.idLine, Col: s.idCol,
					Path:    fmt.Sprintf("changes[%d].id", s.index),
					Message: fmt.Sprintf("duplicate change id %q (first defined at %s:%d:%d)", s.ID, f.File, f.idLine, f.idCol),
					Hint:    "change ids must be unique across all spec files",
				})
				continue
			}
			first[s.ID] = s
			if s.valid {
				s.Order = len(specs)
				specs = append(specs, s.Spec)
			}
		}
		errs = append(errs, p.errs...)
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return specs, nil
}

// Parse parses the spec file named file (used in messages) with contents
// data. On any problem it returns nil and a SpecErrors listing them all.
func Parse(file string, data []byte) ([]Spec, error) {
	p := newSpecParser(file, kinds)
	got := p.parse(data)
	if len(p.errs) > 0 {
		p.errs.sort()
		return nil, p.errs
	}
	specs := make([]Spec, 0, len(got))
	for _, s := range got {
		s.Order = len(specs)
		specs = append(specs, s.Spec)
	}
	return specs, nil
}

func describeOSError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

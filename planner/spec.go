package planner

// Spec files are decoded strictly: the YAML is parsed into yaml.Node trees
// and walked by hand against each kind's struct, so that every problem can be
// reported with its file:line:col, its field path and a hint, and so that all
// problems in a file are reported at once rather than the first one only.
//
// Field convention for kind structs (the contract with planner/kind_*.go):
//   - a field's spec key is its `yaml:"key"` tag (untagged exported fields use
//     the lower-cased field name; `yaml:"-"` and unexported fields are skipped;
//     embedded structs and `,inline` fields contribute their fields);
//   - a field is REQUIRED unless its tag has `,omitempty`; bool fields are
//     always optional (absent means false);
//   - supported types: string (and named string types), bool, integers,
//     []string, nested structs, and pointers to those.
//   - a key that is present must have a value: `default:` with nothing after
//     it, "" and [] are errors even for optional fields.
//
// A spec file is a mapping with one key, `changes`, a list of changes; each
// change has `id`, `kind` and the kind's fields. Top-level keys starting with
// "x-" are ignored so that they can hold YAML anchors, which changes use
// through aliases (`table: *users`) or merge keys (`<<: *defaults`).

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// SpecError is one problem in a spec file. Line and Col are 1-based; 0 means
// unknown (e.g. a file that cannot be read).
type SpecError struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Path    string `json:"path,omitempty"` // e.g. changes[1].references.table
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

func (e SpecError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInput) true: a bad spec is bad input.
func (e SpecError) Is(target error) bool { return target == ErrInput }

// SpecErrors is every problem found, in file then position order.
type SpecErrors []SpecError

func (es SpecErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInput) true.
func (es SpecErrors) Is(target error) bool { return target == ErrInput }

func (es SpecErrors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// Load reads specs from a file or from every *.yaml and *.yml file in a
// directory.
func Load(path string) ([]Spec, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, SpecErrors{{File: path, Message: describeOSError(err)}}
	}
	if st.IsDir() {
		return LoadDir(path)
	}
	return ParseFile(path)
}

// ParseFile reads and parses one spec file (a regular file of at most
// MaxSpecSize bytes).
func ParseFile(path string) ([]Spec, error) {
	data, err := readSpecFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// LoadDir parses the *.yaml and *.yml files of dir (not its subdirectories)
// in name order. Change ids must be unique across all of them; Order counts
// across files.
func LoadDir(dir string) ([]Spec, error) {
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

// parsedSpec is a Spec plus where its id sits, for duplicate-id messages.
type parsedSpec struct {
	Spec
	index         int // position in the file's changes list
	idLine, idCol int
	valid         bool // false: the change has errors (ID is set if the id itself is fine)
}

type specParser struct {
	file  string
	data  []byte // the file's text, for columns inside values
	kinds map[string]func() Kind
	errs  SpecErrors
}

func newSpecParser(file string, kinds map[string]func() Kind) *specParser {
	return &specParser{file: file, kinds: kinds}
}

func (p *specParser) add(n *yaml.Node, path, hint, format string, args ...any) {
	e := SpecError{File: p.file, Path: path, Message: fmt.Sprintf(format, args...), Hint: hint}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

var yamlErrorLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// readYAML parses data into a single document node, reporting syntax errors
// with the line yaml gives.
func (p *specParser) readYAML(data []byte) (doc *yaml.Node) {
	defer func() {
		// yaml.v3 has panicked on hostile input in the past; a spec parser
		// must not take the process down with it.
		if r := recover(); r != nil {
			doc = nil
			p.add(nil, "", "", "not valid YAML: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if err == io.EOF {
			p.add(&yaml.Node{Line: 1, Column: 1}, "", "start the file with `changes:` followed by a list of changes",
				"empty spec file: expected a mapping with a `changes:` list")
			return nil
		}
		p.syntaxError(err)
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
	case err != nil:
		p.syntaxError(err)
		return nil
	default:
		p.add(&extra, "", "put all changes in one `changes:` list", "more than one YAML document in the file")
		return nil
	}
	return &root
}

func (p *specParser) syntaxError(err error) {
	msg := err.Error()
	if m := yamlErrorLineRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.add(&yaml.Node{Line: line}, "", yamlSyntaxHint(m[2]), "YAML syntax error: %s", m[2])
		return
	}
	p.add(nil, "", yamlSyntaxHint(msg), "not valid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

func yamlSyntaxHint(msg string) string {
	switch {
	case strings.Contains(msg, "found character that cannot start any token"):
		return "indent with spaces, not tabs; quote values that start with @, ` or %"
	case strings.Contains(msg, "mapping values are not allowed"):
		return "check the indentation, and quote values that contain \": \""
	case strings.Contains(msg, "tab character"):
		return "indent with spaces, not tabs"
	case strings.Contains(msg, "unexpected end of stream"):
		return "check for an unclosed quote or bracket"
	case strings.Contains(msg, "did not find expected key"), strings.Contains(msg, "did not find expected '-'"):
		return "check the indentation of the lines around it"
	}
	return ""
}

func (p *specParser) parse(data []byte) []parsedSpec {
	p.data = data
	doc := p.readYAML(data)
	if doc == nil {
		return nil
	}
	var top *yaml.Node
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		top = resolveAlias(doc.Content[0])
	}
	if top == nil || isNullNode(top) {
		p.add(&yaml.Node{Line: 1, Column: 1}, "", "start the file with `changes:` followed by a list of changes",
			"empty spec file: expected a mapping with a `changes:` list")
		return nil
	}
	switch top.Kind {
	case yaml.MappingNode:
	case yaml.SequenceNode:
		p.add(top, "", "put `changes:` on the first line and indent the list under it",
			"the file is a list; expected a mapping with a `changes:` list")
		return nil
	default:
		p.add(top, "", "a spec file starts with `changes:` followed by a list of changes",
			"not a spec file: expected a mapping with a `changes:` list, found %s", describeYAMLNode(top))
		return nil
	}

	var changes *yaml.Node
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := resolveAlias(top.Content[i]), top.Content[i+1]
		name, ok := p.key(k, "")
		if !ok {
			continue
		}
		if prev, dup := seen[name]; dup {
			p.add(k, name, "", "duplicate key %q (first at line %d)", name, prev.Line)
			continue
		}
		seen[name] = k
		if strings.HasPrefix(name, "x-") {
			continue // extension keys hold YAML anchors shared by changes
		}
		if name != "changes" {
			p.add(k, name, didYouMean(name, []string{"changes"}, "the only top-level keys are `changes` and x-... keys holding anchors"),
				"unknown top-level key %q", name)
			continue
		}
		changes = resolveAlias(v)
	}
	if changes == nil {
		if _, present := seen["changes"]; !present {
			p.add(top, "", "list the changes under a top-level `changes:` key", "no `changes:` in the file")
		}
		return nil
	}
	switch {
	case isNullNode(changes):
		p.add(changes, "changes", "list at least one change under `changes:`", "`changes` is empty")
		return nil
	case changes.Kind != yaml.SequenceNode:
		p.add(changes, "changes", "write each change as a list item starting with `- id:`",
			"expected a list of changes, found %s", describeYAMLNode(changes))
		return nil
	case len(changes.Content) == 0:
		p.add(changes, "changes", "list at least one change under `changes:`", "`changes` is empty")
		return nil
	}

	var specs []parsedSpec
	ids := map[string]parsedSpec{}
	for i, item := range changes.Content {
		s := p.change(i, resolveAlias(item))
		if s.ID == "" {
			continue
		}
		// Duplicates are reported even when either change has other errors.
		if prev, dup := ids[s.ID]; dup {
			p.add(&yaml.Node{Line: s.idLine, Column: s.idCol}, fmt.Sprintf("changes[%d].id", i),
				"change ids must be unique across all spec files",
				"duplicate change id %q (first defined at %s:%d:%d)", s.ID, p.file, prev.idLine, prev.idCol)
			continue
		}
		ids[s.ID] = s
		specs = append(specs, s)
	}
	return specs
}

var specIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// maxIDLength keeps names derived from an id (flag keys, trigger names)
// within PostgreSQL's 63-byte identifiers.
const maxIDLength = 63

// change decodes one item of the changes list.
func (p *specParser) change(i int, n *yaml.Node) (s parsedSpec) {
	path := fmt.Sprintf("changes[%d]", i)
	s.index = i
	if n.Kind != yaml.MappingNode {
		p.add(n, path, "start each change with `- id: <id>` and indent its `kind:` and fields under it",
			"expected a change (a mapping with id, kind and fields), found %s", describeYAMLNode(n))
		return s
	}
	before := len(p.errs)
	s.File, s.Line = p.file, n.Line

	var idNode, kindNode *yaml.Node
	keys := p.keys(n, path)
	for _, kv := range keys {
		switch kv.name {
		case "id":
			idNode = kv.value
		case "kind":
			kindNode = kv.value
		}
	}
	if idNode == nil {
		p.add(n, path, "add `id: <lower-case-id>` as the first line of the change", "missing required field \"id\"")
	} else if id, ok := p.scalarString(idNode, path+".id"); ok {
		switch {
		case specIDRe.MatchString(id) && len(id) <= maxIDLength:
			s.ID, s.idLine, s.idCol = id, idNode.Line, idNode.Column
		case !specIDRe.MatchString(id):
			p.add(idNode, path+".id", fmt.Sprintf("try %q", suggestSpecID(id)),
				"bad change id %q: expected lower-case letters, digits, '_', '.' and '-', starting with a letter or digit", id)
		case len(id) > maxIDLength:
			p.add(idNode, path+".id", "use a shorter id", "change id is %d bytes long; at most %d allowed", len(id), maxIDLength)
		}
	}

	var newKind func() Kind
	if kindNode == nil {
		p.add(n, path, "add `kind: <kind>`, one of: "+strings.Join(sortedKindNames(p.kinds), ", "), "missing required field \"kind\"")
	} else if name, ok := p.scalarString(kindNode, path+".kind"); ok {
		if f, known := p.kinds[name]; known {
			s.Kind, newKind = name, f
		} else {
			p.add(kindNode, path+".kind", didYouMean(name, sortedKindNames(p.kinds), "known kinds: "+strings.Join(sortedKindNames(p.kinds), ", ")),
				"unknown change kind %q", name)
		}
	}
	if newKind == nil {
		return s // fields cannot be checked without knowing the kind
	}

	change := newKind()
	v := reflect.ValueOf(change)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		p.add(n, path, "", "internal error: kind %s is not a pointer to a struct", s.Kind)
		return s
	}
	beforeFields := len(p.errs)
	p.fields(v.Elem(), n, keys, path, "for kind "+s.Kind, []string{"id", "kind"})
	if len(p.errs) > beforeFields {
		return s // Check would repeat what decoding found
	}
	s.Change = change
	for _, pr := range p.check(change, s.Kind) {
		at, fieldPath := locateSpecField(n, pr.Field)
		full := path
		if fieldPath != "" {
			full += "." + fieldPath
		}
		if pr.offset > 0 {
			at = p.insideValue(at, pr.offset-1)
		}
		p.add(at, full, pr.Hint, "%s", pr.Message)
	}
	if len(p.errs) > before {
		return s
	}
	sum, err := specChecksum(s.Kind, change)
	if err != nil {
		p.add(n, path, "", "internal error: %v", err)
		return s
	}
	s.Checksum = sum
	s.valid = true
	return s
}

// insideValue points at byte offset of scalar n's value in the file, when
// the scalar sits on one line and its source text there is the value itself
// (plain, or quoted without escapes); else at the scalar.
func (p *specParser) insideValue(n *yaml.Node, offset int) *yaml.Node {
	if n.Kind != yaml.ScalarNode || offset > len(n.Value) || strings.Contains(n.Value, "\n") || n.Line < 1 || n.Column < 1 {
		return n
	}
	quote := 0
	switch n.Style {
	case 0, yaml.FlowStyle:
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		quote = 1
	default:
		return n
	}
	lines := strings.Split(string(p.data), "\n")
	if n.Line > len(lines) {
		return n
	}
	src := []rune(lines[n.Line-1])
	if n.Column-1+quote > len(src) || !strings.HasPrefix(string(src[n.Column-1+quote:]), n.Value[:offset]) {
		return n
	}
	return &yaml.Node{Line: n.Line, Column: n.Column + quote + utf8.RuneCountInString(n.Value[:offset])}
}

// check runs the kind's own validation; a panic in it becomes an error so a
// bad spec cannot crash the planner (the fuzz test fails on such errors).
func (p *specParser) check(k Kind, kind string) (ps []Problem) {
	defer func() {
		if r := recover(); r != nil {
			ps = []Problem{{Message: fmt.Sprintf("internal error: %s check panicked: %v", kind, r)}}
		}
	}()
	return k.Check()
}

type specKey struct {
	name       string
	key, value *yaml.Node
}

// keys lists a mapping's keys, reporting non-string and duplicate keys.
// YAML merge keys (`<<: *defaults`) contribute the keys the mapping does not
// set itself.
func (p *specParser) keys(n *yaml.Node, path string) []specKey {
	return p.mergedKeys(n, path, 0)
}

// maxMergeDepth bounds merges of merges.
const maxMergeDepth = 8

func (p *specParser) mergedKeys(n *yaml.Node, path string, depth int) []specKey {
	var kvs, merged []specKey
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolveAlias(n.Content[i])
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, p.merge(resolveAliasAt(n.Content[i+1]), path, depth)...)
			continue
		}
		name, ok := p.key(k, path)
		if !ok {
			continue
		}
		if prev, dup := seen[name]; dup {
			p.add(k, joinPath(path, name), "remove one of them", "duplicate key %q (first at line %d)", name, prev.Line)
			continue
		}
		seen[name] = k
		kvs = append(kvs, specKey{name: name, key: k, value: resolveAliasAt(n.Content[i+1])})
	}
	for _, m := range merged {
		if _, set := seen[m.name]; !set {
			seen[m.name] = m.key
			kvs = append(kvs, m)
		}
	}
	return kvs
}

// merge returns the keys a `<<` value brings: one mapping, or a list of
// mappings where earlier ones win.
func (p *specParser) merge(v *yaml.Node, path string, depth int) []specKey {
	if depth >= maxMergeDepth {
		p.add(v, joinPath(path, "<<"), "", "merges nested more than %d deep", maxMergeDepth)
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return p.mergedKeys(v, path, depth+1)
	case yaml.SequenceNode:
		var out []specKey
		seen := map[string]bool{}
		for _, item := range v.Content {
			for _, kv := range p.merge(resolveAliasAt(item), path, depth+1) {
				if !seen[kv.name] {
					seen[kv.name] = true
					out = append(out, kv)
				}
			}
		}
		return out
	}
	p.add(v, joinPath(path, "<<"), "write `<<: *anchor` where the anchor names a mapping", "a merge key needs a mapping, found %s", describeYAMLNode(v))
	return nil
}

func (p *specParser) key(k *yaml.Node, path string) (string, bool) {
	if k.Kind != yaml.ScalarNode || isNullNode(k) || k.Value == "" {
		p.add(k, path, "keys are field names such as `table`", "expected a field name, found %s", describeYAMLNode(k))
		return "", false
	}
	return k.Value, true
}

// fields decodes the keys of mapping n into struct v. skip lists keys handled
// by the caller (id and kind at the top of a change).
func (p *specParser) fields(v reflect.Value, n *yaml.Node, keys []specKey, path, owner string, skip []string) {
	infos, err := specFields(v.Type())
	if err != nil {
		p.add(n, path, "", "internal error: %v", err)
		return
	}
	byName := map[string]specField{}
	var names []string
	for _, f := range infos {
		byName[f.name] = f
		names = append(names, f.name)
	}
	present := map[string]bool{}
	suggested := map[string]bool{} // a typo's "did you mean" already covers the missing field
	for _, kv := range keys {
		if containsString(skip, kv.name) {
			continue
		}
		f, ok := byName[kv.name]
		if !ok {
			valid := append(append([]string{}, skip...), names...)
			hint := didYouMean(kv.name, valid, "valid fields: "+strings.Join(valid, ", "))
			if near, ok := nearestName(kv.name, valid); ok {
				suggested[near] = true
			}
			p.add(kv.key, joinPath(path, kv.name), hint, "unknown field %q %s", kv.name, owner)
			continue
		}
		present[kv.name] = true
		p.value(v.FieldByIndex(f.index), kv.value, joinPath(path, kv.name))
	}
	for _, f := range infos {
		if f.required && !present[f.name] && !suggested[f.name] {
			p.add(n, joinPath(path, f.name), fmt.Sprintf("add `%s: %s`", f.name, fieldPlaceholder(f.typ)),
				"missing required field %q %s: expected %s", f.name, owner, describeSpecType(f.typ))
		}
	}
}

// value decodes node n into v, whose type structFields has vetted.
func (p *specParser) value(v reflect.Value, n *yaml.Node, path string) {
	if isNullNode(n) {
		p.add(n, path, "give it a value or remove the line", "empty value: expected %s", describeSpecType(v.Type()))
		return
	}
	if u, ok := asTextUnmarshaler(v); ok {
		s, ok := p.scalarString(n, path)
		if !ok {
			return
		}
		if err := u.UnmarshalText([]byte(s)); err != nil {
			p.add(n, path, "", "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		p.value(elem.Elem(), n, path)
		v.Set(elem)
	case reflect.String:
		if s, ok := p.scalarString(n, path); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			hint := "write true or false"
			if n.Kind == yaml.ScalarNode {
				switch strings.ToLower(n.Value) {
				case "true", "yes", "y", "on", "1":
					hint = "write true"
				case "false", "no", "n", "off", "0":
					hint = "write false"
				}
				if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
					hint += " without quotes"
				}
			}
			p.add(n, path, hint, "expected true or false, found %s", describeYAMLNode(n))
			return
		}
		v.SetBool(strings.EqualFold(n.Value, "true"))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		var err error = errors.New("not an integer")
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
			i, err = strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		}
		if err != nil || v.OverflowInt(i) {
			p.add(n, path, "", "expected an integer, found %s", describeYAMLNode(n))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var u uint64
		var err error = errors.New("not an integer")
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
			u, err = strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		}
		if err != nil || v.OverflowUint(u) {
			p.add(n, path, "", "expected a non-negative integer, found %s", describeYAMLNode(n))
			return
		}
		v.SetUint(u)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			hint := ""
			if n.Kind == yaml.ScalarNode {
				hint = fmt.Sprintf("write a list: [%s]", n.Value)
			}
			p.add(n, path, hint, "expected %s, found %s", describeSpecType(v.Type()), describeYAMLNode(n))
			return
		}
		if len(n.Content) == 0 {
			p.add(n, path, "list at least one item or remove the line", "empty list: expected %s", describeSpecType(v.Type()))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p.value(s.Index(i), resolveAliasAt(item), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			p.add(n, path, "", "expected %s, found %s", describeSpecType(v.Type()), describeYAMLNode(n))
			return
		}
		p.fields(v, n, p.keys(n, path), path, "in "+lastPathSegment(path), nil)
	default:
		p.add(n, path, "", "internal error: unsupported field type %s", v.Type())
	}
}

// scalarString reads a scalar as text. Numbers and booleans are accepted as
// their source text because SQL expressions such as `backfill: 0` or
// `default: false` are natural to write unquoted.
func (p *specParser) scalarString(n *yaml.Node, path string) (string, bool) {
	switch {
	case isNullNode(n):
		p.add(n, path, "give it a value or remove the line", "empty value: expected a string")
		return "", false
	case n.Kind != yaml.ScalarNode:
		p.add(n, path, "", "expected a string, found %s", describeYAMLNode(n))
		return "", false
	case n.Style&yaml.TaggedStyle != 0 && n.ShortTag() != "!!str":
		p.add(n, path, "remove the tag", "expected a string, found a value tagged %s", n.Tag)
		return "", false
	case strings.TrimSpace(n.Value) == "":
		p.add(n, path, "give it a value or remove the line", "empty value: expected a non-empty string")
		return "", false
	}
	return n.Value, true
}

// resolve follows aliases (*anchor) to the anchored node.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		if n.Alias == nil {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
		}
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	return n
}

// resolveAliasAt is resolveAlias for a value: the result keeps the alias's
// position so that errors point where the alias is used.
func resolveAliasAt(n *yaml.Node) *yaml.Node {
	if n == nil || n.Kind != yaml.AliasNode {
		return resolveAlias(n)
	}
	r := *resolveAlias(n)
	r.Line, r.Column = n.Line, n.Column
	return &r
}

func isNullNode(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func describeYAMLNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!bool":
			return "boolean " + n.Value
		case "!!int", "!!float":
			return "number " + n.Value
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return strconv.Quote(v)
	}
	return "nothing"
}

func describeSpecType(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(describeSpecType(t.Elem()), "a "), "an ") + "s"
	case reflect.Struct:
		infos, _ := specFields(t)
		var names []string
		for _, f := range infos {
			names = append(names, f.name)
		}
		return "a mapping with " + strings.Join(names, ", ")
	}
	return t.String()
}

func fieldPlaceholder(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true"
	case reflect.Slice:
		return "[a, b]"
	case reflect.Struct:
		return "{...}"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "<number>"
	}
	return "<value>"
}

// locateField finds the node a Problem's Field ("to", "columns[1]",
// "references.table") refers to. When the field is absent it falls back to
// the deepest node found (at worst the change itself) and returns the path
// as given.
func locateSpecField(change *yaml.Node, field string) (*yaml.Node, string) {
	at := change
	if field == "" {
		return at, ""
	}
	cur := change
	for _, seg := range splitSpecFieldPath(field) {
		var next *yaml.Node
		switch {
		case seg.index >= 0 && cur.Kind == yaml.SequenceNode && seg.index < len(cur.Content):
			next = resolveAlias(cur.Content[seg.index])
		case seg.index < 0 && cur.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(cur.Content); i += 2 {
				if k := resolveAlias(cur.Content[i]); k.Value == seg.name {
					next = resolveAlias(cur.Content[i+1])
					break
				}
			}
		}
		if next == nil {
			break
		}
		cur, at = next, next
	}
	return at, field
}

type fieldPathSegment struct {
	name  string
	index int // -1 for a key
}

func splitSpecFieldPath(field string) []fieldPathSegment {
	var segs []fieldPathSegment
	for _, part := range strings.Split(field, ".") {
		name := part
		var idx []int
		if b := strings.IndexByte(part, '['); b >= 0 {
			name = part[:b]
			for _, m := range strings.Split(part[b:], "[")[1:] {
				i, err := strconv.Atoi(strings.TrimSuffix(m, "]"))
				if err != nil {
					i = -2 // never matches
				}
				idx = append(idx, i)
			}
		}
		if name != "" {
			segs = append(segs, fieldPathSegment{name: name, index: -1})
		}
		for _, i := range idx {
			if i < 0 {
				i = 1 << 30
			}
			segs = append(segs, fieldPathSegment{index: i})
		}
	}
	return segs
}

// fieldInfo is one spec key of a kind struct.
type specField struct {
	name      string
	index     []int
	typ       reflect.Type
	required  bool
	omitEmpty bool
}

var specFieldCache sync.Map // reflect.Type -> specFieldsResult

type specFieldsResult struct {
	fields []specField
	err    error
}

// structFields lists the spec keys of struct type t (see the convention at
// the top of this file).
func specFields(t reflect.Type) ([]specField, error) {
	if r, ok := specFieldCache.Load(t); ok {
		fr := r.(specFieldsResult)
		return fr.fields, fr.err
	}
	fields, err := collectSpecFields(t, nil, 0)
	if err == nil {
		seen := map[string]bool{}
		for _, f := range fields {
			if seen[f.name] {
				err = fmt.Errorf("%s: two fields use the key %q", t, f.name)
				break
			}
			seen[f.name] = true
		}
	}
	specFieldCache.Store(t, specFieldsResult{fields, err})
	return fields, err
}

func collectSpecFields(t reflect.Type, prefix []int, depth int) ([]specField, error) {
	if depth > 8 {
		return nil, fmt.Errorf("%s: structs nested too deeply", t)
	}
	var out []specField
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		inline := strings.Contains(","+opts+",", ",inline,") || (sf.Anonymous && name == "")
		index := append(append([]int{}, prefix...), i)
		if inline {
			if sf.Type.Kind() != reflect.Struct {
				return nil, fmt.Errorf("%s.%s: only non-pointer structs can be inlined", t, sf.Name)
			}
			sub, err := collectSpecFields(sf.Type, index, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		if err := supportedSpecType(sf.Type, depth); err != nil {
			return nil, fmt.Errorf("%s.%s: %v", t, sf.Name, err)
		}
		omit := strings.Contains(","+opts+",", ",omitempty,")
		out = append(out, specField{
			name: name, index: index, typ: sf.Type, omitEmpty: omit,
			required: !omit && sf.Type.Kind() != reflect.Bool,
		})
	}
	return out, nil
}

func supportedSpecType(t reflect.Type, depth int) error {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
		if t.Kind() == reflect.Pointer {
			return fmt.Errorf("pointer to pointer is not supported")
		}
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return nil
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return nil
	case reflect.Slice:
		if e := t.Elem(); e.Kind() == reflect.String || reflect.PointerTo(e).Implements(textUnmarshalerType) {
			return nil
		}
	case reflect.Struct:
		_, err := collectSpecFields(t, nil, depth+1)
		return err
	}
	return fmt.Errorf("type %s is not supported in specs", t)
}

type textUnmarshalerIface interface{ UnmarshalText([]byte) error }
type textMarshalerIface interface{ MarshalText() ([]byte, error) }

var (
	textUnmarshalerType = reflect.TypeFor[textUnmarshalerIface]()
	textMarshalerType   = reflect.TypeFor[textMarshalerIface]()
)

func asTextUnmarshaler(v reflect.Value) (textUnmarshalerIface, bool) {
	if v.Kind() == reflect.Pointer || !v.CanAddr() {
		return nil, false
	}
	u, ok := v.Addr().Interface().(textUnmarshalerIface)
	return u, ok
}

// canonical turns a kind struct into plain values keyed by spec key, leaving
// out unset optional fields so that adding an optional field to a kind does
// not change the checksums of existing specs.
func canonicalValue(v reflect.Value) (any, error) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, nil
		}
		v = v.Elem()
	}
	if v.Type().Implements(textMarshalerType) || reflect.PointerTo(v.Type()).Implements(textMarshalerType) {
		var m textMarshalerIface
		if v.CanAddr() {
			m, _ = v.Addr().Interface().(textMarshalerIface)
		}
		if m == nil {
			m, _ = v.Interface().(textMarshalerIface)
		}
		if m != nil {
			b, err := m.MarshalText()
			return string(b), err
		}
	}
	switch v.Kind() {
	case reflect.String:
		return v.String(), nil
	case reflect.Bool:
		return v.Bool(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint(), nil
	case reflect.Slice:
		if v.IsNil() {
			return nil, nil
		}
		out := make([]any, v.Len())
		for i := range out {
			e, err := canonicalValue(v.Index(i))
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	case reflect.Struct:
		infos, err := specFields(v.Type())
		if err != nil {
			return nil, err
		}
		out := map[string]any{}
		for _, f := range infos {
			fv := v.FieldByIndex(f.index)
			if !f.required && fv.IsZero() {
				continue
			}
			c, err := canonicalValue(fv)
			if err != nil {
				return nil, err
			}
			out[f.name] = c
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported type %s", v.Type())
}

func canonicalFields(k Kind) (map[string]any, error) {
	v := reflect.ValueOf(k)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("change of type %T is not a pointer to a struct", k)
	}
	c, err := canonicalValue(v.Elem())
	if err != nil {
		return nil, err
	}
	return c.(map[string]any), nil
}

// checksum is the sha256 of the canonical JSON {"fields":...,"kind":...}:
// maps marshal with sorted keys, so formatting and comments do not matter.
func specChecksum(kind string, k Kind) (string, error) {
	fields, err := canonicalFields(k)
	if err != nil {
		return "", err
	}
	b, err := marshalCanonical(map[string]any{"kind": kind, "fields": fields})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// marshalCanonical is json.Marshal without HTML escaping, so that stored
// expressions such as "amount > 0" stay readable.
func marshalCanonical(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// encodedSpec is the stored form of a spec: enough to compile it again when
// its file is gone.
type encodedSpec struct {
	ID     string          `json:"id"`
	Kind   string          `json:"kind"`
	Fields json.RawMessage `json:"fields"`
	File   string          `json:"file,omitempty"`
	Line   int             `json:"line,omitempty"`
	Order  int             `json:"order"`
}

// EncodeSpec serializes a spec as JSON {id, kind, fields, file, line, order}
// for the state tables.
func EncodeSpec(s Spec) ([]byte, error) {
	if s.Change == nil {
		return nil, fmt.Errorf("encode spec %q: no change", s.ID)
	}
	fields, err := canonicalFields(s.Change)
	if err != nil {
		return nil, fmt.Errorf("encode spec %q: %w", s.ID, err)
	}
	fb, err := marshalCanonical(fields)
	if err != nil {
		return nil, fmt.Errorf("encode spec %q: %w", s.ID, err)
	}
	return marshalCanonical(encodedSpec{ID: s.ID, Kind: s.Kind, Fields: fb, File: s.File, Line: s.Line, Order: s.Order})
}

// DecodeSpec reads what EncodeSpec wrote, decoding the fields as strictly as
// a spec file, and recomputes the checksum. It does not run the kind's Check:
// a stored spec was checked when it was registered.
func DecodeSpec(data []byte) (Spec, error) {
	var e encodedSpec
	if err := json.Unmarshal(data, &e); err != nil {
		return Spec{}, fmt.Errorf("decode spec: %v: %w", err, ErrInput)
	}
	source := "stored spec " + strconv.Quote(e.ID)
	newKind, ok := kinds[e.Kind]
	if !ok {
		return Spec{}, SpecErrors{{File: source, Path: "kind", Message: fmt.Sprintf("unknown change kind %q", e.Kind),
			Hint: "the spec was stored by a planner that knows this kind; use that version"}}
	}
	p := newSpecParser(source, kinds)
	// JSON is YAML, so the stored fields go through the same strict decoder.
	var doc yaml.Node
	if err := yaml.Unmarshal(e.Fields, &doc); err != nil || len(doc.Content) != 1 {
		return Spec{}, fmt.Errorf("decode spec %q: fields are not a JSON object: %w", e.ID, ErrInput)
	}
	n := resolveAlias(doc.Content[0])
	if n.Kind != yaml.MappingNode {
		return Spec{}, fmt.Errorf("decode spec %q: fields are not a JSON object: %w", e.ID, ErrInput)
	}
	change := newKind()
	v := reflect.ValueOf(change)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return Spec{}, fmt.Errorf("decode spec %q: kind %s is not a pointer to a struct", e.ID, e.Kind)
	}
	p.fields(v.Elem(), n, p.keys(n, "fields"), "fields", "for kind "+e.Kind, nil)
	if len(p.errs) > 0 {
		return Spec{}, p.errs
	}
	sum, err := specChecksum(e.Kind, change)
	if err != nil {
		return Spec{}, fmt.Errorf("decode spec %q: %w", e.ID, err)
	}
	return Spec{ID: e.ID, Kind: e.Kind, Change: change, File: e.File, Line: e.Line, Order: e.Order, Checksum: sum}, nil
}

// didYouMean suggests the candidate nearest to got by edit distance, or
// returns fallback when none is near enough to be a likely typo.
func didYouMean(got string, candidates []string, fallback string) string {
	if best, ok := nearestName(got, candidates); ok {
		return fmt.Sprintf("did you mean %q?", best)
	}
	return fallback
}

// nearestName is the candidate within typo distance of got, if any.
func nearestName(got string, candidates []string) (string, bool) {
	best, bestD := "", -1
	lg := strings.ToLower(got)
	for _, c := range candidates {
		d := specEditDistance(lg, strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(2, len(got)/3)
	return best, bestD >= 0 && bestD <= limit && bestD < len(got)
}

// editDistance is the Levenshtein distance between a and b, in runes.
func specEditDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return max(len(ra), len(rb)) // not a typo of a short key; keep it cheap
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// suggestID turns a bad id into one that would be accepted.
func suggestSpecID(id string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(id) {
		ok := (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' || r == '.' || r == '-'
		if !ok {
			dash = b.Len() > 0
			continue
		}
		if b.Len() == 0 && !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			continue
		}
		if dash {
			b.WriteByte('-')
			dash = false
		}
		b.WriteRune(r)
	}
	s := b.String()
	if len(s) > maxIDLength {
		s = s[:maxIDLength]
	}
	if s == "" {
		return "my-change"
	}
	return s
}

func sortedKindNames(m map[string]func() Kind) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func lastPathSegment(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

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
//
// This file is the parser and is long for that reason: one walker handles
// every YAML shape with positions, and its rules read best in one place.
// Reflection on kind structs is in spec_fields.go, errors in spec_errors.go.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

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
		if slices.Contains(skip, kv.name) {
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

// resolveAlias follows aliases (*anchor) to the anchored node.
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

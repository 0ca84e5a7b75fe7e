// Kind structs by reflection: their spec keys and types, how they read in
// messages, and how a Problem's field path finds its node.

package planner

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

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

// locateSpecField finds the node a Problem's Field ("to", "columns[1]",
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

// specField is one spec key of a kind struct.
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

// specFields lists the spec keys of struct type t (see the convention at
// the top of spec_decode.go).
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
		} else if e.Kind() == reflect.Struct {
			// A list of mappings (create_table's columns).
			_, err := collectSpecFields(e, nil, depth+1)
			return err
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

// A spec's canonical form: its checksum (what counts as an edit) and the
// JSON stored in the state tables.

package planner

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"

	"gopkg.in/yaml.v3"
)

// canonicalValue turns a kind struct into plain values keyed by spec key, leaving
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

// specChecksum is the sha256 of the canonical JSON {"fields":...,"kind":...}:
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

// encodeSpec serializes a spec as JSON {id, kind, fields, file, line, order}
// for the state tables.
func encodeSpec(s Spec) ([]byte, error) {
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

// decodeSpec reads what encodeSpec wrote, decoding the fields as strictly as
// a spec file, and recomputes the checksum. It does not run the kind's Check:
// a stored spec was checked when it was registered.
func decodeSpec(data []byte) (Spec, error) {
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

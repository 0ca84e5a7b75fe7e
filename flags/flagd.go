package flags

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// FlagdSchema is the JSON schema of flagd flag-definition files.
const FlagdSchema = "https://flagd.dev/schema/v0/flags.json"

type flagdFile struct {
	Schema string               `json:"$schema"`
	Flags  map[string]flagdFlag `json:"flags"`
}

type flagdFlag struct {
	State          string         `json:"state"`
	Variants       map[string]any `json:"variants"`
	DefaultVariant string         `json:"defaultVariant"`
	Metadata       map[string]any `json:"metadata,omitempty"`
}

// ExportFlagd writes flags as a flagd flag-definition file, so services in
// any language can read the planner's flags through flagd or its in-process
// and file providers. String flags keep their variants (value = variant
// name); the derived boolean flags (<change>.read_new, ...) are included
// with variants on/off. Output is deterministic (sorted keys).
func ExportFlagd(list []Flag) ([]byte, error) {
	file := flagdFile{Schema: FlagdSchema, Flags: map[string]flagdFlag{}}
	for _, f := range list {
		variants := Variants(f.Key)
		if variants == nil {
			variants = []string{f.Variant}
		}
		if !slices.Contains(variants, f.Variant) {
			return nil, fmt.Errorf("flags: %s: variant %q is not one of %s", f.Key, f.Variant, strings.Join(variants, ", "))
		}
		vs := map[string]any{}
		for _, v := range variants {
			vs[v] = v
		}
		file.Flags[f.Key] = flagdFlag{State: "ENABLED", Variants: vs, DefaultVariant: f.Variant, Metadata: flagdMeta(f, "")}
		for k, on := range derived(f) {
			def := Off
			if on {
				def = On
			}
			file.Flags[k] = flagdFlag{State: "ENABLED", Variants: map[string]any{On: true, Off: false},
				DefaultVariant: def, Metadata: flagdMeta(f, f.Key)}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(file); err != nil { // encoding/json sorts map keys
		return nil, err
	}
	return buf.Bytes(), nil
}

// flagdMeta is a flag's metadata in the export; flagd allows only scalar
// values there.
func flagdMeta(f Flag, derivedFrom string) map[string]any {
	m := map[string]any{}
	for k, v := range f.Metadata {
		m[k] = v
	}
	m["change_id"] = f.ChangeID
	m["phase"] = f.Phase
	m["updated_at"] = f.UpdatedAt.UTC().Format(time.RFC3339Nano)
	if derivedFrom != "" {
		m["derived_from"] = derivedFrom
	}
	return m
}

// ParseFlagd reads a file written by ExportFlagd back into flags (the
// derived boolean flags are skipped: they follow from the string flags).
func ParseFlagd(data []byte) ([]Flag, error) {
	var file flagdFile
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("flags: flagd file: %w", err)
	}
	if file.Schema != FlagdSchema {
		return nil, fmt.Errorf("flags: flagd file: $schema is %q, want %q", file.Schema, FlagdSchema)
	}
	var out []Flag
	for _, key := range slices.Sorted(maps.Keys(file.Flags)) {
		ff := file.Flags[key]
		if _, ok := ff.Metadata["derived_from"]; ok {
			continue
		}
		if _, ok := ff.Variants[ff.DefaultVariant]; !ok {
			return nil, fmt.Errorf("flags: flagd file: %s: defaultVariant %q is not a variant", key, ff.DefaultVariant)
		}
		f := Flag{Key: key, Variant: ff.DefaultVariant, Metadata: map[string]string{}}
		for k, v := range ff.Metadata {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("flags: flagd file: %s: metadata %s is not a string", key, k)
			}
			switch k {
			case "change_id":
				f.ChangeID = s
			case "phase":
				f.Phase = s
			case "updated_at":
				t, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					return nil, fmt.Errorf("flags: flagd file: %s: updated_at: %w", key, err)
				}
				f.UpdatedAt = t
			default:
				f.Metadata[k] = s
			}
		}
		if len(f.Metadata) == 0 {
			f.Metadata = nil
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

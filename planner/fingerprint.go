// Fingerprints of compiled phases. A change stores one per phase when it is
// registered; every later compile of the change (a stored change compiles
// again from its stored spec, snapshot and server version) is compared with
// them, so a planner whose compilation differs refuses an in-flight change
// instead of running SQL other than what its first phases were planned with.

package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/pgplanner/planner/phases"
)

// phaseFingerprint hashes what a phase does to the database: its name and
// gate, its statements (SQL, lock, transaction boundaries), its backfill,
// the flags it publishes, and its rollback. Descriptions, hold times and
// done-probes (read-only queries) are left out: they may be reworded
// without changing what runs.
func phaseFingerprint(p phases.Phase) string {
	type stmt struct {
		SQL           string      `json:"sql"`
		Lock          phases.Lock `json:"lock"`
		NoTransaction bool        `json:"no_transaction"`
		CommitAfter   bool        `json:"commit_after"`
	}
	stmts := func(in []phases.Statement) []stmt {
		out := make([]stmt, len(in))
		for i, s := range in {
			out[i] = stmt{SQL: s.SQL, Lock: s.Lock, NoTransaction: s.NoTransaction, CommitAfter: s.CommitAfter}
		}
		return out
	}
	// encoding/json writes map keys sorted: the encoding is canonical.
	b, err := json.Marshal(struct {
		Name          string           `json:"name"`
		Gate          phases.Gate      `json:"gate"`
		Statements    []stmt           `json:"statements"`
		Backfill      *phases.Backfill `json:"backfill"`
		Flags         phases.Flags     `json:"flags"`
		Rollback      []stmt           `json:"rollback"`
		RollbackFlags phases.Flags     `json:"rollback_flags"`
	}{p.Name, p.Gate, stmts(p.Statements), p.Backfill, p.Flags, stmts(p.Rollback), p.RollbackFlags})
	if err != nil {
		// Strings, booleans and maps of strings always encode.
		panic(fmt.Sprintf("planner: encode phase %s: %v", p.Name, err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// fingerprints is one fingerprint per phase of a plan.
func fingerprints(plan Plan) []string {
	out := make([]string, len(plan.Phases))
	for i, p := range plan.Phases {
		out[i] = phaseFingerprint(p)
	}
	return out
}

// storedFingerprints fingerprints a change state about to be stored,
// compiled as later runs will compile it: from its encoded spec and its
// snapshot as read back from the state tables.
func storedFingerprints(c *ChangeState) ([]string, error) {
	spec, err := decodeSpec(c.Spec)
	if err != nil {
		return nil, fmt.Errorf("change %q: decode its stored spec: %w", c.ID, err)
	}
	stored := *c
	if c.Catalog != nil {
		b, err := json.Marshal(c.Catalog)
		if err != nil {
			return nil, fmt.Errorf("change %q: encode its table snapshot: %w", c.ID, err)
		}
		stored.Catalog = new(Table)
		if err := json.Unmarshal(b, stored.Catalog); err != nil {
			return nil, fmt.Errorf("change %q: decode its table snapshot: %w", c.ID, err)
		}
	}
	spec.File, spec.Order = c.File, c.Order
	plan, err := compileStoredPlan(spec, &stored)
	if err != nil {
		return nil, fmt.Errorf("change %q: compile its stored spec: %w", c.ID, err)
	}
	return fingerprints(plan), nil
}

// fingerprintDrift refuses a stored change whose phases this planner
// compiles differently from the planner that registered it (nil when it
// has no fingerprints: registered before they were stored).
func fingerprintDrift(c *ChangeState, plan Plan) error {
	if len(c.Fingerprint) == 0 {
		return nil
	}
	now := fingerprints(plan)
	for i, p := range plan.Phases {
		if i >= len(c.Fingerprint) || c.Fingerprint[i] != now[i] {
			return fmt.Errorf("stored change %q: its phase %d (%s) compiles to other SQL with this planner than with the planner that registered it (%d of %d phases applied): finish it, or roll it back, with the planner version that started it: %w",
				c.ID, i+1, p.Name, c.Applied, len(plan.Phases), ErrConfig)
		}
	}
	if len(c.Fingerprint) != len(now) {
		return fmt.Errorf("stored change %q has %d phases but this planner compiles %d: finish it, or roll it back, with the planner version that started it: %w",
			c.ID, len(c.Fingerprint), len(now), ErrConfig)
	}
	return nil
}

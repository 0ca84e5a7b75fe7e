package planner

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgplanner/planner/flags"
	"github.com/pgplanner/planner/phases"
)

func (e *Engine) fleetExpiry() time.Duration { return e.settings().FleetExpiry }

// flagsAfter are the flag values in effect once phases ps have run.
func flagsAfter(ps []phases.Phase) phases.Flags {
	out := phases.Flags{}
	for _, p := range ps {
		for k, v := range p.Flags {
			out[k] = v
		}
	}
	return out
}

// fleetReady checks the live instances that report heartbeats against the
// flags in effect before phase idx: every one must have loaded them, and,
// with soak, the last to switch must have done so soak ago. Without live
// instances it is met: the deploy-count gate stands alone.
func (e *Engine) fleetReady(ctx context.Context, q Querier, en *entry, idx int, soak time.Duration) (bool, string, error) {
	want := flagsAfter(en.plan.Phases[:idx])
	if len(want) == 0 {
		return true, "", nil
	}
	fleet, err := flags.Fleet(ctx, q, e.schema(), e.fleetExpiry())
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" {
		return true, "", nil // no fleet table yet: nothing reports
	}
	if err != nil {
		return false, "", err
	}
	var now time.Time
	if err := q.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return false, "", wrapf(err, "reading the database clock")
	}
	prev := en.plan.Phases[idx-1].Name
	var live, behind []string
	var last time.Time
	for _, in := range fleet {
		if !in.Live {
			continue
		}
		live = append(live, in.ID)
		var has []string
		for _, k := range sortedKeys(want) {
			lf := in.Flags[k]
			if lf.Variant != want[k] {
				has = append(has, fmt.Sprintf("%s=%s", k, orNone(lf.Variant)))
			} else if lf.Since != nil && lf.Since.After(last) {
				last = *lf.Since
			}
		}
		if len(has) > 0 {
			behind = append(behind, fmt.Sprintf("%s (has %s, seen %s ago)", in.ID, strings.Join(has, " "), now.Sub(in.LastSeen).Round(time.Second)))
		}
	}
	if len(live) == 0 {
		return true, "", nil
	}
	if len(behind) > 0 {
		return false, fmt.Sprintf("%d of %d live application instances have not loaded the flags of phase %s (%s): %s; an instance that stops heartbeating expires after %s",
			len(behind), len(live), prev, flagList(want), strings.Join(behind, "; "), e.fleetExpiry()), nil
	}
	if age := now.Sub(last); soak > 0 && age < soak {
		return false, fmt.Sprintf("the last of %d live application instances switched to the flags of phase %s %s ago; minimum soak %s (%s left)",
			len(live), prev, age.Round(time.Second), soak, (soak - age).Round(time.Second)), nil
	}
	return true, "", nil
}

func sortedKeys(f phases.Flags) []string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

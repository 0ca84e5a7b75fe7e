package planner

import (
	"context"
	"errors"
	"fmt"
)

// PlanLive compiles specs against the live catalog for `planner plan`
// with a database: each change against its table as the earlier changes
// leave it (the sequence model), refusing what validate and next refuse
// (unknown types, a backfill without a key, invalid expressions,
// contradictions between changes). Changes that already started are
// compiled against the snapshot they run with. The catalogs are read in a
// few queries and the server's checks run in one batch, whatever the
// number of changes. Refusals are joined *ChangeErrors (ErrInput).
func (e *Engine) PlanLive(ctx context.Context, specs []Spec, version int) ([]Plan, error) {
	pf, err := e.preflight(ctx, specs)
	if err != nil {
		return nil, err
	}
	batch := newLiveBatch()
	type item struct {
		plan    Plan
		err     error
		typed   bool // its types are asked: refused first when unknown
		checked func() ([]Problem, []Problem)
	}
	items := make([]item, len(specs))
	// The expressions' volatility, for every change at once (one
	// transaction, each repeated question asked once).
	var resolve []resolveItem
	for _, s := range specs {
		if t := pf.seq.Before[s.ID]; t != nil && s.Change != nil && !pf.started[s.ID] {
			resolve = append(resolve, resolveItem{Table: t, Change: s.Change})
		}
	}
	if err := resolveAll(ctx, e.Pool, resolve); err != nil {
		return nil, err
	}
	for i, s := range specs {
		if s.Change == nil {
			items[i].err = fmt.Errorf("change %q has no fields (kind %q): %w", s.ID, s.Kind, ErrInput)
			continue
		}
		if c := pf.stored[s.ID]; pf.started[s.ID] && !pf.edited[s.ID] {
			items[i].plan, items[i].err = Compile(s, Target{Version: version, Table: c.Catalog})
			continue
		}
		if ps := pf.seq.Problems[s.ID]; len(ps) > 0 {
			items[i].err = s.problems(ps)
			continue
		}
		table := pf.seq.Before[s.ID]
		if table == nil && !createsTable(s.Change) {
			items[i].err = fmt.Errorf("change %s: table %s does not exist: %w", s.ID, s.Change.Table(), ErrInput)
			continue
		}
		batch.askNames(s.Change)
		items[i].typed = true
		p, err := Compile(s, Target{Version: version, Table: table})
		if err != nil {
			items[i].err = err
			continue
		}
		items[i].plan = p
		items[i].checked = batch.collect(s, p, table)
	}
	if err := batch.run(ctx, e.Pool); err != nil {
		return nil, err
	}
	var plans []Plan
	var errs []error
	for i, s := range specs {
		it := items[i]
		if it.typed {
			if ps := batch.typeProblemsOf(s.Change); len(ps) > 0 {
				it.err = s.problems(ps)
			} else if ps := it.checked; ps != nil && it.err == nil {
				if ps, _ := it.checked(); len(ps) > 0 {
					it.err = s.problems(ps)
				}
			}
		}
		if it.err != nil {
			errs = append(errs, it.err)
			continue
		}
		plans = append(plans, it.plan)
	}
	return plans, errors.Join(errs...)
}

// PlanOffline compiles specs without a database: what the specs say is all
// the model knows, so it refuses only contradictions between the changes
// (a column renamed away and then used, two changes adding one name).
func PlanOffline(specs []Spec, version int) ([]Plan, error) {
	seq := checkSequence(specs, nil, nil)
	var plans []Plan
	var errs []error
	for _, s := range specs {
		p, err := Compile(s, Target{Version: version})
		if err == nil && len(seq.Problems[s.ID]) > 0 {
			err = s.problems(seq.Problems[s.ID])
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		plans = append(plans, p)
	}
	return plans, errors.Join(errs...)
}

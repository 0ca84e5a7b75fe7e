package planner

import "testing"

// Every kind declares its effect on the sequence model, and every kind
// with SQL expressions declares how the live checks see them: a kind that
// forgets would pass through validate, next and plan unchecked.
func TestKindsDeclareTheirChecks(t *testing.T) {
	for _, name := range KindNames() {
		k := kinds[name]()
		if _, ok := k.(effecter); !ok {
			t.Errorf("kind %s does not declare its effect (effecter)", name)
		}
		if _, ok := k.(expressioner); ok {
			if _, ok := k.(liveExpressioner); !ok {
				t.Errorf("kind %s takes expressions but does not declare its live ones (liveExpressioner)", name)
			}
		}
	}
}

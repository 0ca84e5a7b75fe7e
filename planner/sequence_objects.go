package planner

// without returns a copy of list without the entries drop matches: the
// sequence model's lists are shared with the snapshots it handed out
// earlier, so they are replaced, not changed in place.
func without[T any](list []T, drop func(T) bool) []T {
	out := make([]T, 0, len(list))
	for _, x := range list {
		if !drop(x) {
			out = append(out, x)
		}
	}
	return out
}

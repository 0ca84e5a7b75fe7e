// Did-you-mean suggestions. One edit distance serves two callers:
// didYouMean/nearestName for spec keys, kinds and values (case-insensitive,
// tolerance growing with the word), and nearest for names from the live
// catalog (exact case, at most two edits), whose hints are appended to a
// message rather than replacing it.

package planner

import (
	"fmt"
	"strings"
)

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
		d := editDistance(lg, strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(2, len(got)/3)
	return best, bestD >= 0 && bestD <= limit && bestD < len(got)
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
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

// suggestSpecID turns a bad id into one that would be accepted.
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

// nearest returns `; did you mean "x"?` for the closest candidate within a
// small edit distance, else "".
func nearest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(`; did you mean %q?`, best)
}

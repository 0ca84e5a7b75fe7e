package sqllint

import (
	"os"
	"slices"
	"strings"
	"testing"
)

type corpusCase struct {
	line    int
	verdict string
	rules   []string
	source  string
	sql     string
}

func readCorpus(t *testing.T) []corpusCase {
	data, err := os.ReadFile("testdata/corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	var cases []corpusCase
	for i, line := range strings.Split(string(data), "\n") {
		if head, ok := strings.CutPrefix(line, "== "); ok {
			head, source, _ := strings.Cut(head, "#")
			f := strings.Fields(head)
			c := corpusCase{line: i + 1, verdict: f[0], source: strings.TrimSpace(source)}
			if len(f) > 1 {
				c.rules = strings.Split(f[1], ",")
			}
			cases = append(cases, c)
			continue
		}
		if len(cases) == 0 || strings.HasPrefix(line, "#") {
			continue
		}
		cases[len(cases)-1].sql += line + "\n"
	}
	return cases
}

// TestCorpus lints each statement of the corpus alone and requires the
// verdict and exactly the rules it lists.
func TestCorpus(t *testing.T) {
	cases := readCorpus(t)
	unsafe, safe := 0, 0
	for _, c := range cases {
		stmts, err := Lint(c.sql, Options{})
		if err != nil {
			t.Errorf("corpus.txt:%d: %v", c.line, err)
			continue
		}
		var got []string
		n := 0
		for _, s := range stmts {
			for _, f := range s.Findings {
				if f.Rule == "require-timeout-settings" && !slices.Contains(c.rules, f.Rule) {
					continue
				}
				if f.Severity == Unsafe {
					n++
				}
				if !slices.Contains(got, f.Rule) {
					got = append(got, f.Rule)
				}
			}
		}
		verdict := "safe"
		if n > 0 {
			verdict = "unsafe"
		}
		want := slices.Clone(c.rules)
		slices.Sort(want)
		slices.Sort(got)
		if verdict != c.verdict || !slices.Equal(got, want) {
			t.Errorf("corpus.txt:%d (%s): verdict %s, rules %v; want %s, rules %v\n%s", c.line, c.source, verdict, got, c.verdict, want, c.sql)
		}
		for _, r := range c.rules {
			if _, ok := RuleByName(r); !ok {
				t.Errorf("corpus.txt:%d: no rule %q", c.line, r)
			}
		}
		if c.verdict == "unsafe" {
			unsafe++
		} else {
			safe++
		}
	}
	if unsafe < 30 || safe < 10 {
		t.Errorf("the corpus has %d unsafe and %d safe cases; want at least 30 and 10", unsafe, safe)
	}
	t.Logf("%d unsafe and %d safe cases", unsafe, safe)
}

// TestCorpusCoversRules: every unsafe rule has an unsafe case.
func TestCorpusCoversRules(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range readCorpus(t) {
		for _, r := range c.rules {
			covered[r] = true
		}
	}
	for _, r := range Rules {
		if !covered[r.Name] {
			t.Errorf("rule %s has no case in testdata/corpus.txt", r.Name)
		}
	}
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The CI examples parse, and every planner command they run exists with
// the flags they give it; the deploy step handles each exit code.
func TestCIExamples(t *testing.T) {
	bin := plannerBinary(t)
	for _, file := range []string{"../../examples/github-actions/schema-changes.yml", "../../examples/gitlab-ci/.gitlab-ci.yml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		scripts := shellScripts(doc)
		var commands []string
		for _, s := range scripts {
			commands = append(commands, plannerCommands(s)...)
		}
		joined := strings.Join(commands, "\n")
		for _, want := range []string{"planner plan --dir plans", "planner next --dir plans --deploy-id"} {
			if !strings.Contains(joined, want) {
				t.Errorf("%s: no %q among its planner commands:\n%s", filepath.Base(file), want, joined)
			}
		}
		for _, c := range commands {
			checkCommand(t, bin, file, c)
		}
		all := strings.Join(scripts, "\n")
		for _, code := range []string{"0)", "3)", "2|5)"} {
			if !strings.Contains(all, code) {
				t.Errorf("%s: the deploy script does not handle exit codes %s", file, code)
			}
		}
		if !strings.Contains(all, "1|4)") && !strings.Contains(string(data), "exit_codes: [1, 4]") {
			t.Errorf("%s: exit codes 1 and 4 are not retried", file)
		}
	}
}

// shellScripts are the values of every run: (GitHub) and script: (GitLab)
// key in a parsed workflow.
func shellScripts(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			switch s := x.(type) {
			case string:
				if k == "run" {
					out = append(out, s)
				}
			case []any:
				if k == "script" {
					for _, line := range s {
						if str, ok := line.(string); ok {
							out = append(out, str)
						}
					}
					continue
				}
			}
			out = append(out, shellScripts(x)...)
		}
	case []any:
		for _, x := range v {
			out = append(out, shellScripts(x)...)
		}
	}
	return out
}

var plannerCall = regexp.MustCompile(`(?:^|[\s;|&(])(planner(?:\s+[^\s;|&>)]+)*)`)

// plannerCommands are the planner invocations in a shell script, up to a
// redirection or the end of the command (go install's path is not one).
func plannerCommands(script string) []string {
	var out []string
	for _, line := range strings.Split(script, "\n") {
		for _, m := range plannerCall.FindAllStringSubmatch(line, -1) {
			out = append(out, strings.TrimSpace(m[1]))
		}
	}
	return out
}

// checkCommand runs the command's --help and checks it has every flag used.
func checkCommand(t *testing.T, bin, file, command string) {
	t.Helper()
	words := strings.Fields(command)[1:]
	var sub, flags []string
	for _, w := range words {
		switch {
		case strings.HasPrefix(w, "--"):
			name, _, _ := strings.Cut(w, "=")
			flags = append(flags, name)
		case len(flags) == 0 && !strings.ContainsAny(w, `"$'`):
			sub = append(sub, w)
		}
	}
	out, err := exec.Command(bin, append(sub, "--help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: planner %s --help: %v\n%s", file, strings.Join(sub, " "), err, out)
	}
	usage := "planner " + strings.Join(sub, " ")
	if !strings.Contains(string(out), "Usage:\n  "+usage) {
		t.Fatalf("%s: %q is not a planner command:\n%s", file, usage, out)
	}
	for _, f := range flags {
		if !strings.Contains(string(out), "  "+f+" ") {
			t.Errorf("%s: %s has no flag %s", file, usage, f)
		}
	}
}

// Package e2e drives whole changes through every phase against a real
// PostgreSQL while a simulated application fleet (package workload) reads
// and writes the table, and proves that no request failed and no write was
// lost: through the engine, through the CLI, with a transaction blocking
// the DDL, and with the planner killed (SIGKILL) at random points.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/pgplanner/planner/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// plannerBinary builds cmd/planner once per test run, so tests exercise the
// real CLI (and can kill it like a deploy pipeline's runner would die).
func plannerBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "planner-e2e-")
		if binErr != nil {
			return
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		binPath = filepath.Join(binDir, "planner")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/planner")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/planner: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

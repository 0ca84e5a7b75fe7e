package planner

import (
	"os"
	"testing"

	"github.com/pgplanner/planner/internal/pgtest"
)

// TestMain shares one throwaway PostgreSQL cluster among the package's
// tests. When the engine tests re-execute the test binary as a stand-in for
// `planner next` (to run two at once, or to kill one with SIGKILL), it runs
// that instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	os.Exit(pgtest.Main(m))
}

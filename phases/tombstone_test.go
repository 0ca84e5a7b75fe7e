package phases

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTombstoneNameFitsAndDiffersPerChange(t *testing.T) {
	long := strings.Repeat("é", 31) // 62 bytes
	for _, col := range []string{"email", long} {
		a, b := TombstoneName("change-a", col), TombstoneName("change-b", col)
		if len(a) > 63 || !utf8.ValidString(a) || !strings.HasPrefix(a, "planner_tomb_") {
			t.Errorf("TombstoneName(%q) = %q (%d bytes)", col, a, len(a))
		}
		if a == b {
			t.Errorf("two changes share the tombstone name %q", a)
		}
		if a != TombstoneName("change-a", col) {
			t.Errorf("TombstoneName is not deterministic")
		}
	}
	if got := TombstoneName("users-email-rename", "email"); !strings.HasSuffix(got, "_email") || len(got) != len("planner_tomb_")+8+len("_email") {
		t.Errorf("short column: %q", got)
	}
}

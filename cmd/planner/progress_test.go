package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pgplanner/planner/backfill"
	"github.com/pgplanner/planner/planner"
)

// TestProgressRenderers: the figures printed for a pass agree with each
// other (rows done, total, percentage), the rate and ETA appear only when
// known and something runs, and status prints the same as backfill status.
func TestProgressRenderers(t *testing.T) {
	tests := []struct {
		name    string
		p       backfill.Progress
		want    string // progressLine
		bar     int    // filled cells of a 10-cell bar
		without []string
	}{
		{
			name: "write pass",
			p:    backfill.Progress{ChangeID: "c", Phase: "backfill", Rows: 36900, Total: 300000, RowsPerSec: 51234, ETA: 5 * time.Second},
			want: "c: backfill  12.3% (36900/300000 rows, 51234 rows/s, ETA 5s)",
			bar:  1,
		},
		{
			name: "verify pass counts the rows checked",
			p: backfill.Progress{ChangeID: "c", Phase: "verify", Done: true, Rows: 500, Total: 500, VerifiedRows: 185,
				RowsPerSec: 100, ETA: 3 * time.Second},
			want:    "c: verify  37.0% (185/500 rows checked, 100 rows/s, ETA 3s)",
			bar:     3,
			without: []string{"500/500", "500 of 500"},
		},
		{
			name:    "rows done past the estimate",
			p:       backfill.Progress{ChangeID: "c", Phase: "backfill", Rows: 100123, Total: 100079, RowsPerSec: 1000},
			want:    "c: backfill 100.0% (100123/100123 rows, 1000 rows/s)",
			bar:     10,
			without: []string{"100079", "ETA"},
		},
		{
			name: "verify pass past the estimate",
			p:    backfill.Progress{ChangeID: "c", Phase: "verify", Done: true, Rows: 120, Total: 100, VerifiedRows: 110},
			want: "c: verify 100.0% (110/110 rows checked)",
			bar:  10,
		},
		{
			name: "zero total",
			p:    backfill.Progress{ChangeID: "c", Phase: "backfill"},
			want: "c: backfill   0.0% (0/0 rows)",
		},
		{
			name: "zero total, rows inserted since",
			p:    backfill.Progress{ChangeID: "c", Phase: "backfill", Rows: 37},
			want: "c: backfill 100.0% (37/37 rows)",
			bar:  10,
		},
		{
			name:    "unknown rate",
			p:       backfill.Progress{ChangeID: "c", Phase: "backfill", Rows: 250, Total: 1000},
			want:    "c: backfill  25.0% (250/1000 rows)",
			bar:     2,
			without: []string{"rows/s", "ETA"},
		},
		{
			name:    "paused: no rate, no ETA",
			p:       backfill.Progress{ChangeID: "c", Phase: "backfill", Rows: 500, Total: 1000, Paused: true, RowsPerSec: 10, ETA: time.Minute},
			want:    "c: backfill  50.0% (500/1000 rows) paused (planner backfill resume c)",
			bar:     5,
			without: []string{"rows/s", "ETA"},
		},
		{
			name:    "idle: no rate, no ETA",
			p:       backfill.Progress{ChangeID: "c", Phase: "backfill", Rows: 500, Total: 1000, Idle: true, RowsPerSec: 10, ETA: time.Minute},
			want:    "c: backfill  50.0% (500/1000 rows) idle: no worker is running it (planner backfill run c)",
			bar:     5,
			without: []string{"rows/s", "ETA"},
		},
		{
			name: "throttled",
			p:    backfill.Progress{ChangeID: "c", Phase: "backfill", Rows: 500, Total: 1000, Throttled: true},
			want: "c: backfill  50.0% (500/1000 rows) waiting for replicas to catch up",
			bar:  5,
		},
		{
			name: "throttled, and why",
			p: backfill.Progress{ChangeID: "c", Phase: "backfill", Rows: 500, Total: 1000, Throttled: true,
				ThrottledBy: "replica standby1 is 1.2 MB behind (limit 64 kB)"},
			want: "c: backfill  50.0% (500/1000 rows) waiting for replicas to catch up: replica standby1 is 1.2 MB behind (limit 64 kB)",
			bar:  5,
		},
		{
			name: "verified",
			p: backfill.Progress{ChangeID: "c", Phase: "verified", Done: true, Verified: true, Rows: 500, Total: 400,
				Updated: 480, VerifiedRows: 500, Fixed: 2},
			want: "c: verified (500 rows, 480 changed, 2 fixed by verification)",
			bar:  10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := progressLine(tt.p)
			if line != tt.want {
				t.Errorf("progressLine:\n got %q\nwant %q", line, tt.want)
			}
			for _, s := range tt.without {
				if strings.Contains(line, s) {
					t.Errorf("progressLine %q contains %q", line, s)
				}
			}
			bar := progressBar(tt.p, 10)
			if got := strings.Count(bar, "█"); got != tt.bar || strings.Count(bar, "░") != 10-tt.bar {
				t.Errorf("progressBar %q: %d cells filled, want %d", bar, got, tt.bar)
			}
			if !strings.HasSuffix(bar, " "+tt.p.Summary()) {
				t.Errorf("progressBar %q does not end with the detail", bar)
			}

			var b bytes.Buffer
			p := tt.p
			printStatus(&b, []planner.ChangeStatus{{ID: "c", Kind: "rename_column", Table: "public.t", Status: "active",
				Applied: 1, Total: 5, Backfill: &p}})
			if want := "  backfill: " + tt.p.Summary() + "\n"; !strings.Contains(b.String(), want) {
				t.Errorf("status:\n%s\nwant the line %q", b.String(), want)
			}
		})
	}
}

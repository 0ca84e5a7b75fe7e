package backfill

import (
	"testing"
	"time"
)

// The cap leaves room for the slack batches were seen to have past their
// statement (a busy machine's scheduling, the commit), never drops below a
// quarter of the bound, and recovers as the slack stops showing; the
// sizer aims under the cap as it is now.
func TestCapMakesRoomForSlack(t *testing.T) {
	r := &runner{opts: Options{MaxAppWait: 200 * time.Millisecond, TargetBatch: 150 * time.Millisecond}}
	sz := newSizer(r.opts, func() float64 { return float64(r.batchCap()) / float64(r.fullCap()) })
	if c := r.batchCap(); c != 160*time.Millisecond {
		t.Fatalf("cap with no slack: %s, want 160ms", c)
	}
	if g := sz.target(); g != 150*time.Millisecond {
		t.Fatalf("target with no slack: %s, want 150ms", g)
	}
	r.noteSlack(40 * time.Millisecond)
	if c := r.batchCap(); c != 120*time.Millisecond {
		t.Fatalf("cap after 40ms of slack: %s, want 120ms", c)
	}
	if g := sz.target(); g < 112*time.Millisecond || g > 113*time.Millisecond {
		t.Fatalf("target under a 120ms cap: %s, want 112.5ms (three quarters of 150ms)", g)
	}
	r.noteSlack(10 * time.Millisecond) // a smaller one does not undo it at once
	if c := r.batchCap(); c >= 160*time.Millisecond || c < 120*time.Millisecond {
		t.Fatalf("cap right after: %s, want between 120ms and 160ms", c)
	}
	r.noteSlack(time.Second)
	if c := r.batchCap(); c != 50*time.Millisecond {
		t.Fatalf("cap after a second of slack: %s, want a quarter of the bound", c)
	}
	for range 200 {
		r.noteSlack(-time.Millisecond) // a negative figure counts as none
	}
	if c := r.batchCap(); c != 160*time.Millisecond {
		t.Fatalf("cap once the slack is gone: %s, want 160ms", c)
	}
	// The batch's first row lock to the end of its commit stays under the
	// bound: the cap plus the slack it left room for.
	r.noteSlack(30 * time.Millisecond)
	if c := r.batchCap(); c+30*time.Millisecond > r.opts.MaxAppWait {
		t.Fatalf("cap %s + 30ms of slack is over the bound", c)
	}
}

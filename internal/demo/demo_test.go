package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is written by the demo and the CLI output streamer at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestDemoSmall runs the whole demo on a small table, so `make demo` keeps
// working as the code under it changes.
func TestDemoSmall(t *testing.T) {
	var out syncBuffer
	err := run(context.Background(), options{rows: 5000, dwell: 300 * time.Millisecond, out: &out})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"phase 1/6 expand", "ACCESS EXCLUSIVE", "phase 5/6 contract", "phase 6/6 purge",
		"flags the application sees: read=new write=both",
		"backfill: ", "writes lost: 0", "failed operations: 0", "PASS: zero downtime",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}

// TestDemoCleansUpWhenInterrupted cancels the demo midway (as Ctrl-C does)
// and checks that its PostgreSQL cluster is gone.
func TestDemoCleansUpWhenInterrupted(t *testing.T) {
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	dataDir := regexp.MustCompile(`data in (\S+)`)
	go func() {
		// Interrupt once the fleet runs against the cluster.
		for ctx.Err() == nil && !strings.Contains(out.String(), "Deploy 1") {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	err := run(ctx, options{rows: 2000, dwell: 300 * time.Millisecond, out: &out})
	cancel()
	if err == nil {
		t.Fatalf("demo succeeded although interrupted:\n%s", out.String())
	}
	m := dataDir.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no cluster directory in the output:\n%s", out.String())
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s still exists after the interrupt (stat: %v)", m[1], err)
	}
}

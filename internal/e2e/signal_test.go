package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgplanner/planner/internal/pgtest"
)

// A spec path that is a FIFO is refused at once (it used to hang the
// planner, which then ignored SIGTERM).
func TestFIFOSpecIsRefusedAtOnce(t *testing.T) {
	bin := plannerBinary(t)
	fifo := filepath.Join(t.TempDir(), "plan.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"plan", fifo}, {"validate", "--dir", fifo, "--database-url", "postgres://nowhere.invalid/x"}} {
		cmd := exec.Command(bin, args...)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("planner %s blocked on a FIFO", args[0])
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), fifo+": is a named pipe (FIFO), not a regular file") {
			t.Fatalf("planner %s: %v\n%s", args[0], err, out)
		}
	}
}

// SIGTERM during a slow backfill stops `planner next` within seconds, and
// the next run resumes the backfill and finishes it.
func TestSIGTERMStopsPromptlyAndResumes(t *testing.T) {
	bin := plannerBinary(t)
	db := pgtest.NewDB(t)
	db.Exec(t, `CREATE TABLE items (id bigserial PRIMARY KEY, note text);
INSERT INTO items (note) SELECT CASE WHEN g % 2 = 0 THEN 'n' END FROM generate_series(1, 2000) g;`)
	dir := t.TempDir()
	spec := "changes:\n  - id: items-note-not-null\n    kind: set_not_null\n    table: items\n    column: note\n    backfill: \"'' -- empty\"\n"
	if err := os.WriteFile(filepath.Join(dir, "plan.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "next", "-v", "--dir", dir, "--deploy-id", "d1", "--database-url", db.URL,
		"--backfill-min-batch", "1", "--backfill-max-batch", "5", "--backfill-sleep", "200ms")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var out bytes.Buffer
	started := make(chan struct{})
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			out.Write(sc.Bytes())
			out.WriteByte('\n')
			if !once && strings.Contains(sc.Text(), "backfill") {
				once = true
				close(started)
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("next finished before its backfill started: %v\n%s", err, out.String())
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatal("the backfill did not start")
	}
	time.Sleep(time.Second)
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-copied
		t.Fatalf("next ignored SIGTERM for 10s:\n%s", out.String())
	}
	<-copied
	t.Logf("stopped %s after SIGTERM: %v", time.Since(sent).Round(time.Millisecond), err)
	if err == nil {
		t.Fatalf("next finished a 200-batch backfill in a second:\n%s", out.String())
	}
	// The rerun resumes: the backfill completes and no row is left NULL.
	for i := 0; i < 5; i++ {
		rerun := exec.Command(bin, "next", "--dir", dir, "--deploy-id", "d2", "--database-url", db.URL)
		b, err := rerun.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 3) {
			t.Fatalf("rerun: %v\n%s", err, b)
		}
		var nulls int
		if err := db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM items WHERE note IS NULL`).Scan(&nulls); err != nil {
			t.Fatal(err)
		}
		if nulls == 0 {
			return
		}
	}
	t.Fatal("the rerun did not finish the backfill")
}

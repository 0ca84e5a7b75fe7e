package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pgplanner/planner/internal/pgtest"
)

// TestExampleServicesThroughRename runs the example services of
// examples/services (GORM and sqlc-style pgx; a module of their own, so the
// planner's module does not depend on GORM) as processes, the way they are
// deployed, and sends them traffic while `planner next` takes users.email to
// users.email_address through every phase and the purge. Both services
// share the table, so a row one writes the other reads. No request may
// fail, and every read returns the value last written.
func TestExampleServicesThroughRename(t *testing.T) {
	bin := plannerBinary(t)
	svcBin := buildServices(t)
	db := pgtest.NewDB(t)
	db.Exec(t, `CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, name text);
INSERT INTO users (email) SELECT 'seed-' || g || '@example.com' FROM generate_series(1, 2000) g`)
	dir := t.TempDir()
	spec, err := os.ReadFile(filepath.Join(repoRoot(), "plans", "01_rename_users_email.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "plan.yaml"), spec, 0o644); err != nil {
		t.Fatal(err)
	}

	var addrs []string
	var procs []*exec.Cmd
	for _, name := range []string{"gorm-users", "pgx-users"} {
		cmd, addr := startService(t, filepath.Join(svcBin, name), db.URL)
		procs = append(procs, cmd)
		addrs = append(addrs, addr)
	}

	ctx, stopLoad := context.WithCancel(context.Background())
	load := startLoad(ctx, addrs, 4)

	phases := []string{}
	for deploy := 1; ; deploy++ {
		if deploy > 15 {
			t.Fatalf("not done after 15 deploys; phases: %v", phases)
		}
		time.Sleep(400 * time.Millisecond) // traffic under the current phase
		cmd := exec.Command(bin, "next", "--dir", dir, "--deploy-id", fmt.Sprint("d", deploy),
			"--database-url", db.URL, "--purge-after", "0", "-o", "json")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var rep struct {
			Result struct {
				Changes []struct{ Action, Phase string }
			}
		}
		code := exitCode(err)
		if (code != 0 && code != 3) || json.Unmarshal(out, &rep) != nil {
			t.Fatalf("planner next: exit %d\n%s\n%s", code, out, stderr.Bytes())
		}
		done := true
		for _, c := range rep.Result.Changes {
			if c.Action == "advanced" {
				phases = append(phases, c.Phase)
			}
			if c.Action != "done" {
				done = false
			}
		}
		if done && len(rep.Result.Changes) > 0 {
			break
		}
	}
	time.Sleep(300 * time.Millisecond) // traffic on the final schema
	stopLoad()
	st := load.wait()
	t.Logf("phases %v; %d requests (%d per service), %d failed", phases, st.ops, st.ops/int64(len(addrs)), st.failed)

	for _, want := range []string{"expand", "backfill", "dual_write", "enforce", "contract", "purge"} {
		if !strings.Contains(strings.Join(phases, " "), want) {
			t.Errorf("phase %s never advanced: %v", want, phases)
		}
	}
	if st.failed > 0 || st.ops < 200 {
		t.Fatalf("%d of %d requests failed; first: %v", st.failed, st.ops, st.firstErr)
	}
	var cols []string
	rows, err := db.Pool.Query(context.Background(), `SELECT column_name FROM information_schema.columns WHERE table_name = 'users' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		rows.Scan(&c)
		cols = append(cols, c)
	}
	if strings.Join(cols, ",") != "email_address,id,name" {
		t.Errorf("columns after the rename: %v", cols)
	}
	// Every value written is in the table as last written.
	for id, want := range st.last {
		var got string
		if err := db.Pool.QueryRow(context.Background(), `SELECT email_address FROM users WHERE id = $1`, id).Scan(&got); err != nil || got != want {
			t.Fatalf("user %d: %q (%v), last written %q", id, got, err, want)
		}
	}
	for _, p := range procs {
		p.Process.Signal(syscall.SIGTERM)
		if err := p.Wait(); err != nil {
			t.Errorf("%s after SIGTERM: %v", filepath.Base(p.Path), err)
		}
	}
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// buildServices builds the example services with their own module's go.mod.
func buildServices(t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("go", "build", "-o", out+string(os.PathSeparator), "./gorm-users", "./pgx-users")
	cmd.Dir = filepath.Join(repoRoot(), "examples", "services")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build in examples/services: %v\n%s", err, b)
	}
	return out
}

// startService runs a service on a free port and returns its address once
// it listens (its flags provider is ready by then).
func startService(t *testing.T, path, url string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(path, "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "listening on ") {
		t.Fatalf("%s did not start: %q\n%s", filepath.Base(path), sc.Text(), stderr.String())
	}
	go io.Copy(io.Discard, stdout)
	return cmd, strings.TrimPrefix(sc.Text(), "listening on ")
}

type loadStats struct {
	ops, failed int64
	firstErr    error
	last        map[int64]string // user id → value last written
}

type loadRun struct {
	wg    sync.WaitGroup
	mu    sync.Mutex
	stats loadStats
}

func (l *loadRun) wait() loadStats { l.wg.Wait(); return l.stats }

// startLoad runs workers that create, update and read users through the
// services in turn. Each worker reads back only users it wrote, so it knows
// the value each must hold.
func startLoad(ctx context.Context, addrs []string, workers int) *loadRun {
	l := &loadRun{stats: loadStats{last: map[int64]string{}}}
	var ops, failed atomic.Int64
	client := &http.Client{Timeout: 10 * time.Second}
	fail := func(err error) {
		failed.Add(1)
		l.mu.Lock()
		if l.stats.firstErr == nil {
			l.stats.firstErr = err
		}
		l.mu.Unlock()
	}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			mine := map[int64]string{}
			var ids []int64
			for n := 0; ctx.Err() == nil; n++ {
				addr := addrs[n%len(addrs)]
				ops.Add(1)
				value := fmt.Sprintf("w%d-%d@example.com", w, n)
				switch op := r.IntN(3); {
				case op == 0 || len(ids) == 0:
					var u struct{ ID int64 }
					if err := call(client, "POST", "http://"+addr+"/users", value, &u); err != nil {
						fail(err)
						continue
					}
					ids = append(ids, u.ID)
					mine[u.ID] = value
				case op == 1:
					id := ids[r.IntN(len(ids))]
					if err := call(client, "PUT", fmt.Sprintf("http://%s/users/%d", addr, id), value, nil); err != nil {
						fail(err)
						continue
					}
					mine[id] = value
				default:
					id := ids[r.IntN(len(ids))]
					var u struct{ Email string }
					if err := call(client, "GET", fmt.Sprintf("http://%s/users/%d", addr, id), "", &u); err != nil {
						fail(err)
					} else if u.Email != mine[id] {
						fail(fmt.Errorf("%s read user %d: %q, last written %q", addr, id, u.Email, mine[id]))
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
			l.mu.Lock()
			for id, v := range mine {
				l.stats.last[id] = v
			}
			l.stats.ops, l.stats.failed = ops.Load(), failed.Load()
			l.mu.Unlock()
		}()
	}
	return l
}

func call(client *http.Client, method, url, email string, into any) error {
	var body io.Reader
	if email != "" {
		b, _ := json.Marshal(map[string]string{"email": email})
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	if into != nil {
		return json.Unmarshal(b, into)
	}
	return nil
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

package pgtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PgBouncer is a real PgBouncer in front of a throwaway cluster, started by
// the tests themselves (Debian's package `pgbouncer`).
type PgBouncer struct {
	Port    int
	Dir     string
	cmd     *exec.Cmd
	done    chan struct{}
	watcher *watcher
}

// ErrNoPgBouncer explains what to install when pgbouncer is not found.
var ErrNoPgBouncer = errors.New("pgbouncer not found: install it (Debian: apt-get install pgbouncer; `make test` does) or put it on PATH")

// FindPgBouncer locates the pgbouncer binary (PATH, then /usr/sbin).
func FindPgBouncer() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/opt/homebrew/bin/pgbouncer"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", ErrNoPgBouncer
}

// StartPgBouncer starts PgBouncer in front of the server at host (a unix
// socket directory or an address) and port, in the given pool mode
// ("transaction", "session" or "statement"), for every database, with trust
// authentication for the listed users. poolSize is the number of server
// connections per database and user.
func StartPgBouncer(host string, port int, mode string, poolSize int, users ...string) (*PgBouncer, error) {
	bin, err := FindPgBouncer()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("/tmp", "pgb-")
	if err != nil {
		return nil, err
	}
	b := &PgBouncer{Dir: dir, done: make(chan struct{})}
	if b.Port, err = freePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var userlist strings.Builder
	for _, u := range users {
		fmt.Fprintf(&userlist, "%q \"\"\n", u)
	}
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir = %s
auth_type = trust
auth_file = %s
pool_mode = %s
default_pool_size = %d
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
logfile = %s
`, host, port, b.Port, dir, filepath.Join(dir, "users.txt"), mode, poolSize, filepath.Join(dir, "pgbouncer.log"))
	files := map[string]string{"users.txt": userlist.String(), "pgbouncer.ini": ini}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	var runAs *syscall.Credential
	if os.Geteuid() == 0 {
		// PgBouncer refuses to run as root, like the server.
		if runAs, err = unprivilegedUser(); err == nil {
			err = os.Chown(dir, int(runAs.Uid), int(runAs.Gid))
		}
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	b.cmd = exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: runAs}
	b.cmd.Dir = dir
	if err := b.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start pgbouncer: %w", err)
	}
	go func() { b.cmd.Wait(); close(b.done) }()
	// Ended with this process however it ends, so no pooler outlives a test.
	if b.watcher, err = startWatcher(fmt.Sprintf("kill -9 %d\nrm -rf %q", b.cmd.Process.Pid, dir), runAs); err != nil {
		b.Stop()
		return nil, err
	}
	if err := b.waitReady(10 * time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
		b.Stop()
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return b, nil
}

// NewPgBouncer starts a PgBouncer (pool mode and size as in StartPgBouncer)
// in front of db's server for the length of t, and returns db's URL through it.
func NewPgBouncer(t testing.TB, db *DB, mode string, poolSize int) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(db.URL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	b, err := StartPgBouncer(cfg.Host, int(cfg.Port), mode, poolSize, cfg.User)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(b.Stop)
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", url.PathEscape(cfg.User), b.Port, url.PathEscape(cfg.Database))
}

func (b *PgBouncer) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-b.done:
			return errors.New("pgbouncer exited at start")
		default:
		}
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.Port), time.Second); err == nil {
			conn.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("pgbouncer did not listen within " + limit.String())
}

// Stop ends PgBouncer and removes its files.
func (b *PgBouncer) Stop() {
	b.watcher.stop()
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(5 * time.Second):
			b.cmd.Process.Kill()
			<-b.done
		}
	}
	os.RemoveAll(b.Dir)
}

// Package pgtest starts throwaway PostgreSQL clusters for tests, the demo and
// the benchmarks: initdb into a temp dir, a unix socket in a short temp path,
// fsync off, and cleanup even when the process that started it dies.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the role initdb creates in a throwaway cluster.
const Superuser = "planner_test"

// Options configure a throwaway cluster.
type Options struct {
	// BinDir holds initdb, pg_ctl and postgres. Empty means FindBinDir().
	BinDir string
	// TCP also listens on 127.0.0.1 on a free port.
	TCP bool
	// Settings are extra postgresql.conf lines, e.g. "max_connections=200".
	Settings []string
}

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	BinDir  string
	Dir     string // data directory parent; removed by Stop
	Socket  string // unix socket directory
	Port    int
	Version int // server major version, e.g. 15
	runAs   *syscall.Credential
	watcher *watcher
}

// ErrNoBinaries explains what to install when no server binaries are found.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: install them (Debian: apt-get install postgresql; macOS: brew install postgresql) or set PLANNER_PG_BINDIR to their directory")

// FindBinDir locates initdb/pg_ctl/postgres: PLANNER_PG_BINDIR, then
// `pg_config --bindir`, then the usual Debian and Homebrew locations, then PATH.
func FindBinDir() (string, error) {
	if dir := os.Getenv("PLANNER_PG_BINDIR"); dir != "" {
		if hasServerBinaries(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("PLANNER_PG_BINDIR=%s has no initdb, pg_ctl and postgres: %w", dir, ErrNoBinaries)
	}
	var candidates []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(debian, func(i, j int) bool { return majorOf(debian[i]) > majorOf(debian[j]) })
	candidates = append(candidates, debian...)
	brew, _ := filepath.Glob("/opt/homebrew/opt/postgresql@*/bin")
	candidates = append(candidates, brew...)
	candidates = append(candidates, "/opt/homebrew/bin", "/usr/local/bin", "/usr/local/pgsql/bin")
	if p, err := exec.LookPath("initdb"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, dir := range candidates {
		if hasServerBinaries(dir) {
			return dir, nil
		}
	}
	return "", ErrNoBinaries
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func hasServerBinaries(dir string) bool {
	for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
		if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
			return false
		}
	}
	return true
}

// Start runs initdb and starts a server. The caller must call Stop; a
// watcher process also stops the server and removes its files if the caller
// dies first (panic, kill -9, test timeout).
func Start(opts Options) (*Cluster, error) {
	c, err := newCluster(opts.BinDir)
	if err != nil {
		return nil, err
	}
	if err := c.start(opts); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// newCluster makes the temp directory of a cluster-to-be, owned by the user
// its server will run as.
func newCluster(bin string) (*Cluster, error) {
	if bin == "" {
		var err error
		if bin, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	// A short path: unix socket paths are limited to about 100 bytes.
	dir, err := os.MkdirTemp("/tmp", "pgt-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{BinDir: bin, Dir: dir, Socket: dir}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root.
		if c.runAs, err = unprivilegedUser(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := os.Chown(dir, int(c.runAs.Uid), int(c.runAs.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) start(opts Options) error {
	if out, err := c.run("initdb", "-D", c.dataDir(), "-U", Superuser, "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	return c.launch(opts)
}

func (c *Cluster) dataDir() string { return filepath.Join(c.Dir, "data") }

// launch configures the data directory for this cluster's own port and
// socket (appended lines win over earlier ones, also over those a base
// backup copied from its primary), and starts the server under the watcher.
func (c *Cluster) launch(opts Options) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	c.Port = port
	listen := "''"
	if opts.TCP {
		listen = "'127.0.0.1'"
	}
	conf := []string{
		"fsync=off", "synchronous_commit=off", "full_page_writes=off",
		"listen_addresses=" + listen, fmt.Sprintf("port=%d", port),
		"unix_socket_directories='" + c.Socket + "'",
		"max_connections=300", "shared_buffers=128MB", "log_min_messages=warning",
		"logging_collector=off", "autovacuum_naptime=1s",
	}
	conf = append(conf, opts.Settings...)
	f, err := os.OpenFile(filepath.Join(c.dataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strings.Join(conf, "\n") + "\n")
	f.Close()
	if err != nil {
		return err
	}
	if err := c.watch(); err != nil {
		return err
	}
	if out, err := c.run("pg_ctl", "-D", c.dataDir(), "-l", filepath.Join(c.Dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "server.log"))
		return fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var num int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		return err
	}
	c.Version = num / 10000
	return nil
}

// watch stops the server and removes its files once this process is gone.
// The watcher runs unprivileged like the server (pg_ctl refuses root); the
// directory is owned by that user, so it can remove it too.
func (c *Cluster) watch() error {
	w, err := startWatcher(fmt.Sprintf("%q -D %q stop -m immediate >/dev/null 2>&1\nrm -rf %q",
		filepath.Join(c.BinDir, "pg_ctl"), c.dataDir(), c.Dir), c.runAs)
	c.watcher = w
	return err
}

func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.BinDir, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.runAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.runAs}
		cmd.Dir = c.Dir
	}
	return cmd.CombinedOutput()
}

// Stop shuts the server down and removes its files.
func (c *Cluster) Stop() {
	if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err == nil {
		c.run("pg_ctl", "-D", c.dataDir(), "stop", "-m", "immediate", "-w")
	}
	c.watcher.stop()
	os.RemoveAll(c.Dir)
}

// URL is a connection string for database db over the unix socket.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d&sslmode=disable", Superuser, db, c.Socket, c.Port)
}

func unprivilegedUser() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and no unprivileged user (postgres or nobody) to run initdb as: create one (useradd postgres) or run as a normal user")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Standby is a hot standby streaming from a throwaway primary, on the same
// machine: a Cluster of its own (port, socket, temp dir, watcher), read-only.
type Standby struct {
	*Cluster
	// Name is the standby's application_name: its row in the primary's
	// pg_stat_replication.
	Name    string
	primary *Cluster
}

// StartStandby takes a base backup of primary (pg_basebackup -R: the
// standby's primary_conninfo points at primary's socket, over the
// "local replication" trust entry initdb writes into pg_hba.conf) and
// starts it as a hot standby, then waits until the primary shows it
// streaming. The primary needs only the defaults (wal_level=replica,
// max_wal_senders=10). The caller must call Stop, which stops the standby
// alone; the primary's Stop does not stop its standbys.
func StartStandby(primary *Cluster) (*Standby, error) {
	c, err := newCluster(primary.BinDir)
	if err != nil {
		return nil, err
	}
	s := &Standby{Cluster: c, primary: primary}
	if err := s.start(); err != nil {
		c.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Standby) start() error {
	// The connection is the primary's socket; the data directory goes in
	// the standby's own temp dir, written as the user the server runs as.
	if _, err := os.Stat(filepath.Join(s.BinDir, "pg_basebackup")); err == nil {
		if out, err := s.run("pg_basebackup", "-h", s.primary.Socket, "-p", fmt.Sprint(s.primary.Port), "-U", Superuser,
			"-D", s.dataDir(), "-R", "--checkpoint=fast", "--wal-method=stream", "--no-sync"); err != nil {
			return fmt.Errorf("pg_basebackup: %v: %s", err, out)
		}
	} else if err := s.copyBaseBackup(); err != nil {
		return fmt.Errorf("base backup: %w", err)
	}
	// Unique among the standbys of every test process: the temp dir's suffix.
	s.Name = "pgtest_standby_" + strings.TrimPrefix(filepath.Base(s.Dir), "pgt-")
	// Without application_name in primary_conninfo, the walreceiver uses
	// cluster_name as its application_name.
	if err := s.launch(Options{Settings: []string{"cluster_name='" + s.Name + "'", "hot_standby=on"}}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.WaitStreaming(ctx)
}

// WaitStreaming waits until the primary's pg_stat_replication shows the
// standby in state streaming.
func (s *Standby) WaitStreaming(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.primary.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for {
		var streaming bool
		err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_replication
WHERE application_name = $1 AND state = 'streaming')`, s.Name).Scan(&streaming)
		if err != nil {
			return fmt.Errorf("standby %s: %w", s.Name, err)
		}
		if streaming {
			return nil
		}
		select {
		case <-ctx.Done():
			log, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
			return fmt.Errorf("standby %s never streamed: %w\n%s", s.Name, ctx.Err(), log)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

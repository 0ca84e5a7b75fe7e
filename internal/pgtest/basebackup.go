package pgtest

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
)

// copyBaseBackup makes the standby's data directory the way pg_basebackup
// -R does, for server builds that ship no pg_basebackup (the npm
// @embedded-postgres binaries): a non-exclusive backup on the primary, a
// copy of its data directory (and then of its WAL, so the standby needs
// nothing the primary may have recycled), the backup label, standby.signal
// and primary_conninfo.
func (s *Standby) copyBaseBackup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.primary.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	start, stop := `SELECT pg_backup_start('pgtest standby', true)`, `SELECT labelfile FROM pg_backup_stop(false)`
	if s.primary.Version < 15 {
		start, stop = `SELECT pg_start_backup('pgtest standby', true, false)`, `SELECT labelfile FROM pg_stop_backup(false, false)`
	}
	if _, err := conn.Exec(ctx, start); err != nil {
		return fmt.Errorf("start backup: %w", err)
	}
	src, dst := s.primary.dataDir(), s.dataDir()
	skip := map[string]bool{"postmaster.pid": true, "postmaster.opts": true, "backup_label": true}
	if err := copyTree(src, dst, skip); err != nil {
		return err
	}
	var label string
	if err := conn.QueryRow(ctx, stop).Scan(&label); err != nil {
		return fmt.Errorf("stop backup: %w", err)
	}
	if err := copyTree(filepath.Join(src, "pg_wal"), filepath.Join(dst, "pg_wal"), nil); err != nil {
		return err
	}
	conf := fmt.Sprintf("\nprimary_conninfo = 'host=%s port=%d user=%s'\n", s.primary.Socket, s.primary.Port, Superuser)
	files := map[string]string{"backup_label": label, "standby.signal": ""}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dst, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(filepath.Join(dst, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(conf)
	f.Close()
	if err != nil {
		return err
	}
	if s.runAs == nil {
		return nil
	}
	return filepath.WalkDir(s.Dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(s.runAs.Uid), int(s.runAs.Gid))
	})
}

// copyTree copies regular files and directories from src into dst (0700
// directories, the data directory's own mode), leaving out names in skip.
func copyTree(src, dst string, skip map[string]bool) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // a file the server removed while we walked
			}
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if skip[rel] {
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(path, target)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

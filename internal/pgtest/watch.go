package pgtest

import (
	"os"
	"os/exec"
	"syscall"
)

// watcher runs a cleanup once the test process is gone, however it ended
// (panic, kill -9, a test timeout): a detached shell, as runAs, blocks
// reading a pipe whose only writer is this process, and the read returns
// when the kernel closes that end at exit. It needs no /proc and no
// parent-death signal, so it works the same on Linux and macOS.
type watcher struct {
	proc *os.Process
	pipe *os.File // held open while this process lives
}

func startWatcher(cleanup string, runAs *syscall.Credential) (*watcher, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command("sh", "-c", "read -r _\n"+cleanup)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: runAs}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, err
	}
	go cmd.Wait()
	return &watcher{proc: cmd.Process, pipe: w}, nil
}

// stop ends the watcher without its cleanup (the caller cleans up itself).
func (w *watcher) stop() {
	if w == nil {
		return
	}
	w.proc.Kill()
	w.pipe.Close()
}

package planner

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// defaultMaxSpecSize is the largest spec file read unless MaxSpecSize is
// raised: far above any real spec, far below what would exhaust memory.
const defaultMaxSpecSize int64 = 4 << 20

// MaxSpecSize is the largest spec file Load reads.
// cmd/planner sets it from --max-spec-size or $PLANNER_MAX_SPEC_SIZE.
var MaxSpecSize = defaultMaxSpecSize

// readSpecFile reads a spec file that is a regular file (or a symbolic
// link to one) of at most MaxSpecSize bytes. A FIFO, device or socket is
// refused by name before it is opened, so nothing blocks on it; the open is
// non-blocking and the opened file checked again, in case the path was
// swapped in between.
func readSpecFile(path string) ([]byte, error) {
	fail := func(msg, hint string) error { return SpecErrors{{File: path, Message: msg, Hint: hint}} }
	st, err := os.Stat(path) // follows links: a link to a FIFO is refused as a FIFO
	if err != nil {
		return nil, fail(describeOSError(err), "")
	}
	if msg := notRegular(st, path); msg != "" {
		return nil, fail(msg, "name a regular YAML file, or a directory of them")
	}
	limit := MaxSpecSize
	tooBig := func(size int64) error {
		return fail(fmt.Sprintf("is %d bytes; spec files are limited to %d bytes", size, limit),
			"split the changes over several files, or raise the limit with --max-spec-size or $PLANNER_MAX_SPEC_SIZE")
	}
	if st.Size() > limit {
		return nil, tooBig(st.Size())
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fail(describeOSError(err), "")
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, fail(describeOSError(err), "")
	}
	if msg := notRegular(st, path); msg != "" {
		return nil, fail(msg, "name a regular YAML file, or a directory of them")
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fail(describeOSError(err), "")
	}
	if int64(len(data)) > limit {
		return nil, tooBig(int64(len(data)))
	}
	return data, nil
}

// notRegular says what a file is when it is not a regular file.
func notRegular(st fs.FileInfo, path string) string {
	m := st.Mode()
	what := ""
	switch {
	case m.IsRegular():
		return ""
	case m.IsDir():
		what = "a directory"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	case m&fs.ModeCharDevice != 0:
		what = "a character device"
	case m&fs.ModeDevice != 0:
		what = "a block device"
	default:
		what = "a special file"
	}
	if l, err := os.Lstat(path); err == nil && l.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(path)
		return fmt.Sprintf("is a symbolic link to %s (%s), not a regular file", what, target)
	}
	return fmt.Sprintf("is %s, not a regular file", what)
}

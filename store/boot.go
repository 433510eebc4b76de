package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The node's bbolt file caches the streams, and the streams are only as
// durable as JetStream's file store, which fsyncs every two minutes by
// default. A power loss can take the last moments of a stream away while
// a cache of them, fsynced at every commit, keeps them: the read model
// would then skip the new events that reuse those sequences, and an order
// actor would restore a snapshot ahead of its subject and never append
// again. Fsyncing the cache buys nothing, since a process that crashes
// (kill -9) leaves its writes in the kernel's page cache, which survives
// it; what loses them, the kernel going down, is what must invalidate the
// file.
//
// So on Linux the file is written without fsyncs, and a boot marker next
// to it names the boot of the kernel that holds its unsynced writes. It is
// written, synced, before the file is opened and removed once the file is
// synced and closed. A marker of another boot means the machine went down
// while the file was open: Open drops the file, and the node rebuilds the
// read model and the snapshots from the streams. Where the kernel has no
// boot ID, the file is fsynced at every commit, as bbolt does by default.

// bootIDFile is where Linux names the running boot, a random UUID drawn
// at every boot.
const bootIDFile = "/proc/sys/kernel/random/boot_id"

// bootID returns the running boot's ID, "" where the system names none.
func bootID() string {
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// bootMarker is the file naming the boot whose page cache holds writes of
// the bbolt file it sits next to.
type bootMarker struct {
	path string
	boot string
}

func markerOf(dbPath, boot string) bootMarker {
	return bootMarker{path: dbPath + ".boot", boot: boot}
}

// stale reports whether the marker names another boot than the running
// one: the file it guards was open when that kernel went down.
func (m bootMarker) stale() (bool, error) {
	b, err := os.ReadFile(m.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", m.path, err)
	}
	return string(b) != m.boot, nil
}

// write records the running boot, durably, before any unsynced write.
func (m bootMarker) write() error {
	f, err := os.OpenFile(m.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", m.path, err)
	}
	_, err = f.WriteString(m.boot)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(m.path))
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", m.path, err)
	}
	return nil
}

// remove says the guarded file holds nothing unsynced any more.
func (m bootMarker) remove() error {
	if err := os.Remove(m.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// Were the removal itself lost, the next boot would drop a sound
	// file: a rebuild, never a wrong answer.
	return syncDir(filepath.Dir(m.path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

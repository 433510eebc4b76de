package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestFileOpenWhenTheMachineWentDownIsDropped: a file written without
// fsyncs is kept across a crash of the process (its writes are in the page
// cache) and across a clean stop, and dropped, snapshots and read model
// alike, when it was open under another boot: that kernel's page cache,
// and the tail of the streams, may be gone.
func TestFileOpenWhenTheMachineWentDownIsDropped(t *testing.T) {
	for _, tc := range []struct {
		name     string
		first    string // the boot the file is written under
		crash    bool   // the process dies instead of closing the file
		then     string // the boot it is opened under next
		wantKept bool
	}{
		{name: "crash, same boot", first: "boot-a", crash: true, then: "boot-a", wantKept: true},
		{name: "crash, another boot", first: "boot-a", crash: true, then: "boot-b", wantKept: false},
		{name: "clean stop, another boot", first: "boot-a", then: "boot-b", wantKept: true},
		{name: "clean stop, same boot", first: "boot-a", then: "boot-a", wantKept: true},
		{name: "no boot ID, crash", first: "", crash: true, then: "", wantKept: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "n.bolt")
			marker := path + ".boot"
			db, err := open(path, tc.first)
			if err != nil {
				t.Fatal(err)
			}
			if db.bolt.NoSync != (tc.first != "") {
				t.Fatalf("NoSync %v under boot %q", db.bolt.NoSync, tc.first)
			}
			b, err := os.ReadFile(marker)
			switch {
			case tc.first == "" && !errors.Is(err, fs.ErrNotExist):
				t.Fatalf("a file fsynced at every commit has a marker: %q %v", b, err)
			case tc.first != "" && (err != nil || string(b) != tc.first):
				t.Fatalf("marker of an open file: %q %v, want %q", b, err, tc.first)
			}
			if _, err := db.ApplyEvents([]AppliedEvent{{Seq: 1, Event: placed("a", "u1", t0, "S1")}}); err != nil {
				t.Fatal(err)
			}
			if err := db.SaveSnapshots([]Snapshot{{Kind: KindOrder, Key: "a", Seq: 1, Data: []byte("{}")}}); err != nil {
				t.Fatal(err)
			}
			if tc.crash {
				// What kill -9 leaves: the file unsynced, the marker there.
				if err := db.bolt.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(marker); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("marker after a clean close: %v", err)
				}
			}

			db, err = open(path, tc.then)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			st, err := db.ReadModel()
			if err != nil {
				t.Fatal(err)
			}
			_, _, snap, err := db.LoadSnapshot(KindOrder, "a")
			if err != nil {
				t.Fatal(err)
			}
			kept := st.Applied == 1 && snap
			if !kept && (st.Applied != 0 || snap) {
				t.Fatalf("half dropped: applied %d, snapshot %v", st.Applied, snap)
			}
			if kept != tc.wantKept {
				t.Fatalf("kept %v (applied %d, snapshot %v), want %v", kept, st.Applied, snap, tc.wantKept)
			}
			if want := map[bool]string{true: "", false: DroppedAfterCrash}[tc.wantKept]; db.Dropped != want {
				t.Fatalf("dropped %q, want %q", db.Dropped, want)
			}
			if b, err := os.ReadFile(marker); tc.then != "" && (err != nil || string(b) != tc.then) {
				t.Fatalf("marker after reopening: %q %v, want %q", b, err, tc.then)
			}
			// The dropped file is usable at once: the projection refills it.
			if _, err := db.ApplyEvents([]AppliedEvent{{Seq: 1, Event: placed("a", "u1", t0, "S1")}, {Seq: 2, Event: paid("a", t0.Add(time.Minute))}}); err != nil {
				t.Fatal(err)
			}
			if o, ok, err := db.Order("a"); err != nil || !ok || o.Version != 2 {
				t.Fatalf("order a after reopening: %+v %v %v", o, ok, err)
			}
		})
	}
}

// TestUnreadableBootMarkerStopsOpen: a marker that cannot be read says
// nothing about the file, so Open refuses rather than guess, naming it.
func TestUnreadableBootMarkerStopsOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.bolt")
	if err := os.Mkdir(path+".boot", 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := open(path, "boot-a")
	if err == nil {
		db.Close()
		t.Fatal("opened with an unreadable marker")
	}
	if !strings.Contains(err.Error(), path+".boot") {
		t.Fatalf("error %q does not name the marker", err)
	}
}

// TestBootIDOfThisMachine: on Linux the running boot has an ID, the same
// every time it is asked, so Open writes without fsyncs there.
func TestBootIDOfThisMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		if id := bootID(); id != "" {
			t.Fatalf("boot ID %q outside Linux", id)
		}
		return
	}
	id := bootID()
	if len(id) != 36 || bootID() != id {
		t.Fatalf("boot ID %q, then %q", id, bootID())
	}
	db, err := Open(filepath.Join(t.TempDir(), "n.bolt"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if !db.bolt.NoSync || db.marker.boot != id {
		t.Fatalf("NoSync %v, marker of boot %q", db.bolt.NoSync, db.marker.boot)
	}
}

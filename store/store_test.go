package store

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"
)

func TestSnapshotsNeverGoBackwards(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "t.bolt"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.SaveSnapshots([]Snapshot{{Kind: KindOrder, Key: "o1", Seq: 5, Data: []byte("five")}}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveSnapshots([]Snapshot{{Kind: KindOrder, Key: "o1", Seq: 3, Data: []byte("three")}}); err != nil {
		t.Fatal(err)
	}
	data, seq, ok, err := db.LoadSnapshot(KindOrder, "o1")
	if err != nil || !ok || seq != 5 || string(data) != "five" {
		t.Fatalf("got %q@%d ok=%v err=%v", data, seq, ok, err)
	}
	if _, _, ok, _ := db.LoadSnapshot(KindSKU, "o1"); ok {
		t.Fatal("kinds share a bucket")
	}
	if err := db.DropSnapshots(KindOrder); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := db.LoadSnapshot(KindOrder, "o1"); ok {
		t.Fatal("snapshot survived drop")
	}
}

func TestSnapshotterKeepsLatestPerKey(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "t.bolt"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := NewSnapshotter(db, 64, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range 10 {
		s.Put(Snapshot{Kind: KindSKU, Key: "A", Seq: uint64(i + 1), Data: []byte{byte(i)}})
	}
	s.Close()
	data, seq, ok, _ := db.LoadSnapshot(KindSKU, "A")
	if !ok || seq != 10 || data[0] != 9 {
		t.Fatalf("got %v@%d", data, seq)
	}
}

package store

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFileOfOtherStreamsIsDropped: what the file derived from a stream is
// kept while the stream is the one it was built from, and dropped when the
// stream was created anew (a wiped JetStream store), holds fewer events
// than the read model applied (restored from an older backup), or holds
// another event where the read model's last was (a restored copy appended
// to since), each stream's derivatives alone.
func TestFileOfOtherStreamsIsDropped(t *testing.T) {
	built := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	later := built.Add(72 * time.Hour)
	for _, tc := range []struct {
		name          string
		orders, skus  Stream
		wantReadModel bool // kept
		wantOrderSnap bool
		wantSKUSnap   bool
		wantReason    string
		// holds is the event ID the order stream holds at the read
		// model's last event's sequence: "last" for that event's own, ""
		// for none (deleted, or not asked).
		holds string
	}{
		{name: "the same streams, grown", orders: Stream{Name: "OMS_ORDERS", Created: built, LastSeq: 9}, skus: Stream{Name: "OMS_SKUS", Created: built, LastSeq: 4},
			wantReadModel: true, wantOrderSnap: true, wantSKUSnap: true},
		{name: "the order stream created anew", orders: Stream{Name: "OMS_ORDERS", Created: later, LastSeq: 0}, skus: Stream{Name: "OMS_SKUS", Created: built, LastSeq: 4},
			wantSKUSnap: true, wantReason: "stream OMS_ORDERS was created at 2026-11-30T08:00:00Z; the file was built from one created at 2026-11-27T08:00:00Z"},
		{name: "the SKU stream created anew", orders: Stream{Name: "OMS_ORDERS", Created: built, LastSeq: 2}, skus: Stream{Name: "OMS_SKUS", Created: later, LastSeq: 0},
			wantReadModel: true, wantOrderSnap: true, wantReason: "stream OMS_SKUS was created at"},
		{name: "the order stream behind the read model", orders: Stream{Name: "OMS_ORDERS", Created: built, LastSeq: 1}, skus: Stream{Name: "OMS_SKUS", Created: built, LastSeq: 4},
			wantSKUSnap: true, wantReason: "stream OMS_ORDERS holds 1 events; the read model applied 2"},
		{name: "the order stream holding the read model's last event", orders: Stream{Name: "OMS_ORDERS", Created: built, LastSeq: 9}, skus: Stream{Name: "OMS_SKUS", Created: built, LastSeq: 4},
			holds: "last", wantReadModel: true, wantOrderSnap: true, wantSKUSnap: true},
		{name: "the order stream holding another event there", orders: Stream{Name: "OMS_ORDERS", Created: built, LastSeq: 9}, skus: Stream{Name: "OMS_SKUS", Created: built, LastSeq: 4},
			holds: "e-other", wantSKUSnap: true, wantReason: "stream OMS_ORDERS holds event e-other at sequence 2; the read model applied "},
		{name: "both created anew", orders: Stream{Name: "OMS_ORDERS", Created: later, LastSeq: 0}, skus: Stream{Name: "OMS_SKUS", Created: later, LastSeq: 0},
			wantReason: "; stream OMS_SKUS was created at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Open(filepath.Join(t.TempDir(), "n.bolt"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			// Built from the streams as they were: nothing recorded yet
			// is taken to match, then recorded.
			if dropped, err := db.CheckOrigin(Stream{Name: "OMS_ORDERS", Created: built, LastSeq: 0}, Stream{Name: "OMS_SKUS", Created: built, LastSeq: 0}); err != nil || dropped != "" {
				t.Fatalf("first check: dropped %q, %v", dropped, err)
			}
			if _, err := db.ApplyEvents([]AppliedEvent{{Seq: 1, Event: placed("a", "u1", t0, "S1")}, {Seq: 2, Event: paid("a", t0.Add(time.Minute))}}); err != nil {
				t.Fatal(err)
			}
			err = db.SaveSnapshots([]Snapshot{{Kind: KindOrder, Key: "a", Seq: 2, Data: []byte("{}")}, {Kind: KindSKU, Key: "S1", Seq: 3, Data: []byte("{}")}})
			if err != nil {
				t.Fatal(err)
			}

			seq, id, err := db.LastEvent()
			if err != nil || seq != 2 || id == "" {
				t.Fatalf("last event: %d %q %v", seq, id, err)
			}
			switch tc.holds {
			case "last":
				tc.orders.Holds = &Event{Seq: seq, ID: id}
			case "":
			default:
				tc.orders.Holds = &Event{Seq: seq, ID: tc.holds}
			}
			dropped, err := db.CheckOrigin(tc.orders, tc.skus)
			if err != nil {
				t.Fatal(err)
			}
			if (tc.wantReason == "") != (dropped == "") || !strings.Contains(dropped, tc.wantReason) {
				t.Fatalf("dropped %q, want %q", dropped, tc.wantReason)
			}
			st, _ := db.ReadModel()
			_, hasOrder, _ := db.Order("a")
			_, _, orderSnap, _ := db.LoadSnapshot(KindOrder, "a")
			_, _, skuSnap, _ := db.LoadSnapshot(KindSKU, "S1")
			if kept := st.Applied == 2 && hasOrder; kept != tc.wantReadModel || (!kept && (st.Applied != 0 || hasOrder)) {
				t.Fatalf("read model: applied %d, order a %v; want kept %v", st.Applied, hasOrder, tc.wantReadModel)
			}
			if orderSnap != tc.wantOrderSnap || skuSnap != tc.wantSKUSnap {
				t.Fatalf("snapshots: order %v, sku %v; want %v, %v", orderSnap, skuSnap, tc.wantOrderSnap, tc.wantSKUSnap)
			}
			// Recorded: the same streams again drop nothing more.
			if again, err := db.CheckOrigin(tc.orders, tc.skus); err != nil || again != "" {
				t.Fatalf("second check: dropped %q, %v", again, err)
			}
		})
	}
}

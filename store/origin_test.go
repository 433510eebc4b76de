package store

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFileOfOtherStreamsIsDropped: what the file derived from a stream is
// kept while the stream is the one it was built from, and dropped when the
// stream was created anew (a wiped JetStream store) or holds fewer events
// than the read model applied (restored from an older backup), each
// stream's derivatives alone.
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
	}{
		{name: "the same streams, grown", orders: Stream{"OMS_ORDERS", built, 9}, skus: Stream{"OMS_SKUS", built, 4},
			wantReadModel: true, wantOrderSnap: true, wantSKUSnap: true},
		{name: "the order stream created anew", orders: Stream{"OMS_ORDERS", later, 0}, skus: Stream{"OMS_SKUS", built, 4},
			wantSKUSnap: true, wantReason: "stream OMS_ORDERS was created at 2026-11-30T08:00:00Z; the file was built from one created at 2026-11-27T08:00:00Z"},
		{name: "the SKU stream created anew", orders: Stream{"OMS_ORDERS", built, 2}, skus: Stream{"OMS_SKUS", later, 0},
			wantReadModel: true, wantOrderSnap: true, wantReason: "stream OMS_SKUS was created at"},
		{name: "the order stream behind the read model", orders: Stream{"OMS_ORDERS", built, 1}, skus: Stream{"OMS_SKUS", built, 4},
			wantSKUSnap: true, wantReason: "stream OMS_ORDERS holds 1 events; the read model applied 2"},
		{name: "both created anew", orders: Stream{"OMS_ORDERS", later, 0}, skus: Stream{"OMS_SKUS", later, 0},
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
			if dropped, err := db.CheckOrigin(Stream{"OMS_ORDERS", built, 0}, Stream{"OMS_SKUS", built, 0}); err != nil || dropped != "" {
				t.Fatalf("first check: dropped %q, %v", dropped, err)
			}
			if _, err := db.ApplyEvents([]AppliedEvent{{Seq: 1, Event: placed("a", "u1", t0, "S1")}, {Seq: 2, Event: paid("a", t0.Add(time.Minute))}}); err != nil {
				t.Fatal(err)
			}
			err = db.SaveSnapshots([]Snapshot{{Kind: KindOrder, Key: "a", Seq: 2, Data: []byte("{}")}, {Kind: KindSKU, Key: "S1", Seq: 3, Data: []byte("{}")}})
			if err != nil {
				t.Fatal(err)
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

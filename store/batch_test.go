package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/oms-project/oms/order"
)

// TestBatchingChangesNothingStored folds the same events into a read model
// one event per transaction, where every event reads its order's document
// from the file, and into one in batches of random size, where an order's
// later events take what an earlier one of the batch made of it, through
// batches that fail and are rolled back, and again after a drop: every
// bucket must end byte for byte the same.
func TestBatchingChangesNothingStored(t *testing.T) {
	single, batched := openDB(t), openDB(t)
	rng := rand.New(rand.NewPCG(20261202, 1))

	shipped := func(id string, at time.Time) order.Event {
		return order.Event{ID: id + "-s", Type: order.EventShipped, OrderID: id, At: at, By: "sim", CauseID: "ship",
			Status: order.StatusInTransit, Reservation: order.ReservationCommitted,
			Delivery: &order.DeliveryUpdate{Provider: "sim", TrackingNumber: "trk-" + id}}
	}
	completed := func(id string, at time.Time) order.Event {
		return order.Event{ID: id + "-d", Type: order.EventCompleted, OrderID: id, At: at, By: "sim", CauseID: "done",
			Status: order.StatusCompleted, Reservation: order.ReservationCommitted,
			Delivery: &order.DeliveryUpdate{Provider: "sim"}}
	}
	// Each order goes placed, paid, then shipped and completed or
	// cancelled; the orders' steps interleave at random.
	var events []order.Event
	next := map[string]int{}
	var open []string
	for n := 0; len(events) < 600; {
		if len(open) == 0 || (n < 150 && rng.IntN(3) == 0) {
			id := fmt.Sprintf("o%03d", n)
			n++
			open = append(open, id)
			events = append(events, placed(id, fmt.Sprint("user-", rng.IntN(7)), t0.Add(time.Duration(n)*time.Second),
				fmt.Sprint("SKU-", rng.IntN(5)), []string{"", "BF"}[rng.IntN(2)]))
			next[id] = 1
			continue
		}
		i := rng.IntN(len(open))
		id := open[i]
		at := t0.Add(time.Duration(len(events)) * time.Minute)
		step := next[id]
		next[id]++
		switch {
		case step == 1:
			events = append(events, paid(id, at))
		case step == 2 && rng.IntN(4) == 0:
			events = append(events, cancelled(id, at, 1000))
			open = append(open[:i], open[i+1:]...)
		case step == 2:
			events = append(events, shipped(id, at))
		default:
			events = append(events, completed(id, at))
			open = append(open[:i], open[i+1:]...)
		}
	}
	// A paid event without its payment panics the fold: its batch fails.
	bad := order.Event{ID: "bad", Type: order.EventPaid, OrderID: "o000", At: t0, Status: order.StatusPaid}

	apply := func(db *DB, most int) {
		t.Helper()
		for i := 0; i < len(events); {
			size := 1 + rng.IntN(most)
			batch := make([]AppliedEvent, 0, size+1)
			for j := i; j < len(events) && j < i+size; j++ {
				batch = append(batch, AppliedEvent{Seq: uint64(j + 1), Event: events[j]})
			}
			if rng.IntN(5) == 0 {
				failing := append(append([]AppliedEvent(nil), batch...), AppliedEvent{Seq: uint64(i + len(batch) + 1), Event: bad})
				if _, err := db.ApplyEvents(failing); err == nil {
					t.Fatal("a batch with an event that panics the fold was applied")
				}
			}
			if n, err := db.ApplyEvents(batch); err != nil || n != len(batch) {
				t.Fatalf("applied %d of %d: %v", n, len(batch), err)
			}
			i += len(batch)
		}
		if st, err := db.ReadModel(); err != nil || st.Applied != uint64(len(events)) || st.Gaps != 0 {
			t.Fatalf("read model %+v (%v), want %d applied, no gaps", st, err, len(events))
		}
	}
	apply(single, 1)
	apply(batched, 60)
	if err := batched.DropReadModel(); err != nil {
		t.Fatal(err)
	}
	apply(batched, 60)
	want, got := dumpReadModel(t, single), dumpReadModel(t, batched)
	for bucket, kv := range want {
		if !bytes.Equal(got[bucket], kv) {
			t.Errorf("bucket %s differs between one event per transaction and batches", bucket)
		}
	}
	counts, _ := batched.StatusCounts()
	if counts[string(order.StatusCompleted)] == 0 || counts[string(order.StatusCancelled)] == 0 {
		t.Fatalf("no order completed or none was cancelled: %v", counts)
	}
}

// dumpReadModel is every read-model bucket's keys and values, in order.
func dumpReadModel(t *testing.T, db *DB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, name := range readModelBuckets {
			var buf bytes.Buffer
			if err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				fmt.Fprintf(&buf, "%x=%x\n", k, v)
				return nil
			}); err != nil {
				return err
			}
			out[string(name)] = buf.Bytes()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

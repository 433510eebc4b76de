package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/oms-project/oms/order"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func placed(id, user string, at time.Time, sku string, promo ...string) order.Event {
	return order.Event{ID: id + "-p", Type: order.EventPlaced, OrderID: id, At: at, By: user, CauseID: "place",
		Status: order.StatusReceived, Reservation: order.ReservationPending,
		Placed: &order.Placed{User: user, Items: []order.Item{{SKU: sku, Quantity: 2, UnitPrice: 500}}, Currency: "EUR",
			Source: "web", PromotionCodes: promo, Total: 1000, BasketSize: 2}}
}

func paid(id string, at time.Time) order.Event {
	return order.Event{ID: id + "-pay", Type: order.EventPaid, OrderID: id, At: at, By: "pay", CauseID: "pay",
		Status: order.StatusPaid, Reservation: order.ReservationCommitted,
		Payment: &order.PaymentInformation{Amount: 1000, Currency: "EUR", Status: "succeeded"}}
}

func cancelled(id string, at time.Time, refund int64) order.Event {
	return order.Event{ID: id + "-c", Type: order.EventCancelled, OrderID: id, At: at, By: "u", CauseID: "cancel",
		Status: order.StatusCancelled, Reservation: order.ReservationReleased,
		Cancel: &order.Cancellation{Reason: order.CancelCustomerRequest, RefundDue: refund, ReleaseStock: true}}
}

func openDB(t testing.TB) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "rm.bolt"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestReadModelAppliesExactlyOnce(t *testing.T) {
	db := openDB(t)
	batch := []AppliedEvent{
		{Seq: 1, Event: placed("o1", "alice", t0, "A", "BF")},
		{Seq: 2, Event: placed("o2", "bob", t0.Add(time.Minute), "B")},
		{Seq: 3, Event: paid("o1", t0.Add(2*time.Minute))},
	}
	if n, err := db.ApplyEvents(batch); err != nil || n != 3 {
		t.Fatalf("apply: %d %v", n, err)
	}
	// Redelivery of the same batch plus one new event: only the new one counts.
	if n, err := db.ApplyEvents(append(batch, AppliedEvent{Seq: 4, Event: cancelled("o1", t0.Add(3*time.Minute), 1000)})); err != nil || n != 1 {
		t.Fatalf("reapply: %d %v", n, err)
	}
	counts, _ := db.StatusCounts()
	if counts["order_received"] != 1 || counts["order_cancelled"] != 1 || counts["order_paid"] != 0 {
		t.Fatalf("counts %v", counts)
	}
	o, ok, err := db.Order("o1")
	if err != nil || !ok || o.Status != order.StatusCancelled || o.Version != 4 {
		t.Fatalf("o1: %+v %v %v", o, ok, err)
	}
	years, months, err := db.Summary(2026)
	if err != nil || len(years) != 1 || len(months) != 1 {
		t.Fatalf("summary %v %v %v", years, months, err)
	}
	y := years[0]
	// Paid 1000, refunded 1000 on cancellation: no revenue left.
	if y.Orders != 2 || y.Paid != 1 || y.Cancelled != 1 || y.Units != 4 || y.Revenue["EUR"] != 0 || y.AverageBasketSize != 2 {
		t.Fatalf("year %+v", y)
	}
	promos, _ := db.Promotions()
	if len(promos) != 1 || promos[0].Code != "BF" || promos[0].Orders != 1 {
		t.Fatalf("promotions %+v", promos)
	}
	st, _ := db.ReadModel()
	if st.Applied != 4 || st.Gaps != 0 {
		t.Fatalf("state %+v", st)
	}
	// The status index moved: o1 is listed as cancelled, not as received.
	got, _, _ := db.ListOrders(order.Filter{Status: "order_received"})
	if len(got) != 1 || got[0].ID != "o2" {
		t.Fatalf("received: %v", ids(got))
	}
	// A jump in the sequence is counted as a gap.
	if _, err := db.ApplyEvents([]AppliedEvent{{Seq: 9, Event: placed("o3", "carol", t0.Add(4*time.Minute), "A")}}); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.ReadModel(); st.Gaps != 1 || st.Applied != 9 {
		t.Fatalf("after gap %+v", st)
	}
}

func ids(os []order.Order) []string {
	out := make([]string, len(os))
	for i, o := range os {
		out[i] = o.ID
	}
	return out
}

func TestListPagesEveryMatchOnceInCreationOrder(t *testing.T) {
	db := openDB(t)
	var batch []AppliedEvent
	for i := range 120 {
		user := []string{"alice", "bob", "carol"}[i%3]
		batch = append(batch, AppliedEvent{Seq: uint64(i + 1), Event: placed(fmt.Sprintf("o%03d", i), user, t0.Add(time.Duration(i)*time.Second), fmt.Sprint("S", i%4))})
	}
	if _, err := db.ApplyEvents(batch); err != nil {
		t.Fatal(err)
	}
	f := order.Filter{User: "alice", SKU: "S0", Limit: 3}
	var seen []string
	for {
		page, next, err := db.ListOrders(f)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, ids(page)...)
		if next == "" {
			break
		}
		f.Cursor = next
	}
	// alice has i%3==0; S0 has i%4==0: i%12==0 → 10 orders.
	if len(seen) != 10 || seen[0] != "o000" || seen[9] != "o108" {
		t.Fatalf("seen %v", seen)
	}
	// Time range [from, to).
	page, _, _ := db.ListOrders(order.Filter{From: t0.Add(10 * time.Second), To: t0.Add(13 * time.Second)})
	if fmt.Sprint(ids(page)) != "[o010 o011 o012]" {
		t.Fatalf("range %v", ids(page))
	}
	if _, _, err := db.ListOrders(order.Filter{Cursor: "!!"}); err != ErrBadCursor {
		t.Fatalf("bad cursor: %v", err)
	}
}

// TestExpiryIndex: an order is due for expiry from its reservation's time
// until it is paid or cancelled.
func TestExpiryIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rm.bolt")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	withExpiry := func(e order.Event, at time.Time) order.Event {
		e.Placed.ReservationExpiresAt = at
		return e
	}
	batch := []AppliedEvent{
		{Seq: 1, Event: withExpiry(placed("a", "u1", t0, "S1"), t0.Add(15*time.Minute))},
		{Seq: 2, Event: withExpiry(placed("b", "u1", t0.Add(time.Second), "S1"), t0.Add(10*time.Minute))},
		{Seq: 3, Event: withExpiry(placed("c", "u2", t0.Add(2*time.Second), "S1"), t0.Add(20*time.Minute))},
		{Seq: 4, Event: paid("c", t0.Add(time.Minute))},
	}
	if _, err := db.ApplyEvents(batch); err != nil {
		t.Fatal(err)
	}
	due := func(db *DB, at time.Time, limit int, want ...string) {
		t.Helper()
		got, err := db.DueForExpiry(at, limit)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("due at %s: %v %v, want %v", at.Sub(t0), got, err, want)
		}
		if n, err := db.CountDueForExpiry(at, limit); err != nil || n != len(want) {
			t.Fatalf("count due at %s: %d %v, want %d", at.Sub(t0), n, err, len(want))
		}
	}
	due(db, t0.Add(9*time.Minute), 10)
	due(db, t0.Add(10*time.Minute), 10, "b")
	due(db, t0.Add(time.Hour), 10, "b", "a") // c was paid
	due(db, t0.Add(time.Hour), 1, "b")
	if _, err := db.ApplyEvents([]AppliedEvent{{Seq: 5, Event: cancelled("b", t0.Add(11*time.Minute), 0)}}); err != nil {
		t.Fatal(err)
	}
	due(db, t0.Add(time.Hour), 10, "a")

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// What a node finds on restart is what it wrote.
	if db, err = Open(path); err != nil || db.Dropped != "" {
		t.Fatalf("reopen: %v, dropped %+v", err, db)
	}
	defer db.Close()
	due(db, t0.Add(time.Hour), 10, "a")
}

// TestEarlierLayoutIsRebuilt: a read model written by a version that kept
// documents by ID (and, before that, had no expiry index) is dropped on
// open, so that the projection rebuilds it from the stream; snapshots,
// which are not part of it, stay.
func TestEarlierLayoutIsRebuilt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rm.bolt")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ApplyEvents([]AppliedEvent{{Seq: 1, Event: placed("a", "u1", t0, "S1")}}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveSnapshots([]Snapshot{{Kind: KindSKU, Key: "S1", Seq: 7, Data: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		old, err := tx.CreateBucket(bucketRMOrdersByID)
		if err != nil {
			return err
		}
		return old.Put([]byte("a"), []byte(`{"id":"a"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, _ := db.ReadModel()
	n, _ := db.CountOrders()
	if db.Dropped != DroppedEarlierLayout || st.Applied != 0 || n != 0 {
		t.Fatalf("after open: dropped %q, state %+v, %d orders; want it dropped", db.Dropped, st, n)
	}
	if _, seq, ok, err := db.LoadSnapshot(KindSKU, "S1"); err != nil || !ok || seq != 7 {
		t.Fatalf("snapshot: seq %d ok %v %v", seq, ok, err)
	}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketRMOrdersByID) != nil {
			return fmt.Errorf("the earlier layout's bucket is still there")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Rebuilt, it is what the events say.
	if _, err := db.ApplyEvents([]AppliedEvent{{Seq: 1, Event: placed("a", "u1", t0, "S1")}, {Seq: 2, Event: paid("a", t0.Add(time.Minute))}}); err != nil {
		t.Fatal(err)
	}
	if o, ok, err := db.Order("a"); err != nil || !ok || o.Status != order.StatusPaid || o.Version != 2 {
		t.Fatalf("order a: %+v %v %v", o, ok, err)
	}
}

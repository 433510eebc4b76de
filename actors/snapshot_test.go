package actors

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/store"
)

const snapshotOrder = "0b6f1c1e-4a8e-4c55-9d8b-3c1d7c3f0a01"

var snapshotAt = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func orderCommands() []order.Command {
	meta := func(id string) order.Meta {
		return order.Meta{ID: id, OrderID: snapshotOrder, At: snapshotAt, By: "fuzz"}
	}
	notes := "ring twice"
	return []order.Command{
		order.Place{Meta: meta("place"), User: "alice", Currency: "EUR",
			Items:       []order.Item{{SKU: "SKU-1", Quantity: 2, UnitPrice: 1500}},
			Destination: order.Destination{Country: "DE", PostalCode: "10115", Address: "Invalidenstr. 1", PhoneNumber: "+49 30 1234567"}},
		order.RecordStock{Meta: meta("stock"), Held: true},
		order.RecordPayment{Meta: meta("pay"), Type: order.PaymentSucceeded, Amount: 3000, Currency: "EUR", Provider: "sim"},
		order.Update{Meta: meta("update"), Notes: &notes},
		order.RecordDelivery{Meta: meta("ship"), Type: order.DeliveryInTransit, Provider: "nv", TrackingNumber: "NV1"},
		order.RecordDelivery{Meta: meta("fail"), Type: order.DeliveryAttemptFailed, Provider: "nv"},
		order.RecordDelivery{Meta: meta("done"), Type: order.DeliveryDelivered, Provider: "nv"},
		order.Cancel{Meta: meta("cancel"), Reason: "changed my mind"},
		order.ExpireReservation{Meta: meta("expire")},
	}
}

var policy = order.Policy{ReservationTTL: 15 * time.Minute, MaxDeliveryAttempts: 2}

// FuzzOrderSnapshot feeds the order actor's snapshot decoder. A snapshot it
// takes must be one every command can be decided against, and whose
// events apply, without panicking.
func FuzzOrderSnapshot(f *testing.F) {
	var s order.State
	for _, c := range orderCommands() {
		if e, err := order.Decide(policy, s, c); err == nil && e != nil {
			s = order.Evolve(s, *e)
			data, _ := json.Marshal(s)
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, ok := orderSnapshot(snapshotOrder, data)
		if !ok {
			return
		}
		for _, c := range orderCommands() {
			if e, err := order.Decide(policy, s, c); err == nil && e != nil {
				s = order.Evolve(s, *e)
			}
		}
	})
}

// FuzzSKUSnapshot feeds the SKU actor's snapshot decoder. A snapshot it
// takes must keep its totals in bounds through every command.
func FuzzSKUSnapshot(f *testing.F) {
	var s inventory.Stock
	exp := snapshotAt.Add(time.Minute)
	cmds := []any{
		inventory.SetStock{ID: "set", SKU: "SKU-1", Quantity: 10, At: snapshotAt, By: "admin"},
		inventory.Reserve{SKU: "SKU-1", OrderID: "o1", Quantity: 3, ExpiresAt: exp, At: snapshotAt},
		inventory.Reserve{SKU: "SKU-1", OrderID: "o2", Quantity: 4, ExpiresAt: exp, At: snapshotAt},
		inventory.Commit{SKU: "SKU-1", OrderID: "o1", At: snapshotAt},
		inventory.Release{SKU: "SKU-1", OrderID: "o2", Reason: "cancelled", At: snapshotAt},
		inventory.Release{SKU: "SKU-1", OrderID: "o1", Reason: "refund", At: snapshotAt},
	}
	for _, c := range cmds {
		if e, err := inventory.Decide(s, c); err == nil && e != nil {
			s = inventory.Evolve(s, *e)
			data, _ := json.Marshal(s)
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, ok := skuSnapshot("SKU-1", data)
		if !ok {
			return
		}
		for _, c := range cmds {
			e, err := inventory.Decide(s, c)
			if err != nil || e == nil {
				continue
			}
			s = inventory.Evolve(s, *e)
			if !inBounds(s.OnHand) || s.Reserved < 0 {
				t.Fatalf("%T leaves on-hand %d, reserved %d", c, s.OnHand, s.Reserved)
			}
		}
	})
}

func TestSnapshotsThatAreNotTheirEntitysStateAreIgnored(t *testing.T) {
	var s order.State
	e, err := order.Decide(policy, s, orderCommands()[0])
	if err != nil {
		t.Fatal(err)
	}
	good, _ := json.Marshal(order.Evolve(s, *e))
	if _, ok := orderSnapshot(snapshotOrder, good); !ok {
		t.Fatal("the order's own snapshot is ignored")
	}
	if _, ok := orderSnapshot("0b6f1c1e-4a8e-4c55-9d8b-3c1d7c3f0a02", good); ok {
		t.Fatal("another order's snapshot is taken")
	}
	for _, bad := range []string{
		`{"sku":"SKU-2","onHand":5}`,
		`{"sku":"SKU-1","onHand":5,"reserved":6,"holds":{"o1":{"quantity":6,"state":"reserved"}}}`,
		`{"sku":"SKU-1","onHand":5,"reserved":0,"holds":{"o1":{"quantity":1,"state":"reserved"}}}`,
		`{"sku":"SKU-1","onHand":5,"holds":{"o1":{"quantity":1,"state":"lost"}}}`,
		`{"sku":"SKU-1","onHand":-1}`,
	} {
		if _, ok := skuSnapshot("SKU-1", []byte(bad)); ok {
			t.Errorf("%s taken", bad)
		}
	}
	if _, ok := skuSnapshot("SKU-1", []byte(`{"sku":"SKU-1","onHand":5,"reserved":2,"holds":{"o1":{"quantity":2,"state":"reserved"},"o2":{"quantity":9,"state":"committed"}}}`)); !ok {
		t.Error("a consistent SKU snapshot is ignored")
	}
}

// TestSnapshotAheadOfItsStreamIsForgotten: a snapshot of events the stream
// no longer holds (its store restored from an older copy, the subject's
// last message deleted) is forgotten once the stream disagrees with it,
// and the entity replayed from its subject: the order and the SKU then
// decide on what the stream says and append again, where they used to be
// fenced until they gave up, or to refuse on stock the stream never took.
func TestSnapshotAheadOfItsStreamIsForgotten(t *testing.T) {
	// Placed, stock held and paid, snapshotted paid; then the stream
	// loses the payment.
	paidThenLost := func(t *testing.T) (*Deps, context.Context, *Host, []order.Command, uint64) {
		d, ctx := orderDeps(t)
		cmds := orderCommands()
		var s order.State
		var last uint64
		for _, c := range cmds[:3] {
			appendDecided(t, ctx, d, &s, &last, c)
		}
		s.Order.Version = last
		snap, _ := json.Marshal(s)
		if err := d.DB.SaveSnapshots([]store.Snapshot{{Kind: store.KindOrder, Key: snapshotOrder, Seq: last, Data: snap}}); err != nil {
			t.Fatal(err)
		}
		if err := d.Orders.DeleteMsg(ctx, last); err != nil {
			t.Fatal(err)
		}
		sys := NewSystem(d.Log)
		t.Cleanup(sys.Shutdown)
		h := NewHost(sys, NewOrderHandler(d), HostOptions{Idle: time.Minute, Mailbox: 16, MaxBatch: 16})
		t.Cleanup(h.Stop)
		return d, ctx, h, cmds, last
	}
	// Nothing appended, so no fence to tell: a read, and the payment
	// repeated (already applied, says the snapshot), check the subject's
	// end first, and see the stream's state.
	t.Run("order, a read", func(t *testing.T) {
		_, ctx, h, _, last := paidThenLost(t)
		if r := askOrder(t, ctx, h, GetOrder{}); r.Err != nil || r.Order.Status != order.StatusReceived ||
			r.Order.Reservation != order.ReservationHeld || r.Order.Version >= last {
			t.Fatalf("reading an order whose payment the stream lost: %+v, want it held, not paid", r)
		}
	})
	t.Run("order, a command already applied", func(t *testing.T) {
		_, ctx, h, cmds, last := paidThenLost(t)
		if r := askOrder(t, ctx, h, OrderCommand{Cmd: cmds[2]}); r.Err != nil || !r.Appended ||
			r.Order.Status != order.StatusPaid || r.Order.Version <= last {
			t.Fatalf("the payment again, which the stream lost: %+v, want it appended", r)
		}
	})
	t.Run("order", func(t *testing.T) {
		d, ctx, h, cmds, last := paidThenLost(t)
		// Shipping is decided on the snapshot (paid), fenced, and decided
		// again on the stream (stock held, not paid): refused, the
		// provider's event recorded as rejected.
		if r := askOrder(t, ctx, h, OrderCommand{Cmd: cmds[4]}); r.Err == nil || errors.Is(r.Err, api.ErrUnavailable) ||
			r.Order.Status != order.StatusReceived || r.Order.Reservation != order.ReservationHeld {
			t.Fatalf("shipping an order the stream has not seen paid: %+v, want a refusal on the stream's state", r)
		}
		if _, seq, ok, _ := d.DB.LoadSnapshot(store.KindOrder, snapshotOrder); ok && seq >= last {
			t.Fatalf("the snapshot ahead of the stream (seq %d) is still there", seq)
		}
		ship := cmds[4].(order.RecordDelivery)
		ship.Meta.ID = "ship-again" // the provider's next event
		for _, c := range []order.Command{cmds[2], ship} {
			if r := askOrder(t, ctx, h, OrderCommand{Cmd: c}); r.Err != nil || !r.Appended {
				t.Fatalf("%T after the replay: %+v", c, r)
			}
		}
		if r := askOrder(t, ctx, h, GetOrder{}); r.Err != nil || r.Order.Status != order.StatusInTransit || r.Order.Version <= last {
			t.Fatalf("after paying and shipping again: %+v", r)
		}
	})
	for _, tc := range []struct {
		name     string
		quantity int64 // reserved from the 10 on hand after the snapshot's hold of 2 is lost
	}{
		{name: "sku, a refusal checked", quantity: 9}, // the snapshot has 8 available: refused, then checked
		{name: "sku, an append fenced", quantity: 1},  // the snapshot has room: appended, fenced
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, ctx := skuDeps(t)
			const sku = "AHEAD"
			subject := jetstream.SKUEventsPrefix + sku
			at := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
			var st inventory.Stock
			var last uint64
			for _, c := range []any{inventory.SetStock{ID: "count-1", SKU: sku, Quantity: 10, At: at},
				inventory.Reserve{SKU: sku, OrderID: "o-1", Quantity: 2, ExpiresAt: at.Add(time.Hour), At: at}} {
				e, err := inventory.Decide(st, c)
				if err != nil {
					t.Fatal(err)
				}
				st = inventory.Evolve(st, *e)
				data, _ := inventory.EncodeEvents([]inventory.Event{*e})
				ack, err := jetstream.Append(ctx, d.JS, subject, data, last, nil)
				if err != nil {
					t.Fatal(err)
				}
				last = ack.Sequence
			}
			st.Version = last
			snap, _ := json.Marshal(st)
			if _, ok := skuSnapshot(sku, snap); !ok {
				t.Fatalf("test snapshot refused: %s", snap)
			}
			if err := d.DB.SaveSnapshots([]store.Snapshot{{Kind: store.KindSKU, Key: sku, Seq: last, Data: snap}}); err != nil {
				t.Fatal(err)
			}
			if err := d.SKUs.DeleteMsg(ctx, last); err != nil {
				t.Fatal(err)
			}
			sys := NewSystem(d.Log)
			defer sys.Shutdown()
			h := NewHost(sys, NewSKUHandler(d), HostOptions{Idle: time.Minute, Mailbox: 16, MaxBatch: 16})
			defer h.Stop()
			r := skuRequest(t, ctx, h, sku, inventory.Reserve{SKU: sku, OrderID: "o-2", Quantity: tc.quantity,
				ExpiresAt: at.Add(time.Hour), At: at})
			if r.Err != nil || r.Hold.State != inventory.HoldReserved || r.Stock.OnHand != 10 || r.Stock.Reserved != tc.quantity {
				t.Fatalf("reserve %d of the 10 the stream has on hand: %+v", tc.quantity, r)
			}
			if _, seq, ok, _ := d.DB.LoadSnapshot(store.KindSKU, sku); ok && seq >= last {
				t.Fatalf("the snapshot ahead of the stream (seq %d) is still there", seq)
			}
		})
	}
}

package actors

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/order"
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

package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/order"
)

// TestNoOversellUnderContention places 1,000 one-unit orders at once for a
// SKU with 100 units: exactly 100 are held, the rest are cancelled for lack
// of stock, and no SKU event in the stream ever shows negative availability.
func TestNoOversellUnderContention(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Tuning.ReactorWorkers = 32
	h := startNode(t, cfg)
	h.setStock("HOT", 100)
	const n = 1000
	ids := h.placeAtOnce(n, 200, func(i int) api.PlaceOrder {
		return placeReq(fmt.Sprintf("hot-%d", i), order.Item{SKU: "HOT", Quantity: 1, UnitPrice: 100})
	})
	var held, unavailable int
	eventually(t, 60*time.Second, "every order decided", func() (bool, string) {
		held, unavailable = 0, 0
		for _, id := range ids {
			o, err := h.c.GetOrder(h.ctx, id)
			if err != nil {
				return false, err.Error()
			}
			switch {
			case o.Reservation == order.ReservationHeld:
				held++
			case o.Status == order.StatusCancelled && o.CancelReason == order.CancelStockUnavailable:
				unavailable++
			}
		}
		return held+unavailable == n, fmt.Sprintf("held %d unavailable %d", held, unavailable)
	})
	if held != 100 || unavailable != 900 {
		t.Fatalf("held %d, unavailable %d; want 100 and 900", held, unavailable)
	}
	if on, r, a := h.stock("HOT"); on != 100 || r != 100 || a != 0 {
		t.Fatalf("stock onHand %d reserved %d available %d", on, r, a)
	}
	// Check the invariant on every event of the SKU's history.
	reserved := 0
	for _, se := range h.skuEvents("HOT") {
		e := se.Event
		if e.OnHand-e.Reserved < 0 || e.Reserved < 0 {
			t.Fatalf("seq %d: onHand %d reserved %d", se.Seq, e.OnHand, e.Reserved)
		}
		if e.Type == inventory.EventReserved {
			reserved++
		}
	}
	if reserved != 100 {
		t.Fatalf("%d reservations in the stream, want 100", reserved)
	}
	// Cancelling one held order frees exactly its unit.
	for _, id := range ids {
		if o, _ := h.c.GetOrder(h.ctx, id); o.Reservation == order.ReservationHeld {
			if _, err := h.c.CancelOrder(h.ctx, api.CancelOrder{ID: id}); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	eventually(t, 10*time.Second, "one unit back", func() (bool, string) {
		_, r, a := h.stock("HOT")
		return r == 99 && a == 1, fmt.Sprintf("reserved %d available %d", r, a)
	})
}

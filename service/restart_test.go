package service_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/oms-project/oms/order"
)

// TestPassivationAndGracefulRestart lets order actors passivate (writing
// snapshots), reactivates them from snapshot plus stream tail, then restarts
// the node on the same data dir and finishes the orders there.
func TestPassivationAndGracefulRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.IdleTimeout = 200 * time.Millisecond
	h := startNode(t, cfg)
	h.setStock("SKU-P", 10)
	o := h.place(placeReq("k-passivate", order.Item{SKU: "SKU-P", Quantity: 2, UnitPrice: 450}))
	h.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	eventually(t, 10*time.Second, "actors passivated", func() (bool, string) {
		st, err := h.node.Status()
		return err == nil && st.ActiveOrder == 0 && st.ActiveSKU == 0, fmt.Sprintf("%+v %v", st, err)
	})
	// Reactivated from its snapshot: the payment applies on top of it.
	h.pay(o, "p-passivate", order.PaymentSucceeded, 900)
	before := h.waitOrder(o.ID, statusIs(order.StatusPaid, order.ReservationCommitted), "paid after reactivation")
	// The SKU actor, reactivated from its snapshot too, commits the hold.
	eventually(t, 10*time.Second, "stock committed", func() (bool, string) {
		on, r, a := h.stock("SKU-P")
		return on == 8 && r == 0 && a == 8, fmt.Sprintf("onHand %d reserved %d available %d", on, r, a)
	})

	h.stop()
	h2 := startNode(t, cfg)
	after, err := h2.c.GetOrderAt(h2.ctx, o.ID, before.Version)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("order changed across restart:\nbefore %+v\nafter  %+v", before, after)
	}
	h2.ship(o, "d-passivate", order.DeliveryDelivered)
	h2.waitOrder(o.ID, statusIs(order.StatusCompleted, order.ReservationCommitted), "completed after restart")
	// The status index resumed from its stored sequence: the order moved
	// from paid to completed and is counted once.
	eventually(t, 10*time.Second, "status counts", func() (bool, string) {
		st, err := h2.node.Status()
		return err == nil && st.Orders[string(order.StatusCompleted)] == 1 && st.Orders[string(order.StatusPaid)] == 0,
			fmt.Sprintf("%+v %v", st.Orders, err)
	})
}

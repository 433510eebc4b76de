package node_test

import (
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// TestPassivationAndGracefulRestart lets order actors passivate (writing
// snapshots), reactivates them from snapshot plus stream tail, then restarts
// the node on the same data dir and finishes the orders there.
func TestPassivationAndGracefulRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.IdleTimeout = 200 * time.Millisecond
	// Snapshot even this short order's history, as a long one's would be.
	cfg.Tuning.SnapshotEvery = 1
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

// TestInboundResumesFromRecordedFloor: the inbound partition consumers keep
// their state in memory, so a crash of the node (and of its embedded
// server) loses them; each is recreated after its partition's recorded
// acknowledgement floor. A provider event processed before the crash is not
// delivered again, and one published after the restart is.
func TestInboundResumesFromRecordedFloor(t *testing.T) {
	cfg := testConfig(t.TempDir())
	h := startNode(t, cfg)
	h.setStock("SKU-F", 5)
	o := h.place(placeReq("k-floor", order.Item{SKU: "SKU-F", Quantity: 1, UnitPrice: 100}))
	h.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	h.pay(o, "p-floor", order.PaymentSucceeded, 100)
	h.waitOrder(o.ID, statusIs(order.StatusPaid, order.ReservationCommitted), "paid")
	p := jetstream.PartitionOf(o.ID, cfg.Partitions)
	inbound, err := h.js.Stream(h.ctx, jetstream.StreamInbound)
	if err != nil {
		t.Fatal(err)
	}
	payment, err := inbound.GetLastMsgForSubject(h.ctx, fmt.Sprintf("%s%d.payments.%s", jetstream.InboundPrefix, p, o.ID))
	if err != nil {
		t.Fatal(err)
	}
	floors, err := h.js.KeyValue(h.ctx, "OMS_INBOUND_FLOORS")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "floor recorded", func() (bool, string) {
		e, err := floors.Get(h.ctx, fmt.Sprintf("p%d", p))
		if err != nil {
			return false, err.Error()
		}
		f, _ := strconv.ParseUint(string(e.Value()), 10, 64)
		return f >= payment.Sequence, fmt.Sprintf("floor %d, payment at %d", f, payment.Sequence)
	})
	h.node.Kill()

	h2 := startNode(t, cfg)
	cons, err := h2.js.Consumer(h2.ctx, jetstream.StreamInbound, fmt.Sprintf("oms-inbound-%d", p))
	if err != nil {
		t.Fatal(err)
	}
	if c := cons.CachedInfo().Config; !c.MemoryStorage || c.OptStartSeq <= payment.Sequence {
		t.Fatalf("recreated consumer: memory %v, starts at %d, payment at %d", c.MemoryStorage, c.OptStartSeq, payment.Sequence)
	}
	h2.ship(o, "d-floor", order.DeliveryInTransit)
	h2.waitOrder(o.ID, statusIs(order.StatusInTransit, order.ReservationCommitted), "in transit after the restart")
	info, err := cons.Info(h2.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer != 1 {
		t.Fatalf("recreated consumer delivered %d messages, want only the new one", info.Delivered.Consumer)
	}
}

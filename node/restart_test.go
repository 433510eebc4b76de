package node_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/config"
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

// TestInboundResumesFromRecordedFloor: a standalone node pulls every
// inbound partition through one consumer, kept in memory, so a crash of the
// node (and of its embedded server) loses it; it is recreated after the
// recorded floor. A provider event processed before the crash is not
// delivered again, and one published after the restart is.
func TestInboundResumesFromRecordedFloor(t *testing.T) {
	cfg := testConfig(t.TempDir())
	h := startNode(t, cfg)
	o := h.paidOrder("floor")
	p := jetstream.PartitionOf(o.ID, cfg.Partitions)
	inbound, err := h.js.Stream(h.ctx, jetstream.StreamInbound)
	if err != nil {
		t.Fatal(err)
	}
	payment, err := inbound.GetLastMsgForSubject(h.ctx, fmt.Sprintf("%s%d.payments.%s", jetstream.InboundPrefix, p, o.ID))
	if err != nil {
		t.Fatal(err)
	}
	h.waitFloor("all", payment.Sequence)
	for q := range cfg.Partitions {
		if _, err := h.js.Consumer(h.ctx, jetstream.StreamInbound, jetstream.InboundConsumerName(q)); !errors.Is(err, natsjs.ErrConsumerNotFound) {
			t.Fatalf("standalone node has partition %d's own consumer (%v)", q, err)
		}
	}
	h.node.Kill()

	h2 := startNode(t, cfg)
	cons, err := h2.js.Consumer(h2.ctx, jetstream.StreamInbound, jetstream.InboundAllConsumerName)
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

// TestReactorConsumerLostResumesAfterItsFloor: the reactor's durable
// consumer deleted by hand, under a running node and again while the node
// is down, is opened again after its recorded floor: the order events it
// had handled are not delivered again (from the stream's start every past
// order's payment request and notifications would be sent again), and an
// event after it is.
func TestReactorConsumerLostResumesAfterItsFloor(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Tuning.FloorInterval = 100 * time.Millisecond
	h := startNode(t, cfg)
	// Listening from before the order is placed: its notifications so far
	// are sent before the reactor acknowledges their event, but may reach
	// the server after the floor is recorded, so they are drained below
	// instead of missed by a later subscription.
	heard := make(chan *nats.Msg, 16)
	sub, err := h.nc.ChanSubscribe(jetstream.NotificationsPrefix+"*", heard)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	o := h.paidOrder("reactor-floor")
	orders, err := h.js.Stream(h.ctx, jetstream.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	paid, err := jetstream.LastSeq(h.ctx, orders, jetstream.OrderEventsPrefix+o.ID)
	if err != nil {
		t.Fatal(err)
	}
	h.waitFloor("reactor", paid)
	for paidHeard := false; !paidHeard; {
		select {
		case m := <-heard:
			var n api.Notification
			if err := json.Unmarshal(m.Data, &n); err != nil {
				t.Fatal(err)
			}
			paidHeard = n.Type == api.NotifyPaid
		case <-time.After(10 * time.Second):
			t.Fatal("the paid order's notification never came")
		}
	}
	// Deleted under the running node: the next event is handled by a
	// consumer opened again after the floor, which delivers only it.
	if err := h.js.DeleteConsumer(h.ctx, jetstream.StreamOrders, jetstream.ConsumerReactor); err != nil {
		t.Fatal(err)
	}
	h.ship(o, "d-reactor-floor", order.DeliveryInTransit)
	h.waitOrder(o.ID, statusIs(order.StatusInTransit, order.ReservationCommitted), "in transit")
	hear := func(want string) {
		t.Helper()
		select {
		case m := <-heard:
			var n api.Notification
			if err := json.Unmarshal(m.Data, &n); err != nil || n.Type != want {
				t.Fatalf("heard %s (%v), want only %s", m.Data, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s notification", want)
		}
	}
	hear(api.NotifyShipped)
	delivered := func(h *harness, want uint64) {
		t.Helper()
		eventually(t, 10*time.Second, "reactor deliveries", func() (bool, string) {
			cons, err := h.js.Consumer(h.ctx, jetstream.StreamOrders, jetstream.ConsumerReactor)
			if err != nil {
				return false, err.Error()
			}
			c := cons.CachedInfo()
			return c.Delivered.Consumer == want && c.NumAckPending == 0,
				fmt.Sprintf("delivered %d, %d pending, starts at %d (paid at %d)", c.Delivered.Consumer, c.NumAckPending,
					c.Config.OptStartSeq, paid)
		})
	}
	delivered(h, 1)
	shipped, err := jetstream.LastSeq(h.ctx, orders, jetstream.OrderEventsPrefix+o.ID)
	if err != nil {
		t.Fatal(err)
	}
	h.waitFloor("reactor", shipped)
	h.stop()

	// Deleted while no reactor runs (a node of the query role alone holds
	// the server): the next node with the command role creates it after
	// the floor.
	query := cfg
	query.Roles = []string{config.RoleQuery}
	h2 := startNode(t, query)
	// It may be gone already: nats-server frees a deleted consumer's name
	// before it removes its directory, so the one opened again at once can
	// lose its file with the server; the next start creates it after the
	// floor then, as below.
	if err := h2.js.DeleteConsumer(h2.ctx, jetstream.StreamOrders, jetstream.ConsumerReactor); err != nil &&
		!errors.Is(err, natsjs.ErrConsumerNotFound) {
		t.Fatal(err)
	}
	h2.stop()
	h3 := startNode(t, cfg)
	sub3, err := h3.nc.ChanSubscribe(jetstream.NotificationsPrefix+o.ID, heard)
	if err != nil {
		t.Fatal(err)
	}
	defer sub3.Unsubscribe()
	if err := h3.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	h3.ship(o, "d-reactor-floor-2", order.DeliveryDelivered)
	h3.waitOrder(o.ID, statusIs(order.StatusCompleted, order.ReservationCommitted), "completed")
	hear(api.NotifyDelivered)
	delivered(h3, 1)
	select {
	case m := <-heard:
		t.Fatalf("heard again: %s", m.Data)
	case <-time.After(300 * time.Millisecond):
	}
}

// waitFloor waits until the acknowledgement floor recorded under key in
// jetstream.FloorsBucket reaches seq.
func (h *harness) waitFloor(key string, seq uint64) {
	h.t.Helper()
	floors, err := h.js.KeyValue(h.ctx, jetstream.FloorsBucket)
	if err != nil {
		h.t.Fatal(err)
	}
	eventually(h.t, 10*time.Second, "floor "+key+" recorded", func() (bool, string) {
		e, err := floors.Get(h.ctx, key)
		if err != nil {
			return false, err.Error()
		}
		f, _ := strconv.ParseUint(string(e.Value()), 10, 64)
		return f >= seq, fmt.Sprintf("floor %d, want %d", f, seq)
	})
}

// paidOrder places an order of one unit of a SKU of its own (keys from
// name), waits for its stock to be held, pays it and waits until it is paid.
func (h *harness) paidOrder(name string) order.Order {
	h.t.Helper()
	sku := "SKU-" + name
	h.setStock(sku, 5)
	o := h.place(placeReq("k-"+name, order.Item{SKU: sku, Quantity: 1, UnitPrice: 100}))
	h.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	h.pay(o, "p-"+name, order.PaymentSucceeded, 100)
	return h.waitOrder(o.ID, statusIs(order.StatusPaid, order.ReservationCommitted), "paid")
}

// TestEndedOrdersLeaveMemory: the actor of an order that completed, and of
// one cancelled, is passivated after --ended-idle-timeout once the
// reactor has run its last event's effects, while an open order's actor
// stays for --idle-timeout. A later command on an ended order activates
// it again from the stream and is refused as an ended order's would be.
func TestEndedOrdersLeaveMemory(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.EndedIdleTimeout = 200 * time.Millisecond
	h := startNode(t, cfg)
	h.setStock("SKU-E", 10)
	done := h.place(placeReq("k-ended-done", order.Item{SKU: "SKU-E", Quantity: 1, UnitPrice: 100}))
	failed := h.place(placeReq("k-ended-failed", order.Item{SKU: "SKU-E", Quantity: 1, UnitPrice: 100}))
	open := h.place(placeReq("k-ended-open", order.Item{SKU: "SKU-E", Quantity: 1, UnitPrice: 100}))
	for _, o := range []order.Order{done, failed, open} {
		h.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	}
	h.pay(done, "p-ended-done", order.PaymentSucceeded, 100)
	h.pay(failed, "p-ended-failed", order.PaymentFailed, 0)
	h.waitOrder(done.ID, statusIs(order.StatusPaid, order.ReservationCommitted), "paid")
	h.ship(done, "d-ended-done", order.DeliveryDelivered)
	h.waitOrder(done.ID, statusIs(order.StatusCompleted, order.ReservationCommitted), "completed")
	h.waitOrder(failed.ID, statusIs(order.StatusCancelled, order.ReservationReleased), "cancelled")
	eventually(t, 10*time.Second, "the ended orders' actors passivated", func() (bool, string) {
		st, err := h.node.Status()
		return err == nil && st.ActiveOrder == 1, fmt.Sprintf("%d order actors active (%v)", st.ActiveOrder, err)
	})
	// Many ended-idle sweeps later the open order's actor is still there
	// (an absence can only be watched for a while).
	time.Sleep(time.Second)
	if st, err := h.node.Status(); err != nil || st.ActiveOrder != 1 {
		t.Fatalf("%d order actors active (%v), want the open order's", st.ActiveOrder, err)
	}
	stored := len(h.events(done.ID))
	_, err := h.c.CancelOrder(h.ctx, api.CancelOrder{ID: done.ID, CancelReason: api.CancelReason{Reason: "too late"}})
	if !strings.Contains(fmt.Sprint(err), "order_completed") {
		t.Fatalf("cancel of a completed, passivated order: %v", err)
	}
	if st, err := h.node.Status(); err != nil || st.ActiveOrder != 2 {
		t.Fatalf("%d order actors active (%v): the refused command did not activate the completed order", st.ActiveOrder, err)
	}
	if n := len(h.events(done.ID)); n != stored || n < 4 {
		t.Fatalf("completed order has %d events, %d before the refused cancel", n, stored)
	}
}

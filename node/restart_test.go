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
	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/endpoint"
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

// TestEffectsCutShortRunAgain: an order event stored whose effects a
// crash cut short (appended, as the node would, with its name in
// Oms-Node, after the floor it recorded) has them run when the node
// starts again, whether after the node's floor or below it and listed
// unsettled with it; so do the events of a node that is gone, after the
// floor it left, and those after where an earlier version's reactor
// consumer had got to. The gone node's floor and the old consumer are removed
// once their events ran, and what had run before is not run again. The node
// starts with room in memory for one event: the rest is read back from the
// stream as room frees up.
func TestEffectsCutShortRunAgain(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Tuning.FloorInterval = 100 * time.Millisecond
	h := startNode(t, cfg)
	o := h.paidOrder("effects-floor")
	h.waitFloor("reactor."+cfg.NodeName, h.lastSeq(o.ID))
	for _, sku := range []string{"SKU-CRASH-1", "SKU-CRASH-2", "SKU-CRASH-3", "SKU-CRASH-4"} {
		h.setStock(sku, 5)
	}
	h.stop()

	// With no node running, a query-only node holds the server while the
	// test stores three placements nobody ran the effects of.
	query := cfg
	query.Roles = []string{config.RoleQuery}
	hq := startNode(t, query)
	policy := order.Policy{ReservationTTL: cfg.ReservationTTL, MaxDeliveryAttempts: cfg.MaxDeliveryAttempts}
	placed := func(id, node, sku string) uint64 {
		t.Helper()
		cmd := placeReq("k-"+id, order.Item{SKU: sku, Quantity: 1, UnitPrice: 100}).
			Command(order.Meta{ID: "c-" + id, OrderID: id, At: time.Now().UTC(), By: "alice"})
		e, err := order.Decide(policy, order.State{}, cmd)
		if err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := jetstream.Append(hq.ctx, hq.js, jetstream.OrderEventsPrefix+id, data, 0,
			nats.Header{api.NodeHeader: []string{node}})
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	floors, err := hq.js.KeyValue(hq.ctx, jetstream.FloorsBucket)
	if err != nil {
		t.Fatal(err)
	}
	own := placed("0b5e7a9e-0000-4000-8000-000000000001", cfg.NodeName, "SKU-CRASH-1")
	// Below the floor the node recorded and not listed unsettled with it:
	// its effects ran (here: are taken to have), and are not run again.
	settled := placed("0b5e7a9e-0000-4000-8000-000000000004", cfg.NodeName, "SKU-CRASH-4")
	if _, err := floors.Put(hq.ctx, "reactor."+cfg.NodeName,
		[]byte(fmt.Sprintf("%d %d", settled, own))); err != nil { // the one still running listed
		t.Fatal(err)
	}
	placed("0b5e7a9e-0000-4000-8000-000000000005", cfg.NodeName, "SKU-CRASH-1")
	gone := placed("0b5e7a9e-0000-4000-8000-000000000002", "oms-gone", "SKU-CRASH-2")
	if _, err := floors.Put(hq.ctx, "reactor.oms-gone", []byte(strconv.FormatUint(gone-1, 10))); err != nil {
		t.Fatal(err)
	}
	old := placed("0b5e7a9e-0000-4000-8000-000000000003", "oms-old", "SKU-CRASH-3")
	if _, err := hq.js.CreateConsumer(hq.ctx, jetstream.StreamOrders, natsjs.ConsumerConfig{Durable: jetstream.ConsumerReactor,
		AckPolicy: natsjs.AckExplicitPolicy, FilterSubject: jetstream.OrderEventsPrefix + ">",
		DeliverPolicy: natsjs.DeliverByStartSequencePolicy, OptStartSeq: old}); err != nil {
		t.Fatal(err)
	}
	hq.stop()

	small := cfg
	small.Tuning.EffectsMaxHeld = 1
	h2 := startNode(t, small)
	for _, id := range []string{"0b5e7a9e-0000-4000-8000-000000000001", "0b5e7a9e-0000-4000-8000-000000000005",
		"0b5e7a9e-0000-4000-8000-000000000002", "0b5e7a9e-0000-4000-8000-000000000003"} {
		h2.waitOrder(id, statusIs(order.StatusReceived, order.ReservationHeld), id+" held")
		eventually(t, 10*time.Second, id+"'s payment request", func() (bool, string) {
			n := h2.subjectCount(jetstream.StreamOutbox, jetstream.PaymentRequestsPrefix+id)
			return n == 1, fmt.Sprintf("%d payment requests", n)
		})
	}
	h2.waitFloor("reactor."+cfg.NodeName, settled)
	if floors, err = h2.js.KeyValue(h2.ctx, jetstream.FloorsBucket); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the gone node's floor and the old consumer removed", func() (bool, string) {
		_, goneErr := floors.Get(h2.ctx, "reactor.oms-gone")
		_, legacyErr := floors.Get(h2.ctx, "reactor")
		_, consErr := h2.js.Consumer(h2.ctx, jetstream.StreamOrders, jetstream.ConsumerReactor)
		return errors.Is(goneErr, natsjs.ErrKeyNotFound) && errors.Is(legacyErr, natsjs.ErrKeyNotFound) &&
				errors.Is(consErr, natsjs.ErrConsumerNotFound),
			fmt.Sprintf("gone node's floor: %v; legacy floor: %v; old consumer: %v", goneErr, legacyErr, consErr)
	})
	// Only those ran: the four placements handed over, and the stock
	// held each caused (the paid order's events, at or below the floor,
	// did not run again), some read back from the stream.
	monitor := h2.as(endpoint.Internal, "prometheus", auth.RoleMonitor)
	eventually(t, 10*time.Second, "the effects that ran", func() (bool, string) {
		fs := scrape(t, monitor)
		ran, _ := sample(fs, "oms_pipeline_messages_total", "pipeline", "reactor", "outcome", "ok")
		readBack, _ := sample(fs, "oms_effects_read_back_events_total")
		return ran == 8 && readBack > 0, fmt.Sprintf("%v events' effects ran, want 8; %v read back", ran, readBack)
	})
	if _, reserved, _ := h2.stock("SKU-CRASH-4"); reserved != 0 {
		t.Fatalf("the settled placement's SKU has %d reserved: its effects ran again", reserved)
	}
	if onHand, reserved, _ := h2.stock("SKU-effects-floor"); onHand != 4 || reserved != 0 {
		t.Fatalf("the paid order's SKU: %d on hand, %d reserved", onHand, reserved)
	}
}

// TestEffectsFloorPastTheStreamEndStartsAtItsEnd: a recorded floor past
// the order stream's end (the stream restored from an older copy) would
// leave the effects of what is appended now below it, never run again
// after a crash; the node starts its floor where the stream ends instead.
func TestEffectsFloorPastTheStreamEndStartsAtItsEnd(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Tuning.FloorInterval = 100 * time.Millisecond
	h := startNode(t, cfg)
	o := h.paidOrder("effects-past-end")
	h.stop()
	query := cfg
	query.Roles = []string{config.RoleQuery}
	hq := startNode(t, query)
	floors, err := hq.js.KeyValue(hq.ctx, jetstream.FloorsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := floors.Put(hq.ctx, "reactor."+cfg.NodeName, []byte("1000000")); err != nil {
		t.Fatal(err)
	}
	hq.stop()
	h2 := startNode(t, cfg)
	h2.ship(o, "d-effects-past-end", order.DeliveryInTransit)
	h2.waitOrder(o.ID, statusIs(order.StatusInTransit, order.ReservationCommitted), "in transit")
	shipped := h2.lastSeq(o.ID)
	if floors, err = h2.js.KeyValue(h2.ctx, jetstream.FloorsBucket); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the floor where the stream is", func() (bool, string) {
		e, err := floors.Get(h2.ctx, "reactor."+cfg.NodeName)
		if err != nil {
			return false, err.Error()
		}
		f, _ := strconv.ParseUint(strings.Fields(string(e.Value()) + " 0")[0], 10, 64)
		return f == shipped, fmt.Sprintf("floor %d, the shipment at %d", f, shipped)
	})
}

// lastSeq is the stream sequence of an order's last event.
func (h *harness) lastSeq(id string) uint64 {
	h.t.Helper()
	seqs := h.eventsWithSeq(id)
	if len(seqs) == 0 {
		h.t.Fatalf("order %s has no events", id)
	}
	return seqs[len(seqs)-1]
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
		f, _ := strconv.ParseUint(strings.Fields(string(e.Value()) + " 0")[0], 10, 64)
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

// TestEffectsPastTheBoundAreReadBack: with room in memory for only a few
// events' effects, a burst of orders still runs every effect, each
// order's in order: what the queue cannot hold it reads back from the
// stream. Every order completes with its stock committed once, and the
// metrics show the events read back.
func TestEffectsPastTheBoundAreReadBack(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Tuning.EffectsMaxHeld = 4
	h := startNode(t, cfg)
	h.startSimulator(config.Simulator{PaymentSuccessRate: 1, MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond})
	const n, stock = 60, 1000
	h.setStock("SKU-SPILL", stock)
	ids := h.placeAtOnce(n, n, func(i int) api.PlaceOrder {
		return placeReq(fmt.Sprintf("k-spill-%d", i), order.Item{SKU: "SKU-SPILL", Quantity: 1, UnitPrice: 100})
	})
	for _, id := range ids {
		done := h.waitOrder(id, statusIs(order.StatusCompleted, order.ReservationCommitted), "completed")
		var types []order.EventType
		for _, e := range h.events(id) {
			types = append(types, e.Type)
		}
		want := []order.EventType{order.EventPlaced, order.EventStockHeld, order.EventPaid, order.EventShipped, order.EventCompleted}
		if len(done.ChangeHistory) != len(want) || fmt.Sprint(types) != fmt.Sprint(want) {
			t.Fatalf("order %s: events %v, want %v", id, types, want)
		}
	}
	if on, r, _ := h.stock("SKU-SPILL"); on != stock-n || r != 0 {
		t.Fatalf("stock onHand %d reserved %d, want %d and 0", on, r, stock-n)
	}
	monitor := h.as(endpoint.Internal, "prometheus", auth.RoleMonitor)
	// The last events' effects (the notifications) may still be running.
	eventually(t, 10*time.Second, "every effect run, some read back", func() (bool, string) {
		fs := scrape(t, monitor)
		readBack, _ := sample(fs, "oms_effects_read_back_events_total")
		pending, _ := sample(fs, "oms_effects_pending_events")
		spilled, found := sample(fs, "oms_effects_spilled_events")
		return readBack > 0 && found && spilled == 0 && pending == 0,
			fmt.Sprintf("%v events read back, %v pending, %v spilled (found %v)", readBack, pending, spilled, found)
	})
}

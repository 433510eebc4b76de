package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/internal/poll"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// TestFeedResumesWithoutGapOrDuplicate follows an order, disconnects after
// two changes, resumes from the last sequence seen, and checks that the
// changes seen equal the order's stream exactly, over both the JetStream
// feed and the long-poll endpoint.
func TestFeedResumesWithoutGapOrDuplicate(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	h.setStock("FEED", 10)
	o := h.place(placeReq("k-feed", order.Item{SKU: "FEED", Quantity: 1, UnitPrice: 700}))

	var seen []uint64
	watch := func(from uint64, stopAfter int) uint64 {
		ctx, cancel := context.WithTimeout(h.ctx, 20*time.Second)
		defer cancel()
		last := from
		n := 0
		stream, err := h.js.Stream(ctx, jetstream.StreamOrders)
		if err != nil {
			t.Fatal(err)
		}
		err = jetstream.Watch(ctx, stream, jetstream.OrderEventsPrefix+o.ID, from,
			func(m natsjs.Msg, seq uint64) error {
				var e order.Event
				if err := json.Unmarshal(m.Data(), &e); err != nil {
					return err
				}
				seen = append(seen, seq)
				last = seq
				n++
				if n == stopAfter || e.Status.Terminal() {
					return jetstream.ErrStop
				}
				return nil
			})
		if err != nil {
			t.Fatalf("watch from %d: %v", from, err)
		}
		return last
	}
	cursor := watch(0, 2) // placed, stock held: then the client goes away
	h.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	h.pay(o, "p-feed", order.PaymentSucceeded, 700)
	h.ship(o, "d-feed-1", order.DeliveryInTransit)
	h.ship(o, "d-feed-2", order.DeliveryDelivered)
	watch(cursor, 0) // resume: until the order is done

	var want []uint64
	for _, e := range h.eventsWithSeq(o.ID) {
		want = append(want, e)
	}
	if len(seen) != len(want) || len(want) != 5 {
		t.Fatalf("seen %v, stream %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("seen %v, stream %v", seen, want)
		}
	}

	// The long-poll endpoint resumes the same way.
	ch, err := h.c.Changes(h.ctx, api.GetChanges{ID: o.ID, After: 0, Limit: 2})
	if err != nil || len(ch.Changes) != 2 || ch.Last != want[1] {
		t.Fatalf("first changes: %+v %v", ch, err)
	}
	ch2, err := h.c.Changes(h.ctx, api.GetChanges{ID: o.ID, After: ch.Last})
	if err != nil || len(ch2.Changes) != 3 || ch2.Changes[0].Seq != want[2] || ch2.Last != want[4] {
		t.Fatalf("resumed changes: %+v %v", ch2, err)
	}
	// Nothing new: a long poll waits, then returns empty with the same cursor.
	start := time.Now()
	ch3, err := h.c.Changes(h.ctx, api.GetChanges{ID: o.ID, After: ch2.Last, WaitMs: 300})
	if err != nil || len(ch3.Changes) != 0 || ch3.Last != ch2.Last || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("idle poll: %+v %v after %s", ch3, err, time.Since(start))
	}
}

// TestLongPollWakesOnAppend: a waiting poll returns as soon as the order
// changes, and a read with minVersion sees the write it names.
func TestLongPollWakesOnAppend(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	h.setStock("POLL", 10)
	o := h.place(placeReq("k-poll", order.Item{SKU: "POLL", Quantity: 1, UnitPrice: 300}))
	held := h.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	got := make(chan api.ChangePage, 1)
	go func() {
		ch, err := h.c.Changes(h.ctx, api.GetChanges{ID: o.ID, After: held.Version, WaitMs: 10_000})
		if err != nil {
			t.Error(err)
		}
		got <- ch
	}()
	// Update only once the poll has reached the node (micro counts a
	// request when our endpoint has taken it), so it is the append that
	// wakes the poll, not a read that already finds the change.
	poll.Until(t, 5*time.Second, "the poll reached the node", func() (bool, string) {
		n := changesRequests(h)
		return n >= 1, fmt.Sprintf("%d changes requests", n)
	})
	notes := "ring"
	upd, err := h.c.UpdateOrder(h.ctx, api.UpdateOrder{ID: o.ID, OrderChanges: api.OrderChanges{Notes: &notes}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ch := <-got:
		if len(ch.Changes) != 1 || ch.Changes[0].Event.Type != order.EventUpdated {
			t.Fatalf("poll: %+v", ch)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("long poll did not wake on the append")
	}
	// Read your write: the reply of the update names its version.
	read, err := h.c.GetOrderAt(h.ctx, o.ID, upd.Version)
	if err != nil || read.Notes != "ring" || read.Version < upd.Version {
		t.Fatalf("read-your-write: %+v %v", read, err)
	}
	// A version the order never reached is refused, not answered with the
	// version it has.
	_, err = h.c.GetOrderAt(h.ctx, o.ID, upd.Version+1000)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != 400 || ce.Field != "minVersion" {
		t.Fatalf("unreached version: %v", err)
	}
}

// eventsWithSeq returns the stream sequences of an order's events.
func (h *harness) eventsWithSeq(id string) []uint64 {
	h.t.Helper()
	_, seqs := h.history(id)
	return seqs
}

// changesRequests is how many orders_changes requests the node's micro
// service has taken.
func changesRequests(h *harness) int {
	msg, err := h.nc.Request("$SRV.STATS."+api.ServiceName, nil, 2*time.Second)
	if err != nil {
		return -1
	}
	var stats micro.Stats
	if json.Unmarshal(msg.Data, &stats) != nil {
		return -1
	}
	for _, ep := range stats.Endpoints {
		if ep.Name == "orders_changes" {
			return ep.NumRequests
		}
	}
	return 0
}

package actors

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// TestOrderActorReadsPastItsCache: an order actor that answered not found
// (its order placed on another node meanwhile, as around a partition
// handover), or that holds a state older than the event a caller handles,
// reads the stream again instead of answering from its cache.
func TestOrderActorReadsPastItsCache(t *testing.T) {
	d, ctx := skuDeps(t)
	orders, err := d.JS.Stream(ctx, jetstream.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	d.Orders, d.Policy = orders, policy
	h := NewHost(NewSystem(d.Log), NewOrderHandler(d), HostOptions{Idle: time.Minute, Mailbox: 16, MaxBatch: 16})
	get := func(atLeast uint64) OrderResult {
		t.Helper()
		r, err := h.Request(ctx, snapshotOrder, GetOrder{AtLeast: atLeast})
		if err != nil {
			t.Fatal(err)
		}
		return r.(OrderResult)
	}
	if r := get(0); !errors.Is(r.Err, order.ErrNotFound) {
		t.Fatalf("before the placement: %+v", r)
	}
	// Another node's actor places the order and holds its stock.
	var s order.State
	var last uint64
	for _, c := range orderCommands()[:2] {
		e, err := order.Decide(policy, s, c)
		if err != nil {
			t.Fatal(err)
		}
		s = order.Evolve(s, *e)
		data, _ := json.Marshal(e)
		ack, err := jetstream.Append(ctx, d.JS, jetstream.OrderEventsPrefix+snapshotOrder, e.ID, data, last, nil)
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
		if e.Type == order.EventPlaced {
			if r := get(0); r.Err != nil || r.Order.Status != order.StatusReceived {
				t.Fatalf("after the placement elsewhere: %+v", r)
			}
		}
	}
	if r := get(last); r.Err != nil || r.Order.Version != last || r.Order.Reservation != order.ReservationHeld {
		t.Fatalf("at least %d: %+v", last, r)
	}
	if r := get(last + 100); !errors.Is(r.Err, api.ErrUnavailable) {
		t.Fatalf("at least a sequence the stream has not reached: %+v, want unavailable", r)
	}
}

package reactor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/internal/natstest"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/reactor"
)

const id = "0b6f1c1e-4a8e-4c55-9d8b-3c1d7c3f0a01"

var at = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

// world is what the reactor acts on: orders, stock and an outbox that
// record every call.
type world struct {
	order    order.Order
	decided  []order.Command
	stock    []string // "reserve SKU-1", "commit SKU-1", ...
	short    string   // a SKU with nothing available
	failSKU  string   // a SKU whose actor fails
	out      []string // "subject msgID"
	notes    []string // "subject type causedBy": sent, not stored
	bodies   [][]byte
	headers  []nats.Header
	waited   int
	failWait error
	// decideErr is what deciding a command returns; commitErr what
	// committing stock does.
	decideErr error
	commitErr error
	// reads counts the orders asked for.
	reads int
}

func (w *world) Order(_ context.Context, cmd order.Command) (order.Order, error) {
	w.decided = append(w.decided, cmd)
	return w.order, w.decideErr
}

func (w *world) GetOrder(context.Context, string, uint64) (order.Order, error) {
	w.reads++
	return w.order, nil
}

func (w *world) Stock(_ context.Context, sku string, cmd any) (inventory.Hold, inventory.View, error) {
	if sku == w.failSKU {
		return inventory.Hold{}, inventory.View{}, fmt.Errorf("sku actor: %w", api.ErrUnavailable)
	}
	switch c := cmd.(type) {
	case inventory.Reserve:
		w.stock = append(w.stock, "reserve "+sku)
		if sku == w.short {
			return inventory.Hold{State: inventory.HoldRejected}, inventory.View{SKU: sku, Available: 0}, nil
		}
		return inventory.Hold{State: inventory.HoldReserved, Quantity: c.Quantity}, inventory.View{SKU: sku}, nil
	case inventory.Commit:
		w.stock = append(w.stock, "commit "+sku)
		if w.commitErr != nil {
			return inventory.Hold{}, inventory.View{}, w.commitErr
		}
	case inventory.Release:
		w.stock = append(w.stock, "release "+sku+" "+c.Reason)
	}
	return inventory.Hold{}, inventory.View{}, nil
}

func (w *world) Publish(subject, msgID string, data []byte, hdr nats.Header) {
	w.out = append(w.out, subject+" "+msgID)
	w.headers = append(w.headers, hdr)
	w.bodies = append(w.bodies, data)
}
func (w *world) Notify(subject string, data []byte, _ nats.Header) {
	var n api.Notification
	if err := json.Unmarshal(data, &n); err != nil {
		panic(err)
	}
	w.notes = append(w.notes, subject+" "+n.Type+" "+n.CausedBy)
}
func (w *world) Wait(context.Context) error { w.waited++; return w.failWait }

func twoLines() order.Order {
	return order.Order{ID: id, User: "alice", Currency: "EUR", Total: 3000, Status: order.StatusReceived,
		Items:              []order.Item{{SKU: "SKU-1", Quantity: 2, UnitPrice: 1250}, {SKU: "SKU-2", Quantity: 1, UnitPrice: 500}},
		PaymentInformation: order.PaymentInformation{Method: "card"}, ReservationExpiresAt: at.Add(15 * time.Minute)}
}

// event is e as Decide would have stored it: with the payload its type
// carries (order.DecodeEvent refuses one without).
func event(e order.Event) natstest.Msg {
	e.ID, e.OrderID, e.At, e.V = "evt-"+string(e.Type), id, at, 1
	switch e.Type {
	case order.EventPaid, order.EventPaymentCaptured:
		if e.Payment == nil {
			e.Payment = &order.PaymentInformation{Status: "succeeded", Amount: 3000, Currency: "EUR"}
		}
	case order.EventUpdated:
		if e.Update == nil {
			e.Update = &order.Changes{}
		}
	case order.EventShipped, order.EventDeliveryAttemptFailed, order.EventCompleted:
		if e.Delivery == nil {
			e.Delivery = &order.DeliveryUpdate{Provider: "sim"}
		}
	}
	data, _ := json.Marshal(e)
	return natstest.Msg{Subj: jetstream.OrderEventsPrefix + id, Body: data}
}

func placed(o order.Order) natstest.Msg {
	return event(order.Event{Type: order.EventPlaced, Status: order.StatusReceived, Reservation: order.ReservationPending,
		Placed: &order.Placed{User: o.User, Items: o.Items, Currency: o.Currency, Total: o.Total,
			ReservationExpiresAt: o.ReservationExpiresAt}})
}

func run(t *testing.T, w *world, m jetstream.Msg) error {
	t.Helper()
	return reactor.New(w, w, func() reactor.Outbox { return w }).Handle(context.Background(), m)
}

// handedOver is an event as its order's actor hands it over in process:
// with the event as decided and the order it left.
type handedOver struct {
	natstest.Msg
	appended *order.Appended
}

func (m handedOver) Carried() any { return m.appended }

// handOver is event(e) as its actor hands it over, leaving the order o.
func handOver(t *testing.T, e order.Event, o order.Order) handedOver {
	t.Helper()
	stored := event(e)
	var decided order.Event
	if err := json.Unmarshal(stored.Body, &decided); err != nil {
		t.Fatal(err)
	}
	return handedOver{Msg: stored, appended: &order.Appended{Event: decided, Order: o}}
}

// TestHandedOverEventIsNeitherDecodedNorLookedUp: an event its actor
// handed over has its effects from the event and the order it carries:
// its bytes are not decoded (here they could not be) and the order is not
// asked for; the same bytes read back from the stream are refused.
func TestHandedOverEventIsNeitherDecodedNorLookedUp(t *testing.T) {
	o := twoLines()
	o.Status, o.Reservation = order.StatusReceived, order.ReservationHeld
	m := handOver(t, order.Event{Type: order.EventStockHeld, Status: order.StatusReceived}, o)
	m.Body = []byte(`{"type":`)
	stored := m.Msg
	w := &world{order: order.Order{ID: id}} // not what the effects must use
	if err := run(t, w, m); err != nil {
		t.Fatal(err)
	}
	if w.reads != 0 || len(w.bodies) != 1 {
		t.Fatalf("%d reads of the order, %d messages published; want none and the payment request", w.reads, len(w.bodies))
	}
	var req api.PaymentRequest
	if err := json.Unmarshal(w.bodies[0], &req); err != nil || req.Amount != o.Total || req.User != o.User || req.PaymentMethod != "card" {
		t.Fatalf("payment request %s (%v), want the carried order's", w.bodies[0], err)
	}
	var ve *order.ValidationError
	if err := run(t, &world{order: o}, stored); !errors.As(err, &ve) {
		t.Fatalf("the bytes read back from the stream: %v, want a validation error", err)
	}
}

// TestEffectsOfEachEvent: every event type causes exactly its effects,
// each outbound message with an ID derived from the event.
func TestEffectsOfEachEvent(t *testing.T) {
	o := twoLines()
	paid := o
	paid.Status = order.StatusPaid
	cases := []struct {
		name  string
		order order.Order
		msg   natstest.Msg
		stock []string
		// out is the stored messages ("subject msgID"), then the
		// notifications sent ("subject type causedBy").
		out    []string
		decide string
	}{
		{name: "placed", order: o, msg: placed(o), stock: []string{"reserve SKU-1", "reserve SKU-2"},
			out: []string{"notifications." + id + " order.placed evt-order.placed"}, decide: "stock held"},
		{name: "stock held", order: o, msg: event(order.Event{Type: order.EventStockHeld, Status: order.StatusReceived}),
			out: []string{"payments.requests." + id + " evt-order.stock_held:payment"}},
		{name: "paid", order: paid, msg: event(order.Event{Type: order.EventPaid, Status: order.StatusPaid}),
			stock: []string{"commit SKU-1", "commit SKU-2"},
			out:   []string{"delivery.requests." + id + " evt-order.paid:delivery", "notifications." + id + " order.paid evt-order.paid"}},
		{name: "updated while paid", order: paid, msg: event(order.Event{Type: order.EventUpdated, Status: order.StatusPaid}),
			out: []string{"delivery.requests." + id + " evt-order.updated:delivery"}},
		{name: "updated before payment", order: o, msg: event(order.Event{Type: order.EventUpdated, Status: order.StatusReceived})},
		{name: "cancelled after payment", order: paid, msg: event(order.Event{Type: order.EventCancelled, Status: order.StatusCancelled,
			Cancel: &order.Cancellation{Reason: order.CancelCustomerRequest, RefundDue: 3000, ReleaseStock: true}}),
			stock: []string{"release SKU-1 customer_request", "release SKU-2 customer_request"},
			out:   []string{"payments.requests." + id + " evt-order.cancelled:refund", "notifications." + id + " order.cancelled evt-order.cancelled"}},
		{name: "last delivery attempt failed", order: paid, msg: event(order.Event{Type: order.EventDeliveryAttemptFailed,
			Status: order.StatusCancelled, Cancel: &order.Cancellation{Reason: order.CancelDeliveryFailed, RefundDue: 3000}}),
			out: []string{"payments.requests." + id + " evt-order.delivery_attempt_failed:refund",
				"notifications." + id + " order.cancelled evt-order.delivery_attempt_failed"}},
		{name: "delivery attempt failed", order: paid, msg: event(order.Event{Type: order.EventDeliveryAttemptFailed, Status: order.StatusInTransit})},
		{name: "rejected with refund", order: paid, msg: event(order.Event{Type: order.EventRejected, Status: order.StatusPaid,
			Rejected: &order.Rejection{CauseType: order.PaymentSucceeded, RefundDue: 3000}}),
			out: []string{"payments.requests." + id + " evt-order.rejected:refund"}},
		{name: "rejected without refund", order: paid, msg: event(order.Event{Type: order.EventRejected, Status: order.StatusPaid,
			Rejected: &order.Rejection{CauseType: order.DeliveryInTransit}})},
		{name: "shipped", order: paid, msg: event(order.Event{Type: order.EventShipped, Status: order.StatusInTransit}),
			out: []string{"notifications." + id + " order.shipped evt-order.shipped"}},
		{name: "completed", order: paid, msg: event(order.Event{Type: order.EventCompleted, Status: order.StatusCompleted}),
			out: []string{"notifications." + id + " order.delivered evt-order.completed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := &world{order: c.order}
			if err := run(t, w, c.msg); err != nil {
				t.Fatal(err)
			}
			out := append(slices.Clone(w.out), w.notes...)
			if !slices.Equal(w.stock, c.stock) || !slices.Equal(out, c.out) || w.waited != 1 {
				t.Fatalf("stock %v, out %v, waits %d", w.stock, out, w.waited)
			}
			if c.decide != "" {
				rs, ok := w.decided[0].(order.RecordStock)
				if len(w.decided) != 1 || !ok || !rs.Held || rs.ID != "stock:"+id {
					t.Fatalf("decided %+v", w.decided)
				}
			} else if len(w.decided) != 0 {
				t.Fatalf("decided %+v", w.decided)
			}
		})
	}
}

// TestPlacementShortOfStock: the first line that cannot be held stops the
// reservation and the order is told so.
func TestPlacementShortOfStock(t *testing.T) {
	o := twoLines()
	w := &world{order: o, short: "SKU-1"}
	if err := run(t, w, placed(o)); err != nil {
		t.Fatal(err)
	}
	rs := w.decided[0].(order.RecordStock)
	if rs.Held || !strings.Contains(rs.Detail, "SKU-1") || !slices.Equal(w.stock, []string{"reserve SKU-1"}) {
		t.Fatalf("record %+v after %v", rs, w.stock)
	}
}

// TestFailuresAreReturnedAfterTheOutboxIsWaited: an effect that fails is an
// error the pipeline retries (what was queued before it is still stored);
// a message that is no order event is one it dead-letters.
func TestFailuresAreReturnedAfterTheOutboxIsWaited(t *testing.T) {
	o := twoLines()
	w := &world{order: o, failSKU: "SKU-2"}
	err := run(t, w, placed(o))
	if err == nil || !api.Retryable(err) || !errors.Is(err, api.ErrUnavailable) || w.waited != 1 || len(w.notes) != 0 {
		t.Fatalf("err %v (retryable %v), waits %d, notes %v", err, api.Retryable(err), w.waited, w.notes)
	}
	w = &world{order: o, failWait: errors.New("stream gone")}
	if err := run(t, w, placed(o)); err == nil || !strings.Contains(err.Error(), "stream gone") {
		t.Fatalf("outbox failure: %v", err)
	}
	err = run(t, &world{order: o}, natstest.Msg{Subj: jetstream.OrderEventsPrefix + id, Body: []byte("{not json")})
	if err == nil || api.Retryable(err) || api.CodeOf(err) != 400 {
		t.Fatalf("garbage: %v (retryable %v)", err, api.Retryable(err))
	}
}

// TestRefundIsInTheCurrencyPaid: a payment refused for its currency is
// refunded in that currency, not the order's.
func TestRefundIsInTheCurrencyPaid(t *testing.T) {
	o := twoLines()
	w := &world{order: o}
	err := run(t, w, event(order.Event{Type: order.EventRejected, Status: order.StatusReceived,
		Rejected: &order.Rejection{CauseType: order.PaymentSucceeded, RefundDue: 6000, RefundCurrency: "USD"}}))
	var req api.PaymentRequest
	if err != nil || len(w.bodies) != 1 || json.Unmarshal(w.bodies[0], &req) != nil {
		t.Fatalf("%v %v", err, w.out)
	}
	if req.Type != api.PaymentRefund || req.Amount != 6000 || req.Currency != "USD" {
		t.Fatalf("refund request %+v", req)
	}
}

// TestPlacementEffectsRunAgainKeepTheFirstOutcome: a node that froze past
// its lease runs an order.placed's effects again when it wakes; the order
// took the first stock outcome, and the holds since (released by a
// cancel) make the second differ. The order refuses it as a reused ID with
// another payload, and that is the effect done, not a dead letter.
func TestPlacementEffectsRunAgainKeepTheFirstOutcome(t *testing.T) {
	w := &world{order: twoLines(), decideErr: fmt.Errorf("command stock:%s: %w", id, order.ErrIdempotencyConflict)}
	if err := run(t, w, placed(twoLines())); err != nil {
		t.Fatalf("a repeated placement's effects: %v", err)
	}
	w = &world{order: twoLines(), decideErr: fmt.Errorf("order: %w", api.ErrUnavailable)}
	if err := run(t, w, placed(twoLines())); err == nil || !api.Retryable(err) {
		t.Fatalf("an order that cannot be reached: %v, want a retryable error", err)
	}
}

// TestCommitOvertakenByACancelIsDone: the effects of order.paid run again
// after the order was cancelled (its release ran first, so the SKU has no
// hold left to commit) are done: no error for the pipeline to dead-
// letter, no delivery requested, no notification. While the order is still
// paid, a refused commit is an error.
func TestCommitOvertakenByACancelIsDone(t *testing.T) {
	paid := twoLines()
	paid.Status, paid.Reservation = order.StatusPaid, order.ReservationCommitted
	m := handOver(t, order.Event{Type: order.EventPaid, Status: order.StatusPaid}, paid)
	refused := fmt.Errorf("409: commit SKU-1: %w", inventory.ErrNoReservation)
	cancelled := paid
	cancelled.Status = order.StatusCancelled
	w := &world{order: cancelled, commitErr: refused}
	if err := run(t, w, m); err != nil {
		t.Fatalf("commit refused after a cancel: %v", err)
	}
	if len(w.out) != 0 || len(w.notes) != 0 {
		t.Fatalf("sent %v and %v for a cancelled order", w.out, w.notes)
	}
	w = &world{order: paid, commitErr: refused}
	if err := run(t, w, m); !errors.Is(err, inventory.ErrNoReservation) {
		t.Fatalf("commit refused for a paid order: %v, want the refusal", err)
	}
}

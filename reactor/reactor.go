// Package reactor performs the side effects of appended order events: it
// reserves, commits and releases stock, asks the payment provider to
// collect or refund and the carrier to ship, and notifies the customer.
// It runs after the append, from the stream, never before; every effect
// is idempotent (message IDs derived from the event, holds keyed by order
// at the SKU), so the redelivery of an event whose effects were cut short
// by a crash repeats them safely.
//
// It sees orders, stock and the outbox only through the small interfaces
// below. It may import the domain, api and jetstream (for the message it
// handles), nothing else of oms.
package reactor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// Orders decides commands at an order's actor and reads its state.
type Orders interface {
	Order(ctx context.Context, cmd order.Command) (order.Order, error)
	// GetOrder reads the order's state including at least the event at
	// stream sequence atLeast.
	GetOrder(ctx context.Context, id string, atLeast uint64) (order.Order, error)
}

// Stock decides an inventory command (Reserve, Commit, Release) at the
// SKU's actor and returns the order's hold and the stock after it.
type Stock interface {
	Stock(ctx context.Context, sku string, cmd any) (inventory.Hold, inventory.View, error)
}

// Outbox collects the messages one event causes; Wait returns once every
// one is stored, then sends the notifications, which are not stored.
// jetstream.Outbox is one.
type Outbox interface {
	Publish(subject, msgID string, data []byte, hdr nats.Header)
	Notify(subject string, data []byte, hdr nats.Header)
	Wait(ctx context.Context) error
}

// Reactor turns order events into their effects.
type Reactor struct {
	orders    Orders
	stock     Stock
	newOutbox func() Outbox
	now       func() time.Time
}

// New returns a reactor; newOutbox gives each event its own outbox.
func New(orders Orders, stock Stock, newOutbox func() Outbox) *Reactor {
	return &Reactor{orders: orders, stock: stock, newOutbox: newOutbox, now: func() time.Time { return time.Now().UTC() }}
}

// Key is the order an event message is about: the pipeline hands one
// order's events to one worker, in stream order.
func Key(m jetstream.Msg) string { return strings.TrimPrefix(m.Subject(), jetstream.OrderEventsPrefix) }

// Handle performs the effects of one order event. It returns once every
// message the event caused is stored, so that the event is acknowledged
// only then: a crash before repeats the effects.
func (r *Reactor) Handle(ctx context.Context, m jetstream.Msg) error {
	// Handed over by the order's actor: the event as decided, and the order
	// it left. Read back from the stream: decoded, and the order asked for.
	var e order.Event
	var known *order.Order
	if c, ok := m.(jetstream.Carrier); ok {
		if a, ok := c.Carried().(*order.Appended); ok {
			e, known = a.Event, &a.Order
		}
	}
	if known == nil {
		var err error
		if e, err = order.DecodeEvent(m.Data()); err != nil {
			return &order.ValidationError{Field: "event", Message: err.Error()}
		}
	}
	var seq uint64 // the order's state read for the effects includes e
	if md, err := m.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	out := r.newOutbox()
	held := &heldNotes{Outbox: out}
	err := r.effects(ctx, e, seq, known, held)
	if err == nil {
		// Told only once everything else the event causes is done (and,
		// by Wait, stored): a listener never hears of an effect undone.
		for _, n := range held.notes {
			out.Notify(n.subject, n.data, n.hdr)
		}
	}
	if werr := out.Wait(ctx); err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("effects of %s: %w", e.Type, err)
	}
	return nil
}

// heldNotes keeps an event's notifications back while its effects run.
type heldNotes struct {
	Outbox
	notes []note
}

type note struct {
	subject string
	data    []byte
	hdr     nats.Header
}

func (h *heldNotes) Notify(subject string, data []byte, hdr nats.Header) {
	h.notes = append(h.notes, note{subject, data, hdr})
}

// effects performs what event e implies outside the order, which is known
// if its actor handed it over. Messages to providers and customers go to
// out; the caller waits for them.
func (r *Reactor) effects(ctx context.Context, e order.Event, seq uint64, known *order.Order, out Outbox) error {
	switch e.Type {
	case order.EventPlaced:
		// The expiry needs nothing here: the read model's expiry index lists
		// the order from this event on, and the node's sweep expires it
		// if it is still unpaid at its time.
		if err := notify(out, e, e.Placed.User, ""); err != nil {
			return err
		}
		held, detail, err := r.reserve(ctx, e.OrderID, e.Placed.Items, e.Placed.ReservationExpiresAt)
		if err != nil {
			return err
		}
		_, err = r.orders.Order(ctx, order.RecordStock{Meta: order.Meta{ID: "stock:" + e.OrderID, OrderID: e.OrderID,
			At: r.now(), By: "inventory"}, Held: held, Detail: detail})
		if errors.Is(err, order.ErrIdempotencyConflict) {
			// The event's effects ran before (a node that froze past its
			// lease runs them again when it wakes), and the order took
			// that outcome; what the holds say now (released since, by a
			// cancel) changes nothing.
			return nil
		}
		return err
	case order.EventStockHeld, order.EventPaid:
		o, err := r.order(ctx, e.OrderID, seq, known)
		if err != nil {
			return err
		}
		if e.Status == order.StatusReceived {
			return publish(out, jetstream.PaymentRequestsPrefix, e, "payment", api.PaymentRequest{
				Type: api.PaymentCollect, OrderID: o.ID, User: o.User, Amount: o.Total, Currency: o.Currency,
				PaymentMethod: o.PaymentInformation.Method, CausedBy: e.ID})
		}
		for _, it := range o.Items {
			if _, _, err := r.stock.Stock(ctx, it.SKU, inventory.Commit{SKU: it.SKU, OrderID: o.ID, At: r.now()}); err != nil {
				// Overtaken by a cancel whose release ran first (on the
				// node that ran the order's effects while this one was
				// frozen, or before this retry), the SKU has no hold to
				// commit, and nothing is left to commit or ship.
				if now, gerr := r.orders.GetOrder(ctx, o.ID, seq); gerr == nil && now.Status == order.StatusCancelled {
					return nil
				}
				return fmt.Errorf("commit %s: %w", it.SKU, err)
			}
		}
		if err := requestDelivery(out, e, o); err != nil {
			return err
		}
		return notify(out, e, o.User, "")
	case order.EventUpdated:
		if e.Status != order.StatusPaid {
			return nil
		}
		// The parcel has not left: give the carrier the new destination.
		o, err := r.order(ctx, e.OrderID, seq, known)
		if err != nil {
			return err
		}
		return requestDelivery(out, e, o)
	case order.EventCancelled, order.EventDeliveryAttemptFailed:
		if e.Cancel == nil {
			return nil
		}
		o, err := r.order(ctx, e.OrderID, seq, known)
		if err != nil {
			return err
		}
		if e.Cancel.ReleaseStock {
			for _, it := range o.Items {
				if _, _, err := r.stock.Stock(ctx, it.SKU, inventory.Release{SKU: it.SKU, OrderID: o.ID,
					Reason: string(e.Cancel.Reason), ExpiresAt: o.ReservationExpiresAt, At: r.now()}); err != nil {
					return fmt.Errorf("release %s: %w", it.SKU, err)
				}
			}
		}
		if err := refund(out, e, o, e.Cancel.RefundDue, e.Cancel.RefundCurrency); err != nil {
			return err
		}
		return notify(out, e, o.User, "")
	case order.EventRejected:
		if e.Rejected.RefundDue == 0 {
			return nil
		}
		o, err := r.order(ctx, e.OrderID, seq, known)
		if err != nil {
			return err
		}
		return refund(out, e, o, e.Rejected.RefundDue, e.Rejected.RefundCurrency)
	case order.EventShipped, order.EventCompleted:
		o, err := r.order(ctx, e.OrderID, seq, known)
		if err != nil {
			return err
		}
		return notify(out, e, o.User, o.TrackingNumber)
	}
	return nil
}

// order is the order as of stream sequence seq: the one its actor handed
// over, else its actor's.
func (r *Reactor) order(ctx context.Context, id string, seq uint64, known *order.Order) (order.Order, error) {
	if known != nil {
		return *known, nil
	}
	return r.orders.GetOrder(ctx, id, seq)
}

// reserve holds every line for the order, stopping at the first line that
// cannot be held; the cancellation that follows releases the others.
func (r *Reactor) reserve(ctx context.Context, orderID string, items []order.Item, expires time.Time) (bool, string, error) {
	for _, it := range items {
		hold, stock, err := r.stock.Stock(ctx, it.SKU, inventory.Reserve{SKU: it.SKU, OrderID: orderID,
			Quantity: it.Quantity, ExpiresAt: expires, At: r.now()})
		if err != nil {
			return false, "", fmt.Errorf("reserve %s: %w", it.SKU, err)
		}
		switch hold.State {
		case inventory.HoldReserved, inventory.HoldCommitted:
		default:
			return false, fmt.Sprintf("%s: %d requested, %d available", it.SKU, it.Quantity, stock.Available), nil
		}
	}
	return true, "", nil
}

func requestDelivery(out Outbox, e order.Event, o order.Order) error {
	return publish(out, jetstream.DeliveryRequestPrefix, e, "delivery", api.DeliveryRequest{
		OrderID: o.ID, User: o.User, Destination: o.Destination, Items: o.Items,
		DeliveryInstructions: o.DeliveryInstructions, CausedBy: e.ID})
}

// refund asks the provider to pay amount back, in the currency it came in
// (the order's when the event names none).
func refund(out Outbox, e order.Event, o order.Order, amount int64, currency string) error {
	if amount == 0 {
		return nil
	}
	if currency == "" {
		currency = o.Currency
	}
	return publish(out, jetstream.PaymentRequestsPrefix, e, "refund", api.PaymentRequest{
		Type: api.PaymentRefund, OrderID: o.ID, User: o.User, Amount: amount, Currency: currency, CausedBy: e.ID})
}

// notify tells the customer's listeners on notifications.<orderId>. The
// notification is derived from the event and not stored a second time:
// the event is the durable record (the order's feed), and the
// notification carries its ID (causedBy) for a listener to drop a repeat.
func notify(out Outbox, e order.Event, user, tracking string) error {
	note := api.Notification{Type: api.NotificationType(e), OrderID: e.OrderID, User: user, Status: e.Status, At: e.At,
		TrackingNumber: tracking, CausedBy: e.ID}
	if e.Cancel != nil {
		note.Reason, note.RefundDue, note.RefundCurrency = e.Cancel.Reason, e.Cancel.RefundDue, e.Cancel.RefundCurrency
	}
	data, err := json.Marshal(note)
	if err != nil {
		return err
	}
	out.Notify(jetstream.NotificationsPrefix+e.OrderID, data, api.CorrelationHeaders(e.Correlation, e.Sampled))
	return nil
}

// publish queues v for prefix+orderID with a Nats-Msg-Id derived from the
// causing event, so repeating the effect stores it once, and with the
// event's correlation ID (and a traceparent continuing it) for the
// provider to echo.
func publish(out Outbox, prefix string, e order.Event, kind string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	out.Publish(prefix+e.OrderID, e.ID+":"+kind, data, api.CorrelationHeaders(e.Correlation, e.Sampled))
	return nil
}

package order

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	json "github.com/goccy/go-json"
)

// ErrUnreadableEvent marks a stored message that is not an order event
// this code can apply: the one reason DecodeEvent fails.
var ErrUnreadableEvent = errors.New("unreadable order event")

// EventTypes lists every order event type.
var EventTypes = []EventType{EventPlaced, EventStockHeld, EventPaymentCaptured, EventPaid, EventCancelled,
	EventUpdated, EventShipped, EventDeliveryAttemptFailed, EventCompleted, EventRejected}

// DecodeEvent reads a stored order event and checks what Evolve relies on:
// a known type and version, a status, and the payload its type carries.
// Evolve trusts its event; whatever reaches the stream by another way than
// Decide (a hand-published message, a newer node's version) stops here with
// a reason instead of panicking whoever applies it.
func DecodeEvent(data []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(bytes.TrimSpace(data), &e); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrUnreadableEvent, err)
	}
	if err := e.check(); err != nil {
		return Event{}, fmt.Errorf("%w: %s %s", ErrUnreadableEvent, e.Type, err)
	}
	return e, nil
}

func (e Event) check() error {
	switch {
	case !slices.Contains(EventTypes, e.Type):
		return errors.New("is not an order event type")
	case e.V < 1 || e.V > EventVersion:
		return fmt.Errorf("has version %d; this node reads 1 to %d", e.V, EventVersion)
	case !slices.Contains(Statuses, e.Status):
		return fmt.Errorf("has no known status (%q)", e.Status)
	}
	var missing string
	switch e.Type {
	case EventPlaced:
		if e.Placed == nil {
			missing = "placed"
		}
	case EventPaid, EventPaymentCaptured:
		if e.Payment == nil {
			missing = "payment"
		}
	case EventUpdated:
		if e.Update == nil {
			missing = "update"
		}
	case EventShipped, EventDeliveryAttemptFailed, EventCompleted:
		if e.Delivery == nil {
			missing = "delivery"
		}
	case EventRejected:
		if e.Rejected == nil {
			missing = "rejected"
		}
	}
	if missing != "" {
		return fmt.Errorf("lacks its %s payload", missing)
	}
	return nil
}

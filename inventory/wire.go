package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	json "github.com/goccy/go-json"
)

// EncodeEvents is the stored form of the events one append carries. A
// single event is a JSON object; several decided together (a SKU actor
// commits a batch of reservations in one append) are a JSON array, applied
// in order. Either way each event carries the totals that hold after it.
func EncodeEvents(events []Event) ([]byte, error) {
	switch len(events) {
	case 0:
		return nil, errors.New("no events to encode")
	case 1:
		return json.Marshal(events[0])
	}
	return json.Marshal(events)
}

// DecodeEvents reads what EncodeEvents wrote, and checks each event is one
// Evolve can apply: a known type and version, and totals within bounds.
func DecodeEvents(data []byte) ([]Event, error) {
	data = bytes.TrimSpace(data)
	var events []Event
	if len(data) > 0 && data[0] == '[' {
		if err := json.Unmarshal(data, &events); err != nil {
			return nil, err
		}
		if len(events) == 0 {
			return nil, fmt.Errorf("empty event batch: %w", ErrInvalid)
		}
	} else {
		var e Event
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, err
		}
		events = []Event{e}
	}
	for i, e := range events {
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("event %d (%s): %w: %w", i, e.Type, err, ErrInvalid)
		}
	}
	return events, nil
}

// EventTypes lists every SKU event type.
var EventTypes = []EventType{EventStockSet, EventReserved, EventRejected, EventCommitted, EventReleased}

func (e Event) check() error {
	switch {
	case !slices.Contains(EventTypes, e.Type):
		return errors.New("not a SKU event type")
	case e.V != 1:
		return fmt.Errorf("version %d; this node reads 1", e.V)
	case e.SKU == "":
		return errors.New("no SKU")
	case e.Type != EventStockSet && e.OrderID == "":
		return errors.New("no order")
	case e.Quantity < 0 || e.Quantity > MaxOnHand, e.OnHand < 0 || e.OnHand > MaxOnHand,
		e.Reserved < 0 || e.Reserved > MaxOnHand:
		return fmt.Errorf("quantity, on-hand and reserved must be between 0 and %d", int64(MaxOnHand))
	}
	return nil
}

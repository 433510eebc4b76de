package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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

// DecodeEvents reads what EncodeEvents wrote.
func DecodeEvents(data []byte) ([]Event, error) {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '[' {
		var events []Event
		if err := json.Unmarshal(data, &events); err != nil {
			return nil, err
		}
		if len(events) == 0 {
			return nil, fmt.Errorf("empty event batch: %w", ErrInvalid)
		}
		return events, nil
	}
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	return []Event{e}, nil
}

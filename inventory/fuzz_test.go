package inventory

import (
	"errors"
	"testing"
	"time"
)

// FuzzDecodeEvents feeds DecodeEvents stored messages (one event or a
// batch). What it accepts must apply without panicking, keep every total
// within bounds, leave a stock every command can be decided against, and
// encode back to what it accepts again.
func FuzzDecodeEvents(f *testing.F) {
	var s Stock
	var batch []Event
	for _, c := range []any{
		SetStock{ID: "set-1", SKU: "SKU-1", Quantity: 10, At: at, By: "admin"},
		Reserve{SKU: "SKU-1", OrderID: "o1", Quantity: 3, ExpiresAt: at.Add(15 * time.Minute), At: at},
		Reserve{SKU: "SKU-1", OrderID: "o2", Quantity: 30, ExpiresAt: at.Add(15 * time.Minute), At: at},
		Commit{SKU: "SKU-1", OrderID: "o1", At: at},
		Release{SKU: "SKU-1", OrderID: "o1", Reason: "cancelled", At: at},
	} {
		e, err := Decide(s, c)
		if err != nil || e == nil {
			f.Fatalf("seed %T: %v %v", c, e, err)
		}
		s = Evolve(s, *e)
		batch = append(batch, *e)
		data, _ := EncodeEvents([]Event{*e})
		f.Add(data)
	}
	data, _ := EncodeEvents(batch)
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := DecodeEvents(data)
		if err != nil {
			return
		}
		var s Stock
		for _, e := range events {
			s = Evolve(s, e)
			if s.OnHand < 0 || s.OnHand > MaxOnHand || s.Reserved < 0 || s.Reserved > MaxOnHand {
				t.Fatalf("accepted event leaves totals out of bounds: %+v", s)
			}
		}
		for _, c := range []any{
			SetStock{ID: "fuzz-set", SKU: s.SKU, Quantity: 5, At: at, By: "admin"},
			Reserve{SKU: s.SKU, OrderID: "fuzz", Quantity: 1, ExpiresAt: at.Add(time.Minute), At: at},
			Commit{SKU: s.SKU, OrderID: "o1", At: at},
			Release{SKU: s.SKU, OrderID: "o2", Reason: "fuzz", At: at},
		} {
			if _, err := Decide(s, c); err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrBelowReserved) &&
				!errors.Is(err, ErrNoReservation) {
				t.Fatalf("%T: unexpected error kind %v", c, err)
			}
		}
		again, err := EncodeEvents(events)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeEvents(again); err != nil {
			t.Fatalf("accepted events, encoded again, are refused: %v", err)
		}
	})
}

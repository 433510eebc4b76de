package inventory

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

var at = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func apply(t *testing.T, s Stock, c any) (Stock, *Event) {
	t.Helper()
	e, err := Decide(s, c)
	if err != nil {
		t.Fatalf("%T: %v", c, err)
	}
	if e != nil {
		s = Evolve(s, *e)
	}
	return s, e
}

func TestReserveCommitRelease(t *testing.T) {
	s, _ := apply(t, Stock{}, SetStock{ID: "c1", SKU: "A", Quantity: 10, At: at})
	s, e := apply(t, s, Reserve{SKU: "A", OrderID: "o1", Quantity: 4, At: at})
	if e.Type != EventReserved || s.Available() != 6 || s.Reserved != 4 {
		t.Fatalf("reserve: %+v %+v", e, s.View())
	}
	// Duplicate reservation: no second hold.
	if s2, e := apply(t, s, Reserve{SKU: "A", OrderID: "o1", Quantity: 4, At: at}); e != nil || s2.Available() != 6 {
		t.Fatalf("duplicate reserve applied: %+v", e)
	}
	s, e = apply(t, s, Reserve{SKU: "A", OrderID: "o2", Quantity: 7, At: at})
	if e.Type != EventRejected || s.Available() != 6 || s.Holds["o2"].State != HoldRejected {
		t.Fatalf("over-reserve: %+v %+v", e, s.View())
	}
	// A rejected order stays rejected even after restocking.
	s, _ = apply(t, s, SetStock{ID: "c2", SKU: "A", Quantity: 100, At: at})
	if _, e := apply(t, s, Reserve{SKU: "A", OrderID: "o2", Quantity: 7, At: at}); e != nil {
		t.Fatalf("retried rejected reservation changed outcome: %+v", e)
	}
	s, _ = apply(t, s, SetStock{ID: "c3", SKU: "A", Quantity: 10, At: at})
	s, _ = apply(t, s, Commit{SKU: "A", OrderID: "o1", At: at})
	if s.OnHand != 6 || s.Reserved != 0 || s.Available() != 6 {
		t.Fatalf("commit: %+v", s.View())
	}
	if _, e := apply(t, s, Commit{SKU: "A", OrderID: "o1", At: at}); e != nil {
		t.Fatal("duplicate commit applied")
	}
	// Releasing committed goods puts them back on hand (cancel after payment).
	s, _ = apply(t, s, Release{SKU: "A", OrderID: "o1", Reason: "customer_request", At: at})
	if s.OnHand != 10 || s.Available() != 10 {
		t.Fatalf("release committed: %+v", s.View())
	}
	if _, e := apply(t, s, Release{SKU: "A", OrderID: "o1", At: at}); e != nil {
		t.Fatal("duplicate release applied")
	}
}

func TestReleaseBeforeReserveLeavesTombstone(t *testing.T) {
	s, _ := apply(t, Stock{}, SetStock{ID: "c1", SKU: "A", Quantity: 5, At: at})
	s, e := apply(t, s, Release{SKU: "A", OrderID: "o1", Reason: "customer_request", At: at})
	if e == nil || e.Quantity != 0 {
		t.Fatalf("tombstone: %+v", e)
	}
	s, e = apply(t, s, Reserve{SKU: "A", OrderID: "o1", Quantity: 2, At: at})
	if e != nil || s.Available() != 5 {
		t.Fatalf("late reservation after release was held: %+v %+v", e, s.View())
	}
}

func TestIllegalCommands(t *testing.T) {
	s, _ := apply(t, Stock{}, SetStock{ID: "c1", SKU: "A", Quantity: 5, At: at})
	if _, err := Decide(s, Commit{SKU: "A", OrderID: "nope"}); !errors.Is(err, ErrNoReservation) {
		t.Fatalf("commit without hold: %v", err)
	}
	s, _ = apply(t, s, Reserve{SKU: "A", OrderID: "o1", Quantity: 3, At: at})
	if _, err := Decide(s, SetStock{ID: "c2", SKU: "A", Quantity: 2}); !errors.Is(err, ErrBelowReserved) {
		t.Fatalf("set below reserved: %v", err)
	}
	if _, err := Decide(s, SetStock{ID: "c3", SKU: "A", Quantity: -1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative stock: %v", err)
	}
	if _, err := Decide(s, Reserve{SKU: "A", OrderID: "o9", Quantity: 0}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero reservation: %v", err)
	}
	s, _ = apply(t, s, Release{SKU: "A", OrderID: "o1", Reason: "expired", At: at})
	if _, err := Decide(s, Commit{SKU: "A", OrderID: "o1"}); !errors.Is(err, ErrNoReservation) {
		t.Fatalf("commit after release: %v", err)
	}
}

// TestAvailableNeverNegative drives random interleavings of every command and
// checks the invariant after each step.
func TestAvailableNeverNegative(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s, _ := apply(t, Stock{}, SetStock{ID: "init", SKU: "A", Quantity: 20, At: at})
	orders := []string{"o0", "o1", "o2", "o3", "o4", "o5", "o6", "o7"}
	for i := range 5000 {
		o := orders[r.IntN(len(orders))]
		var c any
		switch r.IntN(4) {
		case 0:
			c = Reserve{SKU: "A", OrderID: o + "-" + string(rune('a'+i%26)), Quantity: int64(1 + r.IntN(6)), At: at}
		case 1:
			c = Commit{SKU: "A", OrderID: o, At: at}
		case 2:
			c = Release{SKU: "A", OrderID: o, At: at}
		case 3:
			c = SetStock{ID: "s", SKU: "A", Quantity: int64(r.IntN(30)), At: at}
		}
		e, err := Decide(s, c)
		if err != nil {
			continue
		}
		if e != nil {
			s = Evolve(s, *e)
		}
		if s.Available() < 0 || s.Reserved < 0 || s.OnHand < 0 {
			t.Fatalf("step %d %T: %+v", i, c, s.View())
		}
		var held int64
		for _, h := range s.Holds {
			if h.State == HoldReserved {
				held += h.Quantity
			}
		}
		if held != s.Reserved {
			t.Fatalf("step %d: holds sum %d, reserved %d", i, held, s.Reserved)
		}
	}
}

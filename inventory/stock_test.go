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

// A reservation asked for after its own deadline is refused: its order is
// being expired anyway, and its earlier outcome may have been pruned.
func TestReserveAfterDeadlineIsRefused(t *testing.T) {
	s, _ := apply(t, Stock{}, SetStock{ID: "c1", SKU: "A", Quantity: 10, At: at})
	s, e := apply(t, s, Reserve{SKU: "A", OrderID: "late", Quantity: 1, ExpiresAt: at, At: at.Add(time.Second)})
	if e.Type != EventRejected || s.Reserved != 0 || s.Holds["late"].State != HoldRejected {
		t.Fatalf("late reservation: %+v %+v", e, s.View())
	}
	if _, e := apply(t, s, Reserve{SKU: "A", OrderID: "fresh", Quantity: 1, ExpiresAt: at.Add(time.Minute), At: at}); e.Type != EventReserved {
		t.Fatalf("fresh reservation: %+v", e)
	}
}

// Released and refused holds are forgotten once their deadline has passed;
// reserved and committed ones are kept. Pruning depends on event time only,
// so replaying the same events gives the same state, and whatever arrives
// late for a pruned hold changes no stock.
func TestPruneClosedHolds(t *testing.T) {
	ttl := 15 * time.Minute
	var events []Event
	step := func(s Stock, c any) Stock {
		t.Helper()
		s, e := apply(t, s, c)
		if e != nil {
			events = append(events, *e)
		}
		return s
	}
	s := step(Stock{}, SetStock{ID: "c1", SKU: "A", Quantity: 10, At: at})
	s = step(s, Reserve{SKU: "A", OrderID: "paid", Quantity: 2, ExpiresAt: at.Add(ttl), At: at})
	s = step(s, Commit{SKU: "A", OrderID: "paid", At: at})
	s = step(s, Reserve{SKU: "A", OrderID: "cancelled", Quantity: 3, ExpiresAt: at.Add(ttl), At: at})
	s = step(s, Release{SKU: "A", OrderID: "cancelled", ExpiresAt: at.Add(ttl), At: at})
	s = step(s, Reserve{SKU: "A", OrderID: "refused", Quantity: 99, ExpiresAt: at.Add(ttl), At: at})
	s = step(s, Release{SKU: "A", OrderID: "overtaken", ExpiresAt: at.Add(ttl), At: at}) // tombstone
	s = step(s, Reserve{SKU: "A", OrderID: "open", Quantity: 1, ExpiresAt: at.Add(ttl), At: at})
	if len(s.Holds) != 5 {
		t.Fatalf("holds before the deadline: %v", s.Holds)
	}
	// Before the deadline a late reservation still meets its tombstone.
	if _, e := apply(t, s, Reserve{SKU: "A", OrderID: "overtaken", Quantity: 1, ExpiresAt: at.Add(ttl), At: at.Add(time.Minute)}); e != nil {
		t.Fatalf("reservation after its release was applied: %+v", e)
	}
	s = step(s, SetStock{ID: "c2", SKU: "A", Quantity: 20, At: at.Add(ttl + time.Minute)})
	want := map[string]HoldState{"paid": HoldCommitted, "open": HoldReserved}
	if len(s.Holds) != len(want) {
		t.Fatalf("holds after the deadline: %v", s.Holds)
	}
	for id, st := range want {
		if s.Holds[id].State != st {
			t.Fatalf("hold %s: %+v", id, s.Holds[id])
		}
	}
	before := s.View()
	// Late duplicates for pruned holds change no stock.
	s = step(s, Release{SKU: "A", OrderID: "cancelled", At: at.Add(ttl + 2*time.Minute)})
	s = step(s, Reserve{SKU: "A", OrderID: "cancelled", Quantity: 3, ExpiresAt: at.Add(ttl), At: at.Add(ttl + 2*time.Minute)})
	if after := s.View(); after.OnHand != before.OnHand || after.Reserved != before.Reserved {
		t.Fatalf("late duplicates moved stock: %+v -> %+v", before, after)
	}
	// A replay of the same events reaches the same state.
	var replayed Stock
	for _, e := range events {
		replayed = Evolve(replayed, e)
	}
	if replayed.View() != s.View() || len(replayed.Holds) != len(s.Holds) || !replayed.PrunedAt.Equal(s.PrunedAt) {
		t.Fatalf("replay differs: %+v %v vs %+v %v", replayed.View(), replayed.Holds, s.View(), s.Holds)
	}
}

func TestEventsWireForm(t *testing.T) {
	one := []Event{{ID: "a", Type: EventReserved, V: 1, SKU: "A", OrderID: "o1", Quantity: 1, OnHand: 5, Reserved: 1, At: at}}
	two := append(one, Event{ID: "b", Type: EventReserved, V: 1, SKU: "A", OrderID: "o2", Quantity: 2, OnHand: 5, Reserved: 3, At: at})
	for _, events := range [][]Event{one, two} {
		data, err := EncodeEvents(events)
		if err != nil {
			t.Fatal(err)
		}
		if (len(events) == 1) != (data[0] == '{') {
			t.Fatalf("%d events encoded as %s", len(events), data)
		}
		got, err := DecodeEvents(data)
		if err != nil || len(got) != len(events) {
			t.Fatalf("decode %s: %v %v", data, got, err)
		}
		for i := range got {
			if got[i].ID != events[i].ID || got[i].Reserved != events[i].Reserved || !got[i].At.Equal(events[i].At) {
				t.Fatalf("event %d: %+v, want %+v", i, got[i], events[i])
			}
		}
	}
	for _, bad := range []string{``, `[]`, `{`, `[{"id":1}]`,
		`{"type":"sku.sold","v":1,"sku":"A","orderId":"o1"}`,
		`{"type":"sku.reserved","v":2,"sku":"A","orderId":"o1"}`,
		`{"type":"sku.reserved","v":1,"sku":"A"}`,
		`{"type":"sku.stock_set","v":1,"sku":"A","onHand":5,"reserved":-1}`,
	} {
		if _, err := DecodeEvents([]byte(bad)); err == nil {
			t.Fatalf("%q decoded without error", bad)
		}
	}
	if _, err := EncodeEvents(nil); err == nil {
		t.Fatal("encoded no events")
	}
}

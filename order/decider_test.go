package order

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

var testPolicy = Policy{ReservationTTL: 15 * time.Minute, MaxDeliveryAttempts: 2}

const oid = "0b6f1c1e-4a8e-4c55-9d8b-3c1d7c3f0a01"

func meta(id string) Meta { return Meta{ID: id, OrderID: oid, At: t0, By: "tester"} }

func placeCmd() Place {
	return Place{Meta: meta("place-1"), User: "u1", Currency: "EUR",
		Items:          []Item{{SKU: "SKU-1", Quantity: 2, UnitPrice: 1250}, {SKU: "SKU-2", Quantity: 1, UnitPrice: 500}},
		Destination:    Destination{Country: "DE", PostalCode: "10115", Address: "Invalidenstr. 1", PhoneNumber: "+49 30 1234567"},
		PromotionCodes: []string{"BF26"}, Source: "app"}
}

// commands builds every kind of command the order can receive, keyed by name.
func commands() map[string]Command { return commandsWithIDPrefix("") }

// commandsWithIDPrefix gives every command an ID starting with prefix, so a
// probe is never mistaken for a duplicate of a command in the stage path.
func commandsWithIDPrefix(prefix string) map[string]Command {
	notes := "ring twice"
	meta := func(id string) Meta { return Meta{ID: prefix + id, OrderID: oid, At: t0, By: "tester"} }
	place := placeCmd()
	place.Meta = meta("place-1")
	return map[string]Command{
		"place":             place,
		"cancel":            Cancel{Meta: meta("cancel-1"), Reason: "changed my mind"},
		"update":            Update{Meta: meta("update-1"), Notes: &notes},
		"stock_held":        RecordStock{Meta: meta("stock-1"), Held: true},
		"stock_unavailable": RecordStock{Meta: meta("stock-2"), Held: false, Detail: "SKU-2 short"},
		"expire":            ExpireReservation{Meta: meta("expire-1")},
		"pay_ok":            RecordPayment{Meta: meta("pay-1"), Type: PaymentSucceeded, Amount: 3000, Currency: "EUR", Provider: "sim", Reference: "r1"},
		"pay_mismatch":      RecordPayment{Meta: meta("pay-2"), Type: PaymentSucceeded, Amount: 2999, Currency: "EUR", Provider: "sim", Reference: "r2"},
		"pay_failed":        RecordPayment{Meta: meta("pay-3"), Type: PaymentFailed, Provider: "sim"},
		"pay_cancelled":     RecordPayment{Meta: meta("pay-4"), Type: PaymentCancelled, Provider: "sim"},
		"in_transit":        RecordDelivery{Meta: meta("dlv-1"), Type: DeliveryInTransit, Provider: "ninjavan", TrackingNumber: "NV1"},
		"attempt_failed":    RecordDelivery{Meta: meta("dlv-2"), Type: DeliveryAttemptFailed, Provider: "ninjavan"},
		"delivered":         RecordDelivery{Meta: meta("dlv-3"), Type: DeliveryDelivered, Provider: "ninjavan"},
	}
}

// stages are the reachable states, each built by deciding commands in order.
var stages = map[string][]string{
	"none":               {},
	"received/pending":   {"place"},
	"received/held":      {"place", "stock_held"},
	"received/captured":  {"place", "pay_ok"},
	"paid":               {"place", "stock_held", "pay_ok"},
	"in_transit":         {"place", "stock_held", "pay_ok", "in_transit"},
	"in_transit/1failed": {"place", "stock_held", "pay_ok", "in_transit", "attempt_failed"},
	"completed":          {"place", "stock_held", "pay_ok", "in_transit", "delivered"},
	"cancelled":          {"place", "cancel"},
}

func build(t testing.TB, names []string) State {
	t.Helper()
	var s State
	cmds := commands()
	for _, n := range names {
		e, err := Decide(testPolicy, s, cmds[n])
		if err != nil || e == nil {
			t.Fatalf("building stage: %s: event %v err %v", n, e, err)
		}
		s = Evolve(s, *e)
	}
	return s
}

// outcome renders a decision as "event.type:status", "noop", or "err:<kind>"
// (with the recorded event first for refused inbound events).
func outcome(e *Event, err error) string {
	var parts []string
	if e != nil {
		parts = append(parts, fmt.Sprintf("%s:%s", strings.TrimPrefix(string(e.Type), "order."), e.Status))
	}
	switch {
	case err == nil && e == nil:
		return "noop"
	case errors.Is(err, ErrNotFound):
		parts = append(parts, "err:not_found")
	case errors.Is(err, ErrAlreadyExists):
		parts = append(parts, "err:exists")
	case errors.Is(err, ErrPaymentMismatch):
		parts = append(parts, "err:mismatch")
	case errors.Is(err, ErrIllegalTransition):
		parts = append(parts, "err:illegal")
	case err != nil:
		parts = append(parts, "err:"+err.Error())
	}
	return strings.Join(parts, " ")
}

func TestDecideEveryStatusAgainstEveryCommand(t *testing.T) {
	const (
		rejIllegal = "rejected:%s err:illegal"
		illegal    = "err:illegal"
	)
	r := func(st string) string { return fmt.Sprintf(rejIllegal, st) }
	notFound := "err:not_found"
	want := map[string]map[string]string{
		"none": {
			"place": "placed:order_received", "cancel": notFound, "update": notFound, "stock_held": notFound,
			"stock_unavailable": notFound, "expire": notFound, "pay_ok": notFound, "pay_mismatch": notFound,
			"pay_failed": notFound, "pay_cancelled": notFound, "in_transit": notFound, "attempt_failed": notFound,
			"delivered": notFound,
		},
		"received/pending": {
			"place": "err:exists", "cancel": "cancelled:order_cancelled", "update": "updated:order_received",
			"stock_held": "stock_held:order_received", "stock_unavailable": "cancelled:order_cancelled",
			"expire": "cancelled:order_cancelled", "pay_ok": "payment_captured:order_received",
			"pay_mismatch": "rejected:order_received err:mismatch", "pay_failed": "cancelled:order_cancelled",
			"pay_cancelled": "cancelled:order_cancelled", "in_transit": r("order_received"),
			"attempt_failed": r("order_received"), "delivered": r("order_received"),
		},
		"received/held": {
			"place": "err:exists", "cancel": "cancelled:order_cancelled", "update": "updated:order_received",
			"stock_held": "noop", "stock_unavailable": "noop", "expire": "cancelled:order_cancelled",
			"pay_ok": "paid:order_paid", "pay_mismatch": "rejected:order_received err:mismatch",
			"pay_failed": "cancelled:order_cancelled", "pay_cancelled": "cancelled:order_cancelled",
			"in_transit": r("order_received"), "attempt_failed": r("order_received"), "delivered": r("order_received"),
		},
		"received/captured": {
			"place": "err:exists", "cancel": "cancelled:order_cancelled", "update": "updated:order_received",
			"stock_held": "stock_held:order_paid", "stock_unavailable": "cancelled:order_cancelled", "expire": "noop",
			"pay_ok": r("order_received"), "pay_mismatch": r("order_received"), "pay_failed": r("order_received"),
			"pay_cancelled": r("order_received"), "in_transit": r("order_received"),
			"attempt_failed": r("order_received"), "delivered": r("order_received"),
		},
		"paid": {
			"place": "err:exists", "cancel": "cancelled:order_cancelled", "update": "updated:order_paid",
			"stock_held": "noop", "stock_unavailable": "noop", "expire": "noop", "pay_ok": r("order_paid"),
			"pay_mismatch": r("order_paid"), "pay_failed": r("order_paid"), "pay_cancelled": r("order_paid"),
			"in_transit": "shipped:order_inTransit", "attempt_failed": "delivery_attempt_failed:order_inTransit",
			"delivered": "completed:order_completed",
		},
		"in_transit": {
			"place": "err:exists", "cancel": illegal, "update": illegal, "stock_held": "noop",
			"stock_unavailable": "noop", "expire": "noop", "pay_ok": r("order_inTransit"), "pay_mismatch": r("order_inTransit"),
			"pay_failed": r("order_inTransit"), "pay_cancelled": r("order_inTransit"), "in_transit": "shipped:order_inTransit",
			"attempt_failed": "delivery_attempt_failed:order_inTransit", "delivered": "completed:order_completed",
		},
		"in_transit/1failed": {
			"place": "err:exists", "cancel": illegal, "update": illegal, "stock_held": "noop",
			"stock_unavailable": "noop", "expire": "noop", "pay_ok": r("order_inTransit"), "pay_mismatch": r("order_inTransit"),
			"pay_failed": r("order_inTransit"), "pay_cancelled": r("order_inTransit"), "in_transit": "shipped:order_inTransit",
			"attempt_failed": "delivery_attempt_failed:order_cancelled", "delivered": "completed:order_completed",
		},
		"completed": {
			"place": "err:exists", "cancel": illegal, "update": illegal, "stock_held": "noop",
			"stock_unavailable": "noop", "expire": "noop", "pay_ok": r("order_completed"), "pay_mismatch": r("order_completed"),
			"pay_failed": r("order_completed"), "pay_cancelled": r("order_completed"), "in_transit": r("order_completed"),
			"attempt_failed": r("order_completed"), "delivered": r("order_completed"),
		},
		"cancelled": {
			"place": "err:exists", "cancel": illegal, "update": illegal, "stock_held": "noop",
			"stock_unavailable": "noop", "expire": "noop", "pay_ok": r("order_cancelled"),
			"pay_mismatch": r("order_cancelled"), "pay_failed": r("order_cancelled"),
			"pay_cancelled": r("order_cancelled"), "in_transit": r("order_cancelled"),
			"attempt_failed": r("order_cancelled"), "delivered": r("order_cancelled"),
		},
	}
	cmds := commandsWithIDPrefix("probe-")
	for stage, path := range stages {
		for name, cmd := range cmds {
			t.Run(stage+"/"+name, func(t *testing.T) {
				s := build(t, path)
				w, ok := want[stage][name]
				if !ok {
					t.Fatalf("no expectation for %s/%s", stage, name)
				}
				got := outcome(Decide(testPolicy, s, cmd))
				if got != w {
					t.Errorf("got %q, want %q", got, w)
				}
			})
		}
	}
}

func TestDecideDuplicateIsNoOpAndConflictingReuseIsRejected(t *testing.T) {
	s := build(t, stages["paid"])
	before := s.Order
	// Redelivery of the same payment event: applied once.
	e, err := Decide(testPolicy, s, commands()["pay_ok"])
	if e != nil || err != nil {
		t.Fatalf("duplicate payment: got %v %v, want no-op", e, err)
	}
	// The same ID with another amount is refused.
	p := commands()["pay_ok"].(RecordPayment)
	p.Amount = 1
	if _, err := Decide(testPolicy, s, p); !errors.Is(err, ErrIdempotencyConflict) {
		t.Fatalf("reused payment id: got %v, want ErrIdempotencyConflict", err)
	}
	// A retried placement (same idempotency key, same payload) is a no-op.
	if e, err := Decide(testPolicy, s, placeCmd()); e != nil || err != nil {
		t.Fatalf("retried place: got %v %v, want no-op", e, err)
	}
	// A retry arriving later (another timestamp) is still the same command.
	retry := placeCmd()
	retry.At = t0.Add(time.Minute)
	if e, err := Decide(testPolicy, s, retry); e != nil || err != nil {
		t.Fatalf("retried place at a later time: got %v %v, want no-op", e, err)
	}
	other := placeCmd()
	other.Items[0].Quantity = 5
	if _, err := Decide(testPolicy, s, other); !errors.Is(err, ErrIdempotencyConflict) {
		t.Fatalf("place reusing key with other items: got %v, want ErrIdempotencyConflict", err)
	}
	if s.Order.Status != before.Status {
		t.Fatal("state changed")
	}
}

func TestEvolveBuildsTheOrder(t *testing.T) {
	s := build(t, []string{"place", "update", "pay_ok", "stock_held", "in_transit", "attempt_failed", "delivered"})
	o := s.Order
	if o.Status != StatusCompleted || o.Reservation != ReservationCommitted {
		t.Fatalf("status %s reservation %s", o.Status, o.Reservation)
	}
	if o.Total != 3000 || o.BasketSize != 3 || o.Currency != "EUR" {
		t.Fatalf("total %d basket %d", o.Total, o.BasketSize)
	}
	if o.PaymentInformation.Status != "succeeded" || o.PaymentInformation.Reference != "r1" {
		t.Fatalf("payment %+v", o.PaymentInformation)
	}
	if o.DeliveryProvider != "ninjavan" || o.TrackingNumber != "NV1" || o.NumberOfDeliveryAttempts != 1 {
		t.Fatalf("delivery %q %q %d", o.DeliveryProvider, o.TrackingNumber, o.NumberOfDeliveryAttempts)
	}
	if o.Notes != "ring twice" {
		t.Fatalf("notes %q", o.Notes)
	}
	if len(o.ChangeHistory) != 7 || o.ChangeHistory[0].Who != "tester" {
		t.Fatalf("history %+v", o.ChangeHistory)
	}
	if len(s.Applied) != 7 {
		t.Fatalf("applied %d", len(s.Applied))
	}
	if !o.ReservationExpiresAt.Equal(t0.Add(testPolicy.ReservationTTL)) {
		t.Fatalf("expires %v", o.ReservationExpiresAt)
	}
}

func TestCancelAfterPaymentRecordsRefund(t *testing.T) {
	s := build(t, []string{"place", "stock_held", "pay_ok", "cancel"})
	if s.Order.RefundDue != 3000 || s.Order.CancelReason != CancelCustomerRequest {
		t.Fatalf("refund %d reason %s", s.Order.RefundDue, s.Order.CancelReason)
	}
	// Stock unavailable after the money arrived: refunded too.
	s = build(t, []string{"place", "pay_ok", "stock_unavailable"})
	if s.Order.RefundDue != 3000 || s.Order.CancelReason != CancelStockUnavailable {
		t.Fatalf("refund %d reason %s", s.Order.RefundDue, s.Order.CancelReason)
	}
	// A payment for a cancelled order is rejected and refunded.
	s = build(t, []string{"place", "cancel"})
	e, err := Decide(testPolicy, s, commands()["pay_ok"])
	if !errors.Is(err, ErrIllegalTransition) || e == nil || e.Rejected.RefundDue != 3000 {
		t.Fatalf("late payment: %v %v", e, err)
	}
	s = Evolve(s, *e)
	if s.Order.RefundDue != 3000 {
		t.Fatalf("refund %d", s.Order.RefundDue)
	}
}

func TestLastDeliveryAttemptCancels(t *testing.T) {
	s := build(t, stages["in_transit/1failed"])
	e, err := Decide(testPolicy, s, RecordDelivery{Meta: meta("dlv-9"), Type: DeliveryAttemptFailed, Provider: "ninjavan"})
	if err != nil || e.Status != StatusCancelled || e.Cancel.Reason != CancelDeliveryFailed {
		t.Fatalf("got %+v %v", e, err)
	}
	s = Evolve(s, *e)
	if s.Order.NumberOfDeliveryAttempts != 2 || s.Order.RefundDue != 3000 {
		t.Fatalf("attempts %d refund %d", s.Order.NumberOfDeliveryAttempts, s.Order.RefundDue)
	}
}

// TestCarrierEventsInAnyOrder: a carrier's events applied in an order they
// were not sent in (as around a partition's handover, where two nodes each
// got some) still end the order: failed attempts that overtake the
// in-transit event count, and the third cancels it whatever came between.
func TestCarrierEventsInAnyOrder(t *testing.T) {
	s := build(t, stages["paid"])
	policy := testPolicy
	policy.MaxDeliveryAttempts = 3
	attempt := func(id string) RecordDelivery {
		return RecordDelivery{Meta: meta(id), Type: DeliveryAttemptFailed, Provider: "ninjavan"}
	}
	for i, c := range []Command{attempt("dlv-a1"), attempt("dlv-a3"), commands()["in_transit"], attempt("dlv-a2")} {
		e, err := Decide(policy, s, c)
		if err != nil || e == nil {
			t.Fatalf("event %d: %v %v", i, e, err)
		}
		s = Evolve(s, *e)
		if want := StatusInTransit; i < 3 && s.Order.Status != want {
			t.Fatalf("after event %d: %s, want %s", i, s.Order.Status, want)
		}
	}
	if s.Order.Status != StatusCancelled || s.Order.CancelReason != CancelDeliveryFailed || s.Order.NumberOfDeliveryAttempts != 3 ||
		s.Order.TrackingNumber != "NV1" || s.Order.RefundDue != 3000 {
		t.Fatalf("after three failed attempts, in transit between: %s (%s), %d attempts, tracking %q, refund %d",
			s.Order.Status, s.Order.CancelReason, s.Order.NumberOfDeliveryAttempts, s.Order.TrackingNumber, s.Order.RefundDue)
	}
}

func TestValidationNamesTheField(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*Place)
	}{
		{"user", func(p *Place) { p.User = " " }},
		{"items", func(p *Place) { p.Items = nil }},
		{"items[0].sku", func(p *Place) { p.Items[0].SKU = "a.b" }},
		{"items[1].sku", func(p *Place) { p.Items[1].SKU = p.Items[0].SKU }},
		{"items[0].quantity", func(p *Place) { p.Items[0].Quantity = 0 }},
		{"items[1].unitPrice", func(p *Place) { p.Items[1].UnitPrice = -1 }},
		{"currency", func(p *Place) { p.Currency = "euro" }},
		{"destination.country", func(p *Place) { p.Destination.Country = "Germany" }},
		{"destination.postalCode", func(p *Place) { p.Destination.PostalCode = "" }},
		{"destination.address", func(p *Place) { p.Destination.Address = "" }},
		{"destination.phoneNumber", func(p *Place) { p.Destination.PhoneNumber = "call me" }},
		{"promotionCodes[0]", func(p *Place) { p.PromotionCodes = []string{"a b"} }},
		{"source", func(p *Place) { p.Source = "fax" }},
		{"notes", func(p *Place) { p.Notes = strings.Repeat("x", MaxTextLength+1) }},
		{"id", func(p *Place) { p.ID = "" }},
		// Bounds and the real ISO lists.
		{"user", func(p *Place) { p.User = strings.Repeat("u", 100_000) }},
		{"user", func(p *Place) { p.User = "al\x00ice" }},
		{"by", func(p *Place) { p.By = strings.Repeat("b", MaxNameLength+1) }},
		{"paymentMethod", func(p *Place) { p.PaymentMethod = strings.Repeat("c", 65) }},
		{"currency", func(p *Place) { p.Currency = "QQQ" }},
		{"currency", func(p *Place) { p.Currency = "XXX" }},
		{"destination.country", func(p *Place) { p.Destination.Country = "XY" }},
		{"destination.country", func(p *Place) { p.Destination.Country = "ZZ" }},
		{"destination.country", func(p *Place) { p.Destination.Country = "UK" }},
		{"destination.address", func(p *Place) { p.Destination.Address = strings.Repeat("a", MaxTextLength+1) }},
		{"items", func(p *Place) {
			for i := range p.Items {
				p.Items[i].UnitPrice = 0
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			p := placeCmd()
			c.edit(&p)
			_, err := Decide(testPolicy, State{}, p)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != c.field || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want a validation error on %s", err, c.field)
			}
		})
	}
	s := build(t, stages["received/pending"])
	if _, err := Decide(testPolicy, s, Update{Meta: meta("u-empty")}); err == nil {
		t.Fatal("empty update accepted")
	}
	if _, err := Decide(testPolicy, s, RecordPayment{Meta: meta("p-bad"), Type: "payment.maybe"}); err == nil {
		t.Fatal("unknown payment type accepted")
	}
	if _, err := Decide(testPolicy, s, RecordDelivery{Meta: meta("d-bad"), Type: "delivery.lost"}); err == nil {
		t.Fatal("unknown delivery type accepted")
	}
	for name, c := range map[string]Command{
		"amount":         RecordPayment{Meta: meta("p-big"), Type: PaymentSucceeded, Amount: MaxAmount + 1, Currency: "EUR", Provider: "sim"},
		"currency":       RecordPayment{Meta: meta("p-cur"), Type: PaymentSucceeded, Amount: 1, Currency: "QQQ", Provider: "sim"},
		"provider":       RecordPayment{Meta: meta("p-prov"), Type: PaymentFailed, Provider: "a b"},
		"reference":      RecordPayment{Meta: meta("p-ref"), Type: PaymentFailed, Provider: "sim", Reference: strings.Repeat("r", 200)},
		"trackingNumber": RecordDelivery{Meta: meta("d-trk"), Type: DeliveryInTransit, Provider: "nv", TrackingNumber: strings.Repeat("t", 200)},
		"reason":         Cancel{Meta: meta("c-long"), Reason: strings.Repeat("r", MaxTextLength+1)},
	} {
		var ve *ValidationError
		if _, err := Decide(testPolicy, s, c); !errors.As(err, &ve) || ve.Field != name {
			t.Errorf("%s: got %v", name, err)
		}
	}
	for _, code := range []string{"EUR", "USD", "JPY", "XOF", "CHF"} {
		if !ValidCurrency(code) {
			t.Errorf("currency %s refused", code)
		}
	}
	for _, code := range []string{"DE", "US", "GB", "FR", "AQ"} {
		if !ValidCountry(code) {
			t.Errorf("country %s refused", code)
		}
	}
}

func BenchmarkDecideEvolve(b *testing.B) {
	cmds := commands()
	path := []string{"place", "stock_held", "pay_ok", "in_transit", "delivered"}
	b.ReportAllocs()
	for b.Loop() {
		var s State
		for _, n := range path {
			e, err := Decide(testPolicy, s, cmds[n])
			if err != nil {
				b.Fatal(err)
			}
			s = Evolve(s, *e)
		}
	}
}

// TestEvolveNeverWritesIntoAnotherStatesArrays: two states evolved from one
// state whose audit slices have spare capacity must not share the new
// elements. Appending in place would let the second Evolve overwrite the
// first one's newest change (an actor's view and its next decision, or a
// projection's old and new document, are such pairs).
func TestEvolveNeverWritesIntoAnotherStatesArrays(t *testing.T) {
	s := build(t, []string{"place"})
	s.Order.UpdatedBy = append(make([]string, 0, 8), s.Order.UpdatedBy...)
	s.Order.ChangeHistory = append(make([]Change, 0, 8), s.Order.ChangeHistory...)
	s.Applied = append(make([]Applied, 0, 8), s.Applied...)
	ev := func(id, by string) Event {
		notes := by
		e, err := Decide(testPolicy, s, Update{Meta: Meta{ID: id, OrderID: oid, At: t0, By: by}, Notes: &notes})
		if err != nil || e == nil {
			t.Fatalf("decide update by %s: %v", by, err)
		}
		return *e
	}
	a := Evolve(s, ev("u-a", "agent-a"))
	b := Evolve(s, ev("u-b", "agent-b"))
	if got := a.Order.UpdatedBy[len(a.Order.UpdatedBy)-1]; got != "agent-a" {
		t.Fatalf("first state's updatedBy overwritten by the second Evolve: %v", a.Order.UpdatedBy)
	}
	if got := a.Order.ChangeHistory[len(a.Order.ChangeHistory)-1].Who; got != "agent-a" {
		t.Fatalf("first state's change history overwritten by the second Evolve: %+v", a.Order.ChangeHistory)
	}
	if got := a.Applied[len(a.Applied)-1].ID; got != "u-a" {
		t.Fatalf("first state's applied IDs overwritten by the second Evolve: %+v", a.Applied)
	}
	if b.Order.UpdatedBy[len(b.Order.UpdatedBy)-1] != "agent-b" || len(s.Order.ChangeHistory) != 1 {
		t.Fatalf("second state %v, original %d changes", b.Order.UpdatedBy, len(s.Order.ChangeHistory))
	}
}

// TestCustomersSeeOnlyTheirOwnOrders: a command acting for a customer on
// another customer's order finds no order, even when its ID is one the
// order has applied (which would otherwise answer the earlier outcome); on
// their own order it is decided as usual. A customer places only for
// themselves.
func TestCustomersSeeOnlyTheirOwnOrders(t *testing.T) {
	s := build(t, []string{"place", "stock_held"}) // placed by u1
	notes := "mine now"
	theirs := Update{Meta: Meta{ID: "update-1", OrderID: oid, At: t0, By: "u2", AsCustomer: "u2"}, Notes: &notes}
	if _, err := Decide(testPolicy, s, theirs); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another customer's update: %v", err)
	}
	e, _ := Decide(testPolicy, s, Update{Meta: Meta{ID: "update-1", OrderID: oid, At: t0, By: "u1"}, Notes: &notes})
	applied := Evolve(s, *e)
	if _, err := Decide(testPolicy, applied, theirs); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another customer's retry of an applied ID: %v", err)
	}
	cancel := Cancel{Meta: Meta{ID: "cancel-9", OrderID: oid, At: t0, By: "u2", AsCustomer: "u2"}}
	if _, err := Decide(testPolicy, s, cancel); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another customer's cancel: %v", err)
	}
	cancel.By, cancel.AsCustomer = "u1", "u1"
	if e, err := Decide(testPolicy, s, cancel); err != nil || e.Type != EventCancelled {
		t.Fatalf("own cancel: %v %v", e, err)
	}
	place := placeCmd()
	place.AsCustomer = "someone-else"
	if _, err := Decide(testPolicy, State{}, place); !errors.Is(err, ErrInvalid) {
		t.Fatalf("placing for another customer: %v", err)
	}
	place.AsCustomer = place.User
	if e, err := Decide(testPolicy, State{}, place); err != nil || e.Type != EventPlaced {
		t.Fatalf("placing for oneself: %v %v", e, err)
	}
}

// TestRefundsAreInTheCurrencyPaid: a payment in another currency than the
// order's is refused and owed back in its own currency; amounts due in two
// currencies are never added together.
func TestRefundsAreInTheCurrencyPaid(t *testing.T) {
	s := build(t, []string{"place", "stock_held"}) // 3000 EUR
	usd := RecordPayment{Meta: meta("pay-usd"), Type: PaymentSucceeded, Amount: 6000, Currency: "USD", Provider: "sim", Reference: "r"}
	e, err := Decide(testPolicy, s, usd)
	if !errors.Is(err, ErrPaymentMismatch) || e.Rejected.RefundDue != 6000 || e.Rejected.RefundCurrency != "USD" {
		t.Fatalf("USD payment: %+v %v", e, err)
	}
	s = Evolve(s, *e)
	if s.Order.RefundsDue["USD"] != 6000 || s.Order.RefundsDue["EUR"] != 0 || s.Order.RefundDue != 0 {
		t.Fatalf("after the USD refusal: %v, %d in EUR", s.Order.RefundsDue, s.Order.RefundDue)
	}
	e, _ = Decide(testPolicy, s, commands()["pay_ok"])
	s = Evolve(s, *e)
	e, _ = Decide(testPolicy, s, Cancel{Meta: meta("cancel-eur"), Reason: "changed my mind"})
	if e.Cancel.RefundDue != 3000 || e.Cancel.RefundCurrency != "EUR" {
		t.Fatalf("cancel after payment: %+v", e.Cancel)
	}
	s = Evolve(s, *e)
	if s.Order.RefundsDue["USD"] != 6000 || s.Order.RefundsDue["EUR"] != 3000 || s.Order.RefundDue != 3000 {
		t.Fatalf("in the end: %v, %d in EUR", s.Order.RefundsDue, s.Order.RefundDue)
	}
}

// TestCorrelationFollowsTheOrder: the placement's correlation ID is on
// every later event whose command brings none (the reactor's, a provider's
// that echoes nothing); a command with its own records that one; a retried
// placement with another correlation is still the same placement.
func TestCorrelationFollowsTheOrder(t *testing.T) {
	cmds := commands()
	place := cmds["place"].(Place)
	place.Correlation = "req-checkout"
	var s State
	step := func(c Command, want string) {
		t.Helper()
		e, err := Decide(testPolicy, s, c)
		if err != nil || e == nil {
			t.Fatalf("%T: %v %v", c, e, err)
		}
		if e.Correlation != want {
			t.Fatalf("%s carries correlation %q, want %q", e.Type, e.Correlation, want)
		}
		s = Evolve(s, *e)
	}
	step(place, "req-checkout")
	step(cmds["stock_held"], "req-checkout")
	step(cmds["pay_ok"], "req-checkout")
	cancel := cmds["cancel"].(Cancel)
	cancel.Correlation = "req-support"
	step(cancel, "req-support")
	retry := place
	retry.Correlation = "req-retry"
	if e, err := Decide(testPolicy, s, retry); e != nil || err != nil {
		t.Fatalf("retried placement: %v %v, want a no-op", e, err)
	}
}

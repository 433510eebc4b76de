package chaos

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/internal/natstest"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

const lifeOrder = "0b6f1c1e-4a8e-4c55-9d8b-3c1d7c3f0a01"

var lifeAt = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

// life is one order's streams from placement to delivery: its events, the
// SKU messages and the provider's payment, as the system stores them.
type life struct {
	orders   []order.Event
	skus     [][]inventory.Event
	payments []api.PaymentEvent
}

func completedLife(t *testing.T) life {
	t.Helper()
	policy := order.Policy{ReservationTTL: 15 * time.Minute, MaxDeliveryAttempts: 2}
	meta := func(id string) order.Meta { return order.Meta{ID: id, OrderID: lifeOrder, At: lifeAt, By: "test"} }
	var l life
	var s order.State
	for _, c := range []order.Command{
		order.Place{Meta: meta("place"), User: "alice", Currency: "EUR", Items: []order.Item{{SKU: "A", Quantity: 2, UnitPrice: 500}},
			Destination: order.Destination{Country: "DE", PostalCode: "10115", Address: "x", PhoneNumber: "+49 30 1234567"}},
		order.RecordStock{Meta: meta("stock"), Held: true},
		order.RecordPayment{Meta: meta("pay"), Type: order.PaymentSucceeded, Amount: 1000, Currency: "EUR", Provider: "sim"},
		order.RecordDelivery{Meta: meta("ship"), Type: order.DeliveryInTransit, Provider: "sim", TrackingNumber: "T1"},
		order.RecordDelivery{Meta: meta("done"), Type: order.DeliveryDelivered, Provider: "sim"},
	} {
		e, err := order.Decide(policy, s, c)
		if err != nil || e == nil {
			t.Fatalf("%T: %v %v", c, e, err)
		}
		s = order.Evolve(s, *e)
		l.orders = append(l.orders, *e)
	}
	var st inventory.Stock
	for _, c := range []any{
		inventory.SetStock{ID: "count", SKU: "A", Quantity: 10, At: lifeAt, By: "admin"},
		inventory.Reserve{SKU: "A", OrderID: lifeOrder, Quantity: 2, ExpiresAt: lifeAt.Add(time.Hour), At: lifeAt},
		inventory.Commit{SKU: "A", OrderID: lifeOrder, At: lifeAt},
	} {
		e, err := inventory.Decide(st, c)
		if err != nil || e == nil {
			t.Fatalf("%T: %v %v", c, e, err)
		}
		st = inventory.Evolve(st, *e)
		l.skus = append(l.skus, []inventory.Event{*e})
	}
	l.payments = []api.PaymentEvent{{ProviderEnvelope: api.ProviderEnvelope{ID: "p1", Type: order.PaymentSucceeded,
		OrderID: lifeOrder, Provider: "sim"}, Amount: 1000, Currency: "EUR"}}
	return l
}

// check stores l in a fresh JetStream and returns the verdicts for acked.
func (l life) check(t *testing.T, acked ...string) map[string]Verdict {
	t.Helper()
	env := natstest.Start(t, natstest.Options{})
	publish := func(subject string, v any) {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.JS.Publish(env.Ctx, subject, data); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range l.orders {
		publish(jetstream.OrderEventsPrefix+e.OrderID, e)
	}
	for _, batch := range l.skus {
		data, err := inventory.EncodeEvents(batch)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.JS.Publish(env.Ctx, jetstream.SKUEventsPrefix+batch[0].SKU, data); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range l.payments {
		publish(jetstream.PaymentEventsPrefix+p.OrderID, p)
	}
	v, err := NewChecker(env.JS).Check(env.Ctx, acked)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCheckerFindsEveryViolation: a clean life passes every invariant, and
// each way of breaking one is reported by that invariant.
func TestCheckerFindsEveryViolation(t *testing.T) {
	if v := completedLife(t).check(t, lifeOrder); !allOK(v) {
		t.Fatalf("a clean life fails: %+v", v)
	}
	cases := []struct {
		name   string
		breaks string
		mutate func(*life)
		acked  []string
	}{
		{"an acknowledged order never finishes", InvFinal, func(l *life) {
			l.orders, l.skus, l.payments = l.orders[:2], l.skus[:2], nil
		}, nil},
		{"an acknowledged order is not in the stream", InvFinal, func(*life) {}, []string{"0b6f1c1e-4a8e-4c55-9d8b-3c1d7c3f0aff"}},
		{"a cause applied twice", InvOnce, func(l *life) {
			l.orders = append(l.orders[:2:2], append([]order.Event{l.orders[1]}, l.orders[2:]...)...)
		}, nil},
		{"more reserved than on hand", InvReserved, func(l *life) {
			l.skus[1][0].Reserved, l.skus[1][0].OnHand = 12, 10
		}, nil},
		{"a commit that takes nothing from on hand", InvConserved, func(l *life) {
			l.skus[2][0].OnHand = 10
		}, nil},
		{"a commit without a reservation", InvConserved, func(l *life) {
			l.skus = [][]inventory.Event{l.skus[0], l.skus[2]}
			l.skus[1][0].Reserved = 0
		}, nil},
		{"a completed order whose stock was never committed", InvSettled, func(l *life) {
			l.skus = l.skus[:2]
		}, nil},
		{"a payment larger than the total", InvMoney, func(l *life) {
			l.payments[0].Amount = 1200
		}, nil},
		{"a payment in another currency", InvMoney, func(l *life) {
			l.payments[0].Currency = "USD"
		}, nil},
		{"a second payment neither kept nor owed back", InvMoney, func(l *life) {
			p := l.payments[0]
			p.ID = "p2"
			l.payments = append(l.payments, p)
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := completedLife(t)
			c.mutate(&l)
			acked := c.acked
			if acked == nil {
				acked = []string{lifeOrder}
			}
			v := l.check(t, acked...)
			if v[c.breaks].OK {
				t.Fatalf("%s holds: %+v", c.breaks, v)
			}
			t.Logf("%s: %s", c.breaks, v[c.breaks].Detail)
		})
	}
}

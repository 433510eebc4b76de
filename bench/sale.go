package bench

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/oms-project/oms/order"
)

// saleStep is a step of an order's life after its placement: the command
// that takes it, and how many placements later in the sale it comes.
type saleStep struct {
	after int
	cmd   func(order.Meta, order.Order) order.Command
}

// saleSteps are the steps of a delivered order: the stock held at once,
// the payment a few dozen placements later, the parcel handed over and
// delivered thousands later, as a sale's stream interleaves them.
var saleSteps = []saleStep{
	{1, func(m order.Meta, _ order.Order) order.Command { return order.RecordStock{Meta: m, Held: true} }},
	{64, func(m order.Meta, o order.Order) order.Command {
		return order.RecordPayment{Meta: m, Type: order.PaymentSucceeded, Amount: o.Total, Currency: o.Currency,
			Provider: "bench", Reference: "pay-" + o.ID}
	}},
	{1024, func(m order.Meta, o order.Order) order.Command {
		return order.RecordDelivery{Meta: m, Type: order.DeliveryInTransit, Provider: "bench", TrackingNumber: "t-" + o.ID}
	}},
	{4096, func(m order.Meta, o order.Order) order.Command {
		return order.RecordDelivery{Meta: m, Type: order.DeliveryDelivered, Provider: "bench", TrackingNumber: "t-" + o.ID}
	}},
}

// probeSteps is how far the probe order goes: it is still paid, not sent,
// so the first command after the restart (a change of its notes) applies.
const probeSteps = 2

// sale is a sale's history of n orders, decided by the domain as the node
// would have: each placed a millisecond after the one before (the read
// model keys documents and lists by creation time, and orders all placed at
// one instant would land at random places in its trees, as no real history
// does), and, with lifecycle, each delivered through saleSteps.
type sale struct {
	n         int
	lifecycle bool
	start     time.Time
	policy    order.Policy
	// probe is the index of the order the restart's first command
	// changes, probeID its ID.
	probe   int
	probeID string
	// states are the orders with steps to come, by index.
	states map[int]order.State
}

func newSale(n int, lifecycle bool, policy order.Policy) *sale {
	return &sale{n: n, lifecycle: lifecycle, policy: policy, probe: n / 2,
		start: time.Now().UTC().Add(-time.Duration(n) * time.Millisecond), states: map[int]order.State{}}
}

// moments is how many milliseconds the sale lasts: its placements, then
// the last orders' later steps.
func (s *sale) moments() int {
	if !s.lifecycle {
		return s.n
	}
	return s.n + saleSteps[len(saleSteps)-1].after
}

// at returns the events of moment i: the placement of order i, and each
// earlier order's step that falls due then, in the order a stream holds
// them (an order's own events in the order decided).
func (s *sale) at(i int) ([]order.Event, error) {
	at := s.start.Add(time.Duration(i) * time.Millisecond)
	var events []order.Event
	if i < s.n {
		id := uuid.NewString()
		if i == s.probe {
			s.probeID = id
		}
		e, err := s.decide(i, order.Place{Meta: saleMeta(id, "place", at), User: fmt.Sprint("u", i%10000),
			Items: []order.Item{{SKU: "SKU-1", Quantity: 1, UnitPrice: 1999}}, Currency: "EUR", Source: "web",
			Destination: order.Destination{Country: "DE", PostalCode: "10115", Address: "a", PhoneNumber: "+49 30 1234567"}})
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	if !s.lifecycle {
		return events, nil
	}
	for k := range saleSteps {
		j := i - saleSteps[k].after
		if j < 0 || j >= s.n || (j == s.probe && k >= probeSteps) {
			continue
		}
		o := s.states[j].Order
		e, err := s.decide(j, saleSteps[k].cmd(saleMeta(o.ID, fmt.Sprint("step-", k), at), o))
		if err != nil {
			return nil, err
		}
		events = append(events, e)
		if k == len(saleSteps)-1 || (j == s.probe && k == probeSteps-1) {
			delete(s.states, j)
		}
	}
	return events, nil
}

// saleMeta is a sale command's metadata: each command of an order has its
// own ID, as a provider's event or a checkout would.
func saleMeta(orderID, cmd string, at time.Time) order.Meta {
	return order.Meta{ID: cmd, OrderID: orderID, At: at, By: "bench"}
}

// decide runs command c on order i as its actor would, and keeps the
// state it leaves while the order has steps to come.
func (s *sale) decide(i int, c order.Command) (order.Event, error) {
	st := s.states[i]
	e, err := order.Decide(s.policy, st, c)
	if err != nil {
		return order.Event{}, fmt.Errorf("sale: order %d, %T: %w", i, c, err)
	}
	if e == nil {
		return order.Event{}, fmt.Errorf("sale: order %d, %T: decided nothing", i, c)
	}
	if s.lifecycle {
		s.states[i] = order.Evolve(st, *e)
	}
	return *e, nil
}

package command

import (
	"context"
	"strings"

	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// Timers expire the reservations of orders whose timer fired.
type Timers struct {
	Orders Decider
	// Settled reports whether the read model already shows that an order
	// can no longer expire.
	Settled func(orderID string) bool
}

// Handle expires the reservation of the order whose timer fired, at
// oms.timers.fired.<orderId>. Every order's timer fires, paid or not, a
// reservation TTL after placement, long after most were paid and their
// actors passivated: an order the read model shows past payment is
// answered without activating its actor. The read model may lag, never
// lead, so an order it does not know or still shows unpaid goes to its
// actor, which decides.
func (t Timers) Handle(ctx context.Context, m jetstream.Msg) error {
	id := strings.TrimPrefix(m.Subject(), jetstream.TimerFiredPrefix)
	if t.Settled(id) {
		return nil
	}
	_, err := t.Orders.Order(ctx, order.ExpireReservation{Meta: order.Meta{ID: "expire:" + id, OrderID: id, At: now(), By: "system"}})
	return err
}

// Attrs names the order a fired timer is about, for log lines.
func (Timers) Attrs(m jetstream.Msg) []any {
	return []any{"order_id", strings.TrimPrefix(m.Subject(), jetstream.TimerFiredPrefix)}
}

package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/actors"
	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// ackWait is how long a pulled message may stay unacknowledged before the
// server hands it out again. It is also how long the messages a crashed node
// had pulled wait before a restarted node gets them, so it is kept short;
// the in-flight windows are small enough that a message never queues that
// long on a healthy node.
const ackWait = 5 * time.Second

// maxEffectAttempts bounds redeliveries of one event's side effects before
// the event goes to the dead-letter stream for an operator.
const maxEffectAttempts = 20

// startReactor consumes the order events stream and performs each event's
// side effects after it was appended, never before. The consumer is
// durable and acks only when the effects are done, so a crash repeats them;
// every effect is idempotent (Nats-Msg-Id from the event, holds keyed by
// order at the SKU), so repeating is safe.
func (n *Node) startReactor(ctx context.Context) error {
	cons, err := n.js.CreateOrUpdateConsumer(ctx, jetstream.StreamOrders, natsjs.ConsumerConfig{
		Durable: "oms-reactor", AckPolicy: natsjs.AckExplicitPolicy, AckWait: ackWait,
		MaxAckPending: 8 * n.cfg.ReactorWorkers, MaxDeliver: -1,
		FilterSubject: jetstream.OrderEventsPrefix + ">",
	})
	if err != nil {
		return fmt.Errorf("reactor consumer: %w", err)
	}
	// Events of one order go to one worker, in stream order.
	workers := make([]chan natsjs.Msg, n.cfg.ReactorWorkers)
	for i := range workers {
		workers[i] = make(chan natsjs.Msg, 8)
		n.wg.Add(1)
		go func(ch chan natsjs.Msg) {
			defer n.wg.Done()
			out := jetstream.NewOutbox(n.js)
			for {
				select {
				case m := <-ch:
					n.react(ctx, m, out)
				case <-ctx.Done():
					return
				}
			}
		}(workers[i])
	}
	cc, err := cons.Consume(func(m natsjs.Msg) {
		id := strings.TrimPrefix(m.Subject(), jetstream.OrderEventsPrefix)
		select {
		case workers[jetstream.PartitionOf(id, len(workers))] <- m:
		case <-ctx.Done():
		}
	}, natsjs.PullMaxMessages(4*n.cfg.ReactorWorkers))
	if err != nil {
		return fmt.Errorf("reactor consume: %w", err)
	}
	n.stopConsumers = append(n.stopConsumers, cc.Stop)
	return nil
}

func (n *Node) react(ctx context.Context, m natsjs.Msg, out *jetstream.Outbox) {
	var e order.Event
	if err := json.Unmarshal(m.Data(), &e); err != nil {
		n.deadLetter(ctx, "reactor", m, fmt.Errorf("undecodable order event: %w", err))
		return
	}
	ectx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	err := n.effects(ectx, e, out)
	// The event is acknowledged only once every message it caused is
	// stored: a crash before that repeats the effects.
	if werr := out.Wait(ectx); err == nil {
		err = werr
	}
	cancel()
	if err == nil {
		_ = m.Ack()
		return
	}
	if ctx.Err() != nil {
		return // shutting down: the message is redelivered to whoever runs next
	}
	md, _ := m.Metadata()
	if md != nil && md.NumDelivered >= maxEffectAttempts {
		n.deadLetter(ctx, "reactor", m, fmt.Errorf("effects of %s failed %d times: %w", e.Type, md.NumDelivered, err))
		return
	}
	n.log.Warn("side effects failed; will retry", "order_id", e.OrderID, "event", e.Type, "err", err)
	_ = m.NakWithDelay(retryDelay(md))
}

// retryDelay backs off exponentially with the delivery count, capped.
func retryDelay(md *natsjs.MsgMetadata) time.Duration {
	d := 100 * time.Millisecond
	if md != nil {
		for i := uint64(1); i < md.NumDelivered && d < 10*time.Second; i++ {
			d *= 2
		}
	}
	return min(d, 10*time.Second)
}

func (n *Node) deadLetter(ctx context.Context, source string, m natsjs.Msg, reason error) {
	n.log.Error("message dead-lettered", "source", source, "subject", m.Subject(), "reason", reason)
	if err := jetstream.DeadLetter(ctx, n.js, source, m, reason); err != nil {
		n.log.Error("dead-letter failed; leaving message for redelivery", "err", err)
		_ = m.NakWithDelay(5 * time.Second)
		return
	}
	_ = m.Term()
}

// effects performs what event e implies outside the order. Messages to
// providers and customers go to out; the caller waits for them.
func (n *Node) effects(ctx context.Context, e order.Event, out *jetstream.Outbox) error {
	switch e.Type {
	case order.EventPlaced:
		// Arm the durable expiry first: whatever fails below, react still
		// waits for the timer to be stored, and it frees the stock of an
		// order that never gets paid.
		timer, _ := json.Marshal(map[string]string{"orderId": e.OrderID})
		out.Schedule(e.OrderID, e.Placed.ReservationExpiresAt, timer)
		if err := n.notify(out, e, api.NotifyPlaced, e.Placed.User, ""); err != nil {
			return err
		}
		held, detail, err := n.reserve(ctx, e.OrderID, e.Placed.Items, e.Placed.ReservationExpiresAt)
		if err != nil {
			return err
		}
		_, err = n.Order(ctx, order.RecordStock{Meta: order.Meta{ID: "stock:" + e.OrderID, OrderID: e.OrderID,
			At: now(), By: "inventory"}, Held: held, Detail: detail})
		return err
	case order.EventStockHeld, order.EventPaid:
		o, err := n.GetOrder(ctx, e.OrderID)
		if err != nil {
			return err
		}
		if e.Status == order.StatusReceived {
			return n.publish(out, jetstream.PaymentRequestsPrefix, e, "payment", api.PaymentRequest{
				Type: api.PaymentCollect, OrderID: o.ID, User: o.User, Amount: o.Total, Currency: o.Currency,
				PaymentMethod: o.PaymentInformation.Method, CausedBy: e.ID})
		}
		for _, it := range o.Items {
			if _, err := n.Stock(ctx, it.SKU, actors.SKUCommand{Cmd: inventory.Commit{SKU: it.SKU, OrderID: o.ID, At: now()}}); err != nil {
				return fmt.Errorf("commit %s: %w", it.SKU, err)
			}
		}
		if err := n.requestDelivery(out, e, o); err != nil {
			return err
		}
		return n.notify(out, e, api.NotifyPaid, o.User, "")
	case order.EventUpdated:
		if e.Status != order.StatusPaid {
			return nil
		}
		// The parcel has not left: give the carrier the new destination.
		o, err := n.GetOrder(ctx, e.OrderID)
		if err != nil {
			return err
		}
		return n.requestDelivery(out, e, o)
	case order.EventCancelled, order.EventDeliveryAttemptFailed:
		if e.Cancel == nil {
			return nil
		}
		o, err := n.GetOrder(ctx, e.OrderID)
		if err != nil {
			return err
		}
		if e.Cancel.ReleaseStock {
			for _, it := range o.Items {
				if _, err := n.Stock(ctx, it.SKU, actors.SKUCommand{Cmd: inventory.Release{SKU: it.SKU,
					OrderID: o.ID, Reason: string(e.Cancel.Reason), ExpiresAt: o.ReservationExpiresAt, At: now()}}); err != nil {
					return fmt.Errorf("release %s: %w", it.SKU, err)
				}
			}
		}
		if err := n.refund(out, e, o, e.Cancel.RefundDue); err != nil {
			return err
		}
		return n.notify(out, e, api.NotifyCancelled, o.User, "")
	case order.EventRejected:
		if e.Rejected.RefundDue == 0 {
			return nil
		}
		o, err := n.GetOrder(ctx, e.OrderID)
		if err != nil {
			return err
		}
		return n.refund(out, e, o, e.Rejected.RefundDue)
	case order.EventShipped, order.EventCompleted:
		o, err := n.GetOrder(ctx, e.OrderID)
		if err != nil {
			return err
		}
		kind := api.NotifyShipped
		if e.Type == order.EventCompleted {
			kind = api.NotifyDelivered
		}
		return n.notify(out, e, kind, o.User, o.TrackingNumber)
	}
	return nil
}

// reserve holds every line for the order, stopping at the first line that
// cannot be held; the cancellation that follows releases the others.
func (n *Node) reserve(ctx context.Context, orderID string, items []order.Item, expires time.Time) (bool, string, error) {
	for _, it := range items {
		res, err := n.Stock(ctx, it.SKU, actors.SKUCommand{Cmd: inventory.Reserve{SKU: it.SKU, OrderID: orderID,
			Quantity: it.Quantity, ExpiresAt: expires, At: now()}})
		if err != nil {
			return false, "", fmt.Errorf("reserve %s: %w", it.SKU, err)
		}
		switch res.Hold.State {
		case inventory.HoldReserved, inventory.HoldCommitted:
		default:
			return false, fmt.Sprintf("%s: %d requested, %d available", it.SKU, it.Quantity, res.Stock.Available), nil
		}
	}
	return true, "", nil
}

func (n *Node) requestDelivery(out *jetstream.Outbox, e order.Event, o order.Order) error {
	return n.publish(out, jetstream.DeliveryRequestPrefix, e, "delivery", api.DeliveryRequest{
		OrderID: o.ID, User: o.User, Destination: o.Destination, Items: o.Items,
		DeliveryInstructions: o.DeliveryInstructions, CausedBy: e.ID})
}

func (n *Node) refund(out *jetstream.Outbox, e order.Event, o order.Order, amount int64) error {
	if amount == 0 {
		return nil
	}
	return n.publish(out, jetstream.PaymentRequestsPrefix, e, "refund", api.PaymentRequest{
		Type: api.PaymentRefund, OrderID: o.ID, User: o.User, Amount: amount, Currency: o.Currency, CausedBy: e.ID})
}

func (n *Node) notify(out *jetstream.Outbox, e order.Event, kind, user, tracking string) error {
	note := api.Notification{Type: kind, OrderID: e.OrderID, User: user, Status: e.Status, At: e.At,
		TrackingNumber: tracking, CausedBy: e.ID}
	if e.Cancel != nil {
		note.Reason, note.RefundDue = e.Cancel.Reason, e.Cancel.RefundDue
	}
	return n.publish(out, jetstream.NotificationsPrefix, e, "notify", note)
}

// publish queues v for prefix+orderID with a Nats-Msg-Id derived from the
// causing event, so repeating the effect stores it once.
func (n *Node) publish(out *jetstream.Outbox, prefix string, e order.Event, kind string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	out.Publish(prefix+e.OrderID, e.ID+":"+kind, data)
	return nil
}

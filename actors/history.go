package actors

import (
	"context"
	"fmt"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// OrderHistory calls fn with each event of order id after stream sequence
// after, decoded, in order, with its sequence. It is how an order's state
// is read from the stream: by its actor, by a rebuild, by a test.
func OrderHistory(ctx context.Context, stream natsjs.Stream, id string, after uint64, fn func(seq uint64, e order.Event) error) error {
	return jetstream.Fold(ctx, stream, jetstream.OrderEventsPrefix+id, after, func(m *natsjs.RawStreamMsg) error {
		e, err := order.DecodeEvent(m.Data)
		if err != nil {
			return fmt.Errorf("order %s event at %d: %w", id, m.Sequence, err)
		}
		return fn(m.Sequence, e)
	})
}

// SKUHistory calls fn with each event of sku after stream sequence after,
// in order, with the sequence of the message that carried it (the events
// of one group commit share it).
func SKUHistory(ctx context.Context, stream natsjs.Stream, sku string, after uint64, fn func(seq uint64, e inventory.Event) error) error {
	return jetstream.Fold(ctx, stream, jetstream.SKUEventsPrefix+sku, after, func(m *natsjs.RawStreamMsg) error {
		events, err := inventory.DecodeEvents(m.Data)
		if err != nil {
			return fmt.Errorf("sku %s events at %d are unreadable: %w", sku, m.Sequence, err)
		}
		for _, e := range events {
			if err := fn(m.Sequence, e); err != nil {
				return err
			}
		}
		return nil
	})
}

package jetstream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/internal/heap"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// BenchmarkHeldEventMemory measures what --effects-max-held costs: the
// heap each order event takes while it waits in the effects queue (its
// stored bytes and headers, the event and the order it left, as an order
// actor hands them over: a placement, the largest event, and the order it
// made), so that an operator can size the bound. The handler holds every
// event until all are handed over; the figure is the live heap's growth
// per event, after a collection:
//
//	go test ./jetstream -run '^$' -bench HeldEventMemory -benchtime 1x
func BenchmarkHeldEventMemory(b *testing.B) {
	const n = 20_000
	policy := order.Policy{ReservationTTL: 15 * time.Minute, MaxDeliveryAttempts: 3}
	for range b.N {
		release := make(chan struct{})
		p := &jetstream.Pipeline{Name: "held", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Timeout: time.Minute, MaxAttempts: 1, Workers: 4, Key: func(m jetstream.Msg) string { return m.Subject() },
			Handle: func(ctx context.Context, _ jetstream.Msg) error {
				select {
				case <-release:
				case <-ctx.Done():
				}
				return nil
			}}
		q := p.Queue(jetstream.StreamOrders, 0, n+1)
		before, _ := heap.Kept()
		for i := range n {
			// Each made as an actor makes it, and handed over at once: what
			// is live afterwards is what the queue keeps.
			id := uuid.NewString()
			e, err := order.Decide(policy, order.State{}, order.Place{Meta: order.Meta{ID: fmt.Sprint("place-", i), OrderID: id,
				At: time.Now(), By: "bench"}, User: fmt.Sprint("user-", i), Currency: "EUR", Source: "web",
				Items:       []order.Item{{SKU: "SKU-1", Quantity: 1, UnitPrice: 1999}},
				Destination: order.Destination{Country: "DE", PostalCode: "10115", Address: "Invalidenstr. 117", PhoneNumber: "+49 30 1234567"}})
			if err != nil || e == nil {
				b.Fatal(err)
			}
			data, err := json.Marshal(e)
			if err != nil {
				b.Fatal(err)
			}
			s := order.Evolve(order.State{}, *e)
			hdr := nats.Header{api.NodeHeader: []string{"oms-1"}, api.CorrelationHeader: []string{uuid.NewString()}}
			q.Stored(q.Sending(), jetstream.OrderEventsPrefix+id, data, hdr, uint64(i+1), &order.Appended{Event: *e, Order: s.Order})
		}
		held, _ := heap.Kept()
		if q.Len() != n {
			b.Fatalf("%d events held, want %d", q.Len(), n)
		}
		b.ReportMetric((float64(held)-float64(before))/n, "bytes/held-event")
		close(release)
		q.Stop(time.Minute)
		if q.Len() != 0 {
			b.Fatalf("%d events still held after the stop", q.Len())
		}
	}
}

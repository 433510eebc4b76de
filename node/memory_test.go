package node_test

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/oms-project/oms/internal/heap"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// BenchmarkActiveOrderMemory reports the heap held per active order actor:
// orders placed with their stock held and no payment provider, so each
// waits for its payment (two events: placed, stock held), as most orders
// of a sale in flight do; every actor stays active (long idle timeouts),
// the heap is measured, then all actors are passivated with nothing else
// running and the heap is measured again; the difference is what the
// actors held. Memory the embedded NATS server keeps per order (subject
// index, de-duplication IDs) is the same in both measurements and so not
// counted.
//
//	go test ./node -run '^$' -bench ActiveOrderMemory -benchtime 1x
func BenchmarkActiveOrderMemory(b *testing.B) {
	if os.Getenv("OMS_HEAP_PROFILE") != "" {
		runtime.MemProfileRate = 64
	}
	cfg := testConfig(b.TempDir())
	cfg.IdleTimeout, cfg.EndedIdleTimeout = time.Hour, time.Hour
	h := startNode(b, cfg)
	const n = 5000
	h.setStock("MEM-1", int64(n*b.N))
	for round := range b.N {
		for i := range n {
			_, err := h.node.Order(h.ctx, order.Place{Meta: order.Meta{ID: fmt.Sprint("b-", round, "-", i), OrderID: uuid.NewString(),
				At: time.Now(), By: "bench"},
				User: "u", Currency: "EUR", Items: []order.Item{{SKU: "MEM-1", Quantity: 1, UnitPrice: 100}},
				Destination: order.Destination{Country: "DE", PostalCode: "1", Address: "a", PhoneNumber: "+49 30 1234567"}})
			if err != nil {
				b.Fatal(err)
			}
		}
		// Every order's stock held and its payment requested: the effects
		// of both its events have run, and it waits.
		want := uint64(n * (round + 1))
		eventually(b, time.Minute, "stock held and payments requested", func() (bool, string) {
			_, reserved, _ := h.stock("MEM-1")
			requests := h.streamMessages(jetstream.StreamOutbox)
			return uint64(reserved) == want && requests == want, fmt.Sprintf("reserved %d, payment requests %d, want %d", reserved, requests, want)
		})
		st, _ := h.node.Status()
		if st.ActiveOrder < n {
			b.Fatalf("%d order actors active, want at least %d: the figure would not be per active actor", st.ActiveOrder, n)
		}
		active, _ := heap.Kept()
		if path := os.Getenv("OMS_HEAP_PROFILE"); path != "" {
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
		if err := h.node.PassivateAll(h.ctx); err != nil {
			b.Fatal(err)
		}
		passivated, _ := heap.Kept()
		if passivated >= active {
			b.Fatalf("heap %d bytes with the actors active, %d passivated: the actors held nothing measurable", active, passivated)
		}
		b.ReportMetric((float64(active)-float64(passivated))/float64(st.ActiveOrder), "bytes/active-order")
		if st, _ := h.node.Status(); st.ActiveOrder != 0 {
			b.Fatalf("%d order actors still active", st.ActiveOrder)
		}
	}
}

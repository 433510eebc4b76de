package node_test

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/oms-project/oms/order"
)

// BenchmarkActiveOrderMemory reports the heap held per active order actor:
// every actor stays active (long idle timeouts, for ended orders too), the
// heap is measured, then all actors are passivated with nothing else
// running and the heap is measured again; the difference is what the
// actors held. Memory the
// embedded NATS server keeps per order (subject index, de-duplication IDs,
// schedules) is the same in both measurements and so not counted.
func BenchmarkActiveOrderMemory(b *testing.B) {
	if os.Getenv("OMS_HEAP_PROFILE") != "" {
		runtime.MemProfileRate = 64
	}
	cfg := testConfig(b.TempDir())
	cfg.IdleTimeout, cfg.EndedIdleTimeout = time.Hour, time.Hour
	h := startNode(b, cfg)
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	const n = 5000
	for round := range b.N {
		for i := range n {
			_, err := h.node.Order(h.ctx, order.Place{Meta: order.Meta{ID: fmt.Sprint("b-", round, "-", i), OrderID: uuid.NewString(),
				At: time.Now(), By: "bench"},
				User: "u", Currency: "EUR", Items: []order.Item{{SKU: "NOSTOCK", Quantity: 1, UnitPrice: 100}},
				Destination: order.Destination{Country: "DE", PostalCode: "1", Address: "a", PhoneNumber: "+49 30 1234567"}})
			if err != nil {
				b.Fatal(err)
			}
		}
		// Let the reactor finish: no stock, so every order is cancelled.
		eventually(b, time.Minute, "orders settled", func() (bool, string) {
			st, _ := h.node.Status()
			return st.Orders[string(order.StatusCancelled)] >= int64(n*(round+1)), fmt.Sprint(st.Orders)
		})
		st, _ := h.node.Status()
		active := heap()
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
		passivated := heap()
		b.ReportMetric((float64(active)-float64(passivated))/float64(st.ActiveOrder), "bytes/active-order")
		if st, _ := h.node.Status(); st.ActiveOrder != 0 {
			b.Fatalf("%d order actors still active", st.ActiveOrder)
		}
	}
}

package node_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/oms-project/oms/order"
)

// BenchmarkPlaceOrder measures one placement end to end as a storefront
// sees it: a client request over loopback TCP, the micro endpoint, the
// order actor's decision and its fenced append, and the reply. The reactor
// runs too (the order's stock request follows each placement), as in
// production.
func BenchmarkPlaceOrder(b *testing.B) {
	h := startNode(b, testConfig(b.TempDir()))
	h.setStock("BENCH", 1<<40)
	b.ResetTimer()
	for i := range b.N {
		h.place(placeReq(fmt.Sprint("bench-", i), order.Item{SKU: "BENCH", Quantity: 1, UnitPrice: 100}))
	}
}

// BenchmarkPlaceOrderParallel is the same with many storefront requests in
// flight at once, so it reports throughput rather than latency.
func BenchmarkPlaceOrderParallel(b *testing.B) {
	h := startNode(b, testConfig(b.TempDir()))
	const skus = 64
	for i := range skus {
		h.setStock(fmt.Sprint("BENCH-", i), 1<<40)
	}
	b.SetParallelism(32)
	b.ResetTimer()
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			h.place(placeReq(fmt.Sprint("bench-", i), order.Item{SKU: fmt.Sprint("BENCH-", i%skus), Quantity: 1, UnitPrice: 100}))
		}
	})
}

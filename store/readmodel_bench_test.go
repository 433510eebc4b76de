package store

import (
	"fmt"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/oms-project/oms/order"
)

// BenchmarkApplyLifecycle is what keeping the read model exact costs per
// order, alone: each order's five events of a completed lifecycle (placed,
// stock held, paid, shipped, completed) folded into its document, its
// indexes and the analytics, in transactions of 100 events mixing orders
// at the five stages as the projection receives them under load (`oms
// bench` averaged about 110 events per transaction), flat out
// ("stages-apart": an order's next event in the next transaction) and at
// half the peak ("stages-together": all five in one). It reports the
// process's CPU time per order; BenchmarkPatternLifecycle (package
// jetstream) measures the messages and a bare document write per event,
// which this adds to.
//
//	go test ./store -run '^$' -bench ApplyLifecycle -benchtime 20000x -count 3
func BenchmarkApplyLifecycle(b *testing.B) {
	b.Run("stages-apart", func(b *testing.B) { benchmarkApplyLifecycle(b, 1) })
	b.Run("stages-together", func(b *testing.B) { benchmarkApplyLifecycle(b, 0) })
}

// benchmarkApplyLifecycle puts stage s of an order lag*s transactions
// after its placement.
func benchmarkApplyLifecycle(b *testing.B, lag int) {
	defer debug.SetGCPercent(debug.SetGCPercent(400)) // as the oms binary runs
	db, err := Open(filepath.Join(b.TempDir(), "rm.bolt"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	const stages, perStage = 5, 20
	stage := func(i, s int) order.Event {
		id := fmt.Sprintf("%024x", uint64(i)*0x9e3779b97f4a7c15)
		at := t0.Add(time.Duration(i)*time.Millisecond + time.Duration(s)*time.Second)
		e := order.Event{ID: fmt.Sprintf("%s-%d", id, s), OrderID: id, At: at, By: "reactor", CauseID: "c",
			Correlation: "corr-" + id}
		switch s {
		case 0:
			user := fmt.Sprint("user-", i%100_000)
			e.Type, e.Status, e.Reservation, e.By = order.EventPlaced, order.StatusReceived, order.ReservationPending, user
			e.Placed = &order.Placed{User: user,
				Items:    []order.Item{{SKU: fmt.Sprintf("BENCH-%05d", i%1000), Quantity: 1, UnitPrice: 1999}},
				Currency: "EUR", Source: "web", Total: 1999, BasketSize: 1, ReservationExpiresAt: at.Add(15 * time.Minute),
				Destination: order.Destination{Country: "DE", PostalCode: "10115", Address: "Invalidenstraße 1, Berlin",
					PhoneNumber: "+4930123456"}}
		case 1:
			e.Type, e.Status, e.Reservation = order.EventStockHeld, order.StatusReceived, order.ReservationHeld
		case 2:
			e.Type, e.Status, e.Reservation = order.EventPaid, order.StatusPaid, order.ReservationCommitted
			e.Payment = &order.PaymentInformation{Provider: "sim", Reference: "pay-" + id, Amount: 1999, Currency: "EUR",
				Status: "succeeded"}
		case 3:
			e.Type, e.Status, e.Reservation = order.EventShipped, order.StatusInTransit, order.ReservationCommitted
			e.Delivery = &order.DeliveryUpdate{Provider: "sim", TrackingNumber: "trk-" + id}
		default:
			e.Type, e.Status, e.Reservation = order.EventCompleted, order.StatusCompleted, order.ReservationCommitted
			e.Delivery = &order.DeliveryUpdate{Provider: "sim"}
		}
		return e
	}
	// Batch k holds stage s of orders (k-lag*s)*perStage ... +perStage:
	// the pipeline's steady state, every stage in flight at once.
	var batches [][]AppliedEvent
	var seq uint64
	for k := 0; k < b.N/perStage+stages; k++ {
		var batch []AppliedEvent
		for s := range stages {
			for j := range perStage {
				i := (k-lag*s)*perStage + j
				if i < 0 || i >= b.N {
					continue
				}
				seq++
				batch = append(batch, AppliedEvent{Seq: seq, Event: stage(i, s)})
			}
		}
		batches = append(batches, batch)
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	cpu0 := cpu()
	b.ResetTimer()
	for _, batch := range batches {
		if _, err := db.ApplyEvents(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpu()-cpu0).Microseconds())/float64(b.N), "cpu-µs/order")
	counts, err := db.StatusCounts()
	if err != nil || counts[string(order.StatusCompleted)] != int64(b.N) {
		b.Fatalf("status counts %v (%v), want %d completed", counts, err, b.N)
	}
}

package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/oms-project/oms/order"
)

// BenchmarkListOrders builds a read model of OMS_BENCH_ORDERS orders
// (default one million) and measures filtered pages of 50, reporting the
// p50 and p95 latency of each filter shape.
//
//	go test ./store -run '^$' -bench ListOrders -benchtime 200x -timeout 30m
func BenchmarkListOrders(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("OMS_BENCH_ORDERS")); err == nil && v > 0 {
		n = v
	}
	db, err := Open(filepath.Join(b.TempDir(), "list.bolt"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	span := 700 * 24 * time.Hour
	began := time.Now()
	batch := make([]AppliedEvent, 0, 10_000)
	var seq uint64
	var users []string // a sample of users who have orders
	flush := func() {
		if _, err := db.ApplyEvents(batch); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	// Orders arrive in creation order, as they do in production.
	for i := range n {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", r.Uint32(), i)
		at := base.Add(time.Duration(int64(span) / int64(n) * int64(i)))
		var promos []string
		if r.IntN(5) == 0 {
			promos = []string{fmt.Sprint("PROMO-", r.IntN(20))}
		}
		seq++
		user := fmt.Sprint("user-", r.IntN(100_000))
		if i%97 == 0 {
			users = append(users, user)
		}
		e := placed(id, user, at, fmt.Sprint("SKU-", r.IntN(500)), promos...)
		e.Placed.Source = []string{"web", "app"}[r.IntN(2)]
		batch = append(batch, AppliedEvent{Seq: seq, Event: e})
		switch r.IntN(4) {
		case 1, 2:
			seq++
			batch = append(batch, AppliedEvent{Seq: seq, Event: paid(id, at)})
		case 3:
			seq++
			batch = append(batch, AppliedEvent{Seq: seq, Event: cancelled(id, at, 0)})
		}
		if len(batch) >= cap(batch)-2 {
			flush()
		}
	}
	flush()
	b.Logf("built a read model of %d orders (%d events) in %s", n, seq, time.Since(began).Round(time.Second))

	shapes := []struct {
		name string
		f    func() order.Filter
	}{
		{"user", func() order.Filter { return order.Filter{User: users[r.IntN(len(users))]} }},
		{"status", func() order.Filter {
			return order.Filter{Status: "order_paid", From: base.Add(time.Duration(r.Int64N(int64(span))))}
		}},
		{"sku+status", func() order.Filter {
			return order.Filter{SKU: fmt.Sprint("SKU-", r.IntN(500)), Status: "order_cancelled"}
		}},
		{"promo+source", func() order.Filter {
			return order.Filter{PromotionCode: fmt.Sprint("PROMO-", r.IntN(20)), Source: "app"}
		}},
		{"created-range", func() order.Filter {
			from := base.Add(time.Duration(r.Int64N(int64(span))))
			return order.Filter{From: from, To: from.Add(24 * time.Hour)}
		}},
	}
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				f := sh.f()
				f.Limit = 50
				t0 := time.Now()
				page, _, err := db.ListOrders(f)
				lat = append(lat, time.Since(t0))
				if err != nil || len(page) == 0 {
					b.Fatalf("%+v: %d orders, %v", f, len(page), err)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
		})
	}
}

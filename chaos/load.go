package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/order"
)

// The catalogue the load orders from: one scarce SKU, so that some orders
// are refused for stock and restocks happen under load, and plenty of the
// others.
const (
	scarceSKU   = "CH-00"
	scarceStock = 40
	skuCount    = 12
	plentyStock = 1_000_000
)

func sku(i int) string { return fmt.Sprintf("CH-%02d", i) }

// currencies the orders are priced in: the money invariant holds per
// currency.
var currencies = []string{"EUR", "USD", "JPY"}

// load places orders as a storefront would: at a steady rate, each retried
// with its idempotency key until acknowledged (an attempt that timed out
// may have been stored), and cancels some of them as customers do.
type load struct {
	cl   *client.Client
	rand *rand.Rand

	mu       sync.Mutex
	acked    []string
	attempts int
	refused  int // attempts that failed (timeouts, a node down)
}

func newLoad(cl *client.Client, seed uint64) *load {
	return &load{cl: cl, rand: rand.New(rand.NewPCG(seed, 11))}
}

// stock gives the catalogue its quantities; the scarce SKU is set back
// to scarceStock each round (under load, a stock count happens).
func (l *load) stock(ctx context.Context, first bool) error {
	for i := range skuCount {
		qty := int64(plentyStock)
		if i == 0 {
			qty = scarceStock
		} else if !first {
			continue
		}
		if _, err := l.cl.SetStock(ctx, sku(i), qty); err != nil && first {
			return fmt.Errorf("stock %s: %w", sku(i), err)
		}
	}
	return nil
}

// run places n orders, numbered from first, at rate per second, and
// returns when each is acknowledged or has failed every attempt.
// placed, if not nil, is told each time an order is through.
func (l *load) run(ctx context.Context, round, first, n int, rate float64, placed func(int)) {
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	var done int
	var doneMu sync.Mutex
	for i := first; i < first+n; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
		}
		req := l.order(round, i)
		cancel := l.chance(0.1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if id, ok := l.place(ctx, req); ok && cancel {
				_, _ = l.cl.CancelOrder(ctx, api.CancelOrder{ID: id, CancelReason: api.CancelReason{Reason: "changed my mind"},
					By: req.User, CommandID: "chaos-cancel-" + id})
			}
			doneMu.Lock()
			done++
			d := done
			doneMu.Unlock()
			if placed != nil {
				placed(d)
			}
		}()
	}
	wg.Wait()
}

func (l *load) chance(p float64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rand.Float64() < p
}

func (l *load) order(round, i int) api.PlaceOrder {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.rand
	req := api.PlaceOrder{IdempotencyKey: fmt.Sprintf("chaos-%d-%d", round, i), User: fmt.Sprintf("shopper-%02d", r.IntN(50)),
		NewOrder: api.NewOrder{Currency: currencies[r.IntN(len(currencies))], PaymentMethod: "card",
			Destination: order.Destination{Country: "DE", PostalCode: "10115", Address: "Invalidenstr. 117, Berlin",
				PhoneNumber: "+49 30 1234567"}}}
	first := r.IntN(skuCount)
	for j := range 1 + r.IntN(3) {
		req.Items = append(req.Items, order.Item{SKU: sku((first + j) % skuCount), Quantity: 1 + int64(r.IntN(3)),
			UnitPrice: 100 + int64(r.IntN(5000))})
	}
	return req
}

// place tries an order up to five times, as a storefront retries, and
// reports its ID once acknowledged.
func (l *load) place(ctx context.Context, req api.PlaceOrder) (string, bool) {
	for attempt := range 5 {
		o, err := l.cl.PlaceOrder(ctx, req)
		l.mu.Lock()
		l.attempts++
		if err == nil {
			l.acked = append(l.acked, o.ID)
			l.mu.Unlock()
			return o.ID, true
		}
		l.refused++
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-time.After(time.Duration(attempt+1) * 300 * time.Millisecond):
		}
	}
	return "", false
}

// ackedOrders is every order acknowledged so far.
func (l *load) ackedOrders() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.acked...)
}

func (l *load) counts() (attempts, refused int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attempts, l.refused
}

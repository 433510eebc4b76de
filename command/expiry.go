package command

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/oms-project/oms/order"
)

// Expiry expires the reservations of unpaid orders once their time has
// come. It finds them in the read model's expiry index, which lists every
// order whose reservation can still expire by when it does: a sweep of
// that index replaces a durable timer message per order (one stored
// message and one delivery fewer for every order, paid or not). The index
// is rebuilt with the read model from the stream, so a restart loses no
// expiry; the read model may lag, never lead, so an order it still lists
// may have been paid meanwhile, and its actor, which decides, then does
// nothing.
type Expiry struct {
	Orders Decider
	// Due lists up to limit orders whose expiry is at or before now.
	Due func(now time.Time, limit int) ([]string, error)
	// Owns says whether this node sweeps the order: the owner of its
	// partition does, so each order is expired by one node.
	Owns func(orderID string) bool
	// CaughtUp says whether the read model is close enough behind the
	// stream to sweep: while it catches up (a rebuild, a wiped node) most
	// of the orders it still shows unpaid were paid since, and asking their
	// actors would wake them all for nothing. Expiries wait meanwhile.
	CaughtUp func(ctx context.Context) bool
	Interval time.Duration
	Log      *slog.Logger
}

// expiryBatch bounds the orders one sweep reads and expires: a backlog is
// worked off over several sweeps.
const expiryBatch = 1024

// expiryWorkers bounds the expiries in flight at once.
const expiryWorkers = 16

// Run sweeps every Interval until ctx ends.
func (e Expiry) Run(ctx context.Context) {
	t := time.NewTicker(e.Interval)
	defer t.Stop()
	// sent remembers the orders expired lately: the read model shows an
	// order expired a moment after its actor did, and the next sweeps
	// skip it meanwhile instead of asking again.
	sent := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.sweep(ctx, sent)
	}
}

// sweep expires what is due now.
func (e Expiry) sweep(ctx context.Context, sent map[string]time.Time) {
	now := time.Now().UTC()
	for id, at := range sent {
		if now.Sub(at) > 10*e.Interval+time.Minute {
			delete(sent, id)
		}
	}
	ids, err := e.Due(now, expiryBatch)
	if err != nil {
		e.Log.Error("expiry: read model unreadable", "err", err)
		return
	}
	if len(ids) == 0 || !e.CaughtUp(ctx) {
		return
	}
	var mu sync.Mutex // guards sent: a failed expiry is forgotten, to be tried next sweep
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(expiryWorkers, len(ids)) {
		wg.Go(func() {
			for id := range work {
				_, err := e.Orders.Order(ctx, order.ExpireReservation{Meta: order.Meta{ID: "expire:" + id, OrderID: id, At: now, By: "system"}})
				if err != nil && ctx.Err() == nil {
					e.Log.Warn("expiry: reservation not expired; will retry", "order_id", id, "err", err)
					mu.Lock()
					delete(sent, id)
					mu.Unlock()
				}
			}
		})
	}
	for _, id := range ids {
		mu.Lock()
		_, skip := sent[id]
		if !skip && e.Owns(id) {
			sent[id] = now
		} else {
			skip = true
		}
		mu.Unlock()
		if skip {
			continue
		}
		select {
		case work <- id:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}

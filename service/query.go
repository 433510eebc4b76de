package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/store"
)

var errNoCommandRole = errors.New("this node does not run the command role")

// getOrder answers from the read model, so a lookup never queues behind a
// busy order actor. With minVersion it first waits for the read model to
// reach that sequence. An order the read model has not seen yet (it was
// placed a moment ago) is asked of its actor when this node has one.
func (n *Node) getOrder(ctx context.Context, data []byte) (any, error) {
	var req api.GetOrder
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := requireID("id", req.ID); err != nil {
		return nil, err
	}
	if req.MinVersion > 0 {
		// Leave a little of the request's time for the fallback.
		wctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout*3/4)
		err := n.proj.waitFor(wctx, req.MinVersion)
		cancel()
		if err != nil && n.orders == nil {
			return nil, err
		}
	}
	o, ok, err := n.db.Order(req.ID)
	if err != nil {
		return nil, err
	}
	if ok && o.Version >= req.MinVersion {
		return o, nil
	}
	if n.orders == nil {
		if ok {
			return o, nil
		}
		return nil, fmt.Errorf("order %s: %w", req.ID, order.ErrNotFound)
	}
	return n.GetOrder(ctx, req.ID)
}

func (n *Node) listOrders(_ context.Context, data []byte) (any, error) {
	var req api.ListOrders
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if req.Limit < 0 || req.Limit > store.MaxPageSize {
		return nil, &order.ValidationError{Field: "limit", Message: fmt.Sprintf("must be between 0 and %d", store.MaxPageSize)}
	}
	if !req.From.IsZero() && !req.To.IsZero() && !req.From.Before(req.To) {
		return nil, &order.ValidationError{Field: "to", Message: "must be after from"}
	}
	if req.Status != "" && !validStatus(req.Status) {
		return nil, &order.ValidationError{Field: "status", Message: "unknown status " + req.Status}
	}
	orders, next, err := n.db.ListOrders(req)
	if errors.Is(err, store.ErrBadCursor) {
		return nil, &order.ValidationError{Field: "cursor", Message: "not a cursor this service issued"}
	}
	if err != nil {
		return nil, err
	}
	return api.OrderPage{Orders: orders, Next: next}, nil
}

func validStatus(s string) bool {
	for _, st := range order.Statuses {
		if string(st) == s {
			return true
		}
	}
	return false
}

// Feed limits.
const (
	maxChanges = 1000
	maxWait    = 30 * time.Second
)

// orderChanges returns an order's events after a stream sequence, waiting
// up to waitMs for the first: a long-poll feed for clients that do not use
// JetStream consumers. The reply's last is the cursor to resume from, so a
// client that reconnects with it sees no gap and no duplicate.
func (n *Node) orderChanges(ctx context.Context, data []byte) (any, error) {
	var req api.GetChanges
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := requireID("id", req.ID); err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit <= 0 || limit > maxChanges {
		limit = maxChanges
	}
	subject := jetstream.OrderEventsPrefix + req.ID
	// Subscribe before reading, so an event appended in between wakes us.
	wake := make(chan struct{}, 1)
	sub, err := n.nc.Subscribe(subject, func(*nats.Msg) {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	wait := min(time.Duration(req.WaitMs)*time.Millisecond, maxWait, n.cfg.RequestTimeout*3/4)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		msgs, err := jetstream.TailN(ctx, n.orderStream, subject, req.After, limit)
		if err != nil {
			return nil, err
		}
		if len(msgs) > 0 || wait <= 0 {
			out := api.Changes{Changes: make([]api.Change, 0, len(msgs)), Last: req.After}
			for _, m := range msgs {
				var e order.Event
				if err := json.Unmarshal(m.Data, &e); err != nil {
					return nil, err
				}
				out.Changes = append(out.Changes, api.Change{Seq: m.Sequence, Event: e})
				out.Last = m.Sequence
			}
			return out, nil
		}
		select {
		case <-wake:
		case <-deadline.C:
			wait = 0
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (n *Node) analyticsSummary(_ context.Context, data []byte) (any, error) {
	var req api.Summary
	if len(data) > 0 {
		if err := decode(data, &req); err != nil {
			return nil, err
		}
	}
	if req.Year < 0 || req.Year > 9999 {
		return nil, &order.ValidationError{Field: "year", Message: "must be a year such as 2026"}
	}
	years, months, err := n.db.Summary(req.Year)
	if err != nil {
		return nil, err
	}
	if years == nil {
		years = []store.PeriodAnalytics{}
	}
	return map[string]any{"year": req.Year, "years": years, "months": months}, nil
}

func (n *Node) analyticsPromotions(context.Context, []byte) (any, error) {
	p, err := n.db.Promotions()
	if p == nil {
		p = []store.PromotionAnalytics{}
	}
	return map[string]any{"promotions": p}, err
}

// rebuild drops the read model or the snapshots and rebuilds them.
func (n *Node) rebuild(ctx context.Context, data []byte) (any, error) {
	var req api.Rebuild
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	// A rebuild outlives an ordinary request.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	switch req.What {
	case "readmodel":
		if n.proj == nil {
			return nil, &order.ValidationError{Field: "what", Message: "this node does not run the query role"}
		}
		return n.RebuildReadModel(ctx)
	case "snapshots":
		if n.orders == nil {
			return nil, errNoCommandRole
		}
		return n.RebuildSnapshots(ctx)
	}
	return nil, &order.ValidationError{Field: "what", Message: "must be readmodel or snapshots"}
}

package query

import (
	"context"
	"time"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/order"
)

// stuck lists the orders that stayed in a status past its service level,
// oldest first, with how many each status has. An order stuck in a status
// was created before the level's cutoff, so each status is read from the
// read model's status index up to that cutoff only.
func (q *Queries) stuck(_ context.Context, req api.ListStuck) (api.StuckOrders, error) {
	limit := req.Limit
	if limit == 0 {
		limit = order.DefaultPageSize
	}
	out := api.StuckOrders{Orders: []api.StuckOrder{}, Counts: map[string]int64{}, ServiceLevels: map[string]string{}}
	now := time.Now().UTC()
	for _, s := range api.StuckStatuses {
		level := q.d.Stuck[string(s)]
		out.ServiceLevels[string(s)] = level.String()
		if req.Status != "" && req.Status != string(s) {
			continue
		}
		n, err := q.eachStuck(s, level, now, func(o order.Order) {
			if len(out.Orders) < limit {
				out.Orders = append(out.Orders, api.StuckOrder{ID: o.ID, User: o.User, Status: o.Status, Since: o.UpdatedAt,
					Overdue: now.Sub(o.UpdatedAt.Add(level)).Round(time.Second).String(), Total: o.Total, Currency: o.Currency})
			}
		})
		if err != nil {
			return out, err
		}
		out.Counts[string(s)] = n
	}
	return out, nil
}

// StuckCounts counts the stuck orders of each status (for the metrics).
func (q *Queries) StuckCounts() (map[string]int64, error) {
	counts := map[string]int64{}
	now := time.Now().UTC()
	for _, s := range api.StuckStatuses {
		n, err := q.eachStuck(s, q.d.Stuck[string(s)], now, func(order.Order) {})
		if err != nil {
			return nil, err
		}
		counts[string(s)] = n
	}
	return counts, nil
}

// eachStuck calls fn with each order in status s unchanged for longer than
// level, oldest first, up to api.MaxStuckCount, and returns how many.
func (q *Queries) eachStuck(s order.Status, level time.Duration, now time.Time, fn func(order.Order)) (int64, error) {
	cutoff := now.Add(-level)
	f := order.Filter{Status: string(s), To: cutoff, Limit: order.MaxPageSize}
	var n int64
	for n < api.MaxStuckCount {
		page, next, err := q.d.DB.ListOrders(f)
		if err != nil {
			return n, err
		}
		for _, o := range page {
			if o.UpdatedAt.Before(cutoff) && n < api.MaxStuckCount {
				n++
				fn(o)
			}
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	return n, nil
}

// Package query is the read side of a node: the projection of the order
// stream into the node's bbolt read model, and the operations that answer
// from it (lookups with read-your-writes, lists, the long-poll feed,
// analytics), and the rebuild of the read model. Reads never queue behind
// an order actor; an order not projected yet is asked of its actor.
//
// It may import the domain, api, endpoint, jetstream and store.
package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/store"
)

// Orders reads an order's current state from its actor: the command side
// on a node that runs it, or a remote reader asking the command nodes.
type Orders interface {
	GetOrder(ctx context.Context, id string) (order.Order, error)
}

// Deps is what the read side runs on.
type Deps struct {
	DB *store.DB
	// Stream is the order events stream; NC carries the long poll's
	// wake-ups (a subscription to the order's subject).
	Stream natsjs.Stream
	NC     *nats.Conn
	// JS reads the other streams for an order's timeline.
	JS natsjs.JetStream
	// Stuck is the service level of each status (config.StuckLevels).
	Stuck  map[string]time.Duration
	Orders Orders
	// RequestTimeout bounds a lookup's wait for its minVersion and a long
	// poll's wait.
	RequestTimeout time.Duration
	CommitInterval time.Duration
	Retry          jetstream.Backoff
	// DeadLetter stores an event the read model could not apply.
	DeadLetter func(context.Context, jetstream.Msg, error) error
	Log        *slog.Logger
}

// Queries is the read side.
type Queries struct {
	d    Deps
	proj *projector
}

// Start projects the order stream from the sequence the read model has
// stored, and returns the read side.
func Start(ctx context.Context, d Deps) (*Queries, error) {
	q := &Queries{d: d, proj: newProjector(d.DB, d.Stream, d.CommitInterval, d.Retry, d.DeadLetter, d.Log)}
	if err := q.proj.start(ctx); err != nil {
		return nil, err
	}
	return q, nil
}

// Stop ends the projection.
func (q *Queries) Stop() { q.proj.stop() }

// Operations are the read side's operations of the API, each with the
// HTTP routes it is served on.
func (q *Queries) Operations() []endpoint.Operation {
	get := endpoint.New("orders_get", api.SubjectOrdersGet, q.getOrder)
	for _, r := range []endpoint.Route{
		endpoint.Customers(http.MethodGet, "/v1/orders/{id}", "read an order"),
		endpoint.Staff(http.MethodGet, "/v1/orders/{id}", "read an order"),
	} {
		endpoint.Bind(get, r, func(_ context.Context, p auth.Principal, in *getInput) (api.GetOrder, error) {
			return api.GetOrder{ID: in.ID, MinVersion: in.MinVersion, AsCustomer: customer(p)}, nil
		})
	}
	list := endpoint.New("orders_list", api.SubjectOrdersList, q.listOrders)
	for _, r := range []endpoint.Route{
		endpoint.Customers(http.MethodGet, "/v1/orders", "list one's orders"),
		endpoint.Staff(http.MethodGet, "/v1/orders", "list orders"),
	} {
		endpoint.Bind(list, r, func(_ context.Context, p auth.Principal, in *listInput) (order.Filter, error) {
			f := order.Filter{User: in.User, Status: in.Status, Source: in.Source, PromotionCode: in.PromotionCode,
				SKU: in.SKU, From: in.From, To: in.To, Limit: in.Limit, Cursor: in.Cursor}
			if p.IsCustomer() {
				f.User = p.Subject
			}
			return f, nil
		})
	}
	changes := endpoint.New("orders_changes", api.SubjectOrdersChanges, q.orderChanges)
	for _, r := range []endpoint.Route{
		endpoint.Customers(http.MethodGet, "/v1/orders/{id}/changes", "long-poll an order's changes"),
		endpoint.Staff(http.MethodGet, "/v1/orders/{id}/changes", "long-poll an order's changes"),
	} {
		endpoint.Bind(changes, r, func(_ context.Context, p auth.Principal, in *changesInput) (api.GetChanges, error) {
			return api.GetChanges{ID: in.ID, After: in.After, Limit: in.Limit, WaitMs: in.WaitMs, AsCustomer: customer(p)}, nil
		})
	}
	summary := endpoint.New("analytics_summary", api.SubjectAnalyticsSummary, q.analyticsSummary)
	endpoint.Bind(summary, endpoint.Staff(http.MethodGet, "/v1/analytics/summary", "orders, revenue and basket size per year and month"),
		func(_ context.Context, _ auth.Principal, in *summaryInput) (api.Summary, error) {
			return api.Summary{Year: in.Year}, nil
		})
	promotions := endpoint.New("analytics_promotions", api.SubjectAnalyticsPromotions, q.analyticsPromotions)
	endpoint.Bind(promotions, endpoint.Staff(http.MethodGet, "/v1/analytics/promotions", "orders and revenue per promotion code"),
		func(context.Context, auth.Principal, *struct{}) (api.Promotions, error) { return api.Promotions{}, nil })
	explain := endpoint.New("orders_explain", api.SubjectOrdersExplain, q.explain)
	endpoint.Bind(explain, endpoint.Staff(http.MethodGet, "/v1/orders/{id}/timeline",
		"an order's causal timeline: each event, the node that appended it, its cause and its effects"),
		func(_ context.Context, _ auth.Principal, in *explainInput) (api.ExplainOrder, error) {
			return api.ExplainOrder{ID: in.ID}, nil
		})
	stuck := endpoint.New("orders_stuck", api.SubjectOrdersStuck, q.stuck)
	endpoint.Bind(stuck, endpoint.Staff(http.MethodGet, "/v1/orders/stuck", "orders past their status's service level, oldest first, and how many per status"),
		func(_ context.Context, _ auth.Principal, in *stuckInput) (api.ListStuck, error) {
			return api.ListStuck{Status: in.Status, Limit: in.Limit}, nil
		})
	return []endpoint.Operation{get, list, changes, summary, promotions, explain, stuck}
}

// HTTP inputs of the query operations.
type (
	stuckInput struct {
		Status string `query:"status" enum:"order_received,order_paid,order_inTransit" doc:"one status only"`
		Limit  int    `query:"limit" minimum:"0" maximum:"500" doc:"orders listed (default 50); the counts cover all"`
	}
	explainInput struct {
		ID string `path:"id" format:"uuid" doc:"the order"`
	}
	getInput struct {
		ID         string `path:"id" format:"uuid" doc:"the order"`
		MinVersion uint64 `query:"minVersion" doc:"wait until the read side has seen this version (read your writes)"`
	}
	listInput struct {
		User          string    `query:"user" doc:"the customer (staff only: a customer lists its own orders)"`
		Status        string    `query:"status" enum:"order_received,order_paid,order_inTransit,order_completed,order_cancelled"`
		Source        string    `query:"source" enum:"web,app"`
		PromotionCode string    `query:"promotionCode"`
		SKU           string    `query:"sku"`
		From          time.Time `query:"from" doc:"created at or after"`
		To            time.Time `query:"to" doc:"created before"`
		Limit         int       `query:"limit" minimum:"0" maximum:"500" doc:"page size (default 50)"`
		Cursor        string    `query:"cursor" doc:"the next cursor of the page before"`
	}
	changesInput struct {
		ID     string `path:"id" format:"uuid" doc:"the order"`
		After  uint64 `query:"after" doc:"the last version seen"`
		Limit  int    `query:"limit" minimum:"0" maximum:"1000"`
		WaitMs int    `query:"waitMs" minimum:"0" maximum:"30000" doc:"how long to wait for the first change"`
	}
	summaryInput struct {
		Year int `query:"year" minimum:"0" maximum:"9999" doc:"one year, with its months (0: every year)"`
	}
)

// customer is the customer a principal acts for, if it is one.
func customer(p auth.Principal) string {
	if p.IsCustomer() {
		return p.Subject
	}
	return ""
}

// getOrder answers from the read model, so a lookup never queues behind a
// busy order actor. With minVersion it first waits for the read model to
// reach that sequence. An order the read model has not seen yet (it was
// placed a moment ago) is asked of its actor.
func (q *Queries) getOrder(ctx context.Context, req api.GetOrder) (order.Order, error) {
	var waited error
	if req.MinVersion > 0 {
		// Leave a little of the request's time for the fallback.
		wctx, cancel := context.WithTimeout(ctx, q.d.RequestTimeout*3/4)
		waited = q.proj.waitFor(wctx, req.MinVersion)
		cancel()
	}
	o, ok, err := q.d.DB.Order(req.ID)
	if err != nil {
		return order.Order{}, err
	}
	if ok && req.AsCustomer != "" && o.User != req.AsCustomer {
		return order.Order{}, notFound(req.ID)
	}
	if ok && o.Version >= req.MinVersion {
		return o, nil
	}
	a, err := q.d.Orders.GetOrder(ctx, req.ID)
	switch {
	case errors.Is(err, order.ErrNotFound) && waited != nil:
		return order.Order{}, waited
	case err != nil:
		return order.Order{}, err
	case req.AsCustomer != "" && a.User != req.AsCustomer:
		return order.Order{}, notFound(req.ID)
	case a.Version < req.MinVersion:
		return order.Order{}, &order.ValidationError{Field: "minVersion",
			Message: fmt.Sprintf("order %s is at version %d, not %d", req.ID, a.Version, req.MinVersion)}
	}
	return a, nil
}

// notFound is what a customer hears of an order that is not theirs: the
// same as of one that does not exist.
func notFound(id string) error { return fmt.Errorf("order %s: %w", id, order.ErrNotFound) }

// Owner returns the customer an order belongs to, from the read model or,
// for an order not projected yet, its actor.
func (q *Queries) Owner(ctx context.Context, id string) (string, error) {
	if o, ok, err := q.d.DB.Order(id); err != nil || ok {
		return o.User, err
	}
	o, err := q.d.Orders.GetOrder(ctx, id)
	return o.User, err
}

func (q *Queries) listOrders(_ context.Context, f order.Filter) (api.OrderPage, error) {
	orders, next, err := q.d.DB.ListOrders(f)
	if errors.Is(err, store.ErrBadCursor) {
		return api.OrderPage{}, &order.ValidationError{Field: "cursor", Message: "not a cursor this service issued"}
	}
	if err != nil {
		return api.OrderPage{}, err
	}
	return api.OrderPage{Orders: orders, Next: next}, nil
}

// Feed limits.
const (
	maxChanges = api.MaxChanges
	maxWait    = api.MaxWaitMs * time.Millisecond
)

// orderChanges returns an order's events after a stream sequence, waiting
// up to waitMs for the first: a long-poll feed for clients that do not use
// JetStream consumers. The reply's last is the cursor to resume from, so a
// client that reconnects with it sees no gap and no duplicate.
func (q *Queries) orderChanges(ctx context.Context, req api.GetChanges) (api.ChangePage, error) {
	if req.AsCustomer != "" {
		if owner, err := q.Owner(ctx, req.ID); err != nil || owner != req.AsCustomer {
			return api.ChangePage{}, notFound(req.ID)
		}
	}
	limit := req.Limit
	if limit <= 0 || limit > maxChanges {
		limit = maxChanges
	}
	subject := jetstream.OrderEventsPrefix + req.ID
	// Subscribe before reading, so an event appended in between wakes us.
	wake := make(chan struct{}, 1)
	sub, err := q.d.NC.Subscribe(subject, func(*nats.Msg) {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return api.ChangePage{}, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	wait := min(time.Duration(req.WaitMs)*time.Millisecond, maxWait, q.d.RequestTimeout*3/4)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		out := api.ChangePage{Changes: []api.OrderChange{}, Last: req.After}
		err := jetstream.Fold(ctx, q.d.Stream, subject, req.After, func(m *natsjs.RawStreamMsg) error {
			e, err := order.DecodeEvent(m.Data)
			if err != nil {
				return err
			}
			out.Changes = append(out.Changes, api.OrderChange{Seq: m.Sequence, Event: e})
			out.Last = m.Sequence
			if len(out.Changes) == limit {
				return jetstream.ErrStop
			}
			return nil
		})
		if err != nil {
			return api.ChangePage{}, err
		}
		if len(out.Changes) > 0 || wait <= 0 {
			return out, nil
		}
		select {
		case <-wake:
		case <-deadline.C:
			wait = 0
		case <-ctx.Done():
			return api.ChangePage{}, ctx.Err()
		}
	}
}

func (q *Queries) analyticsSummary(_ context.Context, req api.Summary) (api.SummaryReply, error) {
	years, months, err := q.d.DB.Summary(req.Year)
	if err != nil {
		return api.SummaryReply{}, err
	}
	if years == nil {
		years = []api.PeriodAnalytics{}
	}
	return api.SummaryReply{Year: req.Year, Years: years, Months: months}, nil
}

func (q *Queries) analyticsPromotions(context.Context, api.Promotions) (api.PromotionsReply, error) {
	p, err := q.d.DB.Promotions()
	if p == nil {
		p = []api.PromotionAnalytics{}
	}
	return api.PromotionsReply{Promotions: p}, err
}

// ReadModel reports the order counts by status and how far the read model
// is behind the stream.
func (q *Queries) ReadModel(ctx context.Context) (map[string]int64, api.ReadModel, error) {
	counts, err := q.d.DB.StatusCounts()
	if err != nil {
		return nil, api.ReadModel{}, err
	}
	st, err := q.Progress(ctx)
	if err != nil {
		return nil, api.ReadModel{}, err
	}
	return counts, st, nil
}

// Progress says how far the read model is, and how far behind the order
// stream: what readiness and the expiry sweep look at, without the counts.
// A stream that does not answer is no error of the read model's (it still
// answers lists): the reply says so in StreamError, and its lag is unknown.
func (q *Queries) Progress(ctx context.Context) (api.ReadModel, error) {
	rm, err := q.d.DB.ReadModel()
	if err != nil {
		return api.ReadModel{}, err
	}
	st := api.ReadModel{Applied: rm.Applied, Gaps: rm.Gaps, Skipped: rm.Skipped}
	info, err := q.d.Stream.Info(ctx)
	if err != nil {
		st.StreamError = err.Error()
		return st, nil
	}
	st.Stream = info.State.LastSeq
	if info.State.LastSeq > rm.Applied {
		st.Lag = info.State.LastSeq - rm.Applied
	}
	return st, nil
}

// RebuildReadModel drops the read model and projects the order stream
// again from its first event, returning when it has caught up with the
// stream as it was when the rebuild began, or when ctx ends (the
// projection then goes on from where it is). progress hears how far.
func (q *Queries) RebuildReadModel(ctx context.Context, node string, progress func(done, total uint64)) (api.RebuildReport, error) {
	began := time.Now()
	info, err := q.d.Stream.Info(ctx)
	if err != nil {
		return api.RebuildReport{}, err
	}
	q.proj.stop()
	if err := q.d.DB.DropReadModel(); err != nil {
		return api.RebuildReport{}, err
	}
	if err := q.proj.start(ctx); err != nil {
		return api.RebuildReport{}, err
	}
	last := info.State.LastSeq
	for {
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := q.proj.waitFor(wctx, last)
		cancel()
		progress(min(q.proj.applied.Load(), last), last)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return api.RebuildReport{}, ctx.Err()
		}
	}
	orders, err := q.d.DB.CountOrders()
	if err != nil {
		return api.RebuildReport{}, err
	}
	return api.RebuildReport{Node: node, What: api.RebuildReadModel, Events: info.State.Msgs, Orders: orders,
		Seconds: time.Since(began).Seconds()}, nil
}

// Package client calls an oms node's request-reply API over NATS. The CLI
// and the tests use it; any NATS client in any language can do the same.
//
// It may import api and the domain, nothing else of oms.
package client

import (
	"context"
	"fmt"
	"strconv"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/order"
)

// Error is an error reply from the service. It matches the sentinels of its
// kind: errors.Is(err, order.ErrNotFound) holds for a 404 about an order.
type Error = api.Error

// Client sends requests on one NATS connection.
type Client struct {
	NC      *nats.Conn
	Timeout time.Duration
}

// New returns a client with a default timeout.
func New(nc *nats.Conn) *Client { return &Client{NC: nc, Timeout: 10 * time.Second} }

// Request sends req as JSON to subject and decodes the reply into resp.
func (c *Client) Request(ctx context.Context, subject string, req, resp any) error {
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	// Always bounded by the client's timeout (or the caller's deadline, if
	// earlier): a request that reached a node just as it died gets no
	// answer, and the caller should retry rather than wait.
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	msg, err := c.NC.RequestWithContext(ctx, subject, data)
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		var e Error
		if json.Unmarshal(msg.Data, &e) != nil || e.Code == 0 {
			n, _ := strconv.Atoi(code)
			e = Error{Code: n, Message: msg.Header.Get(micro.ErrorHeader)}
		}
		return &e
	}
	if resp == nil {
		return nil
	}
	return json.Unmarshal(msg.Data, resp)
}

// PlaceOrder places an order.
func (c *Client) PlaceOrder(ctx context.Context, req api.PlaceOrder) (order.Order, error) {
	var o order.Order
	return o, c.Request(ctx, api.SubjectOrdersPlace, req, &o)
}

// GetOrder fetches an order.
func (c *Client) GetOrder(ctx context.Context, id string) (order.Order, error) {
	var o order.Order
	return o, c.Request(ctx, api.SubjectOrdersGet, api.GetOrder{ID: id}, &o)
}

// CancelOrder cancels an order.
func (c *Client) CancelOrder(ctx context.Context, req api.CancelOrder) (order.Order, error) {
	var o order.Order
	return o, c.Request(ctx, api.SubjectOrdersCancel, req, &o)
}

// UpdateOrder updates an order.
func (c *Client) UpdateOrder(ctx context.Context, req api.UpdateOrder) (order.Order, error) {
	var o order.Order
	return o, c.Request(ctx, api.SubjectOrdersUpdate, req, &o)
}

// SetStock sets a SKU's quantity on hand.
func (c *Client) SetStock(ctx context.Context, sku string, qty int64) (inventory.View, error) {
	var v inventory.View
	return v, c.Request(ctx, api.SubjectStockSet, api.SetStock{SKU: sku, Quantity: qty}, &v)
}

// GetStock reads a SKU's stock.
func (c *Client) GetStock(ctx context.Context, sku string) (inventory.View, error) {
	var v inventory.View
	return v, c.Request(ctx, api.SubjectStockGet, api.GetStock{SKU: sku}, &v)
}

// ExplainOrder reads an order's causal timeline.
func (c *Client) ExplainOrder(ctx context.Context, id string) (api.Timeline, error) {
	var t api.Timeline
	return t, c.Request(ctx, api.SubjectOrdersExplain, api.ExplainOrder{ID: id}, &t)
}

// Stuck lists the orders past their status's service level.
func (c *Client) Stuck(ctx context.Context, req api.ListStuck) (api.StuckOrders, error) {
	var s api.StuckOrders
	return s, c.Request(ctx, api.SubjectOrdersStuck, req, &s)
}

// Status reads the node's status summary.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var s api.Status
	return s, c.Request(ctx, api.SubjectStatus, struct{}{}, &s)
}

// GetOrderAt fetches an order once the read side has seen minVersion.
func (c *Client) GetOrderAt(ctx context.Context, id string, minVersion uint64) (order.Order, error) {
	var o order.Order
	return o, c.Request(ctx, api.SubjectOrdersGet, api.GetOrder{ID: id, MinVersion: minVersion}, &o)
}

// ListOrders returns one page of orders matching the filter.
func (c *Client) ListOrders(ctx context.Context, f order.Filter) (api.OrderPage, error) {
	var p api.OrderPage
	return p, c.Request(ctx, api.SubjectOrdersList, f, &p)
}

// Changes returns an order's events after a stream sequence (long-poll).
func (c *Client) Changes(ctx context.Context, req api.GetChanges) (api.ChangePage, error) {
	var ch api.ChangePage
	return ch, c.Request(ctx, api.SubjectOrdersChanges, req, &ch)
}

// Summary returns the analytics per year and, for one year, per month
// (year 0: every year).
func (c *Client) Summary(ctx context.Context, year int) (api.SummaryReply, error) {
	var out api.SummaryReply
	return out, c.Request(ctx, api.SubjectAnalyticsSummary, api.Summary{Year: year}, &out)
}

// Promotions returns the analytics per promotion code.
func (c *Client) Promotions(ctx context.Context) (api.PromotionsReply, error) {
	var out api.PromotionsReply
	return out, c.Request(ctx, api.SubjectAnalyticsPromotions, api.Promotions{}, &out)
}

// ClusterStatus returns the members and partitions as the answering node
// sees them.
func (c *Client) ClusterStatus(ctx context.Context) (api.ClusterStatus, error) {
	var out api.ClusterStatus
	return out, c.Request(ctx, api.SubjectClusterStatus, api.StatusRequest{}, &out)
}

// StartRebuild asks a node to rebuild its read model or snapshots, in the
// background, and returns the job.
func (c *Client) StartRebuild(ctx context.Context, what string) (api.Job, error) {
	var j api.Job
	return j, c.Request(ctx, api.SubjectAdminRebuild, api.Rebuild{What: what}, &j)
}

// Job returns where a background job stands.
func (c *Client) Job(ctx context.Context, id string) (api.Job, error) {
	var j api.Job
	return j, c.Request(ctx, api.SubjectAdminJobsGet, api.GetJob{ID: id}, &j)
}

// Rebuild rebuilds a node's read model or snapshots and returns the report
// once the job is done (or ctx ends); progress, if not nil, hears of it
// as it goes.
func (c *Client) Rebuild(ctx context.Context, what string, progress ...func(api.Job)) (api.RebuildReport, error) {
	j, err := c.StartRebuild(ctx, what)
	if err != nil {
		return api.RebuildReport{}, err
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		for _, p := range progress {
			p(j)
		}
		switch j.State {
		case api.JobDone:
			return *j.Report, nil
		case api.JobFailed, api.JobCancelled:
			return api.RebuildReport{}, fmt.Errorf("%s rebuild on %s %s: %s", j.What, j.Node, j.State, j.Error)
		}
		select {
		case <-ctx.Done():
			return api.RebuildReport{}, fmt.Errorf("rebuild job %s on %s: %w", j.ID, j.Node, ctx.Err())
		case <-t.C:
		}
		if j, err = c.Job(ctx, j.ID); err != nil {
			return api.RebuildReport{}, err
		}
	}
}

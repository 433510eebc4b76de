// Package command is the write side of a node: it routes every order and
// inventory command to the actor that decides it (on the node owning the
// key's partition, or here), declares the command operations of the API,
// answers the calls other nodes forward, and rebuilds the actors'
// snapshots. Its handler Inbound turns provider events into commands, and
// Expiry sweeps the reservations due to expire.
//
// It may import the domain, api, actors, cluster, endpoint, jetstream and
// store.
package command

import (
	"context"
	"log/slog"
	"time"

	"github.com/oms-project/oms/actors"
	"github.com/oms-project/oms/cluster"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/store"
)

// Deps is what the write side runs on.
type Deps struct {
	Cluster *cluster.Cluster
	Orders  *actors.Host
	SKUs    *actors.Host
	// Limiter bounds forwarded calls together with the API's requests.
	Limiter *endpoint.Limiter
	// DB and History serve the snapshot rebuild.
	DB      *store.DB
	History History
	Log     *slog.Logger
}

// Commands is the write side.
type Commands struct {
	d       Deps
	unserve []func()
}

// New starts the write side: it answers forwarded calls from now on, and
// passivates the actors of partitions this node stops owning.
func New(d Deps) (*Commands, error) {
	c := &Commands{d: d}
	for kind, handle := range map[string]func(context.Context, []byte) callReply{callOrder: c.serveOrder, callSKU: c.serveSKU} {
		stop, err := d.Cluster.Serve(kind, c.serveCall(kind, handle))
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.unserve = append(c.unserve, stop)
	}
	d.Cluster.OnChange(c.passivateNotOwned)
	return c, nil
}

// Stop stops answering forwarded calls (the actors are the hosts' to stop).
func (c *Commands) Stop() {
	for _, stop := range c.unserve {
		stop()
	}
	c.unserve = nil
}

// passivateNotOwned drops the actors of partitions another node now owns,
// so that no stale copy stays in memory here.
func (c *Commands) passivateNotOwned() {
	notMine := func(key string) bool { return !c.d.Cluster.Owns(key) }
	if k := c.d.Orders.PassivateWhere(notMine) + c.d.SKUs.PassivateWhere(notMine); k > 0 {
		c.d.Log.Info("passivating actors of partitions now owned elsewhere", "actors", k)
	}
}

// Order sends cmd to the order's actor, on the node owning its partition,
// and waits for the outcome.
func (c *Commands) Order(ctx context.Context, cmd order.Command) (order.Order, error) {
	r, local, err := forward(ctx, c.d.Cluster, cmd.Target(), callOrder, newOrderCall(cmd))
	if !local {
		return deref(r.Order), err
	}
	return c.OrderLocal(ctx, cmd)
}

// OrderLocal decides cmd with this node's actor for the order, whoever owns
// it. Correctness does not depend on ownership: appends are fenced.
func (c *Commands) OrderLocal(ctx context.Context, cmd order.Command) (order.Order, error) {
	return orderResult(c.d.Orders.Request(ctx, cmd.Target(), actors.OrderCommand{Cmd: cmd}))
}

// GetOrder returns an order's current state from its actor, including at
// least the event at stream sequence atLeast (0: whatever it has).
func (c *Commands) GetOrder(ctx context.Context, id string, atLeast uint64) (order.Order, error) {
	r, local, err := forward(ctx, c.d.Cluster, id, callOrder, orderCall{OrderID: id, Get: true, AtLeast: atLeast})
	if !local {
		return deref(r.Order), err
	}
	return orderResult(c.d.Orders.Request(ctx, id, actors.GetOrder{AtLeast: atLeast}))
}

// Stock decides an inventory command (SetStock, Reserve, Commit, Release)
// at the SKU's actor, on the node owning its partition, and returns the
// order's hold (for the per-order commands) and the stock after it.
func (c *Commands) Stock(ctx context.Context, sku string, cmd any) (inventory.Hold, inventory.View, error) {
	res, err := c.sku(ctx, sku, actors.SKUCommand{Cmd: cmd})
	return res.Hold, res.Stock, err
}

// StockLevel reads a SKU's stock from its actor.
func (c *Commands) StockLevel(ctx context.Context, sku string) (inventory.View, error) {
	res, err := c.sku(ctx, sku, actors.GetStock{})
	return res.Stock, err
}

func (c *Commands) sku(ctx context.Context, sku string, msg any) (actors.SKUResult, error) {
	r, local, err := forward(ctx, c.d.Cluster, sku, callSKU, newSKUCall(sku, msg))
	if !local {
		return actors.SKUResult{Stock: deref(r.Stock), Hold: deref(r.Hold), Err: err}, err
	}
	return skuResult(c.d.SKUs.Request(ctx, sku, msg))
}

// Active returns how many order and SKU actors are in memory.
func (c *Commands) Active() (orders, skus int) { return c.d.Orders.Active(), c.d.SKUs.Active() }

// ActorStats counts the order and SKU actors activated and passivated
// since the node started.
func (c *Commands) ActorStats() (orderActivations, orderPassivations, skuActivations, skuPassivations int64) {
	oa, op := c.d.Orders.Stats()
	sa, sp := c.d.SKUs.Stats()
	return oa, op, sa, sp
}

// PassivateAll drops every order and SKU actor from memory (their snapshots
// are queued first).
func (c *Commands) PassivateAll(ctx context.Context) error {
	if err := c.d.Orders.PassivateAll(ctx); err != nil {
		return err
	}
	return c.d.SKUs.PassivateAll(ctx)
}

func orderResult(r any, err error) (order.Order, error) {
	if err != nil {
		return order.Order{}, err
	}
	res := r.(actors.OrderResult)
	return res.Order, res.Err
}

func skuResult(r any, err error) (actors.SKUResult, error) {
	if err != nil {
		return actors.SKUResult{}, err
	}
	res := r.(actors.SKUResult)
	return res, res.Err
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func now() time.Time { return time.Now().UTC() }

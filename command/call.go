package command

import (
	"context"
	"fmt"
	json "github.com/goccy/go-json"

	"github.com/nats-io/nats.go"

	"github.com/oms-project/oms/actors"
	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/cluster"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/order"
)

// Kinds of forwarded call (oms.node.<node>.<kind>).
const (
	callOrder = "order"
	callSKU   = "sku"
)

// orderCall is an order command or lookup on the wire between nodes.
type orderCall struct {
	OrderID  string                   `json:"orderId"`
	Get      bool                     `json:"get,omitempty"`
	AtLeast  uint64                   `json:"atLeast,omitempty"`
	Place    *order.Place             `json:"place,omitempty"`
	Cancel   *order.Cancel            `json:"cancel,omitempty"`
	Update   *order.Update            `json:"update,omitempty"`
	Stock    *order.RecordStock       `json:"stock,omitempty"`
	Expire   *order.ExpireReservation `json:"expire,omitempty"`
	Payment  *order.RecordPayment     `json:"payment,omitempty"`
	Delivery *order.RecordDelivery    `json:"delivery,omitempty"`
}

func newOrderCall(cmd order.Command) orderCall {
	c := orderCall{OrderID: cmd.Target()}
	switch v := cmd.(type) {
	case order.Place:
		c.Place = &v
	case order.Cancel:
		c.Cancel = &v
	case order.Update:
		c.Update = &v
	case order.RecordStock:
		c.Stock = &v
	case order.ExpireReservation:
		c.Expire = &v
	case order.RecordPayment:
		c.Payment = &v
	case order.RecordDelivery:
		c.Delivery = &v
	}
	return c
}

func (c orderCall) message() any {
	switch {
	case c.Get:
		return actors.GetOrder{AtLeast: c.AtLeast}
	case c.Place != nil:
		return actors.OrderCommand{Cmd: *c.Place}
	case c.Cancel != nil:
		return actors.OrderCommand{Cmd: *c.Cancel}
	case c.Update != nil:
		return actors.OrderCommand{Cmd: *c.Update}
	case c.Stock != nil:
		return actors.OrderCommand{Cmd: *c.Stock}
	case c.Expire != nil:
		return actors.OrderCommand{Cmd: *c.Expire}
	case c.Payment != nil:
		return actors.OrderCommand{Cmd: *c.Payment}
	case c.Delivery != nil:
		return actors.OrderCommand{Cmd: *c.Delivery}
	}
	return nil
}

// skuCall is an inventory command or lookup on the wire between nodes.
type skuCall struct {
	SKU     string              `json:"sku"`
	Get     bool                `json:"get,omitempty"`
	Set     *inventory.SetStock `json:"set,omitempty"`
	Reserve *inventory.Reserve  `json:"reserve,omitempty"`
	Commit  *inventory.Commit   `json:"commit,omitempty"`
	Release *inventory.Release  `json:"release,omitempty"`
}

func newSKUCall(sku string, msg any) skuCall {
	c := skuCall{SKU: sku}
	switch m := msg.(type) {
	case actors.GetStock:
		c.Get = true
	case actors.SKUCommand:
		switch v := m.Cmd.(type) {
		case inventory.SetStock:
			c.Set = &v
		case inventory.Reserve:
			c.Reserve = &v
		case inventory.Commit:
			c.Commit = &v
		case inventory.Release:
			c.Release = &v
		}
	}
	return c
}

func (c skuCall) message() any {
	switch {
	case c.Get:
		return actors.GetStock{}
	case c.Set != nil:
		return actors.SKUCommand{Cmd: *c.Set}
	case c.Reserve != nil:
		return actors.SKUCommand{Cmd: *c.Reserve}
	case c.Commit != nil:
		return actors.SKUCommand{Cmd: *c.Commit}
	case c.Release != nil:
		return actors.SKUCommand{Cmd: *c.Release}
	}
	return nil
}

// callReply is an actor's answer on the wire. Its error goes through the
// api error table, so a 503 stays a 503 and errors.Is still works on the
// calling node.
type callReply struct {
	Order *order.Order    `json:"order,omitempty"`
	Stock *inventory.View `json:"stock,omitempty"`
	Hold  *inventory.Hold `json:"hold,omitempty"`
	Err   *api.Error      `json:"error,omitempty"`
}

// forward sends call to the owner of key's partition; local is true when
// this node is to decide it.
func forward(ctx context.Context, cl *cluster.Cluster, key, kind string, call any) (callReply, bool, error) {
	data, local, err := cl.Forward(ctx, key, kind, call)
	if local || err != nil {
		return callReply{}, local, err
	}
	var r callReply
	if err := json.Unmarshal(data, &r); err != nil {
		return callReply{}, false, fmt.Errorf("reply of %s: %w", kind, err)
	}
	if r.Err != nil {
		return r, false, r.Err
	}
	return r, false, nil
}

// serveCall answers the calls of one kind under the node's in-flight bound.
func (c *Commands) serveCall(kind string, handle func(context.Context, []byte) callReply) nats.MsgHandler {
	respond := func(m *nats.Msg, r callReply) {
		data, _ := json.Marshal(r)
		_ = m.Respond(data)
	}
	return func(m *nats.Msg) {
		c.d.Limiter.Go(func(ctx context.Context) { respond(m, handle(ctx, m.Data)) },
			func() { respond(m, callReply{Err: api.ErrorOf(endpoint.ErrBusy, "")}) })
	}
}

func (c *Commands) fault(ctx context.Context, kind string, err error) *api.Error {
	if err == nil {
		return nil
	}
	return endpoint.Fault(ctx, c.d.Log, "forwarded "+kind+" call", err)
}

func (c *Commands) serveOrder(ctx context.Context, data []byte) callReply {
	var call orderCall
	if err := json.Unmarshal(data, &call); err != nil || call.message() == nil {
		return callReply{Err: c.fault(ctx, callOrder, &order.ValidationError{Field: "call", Message: "malformed order call"})}
	}
	o, err := orderResult(c.d.Orders.Request(ctx, call.OrderID, call.message()))
	return callReply{Order: &o, Err: c.fault(ctx, callOrder, err)}
}

func (c *Commands) serveSKU(ctx context.Context, data []byte) callReply {
	var call skuCall
	if err := json.Unmarshal(data, &call); err != nil || call.message() == nil {
		return callReply{Err: c.fault(ctx, callSKU, &order.ValidationError{Field: "call", Message: "malformed sku call"})}
	}
	res, err := skuResult(c.d.SKUs.Request(ctx, call.SKU, call.message()))
	return callReply{Stock: &res.Stock, Hold: &res.Hold, Err: c.fault(ctx, callSKU, err)}
}

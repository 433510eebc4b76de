package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/oms-project/oms/actors"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// Commands for an order or a SKU are decided by the actor on the node that
// owns its partition. Another node forwards them on these subjects; if the
// owner does not answer (it just died, or views differ for a moment) the
// node decides locally: fenced appends keep that correct.
func nodeSubject(node, kind string) string { return "oms.node." + node + "." + kind }

// orderCall is an order command or lookup on the wire.
type orderCall struct {
	OrderID  string                   `json:"orderId"`
	Get      bool                     `json:"get,omitempty"`
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
		return actors.GetOrder{}
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

// skuCall is an inventory command or lookup on the wire.
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

// callReply is an actor's answer on the wire.
type callReply struct {
	Order *order.Order    `json:"order,omitempty"`
	Stock *inventory.View `json:"stock,omitempty"`
	Hold  *inventory.Hold `json:"hold,omitempty"`
	Err   *wireError      `json:"error,omitempty"`
}

// wireError carries an error's kind, so the caller's errors.Is still works.
type wireError struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

var errorKinds = []struct {
	kind string
	err  error
}{
	{"not_found", order.ErrNotFound}, {"exists", order.ErrAlreadyExists},
	{"illegal", order.ErrIllegalTransition}, {"conflict", order.ErrIdempotencyConflict},
	{"mismatch", order.ErrPaymentMismatch}, {"invalid", order.ErrInvalid},
	{"inv_invalid", inventory.ErrInvalid}, {"below_reserved", inventory.ErrBelowReserved},
	{"no_reservation", inventory.ErrNoReservation}, {"busy", actors.ErrBusy},
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{Kind: "other", Message: err.Error()}
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			w.Kind = k.kind
			break
		}
	}
	var ve *order.ValidationError
	if errors.As(err, &ve) {
		w.Field = ve.Field
	}
	return w
}

func (w *wireError) toError() error {
	if w == nil {
		return nil
	}
	if w.Field != "" {
		return &order.ValidationError{Field: w.Field, Message: w.Message}
	}
	return &remoteError{w: *w}
}

type remoteError struct{ w wireError }

func (e *remoteError) Error() string { return e.w.Message }
func (e *remoteError) Is(target error) bool {
	for _, k := range errorKinds {
		if k.kind == e.w.Kind && k.err == target {
			return true
		}
	}
	return false
}

// owner returns the node that owns key's partition, or "" for this node.
func (n *Node) owner(key string) string {
	if n.members == nil {
		return ""
	}
	o := n.members.ownerOf(jetstream.PartitionOf(key, n.cfg.Partitions))
	if o == n.cfg.NodeName {
		return ""
	}
	return o
}

// route sends call to the node owning key's partition and returns
// handled=false when that is this node (the caller then decides locally).
// If the owner does not answer, the call goes down the partition's
// rendezvous ranking instead: every node agrees on the next member, so a
// dead owner is replaced by one writer while the membership view catches
// up. The ranking is only computed on that failure path.
func (n *Node) route(ctx context.Context, key, kind string, call any) (callReply, bool, error) {
	if n.members == nil {
		return callReply{}, false, nil
	}
	p := jetstream.PartitionOf(key, n.cfg.Partitions)
	owner := n.members.ownerOf(p)
	if owner == n.cfg.NodeName {
		return callReply{}, false, nil
	}
	if r, handled, err := n.forward(ctx, owner, kind, call); handled {
		return r, true, err
	}
	for _, node := range n.members.ranking(p)[1:] {
		if node == n.cfg.NodeName {
			return callReply{}, false, nil
		}
		if r, handled, err := n.forward(ctx, node, kind, call); handled {
			return r, true, err
		}
	}
	return callReply{}, false, nil
}

// forward sends a call to the owning node; handled is false when the owner
// did not answer and the caller should decide locally.
func (n *Node) forward(ctx context.Context, owner, kind string, call any) (callReply, bool, error) {
	data, err := json.Marshal(call)
	if err != nil {
		return callReply{}, true, err
	}
	msg, err := n.cmdNC.RequestWithContext(ctx, nodeSubject(owner, kind), data)
	if errors.Is(err, nats.ErrNoResponders) {
		n.forwardMisses.Add(1)
		return callReply{}, false, nil
	}
	if err != nil {
		return callReply{}, true, fmt.Errorf("forward to %s: %w", owner, err)
	}
	var r callReply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return callReply{}, true, err
	}
	return r, true, r.Err.toError()
}

// serveCalls answers calls forwarded to this node.
func (n *Node) serveCalls() error {
	handle := func(kind string, do func(context.Context, []byte) callReply) error {
		sub, err := n.cmdNC.Subscribe(nodeSubject(n.cfg.NodeName, kind), func(m *nats.Msg) {
			n.dispatch(func(ctx context.Context) {
				data, _ := json.Marshal(do(ctx, m.Data))
				_ = m.Respond(data)
			}, func() {
				data, _ := json.Marshal(callReply{Err: toWire(actors.ErrBusy)})
				_ = m.Respond(data)
			})
		})
		if err != nil {
			return err
		}
		_ = sub.SetPendingLimits(-1, -1)
		n.subs = append(n.subs, sub)
		return nil
	}
	if err := handle("order", func(ctx context.Context, data []byte) callReply {
		var c orderCall
		if err := json.Unmarshal(data, &c); err != nil || c.message() == nil {
			return callReply{Err: &wireError{Kind: "invalid", Message: "malformed order call"}}
		}
		r, err := n.orders.Request(ctx, c.OrderID, c.message())
		if err != nil {
			return callReply{Err: toWire(err)}
		}
		res := r.(actors.OrderResult)
		return callReply{Order: &res.Order, Err: toWire(res.Err)}
	}); err != nil {
		return err
	}
	return handle("sku", func(ctx context.Context, data []byte) callReply {
		var c skuCall
		if err := json.Unmarshal(data, &c); err != nil || c.message() == nil {
			return callReply{Err: &wireError{Kind: "invalid", Message: "malformed sku call"}}
		}
		r, err := n.skus.Request(ctx, c.SKU, c.message())
		if err != nil {
			return callReply{Err: toWire(err)}
		}
		res := r.(actors.SKUResult)
		return callReply{Stock: &res.Stock, Hold: &res.Hold, Err: toWire(res.Err)}
	})
}

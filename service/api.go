package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/oms-project/oms/actors"
	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/store"
)

// idempotencyNamespace scopes order IDs derived from idempotency keys.
var idempotencyNamespace = uuid.MustParse("6f2b7c1e-9d0a-4f7e-8b1a-2c4d5e6f7a80")

// OrderIDFor returns the order ID a (user, idempotency key) pair always maps
// to, so a retried placement lands on the same order.
func OrderIDFor(user, key string) string {
	return uuid.NewSHA1(idempotencyNamespace, []byte(user+"\x00"+key)).String()
}

func (n *Node) startAPI() error {
	svc, err := micro.AddService(n.cmdNC, micro.Config{
		Name: api.ServiceName, Version: "0.1.0",
		Description: "order management: commands and lookups for orders and stock",
	})
	if err != nil {
		return fmt.Errorf("micro service: %w", err)
	}
	n.svc = svc
	type endpoint struct {
		name, subject string
		handle        func(context.Context, []byte) (any, error)
	}
	endpoints := []endpoint{{"status", api.SubjectStatus, n.status}, {"admin_rebuild", api.SubjectAdminRebuild, n.rebuild}}
	if n.cfg.Has(config.RoleCommand) {
		endpoints = append(endpoints,
			endpoint{"orders_place", api.SubjectOrdersPlace, n.placeOrder},
			endpoint{"orders_cancel", api.SubjectOrdersCancel, n.cancelOrder},
			endpoint{"orders_update", api.SubjectOrdersUpdate, n.updateOrder},
			endpoint{"stock_set", api.SubjectStockSet, n.setStock},
			endpoint{"stock_get", api.SubjectStockGet, n.getStock},
			endpoint{"cluster_status", api.SubjectClusterStatus, n.clusterStatus})
	}
	if n.cfg.Has(config.RoleQuery) {
		endpoints = append(endpoints,
			endpoint{"orders_get", api.SubjectOrdersGet, n.getOrder},
			endpoint{"orders_list", api.SubjectOrdersList, n.listOrders},
			endpoint{"orders_changes", api.SubjectOrdersChanges, n.orderChanges},
			endpoint{"analytics_summary", api.SubjectAnalyticsSummary, n.analyticsSummary},
			endpoint{"analytics_promotions", api.SubjectAnalyticsPromotions, n.analyticsPromotions})
	}
	for _, ep := range endpoints {
		if err := svc.AddEndpoint(ep.name, n.endpoint(ep.handle), micro.WithEndpointSubject(ep.subject)); err != nil {
			return fmt.Errorf("endpoint %s: %w", ep.subject, err)
		}
	}
	return nil
}

// endpoint runs handle off the subscription's goroutine, bounded by
// MaxInFlight, so one slow order never holds up the others. micro expects a
// handler to reply before it returns, so the reply goes straight to the
// request's reply subject, with micro's error headers.
func (n *Node) endpoint(handle func(context.Context, []byte) (any, error)) micro.HandlerFunc {
	return func(req micro.Request) {
		reply, data := req.Reply(), req.Data()
		n.dispatch(func(ctx context.Context) {
			out, err := handle(ctx, data)
			n.respond(reply, out, err)
		}, func() { n.respond(reply, nil, errNodeBusy) })
	}
}

// dispatch runs work on its own goroutine with the request timeout, at most
// MaxInFlight at once; beyond that it calls busy at once instead of queueing.
func (n *Node) dispatch(work func(context.Context), busy func()) {
	select {
	case n.inflight <- struct{}{}:
	default:
		busy()
		return
	}
	n.wg.Add(1)
	go func() {
		defer func() { <-n.inflight; n.wg.Done() }()
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
		defer cancel()
		work(ctx)
	}()
}

// Headers of an error reply, the same as nats.go/micro's.
const (
	headerServiceError     = "Nats-Service-Error"
	headerServiceErrorCode = "Nats-Service-Error-Code"
)

func (n *Node) respond(reply string, out any, err error) {
	if reply == "" {
		return
	}
	m := nats.NewMsg(reply)
	if err != nil {
		body := api.Error{Code: ErrorCode(err), Message: err.Error()}
		var ve *order.ValidationError
		if errors.As(err, &ve) {
			body.Field = ve.Field
		}
		m.Header.Set(headerServiceError, body.Message)
		m.Header.Set(headerServiceErrorCode, strconv.Itoa(body.Code))
		m.Data, _ = json.Marshal(body)
	} else if m.Data, err = json.Marshal(out); err != nil {
		n.log.Error("encode reply", "err", err)
		return
	}
	if err := n.cmdNC.PublishMsg(m); err != nil {
		n.log.Debug("reply not sent", "err", err)
	}
}

// ErrorCode maps an error to the code a client sees.
func ErrorCode(err error) int {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, order.ErrInvalid), errors.Is(err, inventory.ErrInvalid), errors.As(err, &se), errors.As(err, &te),
		errors.Is(err, store.ErrBadCursor):
		return 400
	case errors.Is(err, order.ErrNotFound), errors.Is(err, errNoCommandRole):
		return 404
	case errors.Is(err, order.ErrIllegalTransition), errors.Is(err, order.ErrAlreadyExists),
		errors.Is(err, order.ErrIdempotencyConflict), errors.Is(err, order.ErrPaymentMismatch),
		errors.Is(err, inventory.ErrBelowReserved), errors.Is(err, inventory.ErrNoReservation):
		return 409
	case errors.Is(err, errNodeBusy), errors.Is(err, context.DeadlineExceeded), errors.Is(err, actors.ErrStopped),
		errors.Is(err, actors.ErrBusy):
		return 503
	}
	return 500
}

func decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return &order.ValidationError{Field: "body", Message: "invalid JSON: " + err.Error()}
	}
	return nil
}

func requireID(field, id string) error {
	if _, err := uuid.Parse(id); err != nil {
		return &order.ValidationError{Field: field, Message: "must be an order UUID"}
	}
	return nil
}

// Order sends cmd to the order's actor, on the node owning its partition,
// and waits for the outcome.
func (n *Node) Order(ctx context.Context, cmd order.Command) (order.Order, error) {
	if r, handled, err := n.route(ctx, cmd.Target(), "order", newOrderCall(cmd)); handled {
		return deref(r.Order), err
	}
	return n.OrderLocal(ctx, cmd)
}

// OrderLocal decides cmd with this node's actor for the order, whoever owns
// it. Correctness does not depend on ownership: appends are fenced.
func (n *Node) OrderLocal(ctx context.Context, cmd order.Command) (order.Order, error) {
	r, err := n.orders.Request(ctx, cmd.Target(), actors.OrderCommand{Cmd: cmd})
	if err != nil {
		return order.Order{}, err
	}
	res := r.(actors.OrderResult)
	return res.Order, res.Err
}

// GetOrder returns an order's current state from its actor.
func (n *Node) GetOrder(ctx context.Context, id string) (order.Order, error) {
	if r, handled, err := n.route(ctx, id, "order", orderCall{OrderID: id, Get: true}); handled {
		return deref(r.Order), err
	}
	r, err := n.orders.Request(ctx, id, actors.GetOrder{})
	if err != nil {
		return order.Order{}, err
	}
	res := r.(actors.OrderResult)
	return res.Order, res.Err
}

// Stock sends an inventory command (or GetStock) to the SKU's actor, on
// the node owning the SKU's partition.
func (n *Node) Stock(ctx context.Context, sku string, msg any) (actors.SKUResult, error) {
	if r, handled, err := n.route(ctx, sku, "sku", newSKUCall(sku, msg)); handled {
		res := actors.SKUResult{Stock: deref(r.Stock), Hold: deref(r.Hold), Err: err}
		return res, err
	}
	r, err := n.skus.Request(ctx, sku, msg)
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

func (n *Node) placeOrder(ctx context.Context, data []byte) (any, error) {
	var req api.PlaceOrder
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	var id, cmdID string
	if req.IdempotencyKey != "" {
		if len(req.IdempotencyKey) > 200 {
			return nil, &order.ValidationError{Field: "idempotencyKey", Message: "at most 200 characters"}
		}
		id = OrderIDFor(req.User, req.IdempotencyKey)
		cmdID = "place:" + req.IdempotencyKey
	} else {
		id = uuid.NewString()
		cmdID = "place:" + id
	}
	by := req.By
	if by == "" {
		by = req.User
	}
	cmd := order.Place{Meta: order.Meta{ID: cmdID, OrderID: id, At: now(), By: by},
		User: req.User, Items: req.Items, Currency: req.Currency, Destination: req.Destination,
		PromotionCodes: req.PromotionCodes, Source: req.Source, Notes: req.Notes,
		DeliveryInstructions: req.DeliveryInstructions, PaymentMethod: req.PaymentMethod}
	// Validate before activating an actor for an order that cannot exist.
	if err := cmd.Validate(); err != nil {
		return nil, err
	}
	return n.Order(ctx, cmd)
}

func commandMeta(id, cmdID, by, kind string) order.Meta {
	if cmdID == "" {
		cmdID = kind + ":" + uuid.NewString()
	}
	if by == "" {
		by = "customer"
	}
	return order.Meta{ID: cmdID, OrderID: id, At: now(), By: by}
}

func (n *Node) cancelOrder(ctx context.Context, data []byte) (any, error) {
	var req api.CancelOrder
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := requireID("id", req.ID); err != nil {
		return nil, err
	}
	return n.Order(ctx, order.Cancel{Meta: commandMeta(req.ID, req.CommandID, req.By, "cancel"), Reason: req.Reason})
}

func (n *Node) updateOrder(ctx context.Context, data []byte) (any, error) {
	var req api.UpdateOrder
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := requireID("id", req.ID); err != nil {
		return nil, err
	}
	return n.Order(ctx, order.Update{Meta: commandMeta(req.ID, req.CommandID, req.By, "update"),
		Destination: req.Destination, DeliveryInstructions: req.DeliveryInstructions, Notes: req.Notes})
}

func validSKU(sku string) error {
	if !order.ValidSKU(sku) {
		return &order.ValidationError{Field: "sku", Message: "must be 1-64 letters, digits, '-' or '_'"}
	}
	return nil
}

func (n *Node) setStock(ctx context.Context, data []byte) (any, error) {
	var req api.SetStock
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := validSKU(req.SKU); err != nil {
		return nil, err
	}
	if req.Quantity < 0 {
		return nil, &order.ValidationError{Field: "quantity", Message: "must not be negative"}
	}
	res, err := n.Stock(ctx, req.SKU, actors.SKUCommand{Cmd: inventory.SetStock{
		ID: uuid.NewString(), SKU: req.SKU, Quantity: req.Quantity, At: now(), By: "api"}})
	return res.Stock, err
}

func (n *Node) getStock(ctx context.Context, data []byte) (any, error) {
	var req api.GetStock
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	if err := validSKU(req.SKU); err != nil {
		return nil, err
	}
	res, err := n.Stock(ctx, req.SKU, actors.GetStock{})
	return res.Stock, err
}

func (n *Node) status(context.Context, []byte) (any, error) {
	return n.Status()
}

func (n *Node) clusterStatus(ctx context.Context, _ []byte) (any, error) {
	st := n.ClusterStatus()
	for _, name := range []string{jetstream.StreamOrders, jetstream.StreamSKUs, jetstream.StreamInbound, jetstream.StreamOutbox} {
		s, err := n.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		info := s.CachedInfo()
		r := api.StreamReplica{Stream: name, Replicas: []string{}, Current: []string{}}
		if c := info.Cluster; c != nil {
			r.Leader = c.Leader
			r.Replicas = append(r.Replicas, c.Leader)
			r.Current = append(r.Current, c.Leader)
			for _, p := range c.Replicas {
				r.Replicas = append(r.Replicas, p.Name)
				if p.Current {
					r.Current = append(r.Current, p.Name)
				}
			}
		}
		st.Streams = append(st.Streams, r)
	}
	return st, nil
}

// ClusterStatus returns the live members and the partitions each owns, as
// this node sees them.
func (n *Node) ClusterStatus() api.ClusterStatus {
	st := api.ClusterStatus{Node: n.cfg.NodeName, Partitions: n.cfg.Partitions}
	owned := n.members.partitionsOf(n.cfg.Partitions)
	for _, name := range n.members.members() {
		m := n.members.member(name)
		st.Members = append(st.Members, api.ClusterMember{Name: name, Started: m.Started, Roles: m.Roles, Partitions: owned[name]})
	}
	return st
}

// Status summarises the node: orders by status, read-model lag, live actors.
func (n *Node) Status() (api.Status, error) {
	st := api.Status{Node: n.cfg.NodeName, Roles: n.cfg.Roles, Partitions: n.cfg.Partitions, Orders: map[string]int64{}}
	if n.orders != nil {
		st.ActiveOrder, st.ActiveSKU = n.orders.Active(), n.skus.Active()
	}
	if n.proj == nil {
		return st, nil
	}
	counts, err := n.db.StatusCounts()
	if err != nil {
		return st, err
	}
	st.Orders = counts
	rm, err := n.db.ReadModel()
	if err != nil {
		return st, err
	}
	st.ReadModel = api.ReadModel{Applied: rm.Applied, Gaps: rm.Gaps}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if info, err := n.orderStream.Info(ctx); err == nil {
		st.ReadModel.Stream = info.State.LastSeq
		if info.State.LastSeq > rm.Applied {
			st.ReadModel.Lag = info.State.LastSeq - rm.Applied
		}
	}
	return st, nil
}

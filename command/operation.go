package command

import (
	"context"
	"net/http"

	"github.com/google/uuid"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/order"
)

// Operations are the command side's operations of the API, each with the
// HTTP routes it is served on.
func (c *Commands) Operations() []endpoint.Operation {
	place := endpoint.New("orders_place", api.SubjectOrdersPlace, c.place)
	endpoint.Bind(place, endpoint.Customers(http.MethodPost, "/v1/orders", "place an order"), bindPlace)

	cancel := endpoint.New("orders_cancel", api.SubjectOrdersCancel, c.cancel)
	endpoint.Bind(cancel, endpoint.Customers(http.MethodPost, "/v1/orders/{id}/cancel", "cancel an order"), bindCancel)
	endpoint.Bind(cancel, endpoint.Staff(http.MethodPost, "/v1/orders/{id}/cancel", "cancel an order"), bindCancel)

	update := endpoint.New("orders_update", api.SubjectOrdersUpdate, c.update)
	endpoint.Bind(update, endpoint.Customers(http.MethodPatch, "/v1/orders/{id}", "change an order's destination, delivery instructions or notes"), bindUpdate)
	endpoint.Bind(update, endpoint.Staff(http.MethodPatch, "/v1/orders/{id}", "change an order's destination, delivery instructions or notes"), bindUpdate)

	setStock := endpoint.New("stock_set", api.SubjectStockSet, c.setStock)
	endpoint.Bind(setStock, endpoint.Staff(http.MethodPut, "/v1/stock/{sku}", "set a SKU's quantity on hand", auth.RoleAdmin),
		func(_ context.Context, p auth.Principal, in *setStockInput) (api.SetStock, error) {
			return api.SetStock{SKU: in.SKU, Quantity: in.Body.Quantity, By: p.By()}, nil
		})
	getStock := endpoint.New("stock_get", api.SubjectStockGet, c.getStock)
	endpoint.Bind(getStock, endpoint.Staff(http.MethodGet, "/v1/stock/{sku}", "read a SKU's stock"),
		func(_ context.Context, _ auth.Principal, in *skuInput) (api.GetStock, error) {
			return api.GetStock{SKU: in.SKU}, nil
		})
	return []endpoint.Operation{place, cancel, update, setStock, getStock}
}

// HTTP inputs of the command operations.
type (
	placeInput struct {
		IdempotencyKey string `header:"Idempotency-Key" maxLength:"200" doc:"retry-safe key: the same customer and key always name the same order"`
		Body           api.NewOrder
	}
	cancelInput struct {
		ID             string `path:"id" format:"uuid" doc:"the order"`
		IdempotencyKey string `header:"Idempotency-Key" maxLength:"200" doc:"makes a retried cancel a no-op"`
		Body           *api.CancelReason
	}
	updateInput struct {
		ID             string `path:"id" format:"uuid" doc:"the order"`
		IdempotencyKey string `header:"Idempotency-Key" maxLength:"200" doc:"makes a retried update a no-op"`
		Body           api.OrderChanges
	}
	skuInput struct {
		SKU string `path:"sku" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"the SKU"`
	}
	setStockInput struct {
		SKU  string `path:"sku" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"the SKU"`
		Body struct {
			Quantity int64 `json:"quantity" minimum:"0" doc:"units on hand; refused below what is reserved"`
		}
	}
)

// A customer places as itself: the token says who, never the body.
func bindPlace(_ context.Context, p auth.Principal, in *placeInput) (api.PlaceOrder, error) {
	return api.PlaceOrder{IdempotencyKey: in.IdempotencyKey, User: p.Subject, NewOrder: in.Body, By: p.By(),
		AsCustomer: p.Subject}, nil
}

func bindCancel(_ context.Context, p auth.Principal, in *cancelInput) (api.CancelOrder, error) {
	req := api.CancelOrder{ID: in.ID, By: p.By(), CommandID: retryKey("cancel", in.IdempotencyKey)}
	if in.Body != nil {
		req.CancelReason = *in.Body
	}
	return req, scope(p, &req.AsCustomer, req.Reason)
}

func bindUpdate(_ context.Context, p auth.Principal, in *updateInput) (api.UpdateOrder, error) {
	req := api.UpdateOrder{ID: in.ID, OrderChanges: in.Body, By: p.By(), CommandID: retryKey("update", in.IdempotencyKey)}
	return req, scope(p, &req.AsCustomer, req.Reason)
}

// scope limits a customer to its own orders, and asks staff for the reason
// of what they change.
func scope(p auth.Principal, asCustomer *string, reason string) error {
	if p.IsCustomer() {
		*asCustomer = p.Subject
		return nil
	}
	if reason == "" {
		return &order.ValidationError{Field: "reason", Message: "is required when " + string(p.Role) + " changes an order"}
	}
	return nil
}

// retryKey is the command ID an Idempotency-Key names, scoped by the kind
// of command.
func retryKey(kind, key string) string {
	if key == "" {
		return ""
	}
	return kind + ":" + key
}

// place creates an order. With an idempotency key, the same user and key
// always name the same order, so a retried checkout finds the first one.
func (c *Commands) place(ctx context.Context, req api.PlaceOrder) (order.Order, error) {
	var id, cmdID string
	if req.IdempotencyKey != "" {
		id = order.IDFor(req.User, req.IdempotencyKey)
		cmdID = "place:" + req.IdempotencyKey
	} else {
		id = uuid.NewString()
		cmdID = "place:" + id
	}
	by := req.By
	if by == "" {
		by = req.User
	}
	return c.Order(ctx, req.Command(order.Meta{ID: cmdID, OrderID: id, At: now(), By: by,
		Correlation: endpoint.Correlation(ctx), Sampled: endpoint.Sampled(ctx)}))
}

// commandMeta is the metadata of a customer's or support's command: its
// ID is the caller's retry key, or a fresh one.
func commandMeta(ctx context.Context, id, cmdID, by, kind string) order.Meta {
	if cmdID == "" {
		cmdID = kind + ":" + uuid.NewString()
	}
	if by == "" {
		by = "customer"
	}
	return order.Meta{ID: cmdID, OrderID: id, At: now(), By: by,
		Correlation: endpoint.Correlation(ctx), Sampled: endpoint.Sampled(ctx)}
}

func (c *Commands) cancel(ctx context.Context, req api.CancelOrder) (order.Order, error) {
	return c.Order(ctx, req.Command(commandMeta(ctx, req.ID, req.CommandID, req.By, "cancel")))
}

func (c *Commands) update(ctx context.Context, req api.UpdateOrder) (order.Order, error) {
	return c.Order(ctx, req.Command(commandMeta(ctx, req.ID, req.CommandID, req.By, "update")))
}

func (c *Commands) setStock(ctx context.Context, req api.SetStock) (inventory.View, error) {
	by := req.By
	if by == "" {
		by = "api"
	}
	_, v, err := c.Stock(ctx, req.SKU, inventory.SetStock{ID: uuid.NewString(), SKU: req.SKU, Quantity: req.Quantity,
		At: now(), By: by})
	return v, err
}

func (c *Commands) getStock(ctx context.Context, req api.GetStock) (inventory.View, error) {
	return c.StockLevel(ctx, req.SKU)
}

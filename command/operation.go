package command

import (
	"context"

	"github.com/google/uuid"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/order"
)

// Operations are the command side's operations of the API.
func (c *Commands) Operations() []endpoint.Operation {
	return []endpoint.Operation{
		endpoint.New("orders_place", api.SubjectOrdersPlace, c.place),
		endpoint.New("orders_cancel", api.SubjectOrdersCancel, c.cancel),
		endpoint.New("orders_update", api.SubjectOrdersUpdate, c.update),
		endpoint.New("stock_set", api.SubjectStockSet, c.setStock),
		endpoint.New("stock_get", api.SubjectStockGet, c.getStock),
	}
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
	return c.Order(ctx, req.Command(order.Meta{ID: cmdID, OrderID: id, At: now(), By: by}))
}

// commandMeta is the metadata of a customer's or support's command: its
// ID is the caller's retry key, or a fresh one.
func commandMeta(id, cmdID, by, kind string) order.Meta {
	if cmdID == "" {
		cmdID = kind + ":" + uuid.NewString()
	}
	if by == "" {
		by = "customer"
	}
	return order.Meta{ID: cmdID, OrderID: id, At: now(), By: by}
}

func (c *Commands) cancel(ctx context.Context, req api.CancelOrder) (order.Order, error) {
	return c.Order(ctx, order.Cancel{Meta: commandMeta(req.ID, req.CommandID, req.By, "cancel"), Reason: req.Reason})
}

func (c *Commands) update(ctx context.Context, req api.UpdateOrder) (order.Order, error) {
	return c.Order(ctx, order.Update{Meta: commandMeta(req.ID, req.CommandID, req.By, "update"),
		Destination: req.Destination, DeliveryInstructions: req.DeliveryInstructions, Notes: req.Notes})
}

func (c *Commands) setStock(ctx context.Context, req api.SetStock) (inventory.View, error) {
	_, v, err := c.Stock(ctx, req.SKU, inventory.SetStock{ID: uuid.NewString(), SKU: req.SKU, Quantity: req.Quantity,
		At: now(), By: "api"})
	return v, err
}

func (c *Commands) getStock(ctx context.Context, req api.GetStock) (inventory.View, error) {
	return c.StockLevel(ctx, req.SKU)
}

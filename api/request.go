package api

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/order"
)

// MaxKeyLength bounds idempotency keys and command IDs.
const MaxKeyLength = 200

// NewOrder is what is ordered: the basket, where it goes and how it is
// paid. It is the body of POST /v1/orders, where the token says who orders.
type NewOrder struct {
	Items                []order.Item      `json:"items" doc:"1 to 100 lines, one per SKU"`
	Currency             string            `json:"currency" doc:"ISO 4217 code of every price" example:"EUR"`
	Destination          order.Destination `json:"destination"`
	PromotionCodes       []string          `json:"promotionCodes,omitempty" doc:"recorded for analytics, not re-priced"`
	Source               string            `json:"source,omitempty" enum:"web,app" doc:"default web"`
	Notes                string            `json:"notes,omitempty" maxLength:"1000"`
	DeliveryInstructions string            `json:"deliveryInstructions,omitempty" maxLength:"1000"`
	PaymentMethod        string            `json:"paymentMethod,omitempty" example:"card"`
}

// PlaceOrder is the body of oms.orders.place. IdempotencyKey makes retries
// safe: the same user and key always name the same order.
type PlaceOrder struct {
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	User           string `json:"user"`
	NewOrder
	// By is who placed it (the user, or a support agent); default: user.
	By string `json:"by,omitempty"`
	// AsCustomer, set only by the HTTP edge from a customer's token,
	// limits the order to that customer.
	AsCustomer string `json:"-"`
}

// Command returns the domain command this request asks for, under meta.
func (r PlaceOrder) Command(meta order.Meta) order.Place {
	meta.AsCustomer = r.AsCustomer
	return order.Place{Meta: meta, User: r.User, Items: r.Items, Currency: r.Currency, Destination: r.Destination,
		PromotionCodes: r.PromotionCodes, Source: r.Source, Notes: r.Notes,
		DeliveryInstructions: r.DeliveryInstructions, PaymentMethod: r.PaymentMethod}
}

// Validate names the first bad field. The order's own rules are the
// domain's (order.Place.Validate), checked here before any actor is asked.
func (r PlaceOrder) Validate() error {
	if err := maxLength("idempotencyKey", r.IdempotencyKey, MaxKeyLength); err != nil {
		return err
	}
	return r.Command(order.Meta{ID: "-", OrderID: "-", By: r.By}).Validate()
}

// GetOrder is the body of oms.orders.get. With MinVersion the reply waits
// (up to the request timeout) until the read side has seen that stream
// sequence: pass the version a write returned to read your own write.
type GetOrder struct {
	ID         string `json:"id"`
	MinVersion uint64 `json:"minVersion,omitempty"`
	// AsCustomer, set only by the HTTP edge, hides other customers' orders.
	AsCustomer string `json:"-"`
}

// Validate checks the order ID.
func (r GetOrder) Validate() error { return orderID("id", r.ID) }

// CancelReason is why an order is cancelled: the body of
// POST /v1/orders/{id}/cancel.
type CancelReason struct {
	Reason string `json:"reason,omitempty" maxLength:"1000" doc:"required when support cancels"`
}

// CancelOrder is the body of oms.orders.cancel. CommandID, if given, makes a
// retried cancel a no-op.
type CancelOrder struct {
	ID string `json:"id"`
	CancelReason
	By         string `json:"by,omitempty"`
	CommandID  string `json:"commandId,omitempty"`
	AsCustomer string `json:"-"`
}

// Command returns the domain command this request asks for, under meta.
func (r CancelOrder) Command(meta order.Meta) order.Cancel {
	meta.AsCustomer = r.AsCustomer
	return order.Cancel{Meta: meta, Reason: r.Reason}
}

// Validate checks the order ID, the command ID's length and the domain's
// rules for a cancel.
func (r CancelOrder) Validate() error {
	if err := orderCommand(r.ID, r.CommandID); err != nil {
		return err
	}
	return r.Command(order.Meta{ID: "-", OrderID: r.ID, By: r.By}).Validate()
}

// OrderChanges is what may change of an order until it is in transit:
// the body of PATCH /v1/orders/{id}. Absent fields are unchanged.
type OrderChanges struct {
	Destination          *order.Destination `json:"destination,omitempty"`
	DeliveryInstructions *string            `json:"deliveryInstructions,omitempty" maxLength:"1000"`
	Notes                *string            `json:"notes,omitempty" maxLength:"1000"`
	Reason               string             `json:"reason,omitempty" maxLength:"1000" doc:"required when support updates"`
}

// UpdateOrder is the body of oms.orders.update.
type UpdateOrder struct {
	ID string `json:"id"`
	OrderChanges
	By         string `json:"by,omitempty"`
	CommandID  string `json:"commandId,omitempty"`
	AsCustomer string `json:"-"`
}

// Command returns the domain command this request asks for, under meta.
func (r UpdateOrder) Command(meta order.Meta) order.Update {
	meta.AsCustomer = r.AsCustomer
	return order.Update{Meta: meta, Destination: r.Destination, DeliveryInstructions: r.DeliveryInstructions,
		Notes: r.Notes, Reason: r.Reason}
}

// Validate checks the order ID, the command ID's length and the domain's
// rules for an update.
func (r UpdateOrder) Validate() error {
	if err := orderCommand(r.ID, r.CommandID); err != nil {
		return err
	}
	return r.Command(order.Meta{ID: "-", OrderID: r.ID, By: r.By}).Validate()
}

// SetStock is the body of oms.stock.set: the quantity on hand.
type SetStock struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
	// By is who counted it (default: api).
	By string `json:"by,omitempty"`
}

// Validate checks the SKU and the quantity.
func (r SetStock) Validate() error {
	if err := sku("sku", r.SKU); err != nil {
		return err
	}
	if r.Quantity < 0 || r.Quantity > inventory.MaxOnHand {
		return &order.ValidationError{Field: "quantity", Message: fmt.Sprintf("must be between 0 and %d", int64(inventory.MaxOnHand))}
	}
	return maxLength("by", r.By, order.MaxNameLength)
}

// GetStock is the body of oms.stock.get.
type GetStock struct {
	SKU string `json:"sku"`
}

// Validate checks the SKU.
func (r GetStock) Validate() error { return sku("sku", r.SKU) }

// GetChanges is the body of oms.orders.changes: the order's events after
// stream sequence After, waiting up to WaitMs for the first one.
type GetChanges struct {
	ID         string `json:"id"`
	After      uint64 `json:"after,omitempty"`
	Limit      int    `json:"limit,omitempty"`
	WaitMs     int    `json:"waitMs,omitempty"`
	AsCustomer string `json:"-"`
}

// Bounds of a GetChanges: a page of changes, and the longest wait.
const (
	MaxChanges = 1000
	MaxWaitMs  = 30_000
)

// Validate checks the order ID and the page's bounds.
func (r GetChanges) Validate() error {
	switch {
	case r.Limit < 0 || r.Limit > MaxChanges:
		return &order.ValidationError{Field: "limit", Message: fmt.Sprintf("must be between 0 and %d (0: %d)", MaxChanges, MaxChanges)}
	case r.WaitMs < 0 || r.WaitMs > MaxWaitMs:
		return &order.ValidationError{Field: "waitMs", Message: fmt.Sprintf("must be between 0 and %d", MaxWaitMs)}
	}
	return orderID("id", r.ID)
}

// Summary asks oms.analytics.summary for one year (0: every year).
type Summary struct {
	Year int `json:"year,omitempty"`
}

// Validate checks the year.
func (r Summary) Validate() error {
	if r.Year < 0 || r.Year > 9999 {
		return &order.ValidationError{Field: "year", Message: "must be a year such as 2026"}
	}
	return nil
}

// Promotions asks oms.analytics.promotions for every promotion code.
type Promotions struct{}

// StatusRequest asks oms.status and oms.cluster.status.
type StatusRequest struct{}

// What a node can rebuild.
const (
	RebuildReadModel = "readmodel"
	RebuildSnapshots = "snapshots"
)

// Rebuild asks a node to drop and rebuild its read model ("readmodel") or
// its actor snapshots ("snapshots") from the streams.
type Rebuild struct {
	What string `json:"what"`
}

// Validate checks what is to be rebuilt.
func (r Rebuild) Validate() error {
	if r.What != RebuildReadModel && r.What != RebuildSnapshots {
		return &order.ValidationError{Field: "what", Message: "must be readmodel or snapshots"}
	}
	return nil
}

// orderCommand checks what every command on an existing order carries.
func orderCommand(id, commandID string) error {
	if err := orderID("id", id); err != nil {
		return err
	}
	return maxLength("commandId", commandID, MaxKeyLength)
}

// ListDeadLetters is the body of oms.admin.deadletters.list: up to Limit
// dead letters after stream sequence After, of Source if given.
type ListDeadLetters struct {
	Source string `json:"source,omitempty" query:"source" enum:"inbound,reactor,timers,projection"`
	After  uint64 `json:"after,omitempty" query:"after"`
	Limit  int    `json:"limit,omitempty" query:"limit" minimum:"0" maximum:"1000"`
}

// Validate checks the limit.
func (r ListDeadLetters) Validate() error {
	if r.Limit < 0 || r.Limit > 1000 {
		return &order.ValidationError{Field: "limit", Message: "must be between 0 and 1000"}
	}
	return maxLength("source", r.Source, 64)
}

// DeadLetterAction is the body of oms.admin.deadletters.retry and .drop:
// the dead letters named by ID, or (retry only) every one of Source (every
// one at all when Source is empty) with All.
type DeadLetterAction struct {
	IDs    []uint64 `json:"ids,omitempty" maxItems:"1000"`
	All    bool     `json:"all,omitempty"`
	Source string   `json:"source,omitempty"`
	// By, set by the HTTP edge from the token, is who acts.
	By string `json:"-"`
}

// Validate checks that something is named.
func (r DeadLetterAction) Validate() error {
	switch {
	case len(r.IDs) == 0 && !r.All:
		return &order.ValidationError{Field: "ids", Message: "name the dead letters (or give all)"}
	case len(r.IDs) > 1000:
		return &order.ValidationError{Field: "ids", Message: "at most 1000"}
	}
	return maxLength("source", r.Source, 64)
}

// GetJob is the body of oms.admin.jobs.get: a job a node started.
type GetJob struct {
	ID string `json:"id"`
}

// Validate checks the job ID.
func (r GetJob) Validate() error {
	if r.ID == "" || len(r.ID) > 64 {
		return &order.ValidationError{Field: "id", Message: "must be a job ID"}
	}
	return nil
}

func orderID(field, id string) error {
	if _, err := uuid.Parse(id); err != nil {
		return &order.ValidationError{Field: field, Message: "must be an order UUID"}
	}
	return nil
}

func sku(field, s string) error {
	if !order.ValidSKU(s) {
		return &order.ValidationError{Field: field, Message: "must be 1-64 letters, digits, '-' or '_'"}
	}
	return nil
}

func maxLength(field, s string, n int) error {
	if len(s) > n {
		return &order.ValidationError{Field: field, Message: fmt.Sprintf("at most %d characters", n)}
	}
	return nil
}

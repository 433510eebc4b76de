// Package api is the public contract of oms: request-reply subjects and their
// payloads, the provider events oms consumes and the messages it publishes.
// Every type here is JSON with camelCase names, as the README documents.
package api

import (
	"time"

	"github.com/oms-project/oms/order"
)

// ServiceName is the nats.go/micro service name (`nats micro info oms`).
const ServiceName = "oms"

// Request-reply subjects.
const (
	SubjectOrdersPlace  = "oms.orders.place"
	SubjectOrdersGet    = "oms.orders.get"
	SubjectOrdersCancel = "oms.orders.cancel"
	SubjectOrdersUpdate = "oms.orders.update"
	SubjectStockSet     = "oms.stock.set"
	SubjectStockGet     = "oms.stock.get"
	SubjectStatus       = "oms.status"

	SubjectOrdersList          = "oms.orders.list"
	SubjectOrdersChanges       = "oms.orders.changes"
	SubjectAnalyticsSummary    = "oms.analytics.summary"
	SubjectAnalyticsPromotions = "oms.analytics.promotions"
	SubjectAdminRebuild        = "oms.admin.rebuild"
	SubjectClusterStatus       = "oms.cluster.status"
)

// ClusterStatus is the reply of oms.cluster.status: the live members as
// the answering node sees them, and the partitions each owns.
type ClusterStatus struct {
	Node       string          `json:"node"`
	Partitions int             `json:"partitions"`
	Members    []ClusterMember `json:"members"`
	Streams    []StreamReplica `json:"streams,omitempty"`
}

// StreamReplica says where a stream's replicas are and which one leads.
type StreamReplica struct {
	Stream   string   `json:"stream"`
	Leader   string   `json:"leader"`
	Replicas []string `json:"replicas"`
	Current  []string `json:"current"`
}

// ClusterMember is one live node.
type ClusterMember struct {
	Name       string    `json:"name"`
	Started    time.Time `json:"started"`
	Roles      []string  `json:"roles"`
	Partitions []int     `json:"partitions"`
}

// PlaceOrder is the body of oms.orders.place. IdempotencyKey makes retries
// safe: the same user and key always name the same order.
type PlaceOrder struct {
	IdempotencyKey       string            `json:"idempotencyKey,omitempty"`
	User                 string            `json:"user"`
	Items                []order.Item      `json:"items"`
	Currency             string            `json:"currency"`
	Destination          order.Destination `json:"destination"`
	PromotionCodes       []string          `json:"promotionCodes,omitempty"`
	Source               string            `json:"source,omitempty"`
	Notes                string            `json:"notes,omitempty"`
	DeliveryInstructions string            `json:"deliveryInstructions,omitempty"`
	PaymentMethod        string            `json:"paymentMethod,omitempty"`
	// By is who placed it (the user, or a support agent); default: user.
	By string `json:"by,omitempty"`
}

// GetOrder is the body of oms.orders.get. With MinVersion the reply waits
// (up to the request timeout) until the read side has seen that stream
// sequence: pass the version a write returned to read your own write.
type GetOrder struct {
	ID         string `json:"id"`
	MinVersion uint64 `json:"minVersion,omitempty"`
}

// ListOrders is the body of oms.orders.list: the domain's order filter
// with its paging (limit, cursor).
type ListOrders = order.Filter

// OrderPage is the reply of oms.orders.list; Next is the cursor of the next
// page, empty on the last.
type OrderPage struct {
	Orders []order.Order `json:"orders"`
	Next   string        `json:"next"`
}

// GetChanges is the body of oms.orders.changes: the order's events after
// stream sequence After, waiting up to WaitMs for the first one.
type GetChanges struct {
	ID     string `json:"id"`
	After  uint64 `json:"after"`
	Limit  int    `json:"limit,omitempty"`
	WaitMs int    `json:"waitMs,omitempty"`
}

// Change is one order event with its stream sequence (the feed cursor).
type Change struct {
	Seq   uint64      `json:"seq"`
	Event order.Event `json:"event"`
}

// Changes is the reply of oms.orders.changes. Resume with After = Last.
type Changes struct {
	Changes []Change `json:"changes"`
	Last    uint64   `json:"last"`
}

// Summary asks oms.analytics.summary for one year (0: every year).
type Summary struct {
	Year int `json:"year,omitempty"`
}

// Rebuild asks a node to drop and rebuild its read model ("readmodel") or
// its actor snapshots ("snapshots") from the streams.
type Rebuild struct {
	What string `json:"what"`
}

// RebuildReport says what a rebuild did.
type RebuildReport struct {
	Node    string  `json:"node"`
	What    string  `json:"what"`
	Events  uint64  `json:"events"`
	Orders  int     `json:"orders"`
	SKUs    int     `json:"skus"`
	Seconds float64 `json:"seconds"`
}

// CancelOrder is the body of oms.orders.cancel. CommandID, if given, makes a
// retried cancel a no-op.
type CancelOrder struct {
	ID        string `json:"id"`
	Reason    string `json:"reason,omitempty"`
	By        string `json:"by,omitempty"`
	CommandID string `json:"commandId,omitempty"`
}

// UpdateOrder is the body of oms.orders.update; absent fields are unchanged.
type UpdateOrder struct {
	ID                   string             `json:"id"`
	Destination          *order.Destination `json:"destination,omitempty"`
	DeliveryInstructions *string            `json:"deliveryInstructions,omitempty"`
	Notes                *string            `json:"notes,omitempty"`
	By                   string             `json:"by,omitempty"`
	CommandID            string             `json:"commandId,omitempty"`
}

// SetStock is the body of oms.stock.set: the quantity on hand.
type SetStock struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

// GetStock is the body of oms.stock.get.
type GetStock struct {
	SKU string `json:"sku"`
}

// Status is the reply of oms.status.
type Status struct {
	Node        string           `json:"node"`
	Roles       []string         `json:"roles"`
	Orders      map[string]int64 `json:"orders"`
	ReadModel   ReadModel        `json:"readModel"`
	ActiveOrder int              `json:"activeOrderActors"`
	ActiveSKU   int              `json:"activeSkuActors"`
	Partitions  int              `json:"partitions"`
}

// ReadModel reports how far the read side is behind the order stream.
type ReadModel struct {
	Applied uint64 `json:"appliedSequence"`
	Stream  uint64 `json:"streamSequence"`
	Lag     uint64 `json:"lag"`
	Gaps    uint64 `json:"gaps"`
}

// Error is the JSON body of an error reply; the micro error headers carry
// the same code and message.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// ProviderEnvelope is what every provider event carries. ID is the
// provider's event ID: a redelivery with the same ID applies once.
type ProviderEnvelope struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OrderID    string    `json:"orderId"`
	Provider   string    `json:"provider"`
	OccurredAt time.Time `json:"occurredAt"`
}

// PaymentEvent is what a payment provider publishes on
// payments.events.<orderId>.
type PaymentEvent struct {
	ProviderEnvelope
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
	Reference string `json:"reference"`
	Method    string `json:"method,omitempty"`
}

// DeliveryEvent is what a delivery provider publishes on
// delivery.events.<orderId>.
type DeliveryEvent struct {
	ProviderEnvelope
	TrackingNumber string `json:"trackingNumber"`
}

// Payment request types.
const (
	PaymentCollect = "collect"
	PaymentRefund  = "refund"
)

// PaymentRequest is published on payments.requests.<orderId>.
type PaymentRequest struct {
	Type          string `json:"type"`
	OrderID       string `json:"orderId"`
	User          string `json:"user"`
	Amount        int64  `json:"amount"`
	Currency      string `json:"currency"`
	PaymentMethod string `json:"paymentMethod,omitempty"`
	CausedBy      string `json:"causedBy"`
}

// DeliveryRequest is published on delivery.requests.<orderId>.
type DeliveryRequest struct {
	OrderID              string            `json:"orderId"`
	User                 string            `json:"user"`
	Destination          order.Destination `json:"destination"`
	Items                []order.Item      `json:"items"`
	DeliveryInstructions string            `json:"deliveryInstructions,omitempty"`
	CausedBy             string            `json:"causedBy"`
}

// Notification types, published on notifications.<orderId> for the customer.
const (
	NotifyPlaced    = "order.placed"
	NotifyPaid      = "order.paid"
	NotifyCancelled = "order.cancelled"
	NotifyShipped   = "order.shipped"
	NotifyDelivered = "order.delivered"
)

// Notification tells the customer what happened to their order.
type Notification struct {
	Type           string             `json:"type"`
	OrderID        string             `json:"orderId"`
	User           string             `json:"user"`
	Status         order.Status       `json:"status"`
	Reason         order.CancelReason `json:"reason,omitempty"`
	RefundDue      int64              `json:"refundDue,omitempty"`
	TrackingNumber string             `json:"trackingNumber,omitempty"`
	At             time.Time          `json:"at"`
	CausedBy       string             `json:"causedBy"`
}

package api

import (
	"time"

	"github.com/oms-project/oms/order"
)

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

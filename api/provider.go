package api

import (
	"time"

	"github.com/oms-project/oms/order"
)

// Kinds of provider event, as their subjects (and webhook paths) name them.
const (
	KindPayments = "payments"
	KindDelivery = "delivery"
)

// ProviderCommand decodes a provider event of kind (payments or delivery)
// for order orderID, strictly, and returns the validated command it is:
// the one way a provider event becomes a command, whether it came over NATS
// or through a webhook. received is when it arrived, the event's time if
// it gives none. correlation and sampled are the request's behind it, as
// the provider echoed them (CorrelationIn).
func ProviderCommand(kind, orderID string, data []byte, received time.Time, correlation string, sampled bool) (order.Command, error) {
	var cmd interface {
		order.Command
		Validate() error
	}
	switch kind {
	case KindPayments:
		var ev PaymentEvent
		meta, err := providerMeta(data, &ev, &ev.ProviderEnvelope, "payment", orderID, received, correlation, sampled)
		if err != nil {
			return nil, err
		}
		cmd = order.RecordPayment{Meta: meta, Type: ev.Type, Amount: ev.Amount, Currency: ev.Currency,
			Provider: ev.Provider, Reference: ev.Reference, Method: ev.Method}
	case KindDelivery:
		var ev DeliveryEvent
		meta, err := providerMeta(data, &ev, &ev.ProviderEnvelope, "delivery", orderID, received, correlation, sampled)
		if err != nil {
			return nil, err
		}
		cmd = order.RecordDelivery{Meta: meta, Type: ev.Type, Provider: ev.Provider, TrackingNumber: ev.TrackingNumber}
	default:
		return nil, &order.ValidationError{Field: "subject", Message: "not a kind of provider event: " + kind}
	}
	return cmd, cmd.Validate()
}

// providerMeta decodes a provider event into ev and checks the fields every
// provider event carries: its ID, and an order ID that matches the subject.
func providerMeta(data []byte, ev any, env *ProviderEnvelope, kind, orderID string, received time.Time, correlation string, sampled bool) (order.Meta, error) {
	if err := Decode(data, ev); err != nil {
		return order.Meta{}, err
	}
	switch {
	case env.ID == "":
		return order.Meta{}, &order.ValidationError{Field: "id", Message: "is required"}
	case len(env.ID) > MaxKeyLength:
		return order.Meta{}, &order.ValidationError{Field: "id", Message: "at most 200 characters"}
	case env.OrderID != orderID:
		return order.Meta{}, &order.ValidationError{Field: "orderId", Message: "does not match the subject's order " + orderID}
	}
	at := env.OccurredAt
	if at.IsZero() {
		at = received
	}
	return order.Meta{ID: kind + ":" + env.ID, OrderID: orderID, At: at, By: kind + ":" + env.Provider, Correlation: correlation, Sampled: sampled}, nil
}

// ProviderEnvelope is what every provider event carries. ID is the
// provider's event ID: a redelivery with the same ID applies once.
type ProviderEnvelope struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OrderID    string    `json:"orderId"`
	Provider   string    `json:"provider"`
	OccurredAt time.Time `json:"occurredAt,omitzero"`
}

// PaymentEvent is what a payment provider publishes on
// payments.events.<orderId>.
type PaymentEvent struct {
	ProviderEnvelope
	Amount    int64  `json:"amount,omitempty" doc:"minor units; required when the payment succeeded"`
	Currency  string `json:"currency,omitempty" doc:"ISO 4217; required when the payment succeeded"`
	Reference string `json:"reference,omitempty"`
	Method    string `json:"method,omitempty"`
}

// DeliveryEvent is what a delivery provider publishes on
// delivery.events.<orderId>.
type DeliveryEvent struct {
	ProviderEnvelope
	TrackingNumber string `json:"trackingNumber,omitempty"`
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

// NotificationType is the notification event e sends the customer, ""
// when it sends none. A notification is derived from its event, not stored
// a second time, so the reactor that sends it and the timeline that
// explains it both ask here.
func NotificationType(e order.Event) string {
	switch e.Type {
	case order.EventPlaced:
		return NotifyPlaced
	case order.EventStockHeld, order.EventPaid:
		// Stock held after the payment came in is when the order is paid.
		if e.Status != order.StatusReceived {
			return NotifyPaid
		}
	case order.EventCancelled, order.EventDeliveryAttemptFailed:
		if e.Cancel != nil {
			return NotifyCancelled
		}
	case order.EventShipped:
		return NotifyShipped
	case order.EventCompleted:
		return NotifyDelivered
	}
	return ""
}

// Notification tells the customer what happened to their order.
type Notification struct {
	Type           string             `json:"type"`
	OrderID        string             `json:"orderId"`
	User           string             `json:"user"`
	Status         order.Status       `json:"status"`
	Reason         order.CancelReason `json:"reason,omitempty"`
	RefundDue      int64              `json:"refundDue,omitempty"`
	RefundCurrency string             `json:"refundCurrency,omitempty"`
	TrackingNumber string             `json:"trackingNumber,omitempty"`
	At             time.Time          `json:"at"`
	CausedBy       string             `json:"causedBy"`
}

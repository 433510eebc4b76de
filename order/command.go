package order

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	json "github.com/goccy/go-json"
)

// Command is a request to change one order. Every command carries an ID; a
// command whose ID the order has already applied is a no-op, and the same ID
// with a different Fingerprint is rejected (ErrIdempotencyConflict).
type Command interface {
	CommandID() string
	Target() string
	// Fingerprint identifies the payload, leaving out when and by whom it
	// arrived, so a retried command matches its first delivery.
	Fingerprint() string
	// Customer is the customer the command acts for, if any: to a customer,
	// another customer's order does not exist.
	Customer() string
}

// Meta is what every command carries. By is who gave it, for the audit
// trail; AsCustomer, when set, limits it to that customer's own orders.
type Meta struct {
	ID         string    `json:"id"`
	OrderID    string    `json:"orderId"`
	At         time.Time `json:"at"`
	By         string    `json:"by"`
	AsCustomer string    `json:"asCustomer,omitempty"`
	// Correlation ties the command to the request that caused it (an
	// HTTP or NATS request's, a provider's echo): the event records it,
	// and one ID then finds every log line and event of that request.
	// Empty: the order's own, from its placement. Never part of a
	// command's fingerprint: a retry may come with another.
	Correlation string `json:"correlationId,omitempty"`
	// Sampled is whether the trace Correlation names is sampled (its
	// caller's traceparent said so), carried on to what the order's
	// events cause. Not part of a fingerprint either.
	Sampled bool `json:"traceSampled,omitempty"`
}

func (m Meta) CommandID() string { return m.ID }
func (m Meta) Target() string    { return m.OrderID }
func (m Meta) Customer() string  { return m.AsCustomer }

// Place creates an order. Prices are what the storefront charged; promotion
// codes are recorded for analytics, not re-priced here.
type Place struct {
	Meta
	User                 string      `json:"user"`
	Items                []Item      `json:"items"`
	Currency             string      `json:"currency"`
	Destination          Destination `json:"destination"`
	PromotionCodes       []string    `json:"promotionCodes,omitempty"`
	Source               string      `json:"source,omitempty"`
	Notes                string      `json:"notes,omitempty"`
	DeliveryInstructions string      `json:"deliveryInstructions,omitempty"`
	PaymentMethod        string      `json:"paymentMethod,omitempty"`
}

// Cancel is a customer's (or support agent's) request to cancel.
type Cancel struct {
	Meta
	Reason string `json:"reason"`
}

// Update changes what may change before the parcel leaves: destination,
// delivery instructions and notes. Nil fields are left as they are; Reason
// says why, for the audit trail.
type Update struct {
	Meta
	Destination          *Destination `json:"destination,omitempty"`
	DeliveryInstructions *string      `json:"deliveryInstructions,omitempty"`
	Notes                *string      `json:"notes,omitempty"`
	Reason               string       `json:"reason,omitempty"`
}

// RecordStock is the inventory's answer to the order's reservation request:
// every line held, or not.
type RecordStock struct {
	Meta
	Held   bool   `json:"held"`
	Detail string `json:"detail,omitempty"`
}

// ExpireReservation fires when the reservation TTL runs out.
type ExpireReservation struct{ Meta }

// Payment event types, as the payment provider sends them.
const (
	PaymentSucceeded = "payment.succeeded"
	PaymentFailed    = "payment.failed"
	PaymentCancelled = "payment.cancelled"
)

// RecordPayment applies a payment provider's event.
type RecordPayment struct {
	Meta
	Type      string `json:"type"`
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
	Provider  string `json:"provider"`
	Reference string `json:"reference"`
	Method    string `json:"method,omitempty"`
}

// Delivery event types, as the delivery provider sends them.
const (
	DeliveryInTransit     = "delivery.in_transit"
	DeliveryAttemptFailed = "delivery.attempt_failed"
	DeliveryDelivered     = "delivery.delivered"
)

// RecordDelivery applies a delivery provider's event.
type RecordDelivery struct {
	Meta
	Type           string `json:"type"`
	Provider       string `json:"provider"`
	TrackingNumber string `json:"trackingNumber"`
}

func fingerprint(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func (c Place) Fingerprint() string {
	c.Meta = Meta{}
	return fingerprint(c)
}
func (c Cancel) Fingerprint() string { return fingerprint(c.Reason) }
func (c Update) Fingerprint() string {
	c.Meta = Meta{}
	return fingerprint(c)
}
func (c RecordStock) Fingerprint() string { return fingerprint(c.Held) }
func (c ExpireReservation) Fingerprint() string {
	return "expire"
}
func (c RecordPayment) Fingerprint() string {
	c.Meta = Meta{}
	return fingerprint(c)
}
func (c RecordDelivery) Fingerprint() string {
	c.Meta = Meta{}
	return fingerprint(c)
}

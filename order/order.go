// Package order is the order domain: the order aggregate, the commands that may
// change it, the events that record each change, and the pure decide/evolve
// functions between them. It does no I/O and reads no clock: time arrives in
// commands, so every decision is replayable from the event stream.
//
// It imports nothing of oms: every other package depends on it, never the
// other way round.
package order

import (
	"regexp"
	"time"

	"github.com/google/uuid"
)

// Status is where an order stands in its lifecycle, spelled as the seed design
// spells it so clients written against that design read it unchanged.
type Status string

const (
	StatusNone      Status = ""
	StatusReceived  Status = "order_received"
	StatusPaid      Status = "order_paid"
	StatusInTransit Status = "order_inTransit"
	StatusCompleted Status = "order_completed"
	StatusCancelled Status = "order_cancelled"
)

// Statuses lists every status an existing order can have, in lifecycle order.
var Statuses = []Status{StatusReceived, StatusPaid, StatusInTransit, StatusCompleted, StatusCancelled}

// Terminal reports whether no further transition is possible.
func (s Status) Terminal() bool { return s == StatusCompleted || s == StatusCancelled }

// Reservation is the state of the stock held for an order's lines.
type Reservation string

const (
	ReservationPending   Reservation = "pending"
	ReservationHeld      Reservation = "held"
	ReservationCommitted Reservation = "committed"
	ReservationReleased  Reservation = "released"
	ReservationExpired   Reservation = "expired"
)

// CancelReason says why an order was cancelled.
type CancelReason string

const (
	CancelPaymentFailed      CancelReason = "payment_failed"
	CancelPaymentCancelled   CancelReason = "payment_cancelled"
	CancelCustomerRequest    CancelReason = "customer_request"
	CancelStockUnavailable   CancelReason = "stock_unavailable"
	CancelReservationExpired CancelReason = "reservation_expired"
	CancelDeliveryFailed     CancelReason = "delivery_failed"
)

// Item is one order line. UnitPrice is in minor units of the order currency
// (cents for EUR); money is never a float.
type Item struct {
	SKU       string `json:"sku"`
	Quantity  int64  `json:"quantity"`
	UnitPrice int64  `json:"unitPrice"`
}

// Destination is where the order is delivered.
type Destination struct {
	Country     string `json:"country"`
	PostalCode  string `json:"postalCode"`
	Address     string `json:"address"`
	PhoneNumber string `json:"phoneNumber"`
}

// PaymentInformation describes how the order was paid. It never holds a card
// number: only the provider's reference to the payment.
type PaymentInformation struct {
	Method    string `json:"method,omitempty"`
	Provider  string `json:"provider,omitempty"`
	Reference string `json:"reference,omitempty"`
	Amount    int64  `json:"amount,omitempty"`
	Currency  string `json:"currency,omitempty"`
	Status    string `json:"status,omitempty"`
}

// Change is one line of an order's audit trail, derived from its events.
type Change struct {
	Who  string    `json:"who"`
	What string    `json:"what"`
	When time.Time `json:"when"`
	Why  string    `json:"why,omitempty"`
}

// Order is the seed's IOrder. It is a read-only view of the aggregate; only
// events change it (through Evolve), and only the order's actor appends them.
type Order struct {
	ID                       string             `json:"id"`
	User                     string             `json:"user"`
	Items                    []Item             `json:"items"`
	Status                   Status             `json:"status"`
	Currency                 string             `json:"currency"`
	BasketSize               int64              `json:"basketSize"`
	Total                    int64              `json:"total"`
	Destination              Destination        `json:"destination"`
	PaymentInformation       PaymentInformation `json:"paymentInformation"`
	PromotionCodes           []string           `json:"promotionCodes"`
	Source                   string             `json:"source"`
	Notes                    string             `json:"notes,omitempty"`
	DeliveryProvider         string             `json:"deliveryProvider,omitempty"`
	TrackingNumber           string             `json:"trackingNumber,omitempty"`
	DeliveryInstructions     string             `json:"deliveryInstructions,omitempty"`
	NumberOfDeliveryAttempts int                `json:"numberOfDeliveryAttempts"`
	Reservation              Reservation        `json:"reservation"`
	ReservationExpiresAt     time.Time          `json:"reservationExpiresAt"`
	CancelReason             CancelReason       `json:"cancelReason,omitempty"`
	// RefundDue is what is due back in the order's currency; RefundsDue
	// is every amount due back, per currency (a payment refused for its
	// currency is refunded in that currency).
	RefundDue     int64            `json:"refundDue,omitempty"`
	RefundsDue    map[string]int64 `json:"refundsDue,omitempty"`
	CreatedBy     string           `json:"createdBy"`
	UpdatedBy     []string         `json:"updatedBy"`
	ChangeHistory []Change         `json:"changeHistory"`
	CreatedAt     time.Time        `json:"createdAt"`
	UpdatedAt     time.Time        `json:"updatedAt"`
	// Version is the stream sequence of the last event applied, the cursor a
	// client can use to resume a feed or ask for read-your-writes.
	Version uint64 `json:"version"`
}

// Policy holds the tunables the decider needs. It is passed in rather than
// read from globals so decisions stay pure.
type Policy struct {
	ReservationTTL      time.Duration
	MaxDeliveryAttempts int
}

// skuPattern keeps SKUs usable as a NATS subject token.
var skuPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidSKU reports whether s can name a SKU (and so a subject token).
func ValidSKU(s string) bool { return skuPattern.MatchString(s) }

// ExpiryApplies reports whether the reservation deadline still cancels o:
// only an order waiting for its payment can expire. Every later status is
// final for expiry, since statuses never go back to order_received.
func (o Order) ExpiryApplies() bool {
	return o.Status == StatusReceived && o.PaymentInformation.Status != paymentCaptured
}

// idempotencyNamespace scopes order IDs derived from idempotency keys.
var idempotencyNamespace = uuid.MustParse("6f2b7c1e-9d0a-4f7e-8b1a-2c4d5e6f7a80")

// IDFor returns the order ID a (user, idempotency key) pair always maps to,
// so a retried placement lands on the same order.
func IDFor(user, key string) string {
	return uuid.NewSHA1(idempotencyNamespace, []byte(user+"\x00"+key)).String()
}

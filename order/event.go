package order

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// EventType names an order event. The version of its payload is Event.V.
type EventType string

const (
	EventPlaced                EventType = "order.placed"
	EventStockHeld             EventType = "order.stock_held"
	EventPaymentCaptured       EventType = "order.payment_captured"
	EventPaid                  EventType = "order.paid"
	EventCancelled             EventType = "order.cancelled"
	EventUpdated               EventType = "order.updated"
	EventShipped               EventType = "order.shipped"
	EventDeliveryAttemptFailed EventType = "order.delivery_attempt_failed"
	EventCompleted             EventType = "order.completed"
	EventRejected              EventType = "order.rejected"
)

// EventVersion is the payload version written by this code.
const EventVersion = 1

// Event records one decision about one order. A decision yields at most one
// event, and each event carries the status and reservation that hold after it:
// a compound outcome (stock held on an order already paid for) is one append,
// so a crash can never leave half of it in the stream, and the side effects of
// an event can be derived from the event alone.
type Event struct {
	ID        string    `json:"id"`
	Type      EventType `json:"type"`
	V         int       `json:"v"`
	OrderID   string    `json:"orderId"`
	At        time.Time `json:"at"`
	By        string    `json:"by"`
	CauseID   string    `json:"causeId"`
	CauseHash string    `json:"causeHash"`
	// Correlation is the correlation ID of the request behind the event
	// (Meta.Correlation, or the placement's).
	Correlation string `json:"correlationId,omitempty"`
	// Sampled is whether the trace Correlation names was sampled by the
	// caller: the traceparent of the messages the event causes says so.
	Sampled     bool        `json:"traceSampled,omitempty"`
	Status      Status      `json:"status"`
	Reservation Reservation `json:"reservation"`

	Placed   *Placed             `json:"placed,omitempty"`
	Payment  *PaymentInformation `json:"payment,omitempty"`
	Delivery *DeliveryUpdate     `json:"delivery,omitempty"`
	Cancel   *Cancellation       `json:"cancel,omitempty"`
	Update   *Changes            `json:"update,omitempty"`
	Rejected *Rejection          `json:"rejected,omitempty"`
}

// Placed is the payload of order.placed.
type Placed struct {
	User                 string      `json:"user"`
	Items                []Item      `json:"items"`
	Currency             string      `json:"currency"`
	Destination          Destination `json:"destination"`
	PromotionCodes       []string    `json:"promotionCodes,omitempty"`
	Source               string      `json:"source"`
	Notes                string      `json:"notes,omitempty"`
	DeliveryInstructions string      `json:"deliveryInstructions,omitempty"`
	PaymentMethod        string      `json:"paymentMethod,omitempty"`
	Total                int64       `json:"total"`
	BasketSize           int64       `json:"basketSize"`
	ReservationExpiresAt time.Time   `json:"reservationExpiresAt"`
}

// DeliveryUpdate is the payload of the delivery events.
type DeliveryUpdate struct {
	Provider       string `json:"provider,omitempty"`
	TrackingNumber string `json:"trackingNumber,omitempty"`
	Attempts       int    `json:"attempts,omitempty"`
}

// Cancellation is the payload of order.cancelled (and of a final failed
// delivery attempt). ReleaseStock tells the reactor to give stock back.
type Cancellation struct {
	Reason    CancelReason `json:"reason"`
	Detail    string       `json:"detail,omitempty"`
	RefundDue int64        `json:"refundDue,omitempty"`
	// RefundCurrency is the refund's currency: the order's if empty.
	RefundCurrency string `json:"refundCurrency,omitempty"`
	ReleaseStock   bool   `json:"releaseStock"`
}

// Changes is the payload of order.updated.
type Changes struct {
	Destination          *Destination `json:"destination,omitempty"`
	DeliveryInstructions *string      `json:"deliveryInstructions,omitempty"`
	Notes                *string      `json:"notes,omitempty"`
	Reason               string       `json:"reason,omitempty"`
}

// Rejection records an inbound provider event the order refused, so a
// redelivery is answered the same way and support can see what happened.
type Rejection struct {
	CauseType string `json:"causeType"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	RefundDue int64  `json:"refundDue,omitempty"`
	// RefundCurrency is the currency the refused money came in: the
	// order's if empty.
	RefundCurrency string `json:"refundCurrency,omitempty"`
}

// EventID derives an event's ID from its order and cause: one cause yields at
// most one event per order, so a retried append carries the same ID and the
// stream's duplicate window drops it.
func EventID(orderID, causeID string) string {
	sum := sha256.Sum256([]byte(orderID + "\x00" + causeID))
	return hex.EncodeToString(sum[:12])
}

// Appended is an event as its order's actor stored it, with the order it
// left (its Version the event's stream sequence): what the actor hands the
// reactor in process.
type Appended struct {
	Event Event
	Order Order
}

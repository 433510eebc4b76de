package order

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
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

var (
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	countryPattern  = regexp.MustCompile(`^[A-Z]{2}$`)
	phonePattern    = regexp.MustCompile(`^\+?[0-9][0-9 ()-]{4,19}$`)
)

// Limits on a placed order; they bound memory per order and message size.
const (
	MaxItems         = 100
	MaxQuantity      = 10_000
	MaxUnitPrice     = 100_000_000_00
	MaxTextLength    = 1000
	MaxPromotionCode = 10
)

func validateMeta(m Meta) error {
	if m.ID == "" {
		return invalid("id", "is required")
	}
	if m.OrderID == "" {
		return invalid("orderId", "is required")
	}
	return nil
}

// Validate checks a Place command and names the first bad field.
func (c Place) Validate() error {
	if err := validateMeta(c.Meta); err != nil {
		return err
	}
	if strings.TrimSpace(c.User) == "" {
		return invalid("user", "is required")
	}
	if c.AsCustomer != "" && c.AsCustomer != c.User {
		return invalid("user", "a customer places orders for themselves only")
	}
	if len(c.Items) == 0 {
		return invalid("items", "at least one item is required")
	}
	if len(c.Items) > MaxItems {
		return invalid("items", "at most %d items", MaxItems)
	}
	seen := make(map[string]bool, len(c.Items))
	for i, it := range c.Items {
		f := fmt.Sprintf("items[%d]", i)
		switch {
		case !ValidSKU(it.SKU):
			return invalid(f+".sku", "must be 1-64 letters, digits, '-' or '_'")
		case seen[it.SKU]:
			return invalid(f+".sku", "duplicate sku %s; put the quantity on one line", it.SKU)
		case it.Quantity < 1 || it.Quantity > MaxQuantity:
			return invalid(f+".quantity", "must be between 1 and %d", MaxQuantity)
		case it.UnitPrice < 0 || it.UnitPrice > MaxUnitPrice:
			return invalid(f+".unitPrice", "must be between 0 and %d minor units", int64(MaxUnitPrice))
		}
		seen[it.SKU] = true
	}
	if !currencyPattern.MatchString(c.Currency) {
		return invalid("currency", "must be an ISO 4217 code such as EUR")
	}
	if err := c.Destination.Validate(); err != nil {
		return err
	}
	if len(c.PromotionCodes) > MaxPromotionCode {
		return invalid("promotionCodes", "at most %d codes", MaxPromotionCode)
	}
	for i, p := range c.PromotionCodes {
		if !ValidSKU(p) {
			return invalid(fmt.Sprintf("promotionCodes[%d]", i), "must be 1-64 letters, digits, '-' or '_'")
		}
	}
	switch c.Source {
	case "", "web", "app":
	default:
		return invalid("source", "must be web or app")
	}
	if len(c.Notes) > MaxTextLength {
		return invalid("notes", "at most %d characters", MaxTextLength)
	}
	if len(c.DeliveryInstructions) > MaxTextLength {
		return invalid("deliveryInstructions", "at most %d characters", MaxTextLength)
	}
	return nil
}

// Validate checks a destination; field names are prefixed with destination.
func (d Destination) Validate() error {
	switch {
	case !countryPattern.MatchString(d.Country):
		return invalid("destination.country", "must be an ISO 3166 alpha-2 code such as DE")
	case strings.TrimSpace(d.PostalCode) == "" || len(d.PostalCode) > 16:
		return invalid("destination.postalCode", "is required (at most 16 characters)")
	case strings.TrimSpace(d.Address) == "" || len(d.Address) > MaxTextLength:
		return invalid("destination.address", "is required (at most %d characters)", MaxTextLength)
	case !phonePattern.MatchString(d.PhoneNumber):
		return invalid("destination.phoneNumber", "must be 5-20 digits, optionally with +, spaces, dashes or brackets")
	}
	return nil
}

// Validate checks a Cancel command.
func (c Cancel) Validate() error {
	if err := validateMeta(c.Meta); err != nil {
		return err
	}
	if len(c.Reason) > MaxTextLength {
		return invalid("reason", "at most %d characters", MaxTextLength)
	}
	return nil
}

// Validate checks an Update command.
func (c Update) Validate() error {
	if err := validateMeta(c.Meta); err != nil {
		return err
	}
	if c.Destination == nil && c.DeliveryInstructions == nil && c.Notes == nil {
		return invalid("destination", "nothing to update: give destination, deliveryInstructions or notes")
	}
	if c.Destination != nil {
		if err := c.Destination.Validate(); err != nil {
			return err
		}
	}
	if c.DeliveryInstructions != nil && len(*c.DeliveryInstructions) > MaxTextLength {
		return invalid("deliveryInstructions", "at most %d characters", MaxTextLength)
	}
	if c.Notes != nil && len(*c.Notes) > MaxTextLength {
		return invalid("notes", "at most %d characters", MaxTextLength)
	}
	if len(c.Reason) > MaxTextLength {
		return invalid("reason", "at most %d characters", MaxTextLength)
	}
	return nil
}

// Validate checks a payment event.
func (c RecordPayment) Validate() error {
	if err := validateMeta(c.Meta); err != nil {
		return err
	}
	switch c.Type {
	case PaymentSucceeded, PaymentFailed, PaymentCancelled:
	default:
		return invalid("type", "must be %s, %s or %s", PaymentSucceeded, PaymentFailed, PaymentCancelled)
	}
	if c.Type == PaymentSucceeded {
		if c.Amount <= 0 {
			return invalid("amount", "must be positive minor units")
		}
		if !currencyPattern.MatchString(c.Currency) {
			return invalid("currency", "must be an ISO 4217 code such as EUR")
		}
	}
	return nil
}

// Validate checks a delivery event.
func (c RecordDelivery) Validate() error {
	if err := validateMeta(c.Meta); err != nil {
		return err
	}
	switch c.Type {
	case DeliveryInTransit, DeliveryAttemptFailed, DeliveryDelivered:
	default:
		return invalid("type", "must be %s, %s or %s", DeliveryInTransit, DeliveryAttemptFailed, DeliveryDelivered)
	}
	return nil
}

package order

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bojanz/currency"
	"golang.org/x/text/language"
)

// Limits on what a command may carry: every field is bounded, so that no
// accepted input can grow an event, a document or an index key without
// bound.
const (
	MaxItems         = 100
	MaxQuantity      = 10_000
	MaxUnitPrice     = 100_000_000_00
	MaxTextLength    = 1000
	MaxPromotionCode = 10
	// MaxNameLength bounds names and identifiers: users, who gave a
	// command, providers, payment methods, references, tracking numbers.
	MaxNameLength = 128
	// MaxIDLength bounds command and provider event IDs.
	MaxIDLength = 256
	// MaxAmount bounds a payment: more than any order can total.
	MaxAmount = MaxItems * MaxQuantity * MaxUnitPrice
)

var (
	phonePattern = regexp.MustCompile(`^\+?[0-9][0-9 ()-]{4,19}$`)
	// tokenPattern is what names a provider or a payment method.
	tokenPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// ValidCurrency reports whether code is an ISO 4217 currency that money can
// be paid in (CLDR's list: not XXX, XTS or a precious metal).
func ValidCurrency(code string) bool { return len(code) == 3 && currency.IsValid(code) }

// ValidCountry reports whether code is an ISO 3166-1 alpha-2 country code
// (not a user-assigned one such as XY or ZZ, nor a reserved one such as UK).
func ValidCountry(code string) bool {
	if len(code) != 2 || strings.ToUpper(code) != code {
		return false
	}
	r, err := language.ParseRegion(code)
	return err == nil && r.IsCountry() && r.String() == code && r.ISO3() != "ZZZ"
}

// text checks a free text: at most n bytes of valid UTF-8 without control
// characters (line breaks and tabs are allowed where multiline is).
func text(field, s string, n int, multiline bool) error {
	if len(s) > n {
		return invalid(field, "at most %d bytes", n)
	}
	if !utf8.ValidString(s) {
		return invalid(field, "must be valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t' || r == '\r')) {
			return invalid(field, "must not contain control characters")
		}
	}
	return nil
}

// name checks a required name: text of at most MaxNameLength, not blank.
func name(field, s string) error {
	if strings.TrimSpace(s) == "" {
		return invalid(field, "is required")
	}
	return text(field, s, MaxNameLength, false)
}

func validateMeta(m Meta) error {
	switch {
	case m.ID == "":
		return invalid("id", "is required")
	case len(m.ID) > MaxIDLength:
		return invalid("id", "at most %d bytes", MaxIDLength)
	case m.OrderID == "":
		return invalid("orderId", "is required")
	case len(m.OrderID) > MaxNameLength:
		return invalid("orderId", "at most %d bytes", MaxNameLength)
	}
	if err := text("by", m.By, MaxNameLength, false); err != nil {
		return err
	}
	return text("asCustomer", m.AsCustomer, MaxNameLength, false)
}

// Validate checks a Place command and names the first bad field.
func (c Place) Validate() error {
	if err := validateMeta(c.Meta); err != nil {
		return err
	}
	if err := name("user", c.User); err != nil {
		return err
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
	var total int64
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
		total += it.Quantity * it.UnitPrice
	}
	// An order is paid for before it ships; one of nothing could never be
	// paid, and would hold its stock until the reservation expires.
	if total == 0 {
		return invalid("items", "the order's total is 0: free orders are not taken (give a unit price)")
	}
	if !ValidCurrency(c.Currency) {
		return invalid("currency", "must be an ISO 4217 currency code such as EUR")
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
	if c.PaymentMethod != "" && !tokenPattern.MatchString(c.PaymentMethod) {
		return invalid("paymentMethod", "must be 1-64 letters, digits, '.', '-' or '_'")
	}
	if err := text("notes", c.Notes, MaxTextLength, true); err != nil {
		return err
	}
	return text("deliveryInstructions", c.DeliveryInstructions, MaxTextLength, true)
}

// Validate checks a destination; field names are prefixed with destination.
func (d Destination) Validate() error {
	switch {
	case !ValidCountry(d.Country):
		return invalid("destination.country", "must be an ISO 3166 alpha-2 country code such as DE")
	case strings.TrimSpace(d.PostalCode) == "" || len(d.PostalCode) > 16:
		return invalid("destination.postalCode", "is required (at most 16 characters)")
	case strings.TrimSpace(d.Address) == "":
		return invalid("destination.address", "is required")
	case !phonePattern.MatchString(d.PhoneNumber):
		return invalid("destination.phoneNumber", "must be 5-20 digits, optionally with +, spaces, dashes or brackets")
	}
	if err := text("destination.postalCode", d.PostalCode, 16, false); err != nil {
		return err
	}
	return text("destination.address", d.Address, MaxTextLength, true)
}

// Validate checks a Cancel command.
func (c Cancel) Validate() error {
	if err := validateMeta(c.Meta); err != nil {
		return err
	}
	return text("reason", c.Reason, MaxTextLength, true)
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
	if c.DeliveryInstructions != nil {
		if err := text("deliveryInstructions", *c.DeliveryInstructions, MaxTextLength, true); err != nil {
			return err
		}
	}
	if c.Notes != nil {
		if err := text("notes", *c.Notes, MaxTextLength, true); err != nil {
			return err
		}
	}
	return text("reason", c.Reason, MaxTextLength, true)
}

// provider checks the fields every provider event carries.
func provider(name string) error {
	if !tokenPattern.MatchString(name) {
		return invalid("provider", "must be 1-64 letters, digits, '.', '-' or '_'")
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
	if err := provider(c.Provider); err != nil {
		return err
	}
	if c.Type == PaymentSucceeded {
		if c.Amount <= 0 || c.Amount > MaxAmount {
			return invalid("amount", "must be between 1 and %d minor units", int64(MaxAmount))
		}
		if !ValidCurrency(c.Currency) {
			return invalid("currency", "must be an ISO 4217 currency code such as EUR")
		}
	} else if c.Amount < 0 || c.Amount > MaxAmount {
		return invalid("amount", "must be between 0 and %d minor units", int64(MaxAmount))
	}
	if c.Currency != "" && !ValidCurrency(c.Currency) {
		return invalid("currency", "must be an ISO 4217 currency code such as EUR")
	}
	if err := text("reference", c.Reference, MaxNameLength, false); err != nil {
		return err
	}
	if c.Method != "" && !tokenPattern.MatchString(c.Method) {
		return invalid("method", "must be 1-64 letters, digits, '.', '-' or '_'")
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
	if err := provider(c.Provider); err != nil {
		return err
	}
	return text("trackingNumber", c.TrackingNumber, MaxNameLength, false)
}

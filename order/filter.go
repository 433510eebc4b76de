package order

import (
	"slices"
	"time"
)

// Filter selects orders: the seed's orders(filter). Empty fields do not
// filter; From and To bound the creation time [From, To). Limit and Cursor
// page through the results, which come in creation order.
type Filter struct {
	User          string    `json:"user,omitempty"`
	Status        string    `json:"status,omitempty"`
	Source        string    `json:"source,omitempty"`
	PromotionCode string    `json:"promotionCode,omitempty"`
	SKU           string    `json:"sku,omitempty"`
	From          time.Time `json:"from,omitzero"`
	To            time.Time `json:"to,omitzero"`
	Limit         int       `json:"limit,omitempty"`
	Cursor        string    `json:"cursor,omitempty"`
}

// MaxPageSize bounds Filter.Limit; DefaultPageSize is used when it is 0.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// Validate names the first bad field.
func (f Filter) Validate() error {
	if f.Limit < 0 || f.Limit > MaxPageSize {
		return invalid("limit", "must be between 0 and %d", MaxPageSize)
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return invalid("to", "must be after from")
	}
	if f.Status != "" && !slices.Contains(Statuses, Status(f.Status)) {
		return invalid("status", "unknown status %s", f.Status)
	}
	switch {
	case f.Source != "" && f.Source != "web" && f.Source != "app":
		return invalid("source", "must be web or app")
	case f.SKU != "" && !ValidSKU(f.SKU):
		return invalid("sku", "must be 1-64 letters, digits, '-' or '_'")
	case f.PromotionCode != "" && !ValidSKU(f.PromotionCode):
		return invalid("promotionCode", "must be 1-64 letters, digits, '-' or '_'")
	case len(f.Cursor) > 512:
		return invalid("cursor", "not a cursor this service issued")
	}
	return text("user", f.User, MaxNameLength, false)
}

// Matches reports whether o passes every filter (paging aside).
func (f Filter) Matches(o Order) bool {
	switch {
	case f.User != "" && o.User != f.User,
		f.Status != "" && string(o.Status) != f.Status,
		f.Source != "" && o.Source != f.Source,
		!f.From.IsZero() && o.CreatedAt.Before(f.From),
		!f.To.IsZero() && !o.CreatedAt.Before(f.To),
		f.PromotionCode != "" && !slices.Contains(o.PromotionCodes, f.PromotionCode):
		return false
	}
	if f.SKU != "" {
		return slices.ContainsFunc(o.Items, func(it Item) bool { return it.SKU == f.SKU })
	}
	return true
}

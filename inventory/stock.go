// Package inventory is the SKU domain: stock on hand, reservations held for
// orders, and the pure decide/evolve functions that keep available stock from
// ever going below zero. Like order, it does no I/O and reads no clock.
//
// It imports nothing of oms.
package inventory

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// MaxOnHand bounds a SKU's stock: totals stay far from overflowing.
const MaxOnHand = 1_000_000_000_000

// Sentinel errors; callers test them with errors.Is.
var (
	ErrNoReservation = errors.New("no reservation held for this order")
	ErrBelowReserved = errors.New("on-hand stock cannot go below what is reserved")
	ErrInvalid       = errors.New("invalid input")
)

// HoldState is where one order's hold on this SKU stands.
type HoldState string

const (
	HoldReserved  HoldState = "reserved"
	HoldCommitted HoldState = "committed"
	HoldReleased  HoldState = "released"
	// HoldRejected records a reservation refused for lack of stock, so a
	// retried request gets the same answer even if stock arrived since.
	HoldRejected HoldState = "rejected"
)

// Hold is one order's claim on this SKU. ExpiresAt is the order's
// reservation deadline.
type Hold struct {
	Quantity  int64     `json:"quantity"`
	State     HoldState `json:"state"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
}

// Prunable reports whether the hold can be forgotten once its deadline has
// passed. A released or refused hold can: a reservation for its order that
// arrives after the deadline is refused anyway, and a repeated release of
// an unknown hold changes no stock. A committed hold cannot: the order may
// still be cancelled and its goods returned, which needs the quantity.
func (h Hold) Prunable() bool { return h.State == HoldReleased || h.State == HoldRejected }

// pruneEvery spaces the scans for prunable holds past their deadline: each
// scan walks every hold, so it runs at most once a minute of event time.
const pruneEvery = time.Minute

// Stock is one SKU. Available = OnHand - Reserved and never goes below zero.
// Only the SKU's actor changes it, by appending events.
type Stock struct {
	SKU      string          `json:"sku"`
	OnHand   int64           `json:"onHand"`
	Reserved int64           `json:"reserved"`
	Holds    map[string]Hold `json:"holds,omitempty"`
	Version  uint64          `json:"version"`
	// PrunedAt is the event time of the last scan for prunable holds. It is
	// derived from events only, so a replay prunes exactly as the live
	// actor did.
	PrunedAt time.Time `json:"prunedAt,omitzero"`
}

// Available is what can still be reserved.
func (s Stock) Available() int64 { return s.OnHand - s.Reserved }

// View is the public shape of a SKU's stock.
type View struct {
	SKU       string `json:"sku"`
	OnHand    int64  `json:"onHand"`
	Reserved  int64  `json:"reserved"`
	Available int64  `json:"available"`
	Version   uint64 `json:"version"`
}

// View returns the public shape of s.
func (s Stock) View() View {
	return View{SKU: s.SKU, OnHand: s.OnHand, Reserved: s.Reserved, Available: s.Available(), Version: s.Version}
}

// Command kinds.
type (
	// SetStock sets the quantity on hand (a stock count from the warehouse).
	SetStock struct {
		ID       string    `json:"id"`
		SKU      string    `json:"sku"`
		Quantity int64     `json:"quantity"`
		At       time.Time `json:"at"`
		By       string    `json:"by"`
	}
	// Reserve holds Quantity for an order until it is committed or released.
	Reserve struct {
		SKU       string    `json:"sku"`
		OrderID   string    `json:"orderId"`
		Quantity  int64     `json:"quantity"`
		ExpiresAt time.Time `json:"expiresAt"`
		At        time.Time `json:"at"`
	}
	// Commit turns an order's hold into a sale: the goods leave on-hand stock.
	Commit struct {
		SKU     string    `json:"sku"`
		OrderID string    `json:"orderId"`
		At      time.Time `json:"at"`
	}
	// Release gives an order's hold (or its committed goods) back.
	// ExpiresAt is the order's reservation deadline: a release that
	// overtook its reservation leaves a tombstone until then.
	Release struct {
		SKU       string    `json:"sku"`
		OrderID   string    `json:"orderId"`
		Reason    string    `json:"reason"`
		ExpiresAt time.Time `json:"expiresAt,omitzero"`
		At        time.Time `json:"at"`
	}
)

// EventType names a SKU event.
type EventType string

const (
	EventStockSet  EventType = "sku.stock_set"
	EventReserved  EventType = "sku.reserved"
	EventRejected  EventType = "sku.rejected"
	EventCommitted EventType = "sku.committed"
	EventReleased  EventType = "sku.released"
)

// Event records one change to a SKU, with the totals that hold after it.
type Event struct {
	ID        string    `json:"id"`
	Type      EventType `json:"type"`
	V         int       `json:"v"`
	SKU       string    `json:"sku"`
	OrderID   string    `json:"orderId,omitempty"`
	Quantity  int64     `json:"quantity"`
	OnHand    int64     `json:"onHand"`
	Reserved  int64     `json:"reserved"`
	Reason    string    `json:"reason,omitempty"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	At        time.Time `json:"at"`
	By        string    `json:"by,omitempty"`
}

func eventID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Decide returns the event command c causes on s, or none when c was already
// applied. Every per-order command is idempotent by order ID.
func Decide(s Stock, c any) (*Event, error) {
	switch c := c.(type) {
	case SetStock:
		if c.Quantity < 0 || c.Quantity > MaxOnHand {
			return nil, fmt.Errorf("quantity must be between 0 and %d: %w", int64(MaxOnHand), ErrInvalid)
		}
		if c.Quantity < s.Reserved {
			return nil, fmt.Errorf("set %s to %d with %d reserved: %w", c.SKU, c.Quantity, s.Reserved, ErrBelowReserved)
		}
		return &Event{ID: eventID(c.SKU, c.ID), Type: EventStockSet, V: 1, SKU: c.SKU, Quantity: c.Quantity,
			OnHand: c.Quantity, Reserved: s.Reserved, At: c.At, By: c.By}, nil
	case Reserve:
		if c.Quantity <= 0 {
			return nil, fmt.Errorf("quantity must be positive: %w", ErrInvalid)
		}
		if _, ok := s.Holds[c.OrderID]; ok {
			return nil, nil
		}
		e := &Event{ID: eventID(c.SKU, c.OrderID, "reserve"), Type: EventReserved, V: 1, SKU: c.SKU,
			OrderID: c.OrderID, Quantity: c.Quantity, OnHand: s.OnHand, Reserved: s.Reserved + c.Quantity,
			ExpiresAt: c.ExpiresAt, At: c.At}
		switch {
		case !c.ExpiresAt.IsZero() && !c.At.Before(c.ExpiresAt):
			// Too late to matter (the order's expiry cancels it anyway),
			// and its earlier outcome may have been pruned: refusing is
			// the only answer that can never double-reserve.
			e.Type, e.Reserved = EventRejected, s.Reserved
			e.Reason = "reservation requested after its deadline " + c.ExpiresAt.UTC().Format(time.RFC3339)
		case c.Quantity > s.Available():
			e.Type, e.Reserved = EventRejected, s.Reserved
			e.Reason = fmt.Sprintf("%d available, %d requested", s.Available(), c.Quantity)
		}
		return e, nil
	case Commit:
		h, ok := s.Holds[c.OrderID]
		switch {
		case ok && h.State == HoldCommitted:
			return nil, nil
		case !ok || h.State != HoldReserved:
			return nil, fmt.Errorf("commit %s for order %s: %w", c.SKU, c.OrderID, ErrNoReservation)
		}
		return &Event{ID: eventID(c.SKU, c.OrderID, "commit"), Type: EventCommitted, V: 1, SKU: c.SKU,
			OrderID: c.OrderID, Quantity: h.Quantity, OnHand: s.OnHand - h.Quantity,
			Reserved: s.Reserved - h.Quantity, At: c.At}, nil
	case Release:
		h, ok := s.Holds[c.OrderID]
		e := &Event{ID: eventID(c.SKU, c.OrderID, "release"), Type: EventReleased, V: 1, SKU: c.SKU,
			OrderID: c.OrderID, Quantity: h.Quantity, OnHand: s.OnHand, Reserved: s.Reserved,
			Reason: c.Reason, ExpiresAt: c.ExpiresAt, At: c.At}
		switch {
		case !ok:
			// A release that overtook its reservation leaves a tombstone,
			// so the late reservation is refused instead of leaking stock.
			e.Quantity = 0
		case h.State == HoldReserved:
			e.Reserved -= h.Quantity
		case h.State == HoldCommitted:
			e.OnHand += h.Quantity
		default:
			return nil, nil
		}
		return e, nil
	}
	return nil, fmt.Errorf("unknown inventory command %T: %w", c, ErrInvalid)
}

// Evolve applies e to s. It also forgets released and refused holds whose
// deadline has passed (at most once a minute of event time), so failed and
// cancelled orders do not weigh on a busy SKU's state forever.
func Evolve(s Stock, e Event) Stock {
	s.SKU, s.OnHand, s.Reserved = e.SKU, e.OnHand, e.Reserved
	if e.At.Sub(s.PrunedAt) >= pruneEvery {
		for id, h := range s.Holds {
			if h.Prunable() && !h.ExpiresAt.IsZero() && !e.At.Before(h.ExpiresAt) {
				delete(s.Holds, id)
			}
		}
		s.PrunedAt = e.At
	}
	if e.OrderID == "" {
		return s
	}
	if s.Holds == nil {
		s.Holds = make(map[string]Hold)
	}
	h := s.Holds[e.OrderID]
	switch e.Type {
	case EventReserved:
		h = Hold{Quantity: e.Quantity, State: HoldReserved, ExpiresAt: e.ExpiresAt}
	case EventRejected:
		h = Hold{Quantity: e.Quantity, State: HoldRejected, ExpiresAt: e.ExpiresAt}
	case EventCommitted:
		h.State = HoldCommitted
	case EventReleased:
		h.State = HoldReleased
		if h.ExpiresAt.IsZero() {
			h.ExpiresAt = e.ExpiresAt // a tombstone lasts until the order's deadline
		}
	}
	s.Holds[e.OrderID] = h
	return s
}

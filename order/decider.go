package order

import (
	"fmt"
	"maps"
)

// State is what the decider needs: the order and the IDs of the commands it
// has applied, with the fingerprint of each, for effectively-once handling.
// An order sees a handful of commands in its life, so a slice scanned in
// order is both smaller and faster than a map.
type State struct {
	Order   Order     `json:"order"`
	Applied []Applied `json:"applied"`
	// Correlation is the placement's correlation ID, which the order's
	// later events carry unless their command brings its own; Sampled
	// goes with it.
	Correlation string `json:"correlationId,omitempty"`
	Sampled     bool   `json:"traceSampled,omitempty"`
}

// Applied records one command or provider event the order has applied.
type Applied struct {
	ID   string `json:"id"`
	Hash string `json:"hash"`
}

func (s State) appliedHash(id string) (string, bool) {
	for _, a := range s.Applied {
		if a.ID == id {
			return a.Hash, true
		}
	}
	return "", false
}

// Exists reports whether the order has been placed.
func (s State) Exists() bool { return s.Order.Status != StatusNone }

// paymentCaptured is true when money arrived before the stock was held.
const paymentCaptured = "captured"

// Decide returns the event that command c causes on state s, or none.
//
// It returns (nil, nil) for a command already applied (the earlier outcome
// stands). A refused client command returns only an error. A refused inbound
// provider event returns an order.rejected event to record together with the
// error, so the refusal is durable and a redelivery is a no-op.
func Decide(p Policy, s State, c Command) (*Event, error) {
	// Before anything else, so that not even the outcome of an earlier
	// command tells a customer about another customer's order.
	if cu := c.Customer(); cu != "" && s.Exists() && s.Order.User != cu {
		return nil, fmt.Errorf("order %s: %w", c.Target(), ErrNotFound)
	}
	if h, ok := s.appliedHash(c.CommandID()); ok {
		if h == c.Fingerprint() {
			return nil, nil
		}
		return nil, fmt.Errorf("command %s: %w", c.CommandID(), ErrIdempotencyConflict)
	}
	if place, ok := c.(Place); ok {
		return decidePlace(p, s, place)
	}
	if !s.Exists() {
		return nil, fmt.Errorf("order %s: %w", c.Target(), ErrNotFound)
	}
	o := s.Order
	switch c := c.(type) {
	case Cancel:
		if err := c.Validate(); err != nil {
			return nil, err
		}
		if o.Status != StatusReceived && o.Status != StatusPaid {
			return nil, &TransitionError{Action: "cancel", Status: o.Status}
		}
		return cancelled(s, c.Meta, c.Fingerprint(), CancelCustomerRequest, c.Reason, ReservationReleased), nil
	case Update:
		if err := c.Validate(); err != nil {
			return nil, err
		}
		if o.Status != StatusReceived && o.Status != StatusPaid {
			return nil, &TransitionError{Action: "update", Status: o.Status}
		}
		e := newEvent(s, c.Meta, c.Fingerprint(), EventUpdated)
		e.Update = &Changes{Destination: c.Destination, DeliveryInstructions: c.DeliveryInstructions, Notes: c.Notes, Reason: c.Reason}
		return e, nil
	case RecordStock:
		if o.Status != StatusReceived || o.Reservation != ReservationPending {
			// The order moved on (cancelled or expired); the cancellation
			// already released whatever the inventory held.
			return nil, nil
		}
		if !c.Held {
			e := cancelled(s, c.Meta, c.Fingerprint(), CancelStockUnavailable, c.Detail, ReservationReleased)
			return e, nil
		}
		e := newEvent(s, c.Meta, c.Fingerprint(), EventStockHeld)
		e.Reservation = ReservationHeld
		if o.PaymentInformation.Status == paymentCaptured {
			e.Status, e.Reservation = StatusPaid, ReservationCommitted
		}
		return e, nil
	case ExpireReservation:
		if !o.ExpiryApplies() {
			return nil, nil
		}
		return cancelled(s, c.Meta, c.Fingerprint(), CancelReservationExpired, "", ReservationExpired), nil
	case RecordPayment:
		if err := c.Validate(); err != nil {
			return nil, err
		}
		return decidePayment(s, c)
	case RecordDelivery:
		if err := c.Validate(); err != nil {
			return nil, err
		}
		return decideDelivery(p, s, c)
	}
	return nil, fmt.Errorf("unknown command %T: %w", c, ErrInvalid)
}

func decidePlace(p Policy, s State, c Place) (*Event, error) {
	if s.Exists() {
		return nil, fmt.Errorf("order %s: %w", c.OrderID, ErrAlreadyExists)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	e := newEvent(s, c.Meta, c.Fingerprint(), EventPlaced)
	e.Status, e.Reservation = StatusReceived, ReservationPending
	pl := &Placed{
		User: c.User, Items: c.Items, Currency: c.Currency, Destination: c.Destination,
		PromotionCodes: c.PromotionCodes, Source: c.Source, Notes: c.Notes,
		DeliveryInstructions: c.DeliveryInstructions, PaymentMethod: c.PaymentMethod,
		ReservationExpiresAt: c.At.Add(p.ReservationTTL),
	}
	if pl.Source == "" {
		pl.Source = "web"
	}
	for _, it := range c.Items {
		pl.Total += it.Quantity * it.UnitPrice
		pl.BasketSize += it.Quantity
	}
	e.Placed = pl
	return e, nil
}

func decidePayment(s State, c RecordPayment) (*Event, error) {
	o := s.Order
	pay := &PaymentInformation{Method: c.Method, Provider: c.Provider, Reference: c.Reference,
		Amount: c.Amount, Currency: c.Currency}
	reject := func(code string, refund int64, err error) (*Event, error) {
		e := newEvent(s, c.Meta, c.Fingerprint(), EventRejected)
		e.Rejected = &Rejection{CauseType: c.Type, Code: code, Message: err.Error(), RefundDue: refund}
		if refund > 0 {
			e.Rejected.RefundCurrency = c.Currency
		}
		return e, err
	}
	if c.Type != PaymentSucceeded {
		if o.Status != StatusReceived || o.PaymentInformation.Status == paymentCaptured {
			return reject("illegal_transition", 0, &TransitionError{Action: "fail the payment of", Status: o.Status})
		}
		reason, status := CancelPaymentFailed, "failed"
		if c.Type == PaymentCancelled {
			reason, status = CancelPaymentCancelled, "cancelled"
		}
		e := cancelled(s, c.Meta, c.Fingerprint(), reason, "", ReservationReleased)
		pay.Status = status
		e.Payment = pay
		return e, nil
	}
	// Money arrived: anything but the first matching payment is refunded.
	if o.Status != StatusReceived || o.PaymentInformation.Status == paymentCaptured {
		return reject("illegal_transition", c.Amount, &TransitionError{Action: "pay", Status: o.Status})
	}
	if c.Amount != o.Total || c.Currency != o.Currency {
		return reject("payment_mismatch", c.Amount, fmt.Errorf("paid %d %s, order total is %d %s: %w",
			c.Amount, c.Currency, o.Total, o.Currency, ErrPaymentMismatch))
	}
	if o.Reservation == ReservationHeld {
		e := newEvent(s, c.Meta, c.Fingerprint(), EventPaid)
		e.Status, e.Reservation = StatusPaid, ReservationCommitted
		pay.Status = "succeeded"
		e.Payment = pay
		return e, nil
	}
	// Stock not yet held: keep the money and decide when the stock answers.
	e := newEvent(s, c.Meta, c.Fingerprint(), EventPaymentCaptured)
	pay.Status = paymentCaptured
	e.Payment = pay
	return e, nil
}

func decideDelivery(p Policy, s State, c RecordDelivery) (*Event, error) {
	o := s.Order
	upd := &DeliveryUpdate{Provider: c.Provider, TrackingNumber: c.TrackingNumber}
	var e *Event
	switch {
	case c.Type == DeliveryInTransit && (o.Status == StatusPaid || o.Status == StatusInTransit):
		e = newEvent(s, c.Meta, c.Fingerprint(), EventShipped)
		e.Status = StatusInTransit
	case c.Type == DeliveryAttemptFailed && (o.Status == StatusPaid || o.Status == StatusInTransit):
		// A failed attempt may overtake its in_transit event (two nodes
		// around a partition's handover, a carrier's webhooks in any
		// order): the carrier had the parcel, so the order is in transit.
		// Refusing it would strand the order, as no later event repeats it.
		e = newEvent(s, c.Meta, c.Fingerprint(), EventDeliveryAttemptFailed)
		e.Status = StatusInTransit
		upd.Attempts = o.NumberOfDeliveryAttempts + 1
		if upd.Attempts >= p.MaxDeliveryAttempts {
			// The parcel goes back to the warehouse; it is restocked after
			// inspection, outside this system, so stock is not released here.
			e.Status = StatusCancelled
			e.Cancel = &Cancellation{Reason: CancelDeliveryFailed, RefundDue: o.Total, RefundCurrency: o.Currency,
				Detail: fmt.Sprintf("%d delivery attempts failed", upd.Attempts)}
		}
	case c.Type == DeliveryDelivered && (o.Status == StatusPaid || o.Status == StatusInTransit):
		// A delivered event may overtake its in_transit event; delivery is
		// the stronger fact, so it completes the order either way.
		e = newEvent(s, c.Meta, c.Fingerprint(), EventCompleted)
		e.Status = StatusCompleted
	default:
		err := &TransitionError{Action: "apply " + c.Type + " to", Status: o.Status}
		e = newEvent(s, c.Meta, c.Fingerprint(), EventRejected)
		e.Rejected = &Rejection{CauseType: c.Type, Code: "illegal_transition", Message: err.Error()}
		return e, err
	}
	e.Delivery = upd
	return e, nil
}

func cancelled(s State, m Meta, hash string, reason CancelReason, detail string, res Reservation) *Event {
	o := s.Order
	e := newEvent(s, m, hash, EventCancelled)
	e.Status, e.Reservation = StatusCancelled, res
	e.Cancel = &Cancellation{Reason: reason, Detail: detail, ReleaseStock: true}
	if o.Status == StatusPaid || o.PaymentInformation.Status == paymentCaptured {
		e.Cancel.RefundDue, e.Cancel.RefundCurrency = o.PaymentInformation.Amount, o.PaymentInformation.Currency
	}
	return e
}

// newEvent starts an event that leaves status and reservation as they are.
func newEvent(s State, m Meta, hash string, t EventType) *Event {
	corr, sampled := m.Correlation, m.Sampled
	if corr == "" {
		corr, sampled = s.Correlation, s.Sampled
	}
	return &Event{
		ID: EventID(m.OrderID, m.ID), Type: t, V: EventVersion, OrderID: m.OrderID,
		At: m.At, By: m.By, CauseID: m.ID, CauseHash: hash, Correlation: corr, Sampled: sampled,
		Status: s.Order.Status, Reservation: s.Order.Reservation,
	}
}

// Evolve applies event e to state s. It trusts e: events are facts already
// decided, so Evolve never fails.
func Evolve(s State, e Event) State {
	o := s.Order
	// Full slice expression: never append into a backing array another
	// State value may share.
	s.Applied = append(s.Applied[:len(s.Applied):len(s.Applied)], Applied{ID: e.CauseID, Hash: e.CauseHash})
	if e.Type == EventPlaced {
		s.Correlation, s.Sampled = e.Correlation, e.Sampled
	}
	change := Change{Who: e.By, When: e.At, What: string(e.Type)}
	switch e.Type {
	case EventPlaced:
		pl := e.Placed
		o = Order{ID: e.OrderID, User: pl.User, Items: pl.Items, Currency: pl.Currency,
			BasketSize: pl.BasketSize, Total: pl.Total, Destination: pl.Destination,
			PaymentInformation: PaymentInformation{Method: pl.PaymentMethod},
			PromotionCodes:     pl.PromotionCodes, Source: pl.Source, Notes: pl.Notes,
			DeliveryInstructions: pl.DeliveryInstructions, ReservationExpiresAt: pl.ReservationExpiresAt,
			CreatedBy: e.By, CreatedAt: e.At}
		if o.PromotionCodes == nil {
			o.PromotionCodes = []string{}
		}
		change.What = fmt.Sprintf("placed %d items, total %d %s", pl.BasketSize, pl.Total, pl.Currency)
	case EventPaid, EventPaymentCaptured:
		method := o.PaymentInformation.Method
		o.PaymentInformation = *e.Payment
		if o.PaymentInformation.Method == "" {
			o.PaymentInformation.Method = method
		}
		change.What = fmt.Sprintf("payment %s by %s (%s)", e.Payment.Status, e.Payment.Provider, e.Payment.Reference)
	case EventStockHeld:
		change.What = "stock held"
		if e.Status == StatusPaid {
			o.PaymentInformation.Status = "succeeded"
			change.What = "stock held; order paid"
		}
	case EventCancelled:
		if e.Payment != nil {
			method := o.PaymentInformation.Method
			o.PaymentInformation = *e.Payment
			o.PaymentInformation.Method = method
		}
	case EventUpdated:
		u := e.Update
		if u.Destination != nil {
			o.Destination = *u.Destination
		}
		if u.DeliveryInstructions != nil {
			o.DeliveryInstructions = *u.DeliveryInstructions
		}
		if u.Notes != nil {
			o.Notes = *u.Notes
		}
		change.What = "updated " + u.fields()
		change.Why = u.Reason
	case EventShipped, EventDeliveryAttemptFailed, EventCompleted:
		d := e.Delivery
		if d.Provider != "" {
			o.DeliveryProvider = d.Provider
		}
		if d.TrackingNumber != "" {
			o.TrackingNumber = d.TrackingNumber
		}
		switch e.Type {
		case EventShipped:
			change.What = fmt.Sprintf("in transit with %s (%s)", o.DeliveryProvider, o.TrackingNumber)
		case EventDeliveryAttemptFailed:
			o.NumberOfDeliveryAttempts = d.Attempts
			change.What = fmt.Sprintf("delivery attempt %d failed", d.Attempts)
		case EventCompleted:
			change.What = "delivered by " + o.DeliveryProvider
		}
	case EventRejected:
		change.What = "rejected " + e.Rejected.CauseType
		change.Why = e.Rejected.Message
		o = owe(o, e.Rejected.RefundDue, e.Rejected.RefundCurrency)
	}
	if e.Cancel != nil {
		o.CancelReason = e.Cancel.Reason
		o = owe(o, e.Cancel.RefundDue, e.Cancel.RefundCurrency)
		change.What = "cancelled: " + string(e.Cancel.Reason)
		change.Why = e.Cancel.Detail
	}
	o.Status, o.Reservation = e.Status, e.Reservation
	o.UpdatedAt = e.At
	// Full slice expressions, as for Applied: the state passed in may share
	// these backing arrays with another State value (an actor's view, a
	// projection's previous document), which an in-place append would
	// overwrite.
	if n := len(o.UpdatedBy); n == 0 || o.UpdatedBy[n-1] != e.By {
		o.UpdatedBy = append(o.UpdatedBy[:n:n], e.By)
	}
	o.ChangeHistory = append(o.ChangeHistory[:len(o.ChangeHistory):len(o.ChangeHistory)], change)
	s.Order = o
	return s
}

// owe records amount due back to the customer in currency (the order's if
// empty). The map is copied, never written in place: another State value
// may share it.
func owe(o Order, amount int64, currency string) Order {
	if amount == 0 {
		return o
	}
	if currency == "" {
		currency = o.Currency
	}
	due := maps.Clone(o.RefundsDue)
	if due == nil {
		due = map[string]int64{}
	}
	due[currency] += amount
	o.RefundsDue = due
	if currency == o.Currency {
		o.RefundDue += amount
	}
	return o
}

func (c *Changes) fields() string {
	var f string
	add := func(set bool, name string) {
		if set {
			if f != "" {
				f += ", "
			}
			f += name
		}
	}
	add(c.Destination != nil, "destination")
	add(c.DeliveryInstructions != nil, "deliveryInstructions")
	add(c.Notes != nil, "notes")
	return f
}

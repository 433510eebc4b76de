package api

import (
	"slices"
	"time"

	"github.com/oms-project/oms/order"
)

// SubjectOrdersStuck lists the orders past their status's service level.
const SubjectOrdersStuck = "oms.orders.stuck"

// MaxStuckCount bounds how many stuck orders of a status are counted: past
// it the count says "at least".
const MaxStuckCount = 10_000

// StuckStatuses are the statuses an order can be stuck in: the final ones
// (completed, cancelled) cannot.
var StuckStatuses = []order.Status{order.StatusReceived, order.StatusPaid, order.StatusInTransit}

// ListStuck asks for the orders that have stayed in a status longer than
// its service level: the body of oms.orders.stuck, GET /v1/orders/stuck.
type ListStuck struct {
	// Status, if set, lists only that status's (order_received,
	// order_paid, order_inTransit).
	Status string `json:"status,omitempty"`
	// Limit bounds the orders listed (default 50, at most 500); the
	// counts cover them all.
	Limit int `json:"limit,omitempty"`
}

// Validate names the bad field.
func (r ListStuck) Validate() error {
	if r.Status != "" && !slices.Contains(StuckStatuses, order.Status(r.Status)) {
		return &order.ValidationError{Field: "status", Message: "must be order_received, order_paid or order_inTransit"}
	}
	if r.Limit < 0 || r.Limit > order.MaxPageSize {
		return &order.ValidationError{Field: "limit", Message: "must be between 0 and 500"}
	}
	return nil
}

// StuckOrders is the reply: the oldest stuck orders first, and how many
// each status has.
type StuckOrders struct {
	Orders []StuckOrder `json:"orders"`
	// Counts are the stuck orders per status (capped at MaxStuckCount).
	Counts map[string]int64 `json:"counts"`
	// ServiceLevels are how long an order may stay in each status.
	ServiceLevels map[string]string `json:"serviceLevels"`
}

// StuckOrder is one order past its service level.
type StuckOrder struct {
	ID       string       `json:"id"`
	User     string       `json:"user"`
	Status   order.Status `json:"status"`
	Since    time.Time    `json:"since" doc:"its last change"`
	Overdue  string       `json:"overdue" doc:"how far past the service level, as a duration"`
	Total    int64        `json:"total"`
	Currency string       `json:"currency"`
}

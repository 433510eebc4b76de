package api

import "time"

// SubjectOrdersExplain answers an order's causal timeline.
const SubjectOrdersExplain = "oms.orders.explain"

// ExplainOrder asks for an order's timeline: the body of
// oms.orders.explain, GET /v1/orders/{id}/timeline (staff).
type ExplainOrder struct {
	ID string `json:"id"`
}

// Validate checks the order ID.
func (r ExplainOrder) Validate() error { return orderID("id", r.ID) }

// Timeline is an order's causal history, read from the streams alone:
// each event with what caused it and what it caused.
type Timeline struct {
	OrderID string          `json:"orderId"`
	Entries []TimelineEntry `json:"entries"`
	// ProviderEvents are the provider messages stored for the order (in
	// OMS_INBOUND, while its retention keeps them), including those the
	// order refused.
	ProviderEvents []StoredMessage `json:"providerEvents"`
	// Notes say where the timeline may be incomplete (transport streams
	// keep their messages for a bounded time; a hot SKU's history is read
	// only so far).
	Notes []string `json:"notes,omitempty"`
}

// TimelineEntry is one order event.
type TimelineEntry struct {
	Sequence    uint64    `json:"sequence"`
	At          time.Time `json:"at"`
	Type        string    `json:"type"`
	Status      string    `json:"status"`
	By          string    `json:"by"`
	Node        string    `json:"node,omitempty" doc:"the node that appended it"`
	Correlation string    `json:"correlationId,omitempty"`
	Cause       Cause     `json:"cause"`
	Effects     []Effect  `json:"effects"`
}

// Cause is what made an event: a request through the API, a provider's
// event, the reactor's stock reservation or the reservation's expiry.
type Cause struct {
	ID string `json:"id" doc:"the command or provider event ID the event records"`
	// Source is api, provider, reactor or expiry.
	Source string `json:"source" enum:"api,provider,reactor,expiry"`
	// Message is the stored provider event behind it, when there is one.
	Message *StoredMessage `json:"message,omitempty"`
}

// Effect is a message an event caused: a provider request, a customer
// notification, a SKU event (reserve, commit, release).
type Effect struct {
	Kind    string    `json:"kind" doc:"payment, refund, delivery, notify, or the SKU event's type"`
	Stream  string    `json:"stream,omitempty" doc:"absent for a notification: it is sent, not stored"`
	Subject string    `json:"subject"`
	Seq     uint64    `json:"sequence,omitempty"`
	At      time.Time `json:"at"`
}

// StoredMessage names one message of a stream.
type StoredMessage struct {
	Stream  string    `json:"stream"`
	Subject string    `json:"subject"`
	Seq     uint64    `json:"sequence"`
	At      time.Time `json:"at"`
	ID      string    `json:"id,omitempty" doc:"its Nats-Msg-Id, or the provider event's ID"`
}

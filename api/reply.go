package api

import (
	"encoding/json"
	"time"

	"github.com/oms-project/oms/order"
)

// OrderPage is the reply of oms.orders.list; Next is the cursor of the next
// page, empty on the last.
type OrderPage struct {
	Orders []order.Order `json:"orders"`
	Next   string        `json:"next"`
}

// OrderChange is one order event with its stream sequence (the feed
// cursor).
type OrderChange struct {
	Seq   uint64      `json:"seq"`
	Event order.Event `json:"event"`
}

// ChangePage is the reply of oms.orders.changes. Resume with After = Last.
type ChangePage struct {
	Changes []OrderChange `json:"changes"`
	Last    uint64        `json:"last"`
}

// Analytics is an aggregate over a period or a promotion code. Revenue is
// per currency: what was paid, less refunds of cancelled paid orders.
type Analytics struct {
	Orders    int64            `json:"orders"`
	Paid      int64            `json:"paidOrders"`
	Cancelled int64            `json:"cancelledOrders"`
	Completed int64            `json:"completedOrders"`
	Units     int64            `json:"units"`
	Revenue   map[string]int64 `json:"revenue"`
}

// PeriodAnalytics is one year's or month's aggregate.
type PeriodAnalytics struct {
	Period string `json:"period"`
	Analytics
	AverageBasketSize float64          `json:"averageBasketSize"`
	AverageOrderValue map[string]int64 `json:"averageOrderValue"`
}

// PromotionAnalytics is one promotion code's aggregate.
type PromotionAnalytics struct {
	Code string `json:"code"`
	Analytics
	AverageBasketSize float64          `json:"averageBasketSize"`
	AverageOrderValue map[string]int64 `json:"averageOrderValue"`
}

// SummaryReply is the reply of oms.analytics.summary: every year (or the
// one asked for) and that year's months.
type SummaryReply struct {
	Year   int               `json:"year"`
	Years  []PeriodAnalytics `json:"years"`
	Months []PeriodAnalytics `json:"months"`
}

// PromotionsReply is the reply of oms.analytics.promotions, most orders first.
type PromotionsReply struct {
	Promotions []PromotionAnalytics `json:"promotions"`
}

// DeadLetter is a message that could not be processed: its ID in the
// dead-letter stream, which pipeline gave up on it (source), where it came
// from, why, and when.
type DeadLetter struct {
	ID             uint64          `json:"id"`
	Source         string          `json:"source"`
	Subject        string          `json:"subject" doc:"the subject it was stored under"`
	Stream         string          `json:"stream,omitempty"`
	StreamSequence uint64          `json:"streamSequence,omitempty"`
	Reason         string          `json:"reason"`
	At             time.Time       `json:"at"`
	Data           json.RawMessage `json:"data,omitempty" doc:"the message, when it is JSON"`
	// Headers are the message's own (correlation, trace), without those
	// the server acts on; a retry sends them again.
	Headers map[string][]string `json:"headers,omitempty" doc:"the message's own headers (correlation, trace); a retry sends them again"`
}

// DeadLetterPage is the reply of oms.admin.deadletters.list; Next is the
// cursor (after) of the next page, 0 on the last.
type DeadLetterPage struct {
	DeadLetters []DeadLetter `json:"deadLetters"`
	Next        uint64       `json:"next"`
}

// DeadLetterOutcome is what became of one dead letter a retry or drop named.
type DeadLetterOutcome struct {
	ID     uint64 `json:"id"`
	Action string `json:"action" enum:"retried,dropped,refused"`
	// To is where a retry sent it (the subject, or the handler it ran).
	To    string `json:"to,omitempty"`
	Error string `json:"error,omitempty"`
}

// DeadLetterOutcomes is the reply of a retry or drop.
type DeadLetterOutcomes struct {
	Outcomes []DeadLetterOutcome `json:"outcomes"`
}

// Job states.
const (
	JobRunning   = "running"
	JobDone      = "done"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// Job is a long operation a node runs in the background (a rebuild): where
// it stands, and its report once done. Its progress is Done of Total
// (events for the read model, orders and SKUs for the snapshots).
type Job struct {
	ID       string         `json:"id"`
	Node     string         `json:"node"`
	What     string         `json:"what"`
	State    string         `json:"state" enum:"running,done,failed,cancelled"`
	Done     uint64         `json:"done"`
	Total    uint64         `json:"total"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished,omitzero"`
	Report   *RebuildReport `json:"report,omitempty"`
	Error    string         `json:"error,omitempty"`
}

// RebuildReport says what a rebuild did.
type RebuildReport struct {
	Node    string  `json:"node"`
	What    string  `json:"what"`
	Events  uint64  `json:"events"`
	Orders  int     `json:"orders"`
	SKUs    int     `json:"skus"`
	Seconds float64 `json:"seconds"`
}

// Status is the reply of oms.status.
type Status struct {
	Node        string           `json:"node"`
	Roles       []string         `json:"roles"`
	Orders      map[string]int64 `json:"orders"`
	ReadModel   ReadModel        `json:"readModel"`
	ActiveOrder int              `json:"activeOrderActors"`
	ActiveSKU   int              `json:"activeSkuActors"`
	Partitions  int              `json:"partitions"`
}

// ReadModel reports how far the read side is behind the order stream.
type ReadModel struct {
	Applied uint64 `json:"appliedSequence"`
	// Stream and Lag are what the order stream said; when it did not
	// answer, StreamError says why and both are 0: not known, and so
	// not to be read as caught up.
	Stream      uint64 `json:"streamSequence"`
	Lag         uint64 `json:"lag"`
	StreamError string `json:"streamError,omitempty"`
	Gaps        uint64 `json:"gaps"`
	// Skipped counts events the read model could not apply; each is in the
	// dead-letter stream (oms.deadletter.projection) with the reason.
	Skipped uint64 `json:"skipped"`
}

// ClusterStatus is the reply of oms.cluster.status: the live members as
// the answering node sees them, and the partitions each owns.
type ClusterStatus struct {
	Node       string          `json:"node"`
	Partitions int             `json:"partitions"`
	Members    []ClusterMember `json:"members"`
	Streams    []StreamReplica `json:"streams,omitempty"`
}

// StreamReplica says where a stream's replicas are and which one leads.
type StreamReplica struct {
	Stream   string   `json:"stream"`
	Leader   string   `json:"leader"`
	Replicas []string `json:"replicas"`
	Current  []string `json:"current"`
}

// ClusterMember is one live node.
type ClusterMember struct {
	Name       string    `json:"name"`
	Started    time.Time `json:"started"`
	Roles      []string  `json:"roles"`
	Partitions []int     `json:"partitions"`
}

// Package metrics owns a node's Prometheus registry: the instruments the
// node's parts record into (operation calls, appends and fencing, pipeline
// messages and dead letters) and the figures read when Prometheus scrapes
// (orders by status, consumers, actors, the read model's lag, the cluster,
// the embedded NATS server, the Go runtime). Names follow the Prometheus
// conventions: an oms_ prefix, the unit in the name, _total on counters,
// labels of bounded cardinality only (an operation, a stream, a pipeline, a
// consumer's durable name; never an order ID or a SKU).
//
// It imports nothing of oms: the node gives it the figures as functions.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every oms metric.
const Namespace = "oms"

// Metrics is one node's registry and the instruments its parts record
// into. Its methods are safe for concurrent use; a nil *Metrics records
// nothing, so a part built without metrics (a test) needs no check.
type Metrics struct {
	reg        *prometheus.Registry
	calls      *prometheus.HistogramVec
	appends    *prometheus.HistogramVec
	fenced     *prometheus.CounterVec
	events     *prometheus.CounterVec
	messages   *prometheus.CounterVec
	handling   *prometheus.HistogramVec
	deadLetter *prometheus.CounterVec
}

// latencyBuckets span what a call or an append takes, from a local
// actor's tens of microseconds to the seconds of a retry under failover.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New returns a registry with the Go runtime's and the process's
// collectors and the oms instruments.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.calls = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "operation_duration_seconds",
		Help:    "Time to answer an API operation (micro or HTTP), from the decoded request to the reply, by operation and outcome (ok or the error kind). orders_place is place→ack.",
		Buckets: latencyBuckets}, []string{"operation", "outcome"})
	m.appends = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "append_duration_seconds",
		Help:    "Time of one fenced append to an event stream, as the actor waits for it, by stream and outcome (ok, fenced, error).",
		Buckets: latencyBuckets}, []string{"stream", "outcome"})
	m.fenced = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "append_fenced_total",
		Help: "Appends the stream refused because another writer moved the subject first (the actor caught up and decided again), by stream."},
		[]string{"stream"})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "order_events_total",
		Help: "Order events this node appended, by event type: the transitions of the order state machine."},
		[]string{"type"})
	m.messages = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "pipeline_messages_total",
		Help: "Messages a pipeline handled, by pipeline and outcome (ok, retry, dead_letter)."},
		[]string{"pipeline", "outcome"})
	m.handling = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "pipeline_handle_duration_seconds",
		Help: "Time a pipeline's handler took for one message, by pipeline.", Buckets: latencyBuckets}, []string{"pipeline"})
	m.deadLetter = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "dead_letters_total",
		Help: "Messages this node sent to the dead-letter stream, by source (the pipeline: reactor, inbound, projection; timers from versions before the expiry sweep)."},
		[]string{"source"})
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.calls, m.appends, m.fenced, m.events, m.messages, m.handling, m.deadLetter)
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

// Gatherer reads the registry as a scrape would (the dashboard's feed).
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Register adds collectors read at scrape time.
func (m *Metrics) Register(cs ...prometheus.Collector) { m.reg.MustRegister(cs...) }

// Call records one API operation's answer.
func (m *Metrics) Call(operation, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(operation, outcome).Observe(took.Seconds())
}

// Append records one fenced append; eventType, if not empty, counts an
// appended order event.
func (m *Metrics) Append(stream, outcome, eventType string, took time.Duration) {
	if m == nil {
		return
	}
	m.appends.WithLabelValues(stream, outcome).Observe(took.Seconds())
	if outcome == OutcomeFenced {
		m.fenced.WithLabelValues(stream).Inc()
	}
	if outcome == OutcomeOK && eventType != "" {
		m.events.WithLabelValues(eventType).Inc()
	}
}

// Handled records how a pipeline settled one message.
func (m *Metrics) Handled(pipeline, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.messages.WithLabelValues(pipeline, outcome).Inc()
	m.handling.WithLabelValues(pipeline).Observe(took.Seconds())
	if outcome == OutcomeDeadLetter {
		m.deadLetter.WithLabelValues(pipeline).Inc()
	}
}

// Outcomes of appends and pipeline messages.
const (
	OutcomeOK         = "ok"
	OutcomeFenced     = "fenced"
	OutcomeError      = "error"
	OutcomeRetry      = "retry"
	OutcomeDeadLetter = "dead_letter"
)

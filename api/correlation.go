package api

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"

	"github.com/nats-io/nats.go"
)

// Correlation headers. A request's correlation ID follows the order it is
// about: it is recorded in the events it causes, set on the provider
// requests they cause (Oms-Correlation-Id and, when it is a W3C trace ID,
// traceparent), read back from provider events that echo it, answered on
// replies, and logged as correlation_id. One ID finds every line and event.
// A traceparent keeps the caller's sampling decision: oms records no
// spans, so a trace it began itself is not sampled.
const (
	CorrelationHeader = "Oms-Correlation-Id"
	TraceParentHeader = "traceparent"
	// NodeHeader names the node that appended an event (oms explain).
	NodeHeader = "Oms-Node"
)

var (
	// traceParent is W3C Trace Context's header: version-traceid-spanid-flags.
	traceParent = regexp.MustCompile(`^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$`)
	// correlationID bounds what a caller may name its correlation ID.
	correlationID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
)

// CorrelationOf returns the correlation ID a request's headers name: a
// traceparent's trace ID (all-zero is invalid in the standard), else an
// Oms-Correlation-Id of at most 64 characters from [A-Za-z0-9._:-], else
// a new one. sampled is the traceparent's sampled flag, when the ID is
// its trace ID. get reads one header.
func CorrelationOf(get func(string) string) (id string, sampled bool) {
	if id, sampled := CorrelationIn(get); id != "" {
		return id, sampled
	}
	return NewCorrelation(), false
}

// CorrelationIn is CorrelationOf without the new one: "" when the headers
// name none (a provider that echoes nothing).
func CorrelationIn(get func(string) string) (id string, sampled bool) {
	if m := traceParent.FindStringSubmatch(get(TraceParentHeader)); m != nil && m[1] != "00000000000000000000000000000000" {
		flags, _ := hex.DecodeString(m[2])
		return m[1], len(flags) == 1 && flags[0]&1 == 1
	}
	if id := get(CorrelationHeader); correlationID.MatchString(id) {
		return id, false
	}
	return "", false
}

// NewCorrelation returns a fresh correlation ID, usable as a W3C trace ID.
func NewCorrelation() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CorrelationHeaders are the headers that carry a correlation ID on to a
// message: Oms-Correlation-Id and, for a trace ID, a traceparent
// continuing the trace (TraceParent). nil when there is no ID.
func CorrelationHeaders(id string, sampled bool) nats.Header {
	if id == "" {
		return nil
	}
	hdr := nats.Header{CorrelationHeader: []string{id}}
	if tp := TraceParent(id, sampled); tp != "" {
		hdr.Set(TraceParentHeader, tp)
	}
	return hdr
}

// TraceParent returns a traceparent header continuing the trace whose ID
// is id with a new span, sampled as the caller's was, or "" when id is not
// a trace ID (a caller's own Oms-Correlation-Id). Marking every message
// sampled would make a provider that samples by its parent record every
// order, and have each NATS server on the way parse the message's headers
// for tracing.
func TraceParent(id string, sampled bool) string {
	if len(id) != 32 {
		return ""
	}
	if _, err := hex.DecodeString(id); err != nil {
		return ""
	}
	var span [8]byte
	_, _ = rand.Read(span[:])
	flags := "-00"
	if sampled {
		flags = "-01"
	}
	return "00-" + id + "-" + hex.EncodeToString(span[:]) + flags
}

package api

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
)

// Correlation headers. A request's correlation ID follows the order it is
// about: it is recorded in the events it causes, set on the provider
// requests they cause (Oms-Correlation-Id and, when it is a W3C trace ID,
// traceparent), read back from provider events that echo it, answered on
// replies, and logged as correlation_id. One ID finds every line and event.
const (
	CorrelationHeader = "Oms-Correlation-Id"
	TraceParentHeader = "traceparent"
	// NodeHeader names the node that appended an event (oms explain).
	NodeHeader = "Oms-Node"
)

var (
	// traceParent is W3C Trace Context's header: version-traceid-spanid-flags.
	traceParent = regexp.MustCompile(`^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$`)
	// correlationID bounds what a caller may name its correlation ID.
	correlationID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
)

// CorrelationOf returns the correlation ID a request's headers name: a
// traceparent's trace ID (all-zero is invalid in the standard), else an
// Oms-Correlation-Id of at most 64 characters from [A-Za-z0-9._:-], else
// a new one. get reads one header.
func CorrelationOf(get func(string) string) string {
	if id := CorrelationIn(get); id != "" {
		return id
	}
	return NewCorrelation()
}

// CorrelationIn is CorrelationOf without the new one: "" when the headers
// name none (a provider that echoes nothing).
func CorrelationIn(get func(string) string) string {
	if m := traceParent.FindStringSubmatch(get(TraceParentHeader)); m != nil && m[1] != "00000000000000000000000000000000" {
		return m[1]
	}
	if id := get(CorrelationHeader); correlationID.MatchString(id) {
		return id
	}
	return ""
}

// NewCorrelation returns a fresh correlation ID, usable as a W3C trace ID.
func NewCorrelation() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// TraceParent returns a traceparent header continuing the trace whose ID
// is id with a new span, or "" when id is not a trace ID (a caller's own
// Oms-Correlation-Id).
func TraceParent(id string) string {
	if len(id) != 32 {
		return ""
	}
	if _, err := hex.DecodeString(id); err != nil {
		return ""
	}
	var span [8]byte
	_, _ = rand.Read(span[:])
	return "00-" + id + "-" + hex.EncodeToString(span[:]) + "-01"
}

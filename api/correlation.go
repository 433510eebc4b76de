package api

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	mathrand "math/rand/v2"

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

// Both are read from every message oms handles, so they are checked by
// hand rather than by regular expressions (a tenth of the cost; the
// expressions are the tests' specification):
//   - traceparent, W3C Trace Context: version-traceid-spanid-flags,
//     ^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$;
//   - what a caller may name its own correlation ID: ^[A-Za-z0-9._:-]{1,64}$.
const traceParentLength = 55

// parseTraceParent returns a traceparent's trace ID and flags.
func parseTraceParent(tp string) (traceID string, flags byte, ok bool) {
	if len(tp) != traceParentLength || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return "", 0, false
	}
	for i := range len(tp) {
		if i != 2 && i != 35 && i != 52 && !lowerHex(tp[i]) {
			return "", 0, false
		}
	}
	return tp[3:35], unhex(tp[53])<<4 | unhex(tp[54]), true
}

func lowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// isTraceID says whether id is a valid W3C trace ID: 32 lowercase hex
// digits, not all zero.
func isTraceID(id string) bool {
	if len(id) != 32 || id == zeroTraceID {
		return false
	}
	for i := range len(id) {
		if !lowerHex(id[i]) {
			return false
		}
	}
	return true
}

const zeroTraceID = "00000000000000000000000000000000"

func validCorrelationID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := range len(id) {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

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
	if trace, flags, ok := parseTraceParent(get(TraceParentHeader)); ok && trace != zeroTraceID {
		return trace, flags&1 == 1
	}
	if id := get(CorrelationHeader); validCorrelationID(id) {
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
//
// The span ID needs to be unique, not secret: it comes from math/rand/v2's
// generator (seeded by the runtime), as OpenTelemetry's SDK makes its
// own, saving a system call per message.
func TraceParent(id string, sampled bool) string {
	if !isTraceID(id) {
		return ""
	}
	span := mathrand.Uint64()
	for span == 0 { // all-zero is invalid
		span = mathrand.Uint64()
	}
	var tp [traceParentLength]byte
	b := append(append(append(tp[:0], "00-"...), id...), '-')
	b = hex.AppendEncode(b, binary.BigEndian.AppendUint64(nil, span))
	if sampled {
		b = append(b, "-01"...)
	} else {
		b = append(b, "-00"...)
	}
	return string(b)
}

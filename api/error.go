package api

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/order"
)

// ErrUnavailable is the cause of every "try again later" answer: a full
// mailbox, a node shutting down, too many requests in flight. Packages
// below the API wrap it so that every transport answers 503.
var ErrUnavailable = errors.New("temporarily unavailable")

// The edge's refusals: no (valid) credentials, credentials that do not
// allow the operation, and a caller over its rate.
var (
	// ErrJobNotFound answers for a job no node started (or that expired).
	ErrJobNotFound     = errors.New("job not found")
	ErrUnauthenticated = errors.New("authentication required")
	ErrForbidden       = errors.New("not allowed")
	ErrTooManyRequests = errors.New("too many requests")
)

// Kind is the class of an error as the wire carries it.
type Kind string

// The kinds of error a caller can see.
const (
	KindInvalid             Kind = "invalid"
	KindNotFound            Kind = "not_found"
	KindExists              Kind = "exists"
	KindIllegalTransition   Kind = "illegal_transition"
	KindIdempotencyConflict Kind = "idempotency_conflict"
	KindPaymentMismatch     Kind = "payment_mismatch"
	KindBelowReserved       Kind = "below_reserved"
	KindNoReservation       Kind = "no_reservation"
	KindUnauthenticated     Kind = "unauthenticated"
	KindForbidden           Kind = "forbidden"
	KindRateLimited         Kind = "rate_limited"
	KindUnavailable         Kind = "unavailable"
	KindInternal            Kind = "internal"
)

// kindSpec is one row of the error table. An error is of the kind of the
// first row one of whose sentinels or causes it wraps. A remote error of
// the kind matches its sentinels with errors.Is; causes only classify (a
// remote 503 is not a context.DeadlineExceeded of the caller's).
type kindSpec struct {
	kind      Kind
	code      int
	retryable bool
	sentinels []error
	causes    []error
}

// errorTable is the one mapping of errors to kinds, codes and retries:
// micro replies, calls forwarded between nodes, the client and the
// consumers' retry decisions all go through it.
var errorTable = []kindSpec{
	{kind: KindInvalid, code: 400, sentinels: []error{order.ErrInvalid, inventory.ErrInvalid}},
	{kind: KindNotFound, code: 404, sentinels: []error{order.ErrNotFound, ErrJobNotFound}},
	{kind: KindExists, code: 409, sentinels: []error{order.ErrAlreadyExists}},
	{kind: KindIllegalTransition, code: 409, sentinels: []error{order.ErrIllegalTransition}},
	{kind: KindIdempotencyConflict, code: 409, sentinels: []error{order.ErrIdempotencyConflict}},
	{kind: KindPaymentMismatch, code: 409, sentinels: []error{order.ErrPaymentMismatch}},
	{kind: KindBelowReserved, code: 409, sentinels: []error{inventory.ErrBelowReserved}},
	{kind: KindNoReservation, code: 409, sentinels: []error{inventory.ErrNoReservation}},
	{kind: KindUnauthenticated, code: 401, sentinels: []error{ErrUnauthenticated}},
	{kind: KindForbidden, code: 403, sentinels: []error{ErrForbidden}},
	{kind: KindRateLimited, code: 429, retryable: true, sentinels: []error{ErrTooManyRequests}},
	{kind: KindUnavailable, code: 503, retryable: true, sentinels: []error{ErrUnavailable},
		causes: []error{context.DeadlineExceeded, context.Canceled, nats.ErrTimeout, nats.ErrNoResponders,
			nats.ErrConnectionClosed, nats.ErrConnectionDraining, nats.ErrDrainTimeout, natsjs.ErrNoStreamResponse,
			natsjs.ErrJetStreamNotEnabled, natsjs.ErrAsyncPublishTimeout, natsjs.ErrTooManyStalledMsgs}},
}

var internalSpec = kindSpec{kind: KindInternal, code: 500, retryable: true}

func specOf(err error) kindSpec {
	var remote *Error
	if errors.As(err, &remote) {
		return specOfKind(remote.Kind)
	}
	for _, s := range errorTable {
		for _, e := range slices.Concat(s.sentinels, s.causes) {
			if errors.Is(err, e) {
				return s
			}
		}
	}
	return internalSpec
}

func specOfKind(k Kind) kindSpec {
	for _, s := range errorTable {
		if s.kind == k {
			return s
		}
	}
	return internalSpec
}

// KindOf returns the kind of err.
func KindOf(err error) Kind { return specOf(err).kind }

// CodeOf returns the HTTP status code of err: 400, 401, 403, 404, 409, 429,
// 503 or 500.
func CodeOf(err error) int { return specOf(err).code }

// Retryable reports whether trying again may succeed: a message whose
// handling failed this way is redelivered with backoff, any other goes to
// the dead-letter stream at once. Unclassified errors are retryable.
func Retryable(err error) bool { return specOf(err).retryable }

// Error is the JSON body of an error reply (the micro error headers carry
// the same code and message) and the error value a client gets back: it
// matches the sentinels of its kind with errors.Is, so
// errors.Is(err, order.ErrNotFound) works across the wire.
type Error struct {
	Code    int    `json:"code"`
	Kind    Kind   `json:"kind,omitempty"`
	Message string `json:"message"`
	// Field names the bad field of a 400.
	Field string `json:"field,omitempty"`
	// CorrelationID finds the node's log line of an internal error.
	CorrelationID string `json:"correlationId,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Message) }

// Is matches the sentinels of e's kind.
func (e *Error) Is(target error) bool {
	s := specOfKind(e.Kind)
	if e.Kind == "" {
		s = codeSpec(e.Code)
	}
	return slices.Contains(s.sentinels, target)
}

// codeSpec classifies a reply that carries only a code (an older node, or
// the micro headers alone).
func codeSpec(code int) kindSpec {
	for _, s := range errorTable {
		if s.code == code && code != 409 {
			return s
		}
	}
	return internalSpec
}

// ErrorOf returns the wire form of err. An internal error's detail is not
// for the caller: the message says only that it happened, with the
// correlation ID under which the caller's side logs the detail.
func ErrorOf(err error, correlationID string) *Error {
	var remote *Error
	if errors.As(err, &remote) {
		return remote
	}
	s := specOf(err)
	out := &Error{Code: s.code, Kind: s.kind, Message: err.Error()}
	var ve *order.ValidationError
	if errors.As(err, &ve) {
		out.Field = ve.Field
	}
	if s.kind == KindInternal {
		out.Message = "internal error (correlation id " + correlationID + ")"
		out.CorrelationID = correlationID
	}
	return out
}

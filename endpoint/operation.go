// Package endpoint declares the operations oms serves and adapts them to
// transports. Each operation is declared once, with a typed handler; the
// adapter decodes the request, runs its Validate method (which names the
// bad field), calls the handler, and maps the error through the api error
// table, logging an internal error's detail under a correlation ID that the
// caller gets instead. nats.go/micro serves every operation on its subject;
// the HTTP edge serves the same declarations on their routes (Bind), which
// say who may call them and how the request comes from the HTTP request
// and the caller.
//
// It may import api, auth and order (whose ValidationError names a bad
// field), nothing else of oms.
package endpoint

import (
	"context"
	"log/slog"
	"time"

	"github.com/oms-project/oms/api"
)

// Operation is one request-reply operation: served over micro on its
// subject, and over HTTP on each of its routes.
type Operation interface {
	// Name is the micro endpoint's name (orders_place).
	Name() string
	// Subject is the NATS subject it is served on (oms.orders.place).
	Subject() string
	// Handle decodes data as the operation's request, validates it and
	// calls the operation.
	Handle(ctx context.Context, data []byte) (any, error)
	// Routes are where it is served over HTTP.
	Routes() []Route
}

// Op is an operation whose requests are Req and replies Resp.
type Op[Req, Resp any] struct {
	name, subject string
	fn            func(context.Context, Req) (Resp, error)
	routes        []Route
	observe       Observer
}

// Observer hears how each call of an operation ended: "ok" or the error's
// kind (api.Kind), and how long it took.
type Observer func(operation, outcome string, took time.Duration)

// observed is an operation that reports its calls.
type observed interface{ setObserver(Observer) }

// Observe makes every call of ops, by any transport, report to fn.
func Observe(ops []Operation, fn Observer) {
	for _, op := range ops {
		if o, ok := op.(observed); ok {
			o.setObserver(fn)
		}
	}
}

func (o *Op[Req, Resp]) setObserver(fn Observer) { o.observe = fn }

// validator is a request that checks itself.
type validator interface{ Validate() error }

// New declares an operation whose requests are Req and replies Resp.
func New[Req, Resp any](name, subject string, fn func(context.Context, Req) (Resp, error)) *Op[Req, Resp] {
	return &Op[Req, Resp]{name: name, subject: subject, fn: fn}
}

func (o *Op[Req, Resp]) Name() string    { return o.name }
func (o *Op[Req, Resp]) Subject() string { return o.subject }
func (o *Op[Req, Resp]) Routes() []Route { return o.routes }

func (o *Op[Req, Resp]) Handle(ctx context.Context, data []byte) (any, error) {
	var req Req
	if err := Decode(data, &req); err != nil {
		return nil, err
	}
	return o.Call(ctx, req)
}

// Call validates req and calls the operation: what every transport does
// once it has the request.
func (o *Op[Req, Resp]) Call(ctx context.Context, req Req) (resp Resp, err error) {
	if o.observe != nil {
		began := time.Now()
		defer func() {
			outcome := "ok"
			if err != nil {
				outcome = string(api.KindOf(err))
			}
			o.observe(o.name, outcome, time.Since(began))
		}()
	}
	if v, ok := any(req).(validator); ok {
		if err := v.Validate(); err != nil {
			return resp, err
		}
	}
	return o.fn(ctx, req)
}

// Decode reads a JSON request body into v, strictly (api.Decode): an
// unknown or a missing required field is a 400 naming it.
func Decode(data []byte, v any) error { return api.Decode(data, v) }

// Fault returns the wire form of err. An internal error is logged here with
// its detail, under the request's correlation ID (a fresh one outside a
// request), which the caller gets instead.
func Fault(ctx context.Context, log *slog.Logger, operation string, err error) *api.Error {
	if api.KindOf(err) != api.KindInternal {
		return api.ErrorOf(err, "")
	}
	id := Correlation(ctx)
	if id == "" {
		id = api.NewCorrelation()
	}
	log.Error("internal error", "operation", operation, "correlation_id", id, "err", err)
	return api.ErrorOf(err, id)
}

type correlationKey struct{}

type correlation struct {
	id      string
	sampled bool
}

// WithCorrelation returns ctx carrying a request's correlation ID and
// whether its trace is sampled (api.CorrelationOf its headers): the
// transports set them, the commands record them in the events they cause.
func WithCorrelation(ctx context.Context, id string, sampled bool) context.Context {
	return context.WithValue(ctx, correlationKey{}, correlation{id: id, sampled: sampled})
}

// Correlation is the correlation ID ctx carries, or "".
func Correlation(ctx context.Context) string {
	c, _ := ctx.Value(correlationKey{}).(correlation)
	return c.id
}

// Sampled reports whether the trace of the request behind ctx is sampled.
func Sampled(ctx context.Context) bool {
	c, _ := ctx.Value(correlationKey{}).(correlation)
	return c.sampled
}

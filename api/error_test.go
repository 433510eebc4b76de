package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/actors"
	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/order"
)

// TestErrorTable: every error a caller can meet has its code, kind and
// retry decision, and keeps them across the wire: a remote error decoded
// from its JSON matches the same sentinels with errors.Is.
func TestErrorTable(t *testing.T) {
	cases := []struct {
		err       error
		code      int
		kind      api.Kind
		retryable bool
		sentinel  error
	}{
		{&order.ValidationError{Field: "currency", Message: "bad"}, 400, api.KindInvalid, false, order.ErrInvalid},
		{fmt.Errorf("q: %w", inventory.ErrInvalid), 400, api.KindInvalid, false, inventory.ErrInvalid},
		{fmt.Errorf("order x: %w", order.ErrNotFound), 404, api.KindNotFound, false, order.ErrNotFound},
		{order.ErrAlreadyExists, 409, api.KindExists, false, order.ErrAlreadyExists},
		{&order.TransitionError{Action: "cancel", Status: order.StatusInTransit}, 409, api.KindIllegalTransition, false, order.ErrIllegalTransition},
		{order.ErrIdempotencyConflict, 409, api.KindIdempotencyConflict, false, order.ErrIdempotencyConflict},
		{order.ErrPaymentMismatch, 409, api.KindPaymentMismatch, false, order.ErrPaymentMismatch},
		{inventory.ErrBelowReserved, 409, api.KindBelowReserved, false, inventory.ErrBelowReserved},
		{inventory.ErrNoReservation, 409, api.KindNoReservation, false, inventory.ErrNoReservation},
		{actors.ErrBusy, 503, api.KindUnavailable, true, api.ErrUnavailable},
		{actors.ErrStopped, 503, api.KindUnavailable, true, api.ErrUnavailable},
		{endpoint.ErrBusy, 503, api.KindUnavailable, true, api.ErrUnavailable},
		{fmt.Errorf("append: %w", context.DeadlineExceeded), 503, api.KindUnavailable, true, nil},
		{fmt.Errorf("forward to n2: %w", nats.ErrTimeout), 503, api.KindUnavailable, true, nil},
		{fmt.Errorf("append to oms.events.order.x: %w", natsjs.ErrAsyncPublishTimeout), 503, api.KindUnavailable, true, nil},
		{errors.New("disk on fire"), 500, api.KindInternal, true, nil},
	}
	for _, c := range cases {
		if api.CodeOf(c.err) != c.code || api.KindOf(c.err) != c.kind || api.Retryable(c.err) != c.retryable {
			t.Errorf("%v: code %d kind %s retryable %v; want %d %s %v", c.err, api.CodeOf(c.err), api.KindOf(c.err),
				api.Retryable(c.err), c.code, c.kind, c.retryable)
		}
		data, _ := json.Marshal(api.ErrorOf(c.err, "corr-1"))
		var remote api.Error
		if err := json.Unmarshal(data, &remote); err != nil {
			t.Fatal(err)
		}
		var err error = &remote
		if api.CodeOf(err) != c.code || api.KindOf(err) != c.kind || api.Retryable(err) != c.retryable {
			t.Errorf("%v over the wire: code %d kind %s", c.err, api.CodeOf(err), api.KindOf(err))
		}
		if c.sentinel != nil && !errors.Is(err, c.sentinel) {
			t.Errorf("%v over the wire does not match %v", c.err, c.sentinel)
		}
		if errors.Is(err, order.ErrNotFound) != (c.kind == api.KindNotFound) {
			t.Errorf("%v over the wire: errors.Is(ErrNotFound) = %v", c.err, !(c.kind == api.KindNotFound))
		}
	}
}

// TestInternalErrorsKeepTheirDetail: the wire form of an internal error
// carries a correlation ID instead of its detail; a validation error names
// its field.
func TestInternalErrorsKeepTheirDetail(t *testing.T) {
	e := api.ErrorOf(errors.New("bbolt: page 7 corrupt"), "abc123")
	if e.Code != 500 || e.CorrelationID != "abc123" || e.Message != "internal error (correlation id abc123)" {
		t.Fatalf("internal: %+v", e)
	}
	v := api.ErrorOf(&order.ValidationError{Field: "items[0].quantity", Message: "must be between 1 and 10000"}, "")
	if v.Code != 400 || v.Field != "items[0].quantity" || v.Message != "items[0].quantity: must be between 1 and 10000" {
		t.Fatalf("validation: %+v", v)
	}
	// A reply with only a code (an older node, or the micro headers alone)
	// still classifies.
	if err := error(&api.Error{Code: 404, Message: "gone"}); !errors.Is(err, order.ErrNotFound) {
		t.Fatal("a bare 404 does not match order.ErrNotFound")
	}
}

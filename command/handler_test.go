package command_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/command"
	"github.com/oms-project/oms/internal/natstest"
	"github.com/oms-project/oms/order"
)

const id = "0b6f1c1e-4a8e-4c55-9d8b-3c1d7c3f0a01"

// decider records the commands it is given and answers with err.
type decider struct {
	got []order.Command
	err error
}

func (d *decider) Order(_ context.Context, cmd order.Command) (order.Order, error) {
	d.got = append(d.got, cmd)
	return order.Order{}, d.err
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func inbound(kind string, v any) natstest.Msg {
	data, _ := json.Marshal(v)
	return natstest.Msg{Subj: fmt.Sprintf("oms.inbound.3.%s.%s", kind, id), Body: data,
		At: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
}

// TestInboundTurnsProviderEventsIntoCommands: a payment and a delivery
// event become their commands, with IDs scoped by kind and the provider as
// who; an event without a time of its own takes the time it was received.
func TestInboundTurnsProviderEventsIntoCommands(t *testing.T) {
	d := &decider{}
	in := command.Inbound{Orders: d, Log: quiet}
	occurred := time.Date(2026, 11, 27, 8, 59, 0, 0, time.UTC)
	pay := api.PaymentEvent{ProviderEnvelope: api.ProviderEnvelope{ID: "evt_1", Type: order.PaymentSucceeded, OrderID: id,
		Provider: "stripe", OccurredAt: occurred}, Amount: 3998, Currency: "EUR", Reference: "pi_1", Method: "card"}
	ship := api.DeliveryEvent{ProviderEnvelope: api.ProviderEnvelope{ID: "nv-1", Type: order.DeliveryInTransit, OrderID: id,
		Provider: "ninjavan"}, TrackingNumber: "NV1"}
	for _, m := range []natstest.Msg{inbound("payments", pay), inbound("delivery", ship)} {
		if err := in.Handle(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	p, ok := d.got[0].(order.RecordPayment)
	if !ok || p.ID != "payment:evt_1" || p.By != "payment:stripe" || !p.At.Equal(occurred) || p.Amount != 3998 || p.OrderID != id {
		t.Fatalf("payment command %+v", d.got[0])
	}
	s, ok := d.got[1].(order.RecordDelivery)
	if !ok || s.ID != "delivery:nv-1" || s.By != "delivery:ninjavan" || !s.At.Equal(inbound("", nil).At) || s.TrackingNumber != "NV1" {
		t.Fatalf("delivery command %+v", d.got[1])
	}
}

// TestInboundOutcomes: a refusal the order recorded is acknowledged; an
// unknown order, a malformed event, a mismatched order ID or an unexpected
// subject are errors that are never retried; an unavailable actor is one
// that is.
func TestInboundOutcomes(t *testing.T) {
	pay := func(orderID string) api.PaymentEvent {
		return api.PaymentEvent{ProviderEnvelope: api.ProviderEnvelope{ID: "evt_1", Type: order.PaymentSucceeded,
			OrderID: orderID, Provider: "stripe"}, Amount: 1, Currency: "EUR"}
	}
	cases := []struct {
		name      string
		msg       natstest.Msg
		decided   error
		want      string // "" acknowledged, "permanent", "retry"
		wantField string
	}{
		{name: "refused and recorded", msg: inbound("payments", pay(id)),
			decided: &order.TransitionError{Action: "pay", Status: order.StatusCancelled}},
		{name: "payment mismatch recorded", msg: inbound("payments", pay(id)), decided: fmt.Errorf("x: %w", order.ErrPaymentMismatch)},
		{name: "unknown order", msg: inbound("payments", pay(id)), decided: fmt.Errorf("x: %w", order.ErrNotFound), want: "permanent"},
		{name: "reused id", msg: inbound("payments", pay(id)), decided: fmt.Errorf("x: %w", order.ErrIdempotencyConflict), want: "permanent"},
		{name: "actor unavailable", msg: inbound("payments", pay(id)), decided: fmt.Errorf("x: %w", api.ErrUnavailable), want: "retry"},
		{name: "malformed", msg: natstest.Msg{Subj: "oms.inbound.3.payments." + id, Body: []byte("{nope")}, want: "permanent", wantField: "body"},
		{name: "other order", msg: inbound("payments", pay("someone-else")), want: "permanent", wantField: "orderId"},
		{name: "unknown type", msg: inbound("payments", api.PaymentEvent{ProviderEnvelope: api.ProviderEnvelope{ID: "e",
			Type: "payment.maybe", OrderID: id}}), want: "permanent", wantField: "type"},
		{name: "unexpected subject", msg: natstest.Msg{Subj: "oms.inbound.3.refunds." + id, Body: []byte("{}")}, want: "permanent", wantField: "subject"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := command.Inbound{Orders: &decider{err: c.decided}, Log: quiet}.Handle(context.Background(), c.msg)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("want acknowledged, got %v", err)
			case c.want == "permanent" && (err == nil || api.Retryable(err)):
				t.Fatalf("want a permanent error, got %v", err)
			case c.want == "retry" && (err == nil || !api.Retryable(err)):
				t.Fatalf("want a retryable error, got %v", err)
			}
			if c.wantField != "" {
				if f := api.ErrorOf(err, "").Field; f != c.wantField {
					t.Fatalf("field %q, want %q (%v)", f, c.wantField, err)
				}
			}
		})
	}
}

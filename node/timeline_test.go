package node_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// TestCorrelationAndTimeline: a checkout's W3C traceparent names the
// correlation ID that the reply carries, every event of the order records
// (the reactor's, and the provider's, which echoes it from the request),
// and the payment request sends on; a support cancel with its own
// Oms-Correlation-Id records that one. The order's timeline shows each
// event with its cause (the API, the reactor, the provider's stored
// event), the node that appended it and its effects.
func TestCorrelationAndTimeline(t *testing.T) {
	cfg := testConfig(t.TempDir())
	h := startNode(t, cfg)
	h.setStock("TL-1", 10)
	h.startSimulator(config.Simulator{PaymentSuccessRate: 1, MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, SKUs: 1})
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	alice := h.as(endpoint.External, "alice", auth.RoleCustomer)
	status, hdr, body := alice.do(http.MethodPost, "/v1/orders", newOrder("TL-1"),
		"Idempotency-Key", "tl-1", "traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	o := decodeOrder(t, status, body)
	if got := hdr.Get(api.CorrelationHeader); got != trace {
		t.Fatalf("reply's correlation %q, want the trace ID", got)
	}
	h.waitOrder(o.ID, func(o order.Order) bool { return o.Status == order.StatusCompleted }, "completed")

	tl, err := h.c.ExplainOrder(h.ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		typ     order.EventType
		source  string
		effects []string
	}{
		{order.EventPlaced, "api", []string{"notify", "sku.reserved TL-1"}},
		{order.EventStockHeld, "reactor", []string{"payment"}},
		{order.EventPaid, "provider", []string{"delivery", "notify", "sku.committed TL-1"}},
		{order.EventShipped, "provider", []string{"notify"}},
		{order.EventCompleted, "provider", []string{"notify"}},
	}
	if len(tl.Entries) != len(want) {
		t.Fatalf("timeline %+v", tl)
	}
	for i, w := range want {
		e := tl.Entries[i]
		var kinds []string
		for _, f := range e.Effects {
			kinds = append(kinds, f.Kind)
		}
		if e.Type != string(w.typ) || e.Cause.Source != w.source || e.Correlation != trace || e.Node != cfg.NodeName ||
			strings.Join(kinds, ",") != strings.Join(w.effects, ",") {
			t.Errorf("entry %d: %+v effects %v, want %s from %s with %v, correlation %s on %s", i, e, kinds, w.typ, w.source, w.effects, trace, cfg.NodeName)
		}
		if w.source == "provider" && (e.Cause.Message == nil || e.Cause.Message.Stream != jetstream.StreamInbound) {
			t.Errorf("entry %d: provider cause without its stored event: %+v", i, e.Cause)
		}
	}
	if len(tl.ProviderEvents) != 3 {
		t.Errorf("provider events %+v, want payment, in transit, delivered", tl.ProviderEvents)
	}
	// The payment request carries the correlation on, as a traceparent too.
	outbox, err := h.js.Stream(h.ctx, jetstream.StreamOutbox)
	if err != nil {
		t.Fatal(err)
	}
	req, err := outbox.GetLastMsgForSubject(h.ctx, jetstream.PaymentRequestsPrefix+o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tp := req.Header.Get(api.TraceParentHeader); req.Header.Get(api.CorrelationHeader) != trace ||
		!strings.HasPrefix(tp, "00-"+trace+"-") || !strings.HasSuffix(tp, "-01") {
		t.Errorf("payment request headers %v, want the sampled trace continued", req.Header)
	}
	// A checkout whose trace is not sampled: nor is what its order sends.
	const unsampled = "5ce0a2f3577b34da6a3ce929d0e0e473"
	status, _, body = alice.do(http.MethodPost, "/v1/orders", newOrder("TL-1"),
		"Idempotency-Key", "tl-3", "traceparent", "00-"+unsampled+"-00f067aa0ba902b7-00")
	o3 := decodeOrder(t, status, body)
	h.waitOrder(o3.ID, func(o order.Order) bool { return o.Status == order.StatusCompleted }, "completed")
	req, err = outbox.GetLastMsgForSubject(h.ctx, jetstream.PaymentRequestsPrefix+o3.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tp := req.Header.Get(api.TraceParentHeader); !strings.HasPrefix(tp, "00-"+unsampled+"-") || !strings.HasSuffix(tp, "-00") {
		t.Errorf("unsampled checkout's payment request headers %v, want its trace continued unsampled", req.Header)
	}

	// A support cancel over NATS with its own correlation ID.
	other := h.place(placeReq("tl-2", order.Item{SKU: "TL-1", Quantity: 1, UnitPrice: 100}))
	msg := nats.NewMsg(api.SubjectOrdersCancel)
	msg.Header.Set(api.CorrelationHeader, "ticket-42")
	msg.Data = []byte(`{"id":"` + other.ID + `","reason":"duplicate","by":"support:sam"}`)
	reply, err := h.nc.RequestMsgWithContext(h.ctx, msg)
	if err != nil || reply.Header.Get(api.CorrelationHeader) != "ticket-42" {
		t.Fatalf("cancel reply %v %v", reply, err)
	}
	events := h.events(other.ID)
	cancelled := slices.IndexFunc(events, func(e order.Event) bool { return e.Type == order.EventCancelled })
	if cancelled < 0 || events[cancelled].Correlation != "ticket-42" {
		t.Errorf("cancel: %+v", events)
	}
	if events[0].Correlation == "" || events[0].Correlation == "ticket-42" {
		t.Errorf("placement over NATS without a correlation header got %q, want a fresh one", events[0].Correlation)
	}

	// Staff read it over HTTP; a customer may not.
	sam := h.as(endpoint.Internal, "sam", auth.RoleSupport)
	if status, _, body := sam.do(http.MethodGet, "/v1/orders/"+o.ID+"/timeline", nil); status != http.StatusOK || !strings.Contains(string(body), `"source":"provider"`) {
		t.Errorf("timeline over HTTP: %d %.200s", status, body)
	}
	if status, _, _ := alice.do(http.MethodGet, "/v1/orders/"+o.ID+"/timeline", nil); status != http.StatusNotFound {
		t.Errorf("customer's timeline: %d, want 404 (no such route on the external listener)", status)
	}
}

// TestStuckOrders: an order left unpaid past its service level is stuck,
// a paid one within its own is not; the list, its status filter, the
// counts and the oms_orders_stuck metric agree.
func TestStuckOrders(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Stuck = config.StuckAfter{Received: 300 * time.Millisecond, Paid: time.Hour, InTransit: time.Hour}
	h := startNode(t, cfg)
	h.setStock("ST-1", 10)
	item := order.Item{SKU: "ST-1", Quantity: 1, UnitPrice: 700}
	waiting, paid := h.place(placeReq("st-1", item)), h.place(placeReq("st-2", item))
	h.waitOrder(paid.ID, func(o order.Order) bool { return o.Reservation == order.ReservationHeld }, "held")
	h.pay(paid, "st-pay", order.PaymentSucceeded, paid.Total)
	h.waitOrder(paid.ID, func(o order.Order) bool { return o.Status == order.StatusPaid }, "paid")
	var got api.StuckOrders
	eventually(t, 10*time.Second, "the unpaid order stuck", func() (bool, string) {
		var err error
		got, err = h.c.Stuck(h.ctx, api.ListStuck{})
		return err == nil && got.Counts["order_received"] == 1, fmt.Sprintf("%+v %v", got, err)
	})
	if len(got.Orders) != 1 || got.Orders[0].ID != waiting.ID || got.Counts["order_paid"] != 0 ||
		got.ServiceLevels["order_paid"] != "1h0m0s" || got.Orders[0].Overdue == "" {
		t.Fatalf("stuck %+v", got)
	}
	if only, err := h.c.Stuck(h.ctx, api.ListStuck{Status: "order_paid"}); err != nil || len(only.Orders) != 0 {
		t.Fatalf("stuck paid: %+v %v", only, err)
	}
	if _, err := h.c.Stuck(h.ctx, api.ListStuck{Status: "order_completed"}); api.KindOf(err) != api.KindInvalid {
		t.Fatalf("stuck completed: %v, want invalid", err)
	}
	fs := scrape(t, h.as(endpoint.Internal, "prometheus", auth.RoleMonitor))
	if v, ok := sample(fs, "oms_orders_stuck", "status", "order_received"); !ok || v != 1 {
		t.Fatalf("oms_orders_stuck{order_received} = %v (%v)", v, ok)
	}
	if v, _ := sample(fs, "oms_orders_stuck", "status", "order_paid"); v != 0 {
		t.Fatalf("oms_orders_stuck{order_paid} = %v", v)
	}
}

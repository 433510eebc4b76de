package node_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/internal/natstest"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/node"
	"github.com/oms-project/oms/order"
)

// scrape reads /metrics as Prometheus would and parses it with the
// official parser.
func scrape(t *testing.T, c caller) map[string]*dto.MetricFamily {
	t.Helper()
	status, hdr, body := c.do(http.MethodGet, "/metrics", nil)
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d %s", status, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics Content-Type %q", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return families
}

// sample is the value of the family's metric whose labels include want
// (a histogram's count, a counter's or gauge's value); found is false when
// no metric matches.
func sample(families map[string]*dto.MetricFamily, name string, want ...string) (v float64, found bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// TestMetricsTellWhatHappened: after orders flow (one completed, one
// cancelled by a failed payment, one waiting) and a malformed provider
// event is dead-lettered, /metrics, parsed with Prometheus's own parser,
// counts exactly that: calls by operation and outcome, appended events by
// type, orders by status, pipelines' outcomes, dead letters by source,
// consumers (each inbound partition's), actors, partitions, the embedded
// server and the Go runtime. No label carries an order ID. Only monitor,
// support and admin tokens read it.
func TestMetricsTellWhatHappened(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	h.setStock("MET-1", 10)
	item := order.Item{SKU: "MET-1", Quantity: 1, UnitPrice: 1000}
	done, failed, waiting := h.place(placeReq("m-1", item)), h.place(placeReq("m-2", item)), h.place(placeReq("m-3", item))
	for _, o := range []order.Order{done, failed} {
		h.waitOrder(o.ID, func(o order.Order) bool { return o.Reservation == order.ReservationHeld }, "stock held")
	}
	h.pay(done, "pay-1", order.PaymentSucceeded, done.Total)
	h.waitOrder(done.ID, func(o order.Order) bool { return o.Status == order.StatusPaid }, "paid")
	h.ship(done, "ship-1", order.DeliveryInTransit)
	h.ship(done, "ship-2", order.DeliveryDelivered)
	h.pay(failed, "pay-2", order.PaymentFailed, failed.Total)
	h.waitOrder(done.ID, func(o order.Order) bool { return o.Status == order.StatusCompleted }, "completed")
	h.waitOrder(failed.ID, func(o order.Order) bool { return o.Status == order.StatusCancelled }, "cancelled")
	h.publish(jetstream.PaymentEventsPrefix+waiting.ID, json.RawMessage(`{"id":"broken"`))

	monitor := h.as(endpoint.Internal, "prometheus", auth.RoleMonitor)
	var fs map[string]*dto.MetricFamily
	eventually(t, 20*time.Second, "the read model and the dead letter in /metrics", func() (bool, string) {
		fs = scrape(t, monitor)
		completed, _ := sample(fs, "oms_orders", "status", string(order.StatusCompleted))
		cancelled, _ := sample(fs, "oms_orders", "status", string(order.StatusCancelled))
		received, _ := sample(fs, "oms_orders", "status", string(order.StatusReceived))
		// One scrape gathers the collectors one after another, so a dead
		// letter counted between two of them shows in one counter only:
		// wait for both.
		dead, _ := sample(fs, "oms_dead_letters_total", "source", "inbound")
		handled, _ := sample(fs, "oms_pipeline_messages_total", "pipeline", "inbound", "outcome", "dead_letter")
		return completed == 1 && cancelled == 1 && received == 1 && dead == 1 && handled == 1,
			fmt.Sprintf("completed %v cancelled %v received %v dead letters %v (pipeline %v)", completed, cancelled, received, dead, handled)
	})
	exact := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"oms_operation_duration_seconds", []string{"operation", "orders_place", "outcome", "ok"}, 3},
		{"oms_operation_duration_seconds", []string{"operation", "stock_set", "outcome", "ok"}, 1},
		{"oms_order_events_total", []string{"type", string(order.EventPlaced)}, 3},
		{"oms_order_events_total", []string{"type", string(order.EventStockHeld)}, 3},
		{"oms_order_events_total", []string{"type", string(order.EventPaid)}, 1},
		{"oms_order_events_total", []string{"type", string(order.EventCompleted)}, 1},
		{"oms_order_events_total", []string{"type", string(order.EventCancelled)}, 1},
		{"oms_reservations_held_orders", nil, 1},
		{"oms_reservations_overdue_orders", nil, 0},
		// 5 events of the completed order, 3 of the cancelled, 2 waiting.
		{"oms_append_duration_seconds", []string{"stream", jetstream.StreamOrders, "outcome", "ok"}, 10},
		{"oms_dead_letters_stored", []string{"source", "inbound"}, 1},
		{"oms_pipeline_messages_total", []string{"pipeline", "inbound", "outcome", "dead_letter"}, 1},
		{"oms_partitions", nil, 8},
		{"oms_partitions_owned", nil, 8},
		{"oms_cluster_members", nil, 1},
		{"oms_read_model_skipped_events", nil, 0},
	}
	for _, c := range exact {
		if got, ok := sample(fs, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	atLeast := []struct {
		name   string
		labels []string
		min    float64
	}{
		{"oms_append_duration_seconds", []string{"stream", jetstream.StreamSKUs, "outcome", "ok"}, 1},
		{"oms_pipeline_messages_total", []string{"pipeline", "reactor", "outcome", "ok"}, 10},
		{"oms_pipeline_messages_total", []string{"pipeline", "inbound", "outcome", "ok"}, 4},
		{"oms_actors_active", []string{"kind", "order"}, 1},
		{"oms_actor_activations_total", []string{"kind", "sku"}, 1},
		{"oms_nats_connections", nil, 2},
		{"oms_nats_in_messages_total", nil, 1},
		{"oms_nats_jetstream_storage_bytes", nil, 1},
		{"go_goroutines", nil, 1},
		{"process_cpu_seconds_total", nil, 0},
	}
	for _, c := range atLeast {
		if got, ok := sample(fs, c.name, c.labels...); !ok || got < c.min {
			t.Errorf("%s%v = %v (found %v), want at least %v", c.name, c.labels, got, ok, c.min)
		}
	}
	// Every consumer the pipelines read (a standalone node's one inbound
	// consumer for every partition).
	if _, ok := sample(fs, "oms_consumer_pending_messages", "consumer", jetstream.InboundAllConsumerName); !ok {
		t.Errorf("no oms_consumer_pending_messages for %s", jetstream.InboundAllConsumerName)
	}
	// The effects in process: what is queued (the last event's may still
	// be), and the floor below which every one ran.
	if _, ok := sample(fs, "oms_effects_pending_events"); !ok {
		t.Error("no oms_effects_pending_events")
	}
	if got, ok := sample(fs, "oms_effects_settled_floor"); !ok || got < 1 {
		t.Errorf("oms_effects_settled_floor = %v (found %v), want the events' last sequence", got, ok)
	}
	if lag, ok := sample(fs, "oms_read_model_lag_events"); !ok || lag != 0 {
		t.Errorf("read-model lag %v (found %v) once projected", lag, ok)
	}
	// Bounded labels: no order ID anywhere.
	for name, f := range fs {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				for _, id := range []string{done.ID, failed.ID, waiting.ID} {
					if strings.Contains(l.GetValue(), id) || l.GetName() == "order_id" {
						t.Errorf("%s carries an order's ID in label %s=%s", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	}

	// Who may read it.
	for _, c := range []struct {
		who    caller
		status int
	}{
		{caller{h: h, base: monitor.base}, http.StatusUnauthorized},
		{h.as(endpoint.Internal, "alice", auth.RoleCustomer), http.StatusForbidden},
		{h.as(endpoint.Internal, "sam", auth.RoleSupport), http.StatusOK},
		{h.as(endpoint.Internal, "ada", auth.RoleAdmin), http.StatusOK},
	} {
		status, hdr, body := c.who.do(http.MethodGet, "/metrics", nil)
		if status != c.status {
			t.Errorf("/metrics with %q: %d, want %d", c.who.token, status, c.status)
		}
		if status != http.StatusOK {
			problem(t, status, hdr, body)
		}
	}
	// The monitor token reads figures, never an order, and no profile.
	if status, _, _ := monitor.do(http.MethodGet, "/v1/orders/"+done.ID, nil); status != http.StatusForbidden {
		t.Errorf("monitor reading an order: %d, want 403", status)
	}
	if status, _, _ := monitor.do(http.MethodGet, "/debug/pprof/", nil); status != http.StatusForbidden {
		t.Errorf("monitor reading the profiler: %d, want 403", status)
	}
	if status, _, body := h.as(endpoint.Internal, "ada", auth.RoleAdmin).do(http.MethodGet, "/debug/pprof/goroutine?debug=1", nil); status != http.StatusOK || !bytes.Contains(body, []byte("goroutine profile")) {
		t.Errorf("admin reading the goroutine profile: %d %.80s", status, body)
	}
	// Nothing of it on the external listener.
	ext := h.as(endpoint.External, "prometheus", auth.RoleMonitor)
	for _, path := range []string{"/metrics", "/healthz", "/readyz", "/debug/pprof/"} {
		if status, _, _ := ext.do(http.MethodGet, path, nil); status != http.StatusNotFound {
			t.Errorf("external %s: %d, want 404", path, status)
		}
	}
}

// TestProbes: /healthz and /readyz answer without a token (a kubelet sends
// none); readiness lists its checks, and turns 503 naming the stream when
// the NATS server the node uses goes away, while the process stays alive
// and the read model's lag reads as unknown, not as 0.
func TestProbes(t *testing.T) {
	env := natstest.Start(t, natstest.Options{Partitions: 8})
	cfg := testConfig(t.TempDir())
	cfg.NatsURL = env.Server.ClientURL()
	n, err := node.Start(env.Ctx, cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Kill) // its server is gone: nothing to drain into
	h := &harness{t: t, ctx: env.Ctx, node: n}
	anyone := caller{h: h, base: "http://" + n.HTTPAddr(endpoint.Internal)}
	monitor := h.as(endpoint.Internal, "prometheus", auth.RoleMonitor)
	lagReported := func() bool {
		status, _, body := monitor.do(http.MethodGet, "/metrics", nil)
		if status != http.StatusOK || !bytes.Contains(body, []byte("\noms_read_model_applied_sequence ")) {
			t.Fatalf("/metrics: %d %.300s", status, body)
		}
		return bytes.Contains(body, []byte("\noms_read_model_lag_events "))
	}
	readiness := func() (int, node.Readiness) {
		status, _, body := anyone.do(http.MethodGet, "/readyz", nil)
		var r node.Readiness
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("/readyz: %d %s", status, body)
		}
		return status, r
	}
	if status, _, body := anyone.do(http.MethodGet, "/healthz", nil); status != http.StatusOK || !bytes.Contains(body, []byte(`"alive"`)) {
		t.Fatalf("/healthz: %d %s", status, body)
	}
	status, r := readiness()
	if status != http.StatusOK || r.Status != "ready" || len(r.Checks) != 3 {
		t.Fatalf("/readyz: %d %+v", status, r)
	}
	for _, c := range r.Checks {
		if !c.OK || c.Detail == "" {
			t.Fatalf("check %+v", c)
		}
	}
	if !lagReported() {
		t.Fatal("/metrics: no read-model lag while the stream answers")
	}

	env.Server.Shutdown()
	env.Server.WaitForShutdown()
	status, r = readiness()
	if status != http.StatusServiceUnavailable || r.Status != "not ready" || r.Checks[0].Name != "streams" || r.Checks[0].OK ||
		!strings.Contains(r.Checks[0].Detail, "does not answer") {
		t.Fatalf("/readyz without NATS: %d %+v", status, r)
	}
	// The read model still answers, but how far behind it is is not
	// known: neither readiness nor the status may call it caught up.
	if rm := r.Checks[2]; rm.Name != "read model" || rm.OK || !strings.Contains(rm.Detail, "lag is unknown") {
		t.Fatalf("/readyz read model without NATS: %+v", rm)
	}
	st, err := n.Status()
	if err != nil || st.ReadModel.StreamError == "" || st.ReadModel.Lag != 0 || st.ReadModel.Stream != 0 {
		t.Fatalf("status without NATS: %+v %v", st.ReadModel, err)
	}
	if lagReported() {
		t.Fatal("/metrics without NATS: a read-model lag it cannot know")
	}
	if status, _, body := anyone.do(http.MethodGet, "/healthz", nil); status != http.StatusOK {
		t.Fatalf("/healthz while NATS reconnects: %d %s", status, body)
	}
}

package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/actors"
	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/credentials"
	"github.com/oms-project/oms/internal/poll"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/node"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/simulator"
)

// testConfig is a node on a random loopback port with everything under dir.
func testConfig(dir string) config.Config {
	c := config.Default()
	c.DataDir = dir
	c.NatsListen = "127.0.0.1:0"
	c.Simulate = false
	c.Partitions = 8
	c.Tuning.ReactorWorkers = 8
	c.IdleTimeout = 30 * time.Second
	c.RequestTimeout = 5 * time.Second
	c.HTTP.Listen, c.HTTP.InternalListen = "127.0.0.1:0", "127.0.0.1:0"
	return c
}

func testLogger() *slog.Logger {
	if os.Getenv("OMS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type harness struct {
	t    testing.TB
	node *node.Node
	nc   *nats.Conn
	js   natsjs.JetStream
	c    *client.Client
	ctx  context.Context
}

func startNode(t testing.TB, cfg config.Config) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	n, err := node.Start(ctx, cfg, testLogger())
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	var opts []nats.Option
	if cfg.Security.NatsTLS.On() {
		opts = append(opts, nats.RootCAs(cfg.Security.NatsTLS.Cert)) // the tests' certificates sign themselves
	}
	nc, err := connectAs(n, credentials.UserNode, opts...)
	if err != nil {
		n.Stop()
		t.Fatal(err)
	}
	js, _ := natsjs.New(nc)
	h := &harness{t: t, node: n, nc: nc, js: js, c: client.New(nc), ctx: ctx}
	t.Cleanup(h.stop)
	return h
}

// connectAs connects to n as one of its NATS users: tests inject and
// inspect the streams as the node itself.
func connectAs(n *node.Node, u credentials.User, opts ...nats.Option) (*nats.Conn, error) {
	nkey, err := n.Credentials().Connect(u)
	if err != nil {
		return nil, err
	}
	return nats.Connect(n.ClientURL(), append(opts, nkey)...)
}

func (h *harness) stop() {
	h.nc.Close()
	h.node.Stop()
}

// startSimulator runs the payment and delivery simulators until the test
// ends or the returned stop is called.
func (h *harness) startSimulator(cfg config.Simulator) (stop func()) {
	h.t.Helper()
	sim, err := simulator.Start(h.ctx, h.nc, cfg, testLogger())
	if err != nil {
		h.t.Fatal(err)
	}
	stop = sync.OnceFunc(sim.Stop)
	h.t.Cleanup(stop)
	return stop
}

func placeReq(key string, items ...order.Item) api.PlaceOrder {
	return api.PlaceOrder{IdempotencyKey: key, User: "alice", NewOrder: api.NewOrder{Items: items, Currency: "EUR",
		Destination: order.Destination{Country: "DE", PostalCode: "10115", Address: "Invalidenstr. 1",
			PhoneNumber: "+49 30 1234567"}, PromotionCodes: []string{"BF26"}, Source: "web", PaymentMethod: "card"}}
}

// placeAtOnce places n orders, up to inFlight at a time, and returns
// their IDs in the order of their requests.
func (h *harness) placeAtOnce(n, inFlight int, req func(i int) api.PlaceOrder) []string {
	h.t.Helper()
	ids := make([]string, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, inFlight)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			o, err := h.c.PlaceOrder(h.ctx, req(i))
			if err != nil {
				errs <- err
				return
			}
			ids[i] = o.ID
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		h.t.Fatalf("place: %v", err)
	}
	return ids
}

func (h *harness) setStock(sku string, qty int64) {
	h.t.Helper()
	if _, err := h.c.SetStock(h.ctx, sku, qty); err != nil {
		h.t.Fatalf("set stock %s: %v", sku, err)
	}
}

func (h *harness) place(req api.PlaceOrder) order.Order {
	h.t.Helper()
	o, err := h.c.PlaceOrder(h.ctx, req)
	if err != nil {
		h.t.Fatalf("place: %v", err)
	}
	return o
}

// eventually polls cond until it holds or the deadline passes.
// eventually polls cond until it holds or the limit passes.
var eventually = poll.Until

func (h *harness) waitOrder(id string, want func(order.Order) bool, what string) order.Order {
	h.t.Helper()
	var o order.Order
	eventually(h.t, 20*time.Second, what, func() (bool, string) {
		var err error
		o, err = h.c.GetOrder(h.ctx, id)
		if err != nil {
			return false, err.Error()
		}
		return want(o), fmt.Sprintf("status %s reservation %s", o.Status, o.Reservation)
	})
	return o
}

func statusIs(s order.Status, r order.Reservation) func(order.Order) bool {
	return func(o order.Order) bool { return o.Status == s && o.Reservation == r }
}

func (h *harness) stock(sku string) (onHand, reserved, available int64) {
	h.t.Helper()
	v, err := h.c.GetStock(h.ctx, sku)
	if err != nil {
		h.t.Fatalf("stock %s: %v", sku, err)
	}
	return v.OnHand, v.Reserved, v.Available
}

func (h *harness) publish(subject string, v any) {
	h.t.Helper()
	data, _ := json.Marshal(v)
	if _, err := h.js.Publish(h.ctx, subject, data); err != nil {
		h.t.Fatalf("publish %s: %v", subject, err)
	}
}

func (h *harness) pay(o order.Order, id, kind string, amount int64) {
	h.publish(jetstream.PaymentEventsPrefix+o.ID, api.PaymentEvent{ProviderEnvelope: api.ProviderEnvelope{ID: id,
		Type: kind, OrderID: o.ID, Provider: "testpay", OccurredAt: time.Now().UTC()},
		Amount: amount, Currency: o.Currency, Reference: "ref-" + id})
}

func (h *harness) ship(o order.Order, id, kind string) {
	h.publish(jetstream.DeliveryEventsPrefix+o.ID, api.DeliveryEvent{ProviderEnvelope: api.ProviderEnvelope{ID: id,
		Type: kind, OrderID: o.ID, Provider: "testship", OccurredAt: time.Now().UTC()}, TrackingNumber: "TS-1"})
}

// skuEvent is one SKU event with the stream sequence of the message that
// carried it (a batch shares one).
type skuEvent struct {
	Seq   uint64
	Event inventory.Event
}

// skuEvents returns every event of a SKU's history, in order.
func (h *harness) skuEvents(sku string) []skuEvent {
	h.t.Helper()
	s, err := h.js.Stream(h.ctx, jetstream.StreamSKUs)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []skuEvent
	if err := actors.SKUHistory(h.ctx, s, sku, 0, func(seq uint64, e inventory.Event) error {
		out = append(out, skuEvent{Seq: seq, Event: e})
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// history returns the order's events as stored in the stream, with their
// sequences.
func (h *harness) history(id string) ([]order.Event, []uint64) {
	h.t.Helper()
	s, err := h.js.Stream(h.ctx, jetstream.StreamOrders)
	if err != nil {
		h.t.Fatal(err)
	}
	var events []order.Event
	var seqs []uint64
	if err := actors.OrderHistory(h.ctx, s, id, 0, func(seq uint64, e order.Event) error {
		events, seqs = append(events, e), append(seqs, seq)
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
	return events, seqs
}

// events returns the order's events as stored in the stream.
func (h *harness) events(id string) []order.Event {
	h.t.Helper()
	events, _ := h.history(id)
	return events
}

func countType(es []order.Event, t order.EventType) int {
	n := 0
	for _, e := range es {
		if e.Type == t {
			n++
		}
	}
	return n
}

func TestHappyPathToCompleted(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	h.setStock("SKU-A", 10)
	h.setStock("SKU-B", 5)
	// The customer's notifications are sent, not stored: listen first.
	heard := make(chan *nats.Msg, 16)
	sub, err := h.nc.ChanSubscribe(jetstream.NotificationsPrefix+"*", heard)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	o := h.place(placeReq("k1", order.Item{SKU: "SKU-A", Quantity: 2, UnitPrice: 1250}, order.Item{SKU: "SKU-B", Quantity: 1, UnitPrice: 500}))
	if o.Status != order.StatusReceived || o.Total != 3000 || o.BasketSize != 3 {
		t.Fatalf("placed: %+v", o)
	}
	o = h.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "stock held")
	if _, r, a := h.stock("SKU-A"); r != 2 || a != 8 {
		t.Fatalf("SKU-A reserved %d available %d", r, a)
	}
	h.pay(o, "p1", order.PaymentSucceeded, 3000)
	h.waitOrder(o.ID, statusIs(order.StatusPaid, order.ReservationCommitted), "paid")
	eventually(t, 10*time.Second, "stock committed", func() (bool, string) {
		on, r, _ := h.stock("SKU-A")
		return on == 8 && r == 0, fmt.Sprintf("onHand %d reserved %d", on, r)
	})
	h.ship(o, "d1", order.DeliveryInTransit)
	h.waitOrder(o.ID, statusIs(order.StatusInTransit, order.ReservationCommitted), "in transit")
	h.ship(o, "d2", order.DeliveryDelivered)
	done := h.waitOrder(o.ID, statusIs(order.StatusCompleted, order.ReservationCommitted), "completed")
	if done.DeliveryProvider != "testship" || done.PaymentInformation.Reference != "ref-p1" || len(done.ChangeHistory) != 5 {
		t.Fatalf("completed order: %+v", done)
	}
	// Side effects reached the outbox (a payment request and a delivery
	// request, each exactly once) and the customer heard of each step in
	// order, every notification naming the event it tells of.
	var told []string
	for len(told) < 4 {
		select {
		case m := <-heard:
			var n api.Notification
			if err := json.Unmarshal(m.Data, &n); err != nil || m.Subject != jetstream.NotificationsPrefix+o.ID || n.User != o.User {
				t.Fatalf("notification %s %s: %v", m.Subject, m.Data, err)
			}
			if evs := h.events(o.ID); !slices.ContainsFunc(evs, func(e order.Event) bool { return e.ID == n.CausedBy }) {
				t.Fatalf("notification %s caused by %q, no event of the order", n.Type, n.CausedBy)
			}
			told = append(told, n.Type)
		case <-time.After(10 * time.Second):
			t.Fatalf("notifications heard: %v", told)
		}
	}
	if want := []string{api.NotifyPlaced, api.NotifyPaid, api.NotifyShipped, api.NotifyDelivered}; !slices.Equal(told, want) {
		t.Fatalf("notifications %v, want %v", told, want)
	}
	if n := h.subjectCount(jetstream.StreamOutbox, jetstream.NotificationsPrefix+o.ID); n != 0 {
		t.Fatalf("%d notifications stored", n)
	}
	if n := h.subjectCount(jetstream.StreamOutbox, jetstream.PaymentRequestsPrefix+o.ID); n != 1 {
		t.Fatalf("payment requests: %d", n)
	}
	if n := h.subjectCount(jetstream.StreamOutbox, jetstream.DeliveryRequestPrefix+o.ID); n != 1 {
		t.Fatalf("delivery requests: %d", n)
	}
	// The micro service answers the same as the client helper (nats req).
	msg, err := h.nc.Request(api.SubjectOrdersGet, []byte(`{"id":"`+o.ID+`"}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got order.Order
	if err := json.Unmarshal(msg.Data, &got); err != nil || got.Status != order.StatusCompleted {
		t.Fatalf("raw get: %s %v", msg.Data, err)
	}
}

// deadLettersAbout lists, for a failing test's message, the source and
// reason of each dead letter that came from the order's own subjects.
func (h *harness) deadLettersAbout(id string) []string {
	h.t.Helper()
	s, err := h.js.Stream(h.ctx, jetstream.StreamDeadLetter)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	err = jetstream.Fold(h.ctx, s, jetstream.DeadLetterPrefix+">", 0, func(m *natsjs.RawStreamMsg) error {
		if strings.HasSuffix(m.Header.Get(jetstream.HeaderOrigSubject), "."+id) {
			out = append(out, m.Subject+": "+m.Header.Get(jetstream.HeaderReason))
		}
		return nil
	})
	if err != nil {
		out = append(out, err.Error())
	}
	return out
}

func (h *harness) subjectCount(stream, subject string) uint64 {
	h.t.Helper()
	s, err := h.js.Stream(h.ctx, stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(h.ctx, natsjs.WithSubjectFilter(subject))
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

func TestPaymentFailureCancelsAndReturnsStock(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	h.setStock("SKU-A", 3)
	o := h.place(placeReq("k-fail", order.Item{SKU: "SKU-A", Quantity: 3, UnitPrice: 100}))
	h.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	if _, _, a := h.stock("SKU-A"); a != 0 {
		t.Fatalf("available %d while held", a)
	}
	h.pay(o, "p-fail", order.PaymentFailed, 0)
	c := h.waitOrder(o.ID, statusIs(order.StatusCancelled, order.ReservationReleased), "cancelled")
	if c.CancelReason != order.CancelPaymentFailed || c.PaymentInformation.Status != "failed" {
		t.Fatalf("cancelled: %+v", c)
	}
	eventually(t, 10*time.Second, "stock back", func() (bool, string) {
		on, r, a := h.stock("SKU-A")
		return on == 3 && r == 0 && a == 3, fmt.Sprintf("onHand %d reserved %d available %d", on, r, a)
	})
}

func TestCustomerCancelAndUpdateRules(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	h.setStock("SKU-A", 10)
	// Cancel before payment: stock returns.
	o := h.place(placeReq("k-c1", order.Item{SKU: "SKU-A", Quantity: 4, UnitPrice: 100}))
	h.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	c, err := h.c.CancelOrder(h.ctx, api.CancelOrder{ID: o.ID, CancelReason: api.CancelReason{Reason: "changed my mind"}})
	if err != nil || c.Status != order.StatusCancelled || c.CancelReason != order.CancelCustomerRequest {
		t.Fatalf("cancel: %+v %v", c, err)
	}
	eventually(t, 10*time.Second, "stock released", func() (bool, string) {
		_, r, a := h.stock("SKU-A")
		return r == 0 && a == 10, fmt.Sprintf("reserved %d available %d", r, a)
	})
	// Cancelling again is an illegal transition (409).
	_, err = h.c.CancelOrder(h.ctx, api.CancelOrder{ID: o.ID})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != 409 || !errors.Is(err, order.ErrIllegalTransition) {
		t.Fatalf("second cancel: %v", err)
	}

	// Update accepted before in transit, rejected after.
	o2 := h.place(placeReq("k-u1", order.Item{SKU: "SKU-A", Quantity: 1, UnitPrice: 100}))
	h.waitOrder(o2.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	instr := "leave at the door"
	u, err := h.c.UpdateOrder(h.ctx, api.UpdateOrder{ID: o2.ID, OrderChanges: api.OrderChanges{DeliveryInstructions: &instr,
		Destination: &order.Destination{Country: "FR", PostalCode: "75001", Address: "1 Rue de Rivoli", PhoneNumber: "+33 1 23456789"}}})
	if err != nil || u.DeliveryInstructions != instr || u.Destination.Country != "FR" {
		t.Fatalf("update before transit: %+v %v", u, err)
	}
	h.pay(o2, "p-u1", order.PaymentSucceeded, 100)
	h.waitOrder(o2.ID, statusIs(order.StatusPaid, order.ReservationCommitted), "paid")
	notes := "gift"
	if _, err := h.c.UpdateOrder(h.ctx, api.UpdateOrder{ID: o2.ID, OrderChanges: api.OrderChanges{Notes: &notes}}); err != nil {
		t.Fatalf("update while paid: %v", err)
	}
	h.ship(o2, "d-u1", order.DeliveryInTransit)
	h.waitOrder(o2.ID, statusIs(order.StatusInTransit, order.ReservationCommitted), "in transit")
	_, err = h.c.UpdateOrder(h.ctx, api.UpdateOrder{ID: o2.ID, OrderChanges: api.OrderChanges{Notes: &notes}})
	if !errors.As(err, &ce) || ce.Code != 409 {
		t.Fatalf("update in transit: %v", err)
	}
	_, err = h.c.CancelOrder(h.ctx, api.CancelOrder{ID: o2.ID})
	if !errors.As(err, &ce) || ce.Code != 409 {
		t.Fatalf("cancel in transit: %v", err)
	}
	// Cancel after payment (before shipping) records a refund and restocks.
	o3 := h.place(placeReq("k-c3", order.Item{SKU: "SKU-A", Quantity: 2, UnitPrice: 700}))
	h.waitOrder(o3.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	h.pay(o3, "p-c3", order.PaymentSucceeded, 1400)
	h.waitOrder(o3.ID, statusIs(order.StatusPaid, order.ReservationCommitted), "paid")
	c3, err := h.c.CancelOrder(h.ctx, api.CancelOrder{ID: o3.ID, CancelReason: api.CancelReason{Reason: "too slow"}})
	if err != nil || c3.RefundDue != 1400 {
		t.Fatalf("cancel paid: %+v %v", c3, err)
	}
	eventually(t, 10*time.Second, "refund requested", func() (bool, string) {
		n := h.subjectCount(jetstream.StreamOutbox, jetstream.PaymentRequestsPrefix+o3.ID)
		return n == 2, fmt.Sprintf("%d payment requests", n)
	})
}

func TestDuplicatePaymentAppliesOnceAndConflictsAreDeadLettered(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	h.setStock("SKU-A", 10)
	o := h.place(placeReq("k-dup", order.Item{SKU: "SKU-A", Quantity: 1, UnitPrice: 999}))
	h.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	h.pay(o, "p-dup", order.PaymentSucceeded, 999)
	h.pay(o, "p-dup", order.PaymentSucceeded, 999)
	h.waitOrder(o.ID, statusIs(order.StatusPaid, order.ReservationCommitted), "paid")
	// A reused ID with another amount is unprocessable: dead-lettered.
	h.pay(o, "p-dup", order.PaymentSucceeded, 5)
	// Malformed JSON is dead-lettered too.
	if _, err := h.js.Publish(h.ctx, jetstream.PaymentEventsPrefix+o.ID, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "dead letters", func() (bool, string) {
		n := h.subjectCount(jetstream.StreamDeadLetter, jetstream.DeadLetterPrefix+"inbound")
		return n == 2, fmt.Sprintf("%d dead letters", n)
	})
	if n := countType(h.events(o.ID), order.EventPaid); n != 1 {
		t.Fatalf("paid events: %d", n)
	}
	// A second, different payment for a paid order is refused, recorded and refunded.
	h.pay(o, "p-second", order.PaymentSucceeded, 999)
	eventually(t, 10*time.Second, "rejection recorded", func() (bool, string) {
		n := countType(h.events(o.ID), order.EventRejected)
		return n == 1, fmt.Sprintf("%d rejections", n)
	})
	h.waitOrder(o.ID, func(got order.Order) bool { return got.Status == order.StatusPaid && got.RefundDue == 999 },
		"second payment refused and refunded")
	// Each dead letter says where it came from (the order's subject) and why.
	letters := h.deadLettersAbout(o.ID)
	if len(letters) != 2 {
		t.Fatalf("dead letters about the order: %q, want the two refused payments", letters)
	}
	for _, l := range letters {
		if !strings.HasPrefix(l, jetstream.DeadLetterPrefix+"inbound: ") || strings.HasSuffix(l, ": ") {
			t.Fatalf("dead letter %q: want its source and a reason", l)
		}
	}
}

func TestPaymentBeforeReservationHeld(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	// No stock yet: the reservation stays pending until the SKU actor answers.
	// Pay immediately after placing; the order must end paid once held,
	// or cancelled with a refund if the stock is not there.
	h.setStock("SKU-A", 5)
	o := h.place(placeReq("k-early", order.Item{SKU: "SKU-A", Quantity: 1, UnitPrice: 300}))
	h.pay(o, "p-early", order.PaymentSucceeded, 300)
	h.waitOrder(o.ID, statusIs(order.StatusPaid, order.ReservationCommitted), "paid after early payment")
	es := h.events(o.ID)
	if countType(es, order.EventPaid)+countType(es, order.EventStockHeld) < 1 {
		t.Fatalf("events: %+v", es)
	}
	// Early payment for an order whose stock is short: cancelled, refunded.
	o2 := h.place(placeReq("k-early-short", order.Item{SKU: "SKU-A", Quantity: 50, UnitPrice: 10}))
	h.pay(o2, "p-early-short", order.PaymentSucceeded, 500)
	c := h.waitOrder(o2.ID, func(o order.Order) bool { return o.Status == order.StatusCancelled }, "cancelled")
	if c.CancelReason != order.CancelStockUnavailable {
		t.Fatalf("reason %s", c.CancelReason)
	}
	eventually(t, 10*time.Second, "refund due", func() (bool, string) {
		got, _ := h.c.GetOrder(h.ctx, o2.ID)
		return got.RefundDue == 500, fmt.Sprintf("refund %d", got.RefundDue)
	})
}

func TestReservationExpiryCancelsUnpaidOrder(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.ReservationTTL = 2 * time.Second
	h := startNode(t, cfg)
	h.setStock("SKU-A", 2)
	o := h.place(placeReq("k-exp", order.Item{SKU: "SKU-A", Quantity: 2, UnitPrice: 100}))
	h.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	c := h.waitOrder(o.ID, statusIs(order.StatusCancelled, order.ReservationExpired), "expired")
	if c.CancelReason != order.CancelReservationExpired {
		t.Fatalf("reason %s", c.CancelReason)
	}
	eventually(t, 10*time.Second, "stock back", func() (bool, string) {
		_, r, a := h.stock("SKU-A")
		return r == 0 && a == 2, fmt.Sprintf("reserved %d available %d", r, a)
	})
	// A payment after expiry is refused and refunded, not applied.
	h.pay(o, "p-late", order.PaymentSucceeded, 200)
	eventually(t, 10*time.Second, "late payment refused", func() (bool, string) {
		got, _ := h.c.GetOrder(h.ctx, o.ID)
		return got.RefundDue == 200 && got.Status == order.StatusCancelled, fmt.Sprintf("%s refund %d", got.Status, got.RefundDue)
	})
}

// TestExpirySurvivesACrash: the expiry of an unpaid order is no message
// that could be lost: a node killed before the reservation's time expires
// it after its restart, from the read model's expiry index, while an
// order paid meanwhile stays paid and leaves the index.
func TestExpirySurvivesACrash(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.ReservationTTL = 4 * time.Second
	h := startNode(t, cfg)
	h.setStock("SKU-A", 10)
	paid := h.place(placeReq("k-settled", order.Item{SKU: "SKU-A", Quantity: 1, UnitPrice: 100}))
	unpaid := h.place(placeReq("k-unpaid", order.Item{SKU: "SKU-A", Quantity: 1, UnitPrice: 100}))
	h.waitOrder(paid.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	h.waitOrder(unpaid.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	h.pay(paid, "p-settled", order.PaymentSucceeded, 100)
	h.waitOrder(paid.ID, statusIs(order.StatusPaid, order.ReservationCommitted), "paid")
	if got, _ := h.c.GetOrder(h.ctx, unpaid.ID); !time.Now().Before(got.ReservationExpiresAt) {
		t.Fatalf("the test is too slow: the reservation expired at %s before the crash", got.ReservationExpiresAt)
	}
	h.node.Kill()

	h2 := startNode(t, cfg)
	c := h2.waitOrder(unpaid.ID, statusIs(order.StatusCancelled, order.ReservationExpired), "expired after the restart")
	if c.CancelReason != order.CancelReservationExpired || c.UpdatedAt.Before(c.ReservationExpiresAt) {
		t.Fatalf("expired %+v", c)
	}
	eventually(t, 10*time.Second, "stock back", func() (bool, string) {
		_, r, a := h2.stock("SKU-A")
		return r == 0 && a == 9, fmt.Sprintf("reserved %d available %d", r, a)
	})
	if got, _ := h2.c.GetOrder(h2.ctx, paid.ID); got.Status != order.StatusPaid {
		t.Fatalf("paid order after the sweep: %s", got.Status)
	}
}

func TestValidationErrorsNameTheField(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	req := placeReq("k-bad", order.Item{SKU: "SKU-A", Quantity: 0, UnitPrice: 100})
	_, err := h.c.PlaceOrder(h.ctx, req)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != 400 || !strings.Contains(ce.Message, "items[0].quantity") {
		t.Fatalf("bad quantity: %v", err)
	}
	msg, err := h.nc.Request(api.SubjectOrdersPlace, []byte(`{"user":`), 5*time.Second)
	if err != nil || msg.Header.Get("Nats-Service-Error-Code") != "400" {
		t.Fatalf("bad json: %v %v", msg, err)
	}
	_, err = h.c.GetOrder(h.ctx, "00000000-0000-4000-8000-000000000000")
	if !errors.As(err, &ce) || ce.Code != 404 || !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("unknown order: %v", err)
	}
	_, err = h.c.GetOrder(h.ctx, "not-a-uuid")
	if !errors.As(err, &ce) || ce.Code != 400 {
		t.Fatalf("bad id: %v", err)
	}
	_, err = h.c.SetStock(h.ctx, "bad sku", 1)
	if !errors.As(err, &ce) || ce.Code != 400 {
		t.Fatalf("bad sku: %v", err)
	}
	// Idempotent placement: the same key returns the same order; the same
	// key with another basket is a conflict.
	h.setStock("SKU-A", 5)
	ok := placeReq("k-idem", order.Item{SKU: "SKU-A", Quantity: 1, UnitPrice: 100})
	a, b := h.place(ok), h.place(ok)
	if a.ID != b.ID || a.ID != order.IDFor("alice", "k-idem") {
		t.Fatalf("idempotent place: %s %s", a.ID, b.ID)
	}
	other := placeReq("k-idem", order.Item{SKU: "SKU-A", Quantity: 2, UnitPrice: 100})
	_, err = h.c.PlaceOrder(h.ctx, other)
	if !errors.As(err, &ce) || ce.Code != 409 || !errors.Is(err, order.ErrIdempotencyConflict) {
		t.Fatalf("conflicting reuse: %v", err)
	}
	if n := len(h.events(a.ID)); n < 1 || countType(h.events(a.ID), order.EventPlaced) != 1 {
		t.Fatalf("placed events: %d", n)
	}
}

// TestClusterStatusOnEveryRole: a standalone node is a cluster of one that
// owns every partition; a node with only the query role answers too, owning
// none and showing only the members that heartbeat.
func TestClusterStatusOnEveryRole(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	st, err := h.c.ClusterStatus(h.ctx)
	if err != nil || len(st.Members) != 1 || st.Members[0].Name != "oms-1" || len(st.Members[0].Partitions) != 8 {
		t.Fatalf("standalone: %+v %v", st, err)
	}
	if got := h.node.OwnedPartitions(); len(got) != 8 {
		t.Fatalf("standalone pulls %v", got)
	}
	cfg := testConfig(t.TempDir())
	cfg.Roles = []string{config.RoleQuery}
	q := startNode(t, cfg)
	st, err = q.c.ClusterStatus(q.ctx)
	if err != nil || st.Node != "oms-1" || len(st.Members) != 0 || len(q.node.OwnedPartitions()) != 0 {
		t.Fatalf("query only: %+v %v", st, err)
	}
}

// TestChangedPartitionCountIsRefused: a node started on data made with
// another partition count stops at once with an error naming the data's
// count (the provider events stored under it would no longer be pulled),
// and starts again with it.
func TestChangedPartitionCountIsRefused(t *testing.T) {
	cfg := testConfig(t.TempDir())
	startNode(t, cfg).stop()
	cfg.Partitions = 16
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := node.Start(ctx, cfg, testLogger())
	if err == nil {
		n.Stop()
		t.Fatal("a node with 16 partitions started on data made with 8")
	}
	if !errors.Is(err, jetstream.ErrPartitionsChanged) || !strings.Contains(err.Error(), "--partitions 8") {
		t.Fatalf("start with 16 partitions over 8: %v", err)
	}
	cfg.Partitions = 8
	startNode(t, cfg)
}

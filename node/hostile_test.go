package node_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// TestHostileInputIsRefused: the inputs found to break or mislead a node
// are 400s naming the field, and nothing of them is stored: an unbounded
// user, currencies and countries outside the ISO lists, an order worth
// nothing, a stock count without its quantity, a misspelt field.
func TestHostileInputIsRefused(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	h.setStock("HOST-1", 10)
	before := h.streamMessages(jetstream.StreamOrders)
	place := func(edit func(*api.PlaceOrder)) error {
		r := placeReq("", order.Item{SKU: "HOST-1", Quantity: 1, UnitPrice: 100})
		edit(&r)
		_, err := h.c.PlaceOrder(h.ctx, r)
		return err
	}
	for field, edit := range map[string]func(*api.PlaceOrder){
		"user":                func(r *api.PlaceOrder) { r.User = strings.Repeat("u", 100_000) },
		"by":                  func(r *api.PlaceOrder) { r.By = strings.Repeat("b", 100_000) },
		"paymentMethod":       func(r *api.PlaceOrder) { r.PaymentMethod = strings.Repeat("p", 100_000) },
		"currency":            func(r *api.PlaceOrder) { r.Currency = "QQQ" },
		"destination.country": func(r *api.PlaceOrder) { r.Destination.Country = "XY" },
		"items":               func(r *api.PlaceOrder) { r.Items[0].UnitPrice = 0 },
	} {
		var ce *client.Error
		if err := place(edit); !errors.As(err, &ce) || ce.Code != 400 || ce.Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
	for _, c := range []struct{ subject, body, field string }{
		{api.SubjectStockSet, `{"sku":"HOST-1"}`, "quantity"},
		{api.SubjectOrdersPlace, `{"idempotencykey":"k","user":"alice"}`, "idempotencykey"},
		{api.SubjectOrdersPlace, `{"user":"alice","currency":"EUR","destination":{"country":"DE","postalCode":"1","address":"a","phoneNumber":"+49 30 1234567"},"items":[{"sku":"HOST-1","quantity":1}]}`, "items[0].unitPrice"},
		{api.SubjectOrdersCancel, `{"id":"00000000-0000-4000-8000-000000000000","reasn":"typo"}`, "reasn"},
	} {
		var e api.Error
		err := h.c.Request(h.ctx, c.subject, rawJSON(c.body), nil)
		if !errors.As(err, new(*client.Error)) {
			t.Errorf("%s %s: %v", c.subject, c.body, err)
			continue
		}
		e = *err.(*client.Error)
		if e.Code != 400 || e.Field != c.field {
			t.Errorf("%s %s: %+v, want a 400 on %s", c.subject, c.body, e, c.field)
		}
	}
	if on, _, _ := h.stock("HOST-1"); on != 10 {
		t.Fatalf("stock changed to %d", on)
	}
	// Every refusal came before any append: nothing to wait for.
	if n := h.streamMessages(jetstream.StreamOrders); n != before {
		t.Fatalf("%d order events stored by refused requests", n-before)
	}
}

// rawJSON is a request body sent as is.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// streamMessages is how many messages a stream holds.
func (h *harness) streamMessages(stream string) uint64 {
	h.t.Helper()
	s, err := h.js.Stream(h.ctx, stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Msgs
}

// TestReadModelSkipsWhatItCannotApply: events the read model cannot apply
// (a document bbolt refuses for its key's size, a payload that would panic
// the fold, bytes that are no JSON) are dead-lettered with their reason and
// skipped; the orders around them are projected, the status says how many
// were skipped, and a rebuild completes the same way.
func TestReadModelSkipsWhatItCannotApply(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	h.setStock("POISON-1", 10)
	first := h.place(placeReq("k-before", order.Item{SKU: "POISON-1", Quantity: 1, UnitPrice: 100}))
	inject := func(id string, data []byte) {
		t.Helper()
		if _, err := h.js.Publish(h.ctx, jetstream.OrderEventsPrefix+id, data); err != nil {
			t.Fatal(err)
		}
	}
	huge := order.Event{ID: "p1", Type: order.EventPlaced, V: 1, OrderID: "00000000-0000-4000-8000-00000000000a",
		Status: order.StatusReceived, Placed: &order.Placed{User: strings.Repeat("u", 100_000), Currency: "EUR",
			Items: []order.Item{{SKU: "X", Quantity: 1, UnitPrice: 1}}}}
	inject(huge.OrderID, []byte(mustJSON(huge)))
	inject(first.ID, []byte(`{"id":"u1","type":"order.updated","v":1,"orderId":"`+first.ID+`","status":"order_received"}`))
	inject("00000000-0000-4000-8000-00000000000b", []byte("not json at all"))
	after := h.place(placeReq("k-after", order.Item{SKU: "POISON-1", Quantity: 1, UnitPrice: 100}))
	check := func(what string) {
		t.Helper()
		eventually(t, 20*time.Second, what, func() (bool, string) {
			st, err := h.c.Status(h.ctx)
			return err == nil && st.ReadModel.Lag == 0 && st.ReadModel.Skipped == 3, fmt.Sprintf("%+v %v", st.ReadModel, err)
		})
		if o, err := h.c.GetOrder(h.ctx, after.ID); err != nil || o.ID != after.ID {
			t.Fatalf("%s: the order after the poison: %v", what, err)
		}
	}
	check("read model past the poison")
	if n := h.subjectCount(jetstream.StreamDeadLetter, jetstream.DeadLetterPrefix+"projection"); n != 3 {
		t.Fatalf("%d projection dead letters, want 3", n)
	}
	if _, err := h.c.Rebuild(h.ctx, api.RebuildReadModel); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	check("rebuilt read model past the poison")
}

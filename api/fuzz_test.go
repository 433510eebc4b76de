package api

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/oms-project/oms/order"
)

// validated is a request type the fuzzer decodes into.
type validated interface{ Validate() error }

// requests are the bodies every operation decodes, by the index the fuzzer
// picks them with.
var requests = []func() validated{
	func() validated { return new(PlaceOrder) },
	func() validated { return new(GetOrder) },
	func() validated { return new(CancelOrder) },
	func() validated { return new(UpdateOrder) },
	func() validated { return new(SetStock) },
	func() validated { return new(GetStock) },
	func() validated { return new(GetChanges) },
	func() validated { return new(Summary) },
	func() validated { return new(Rebuild) },
	func() validated { return new(ListDeadLetters) },
	func() validated { return new(DeadLetterAction) },
	func() validated { return new(GetJob) },
	func() validated { return new(order.Filter) },
}

// maxAccepted bounds every string a validated request may carry, and
// maxItems every list: what the fuzzer checks that "every field is
// bounded" means.
const (
	maxAccepted = order.MaxTextLength
	maxItems    = 1000
)

// FuzzDecodeRequest decodes any body into any request. Whatever Decode and
// Validate accept must be bounded in every field, and must encode to a body
// they accept again (what a client echoes back is never refused).
func FuzzDecodeRequest(f *testing.F) {
	f.Add(uint8(0), []byte(`{"idempotencyKey":"k1","user":"alice","items":[{"sku":"SKU-1","quantity":2,"unitPrice":1250}],
		"currency":"EUR","destination":{"country":"DE","postalCode":"10115","address":"Invalidenstr. 1","phoneNumber":"+49 30 1234567"},
		"promotionCodes":["BF26"],"source":"app","notes":"ring twice","paymentMethod":"card"}`))
	f.Add(uint8(1), []byte(`{"id":"0b6f1c1e-4a8e-4c55-9d8b-3c1d7c3f0a01","minVersion":12}`))
	f.Add(uint8(2), []byte(`{"id":"0b6f1c1e-4a8e-4c55-9d8b-3c1d7c3f0a01","reason":"changed my mind","by":"support:bob","commandId":"c1"}`))
	f.Add(uint8(3), []byte(`{"id":"0b6f1c1e-4a8e-4c55-9d8b-3c1d7c3f0a01","notes":"back door","reason":"customer called"}`))
	f.Add(uint8(4), []byte(`{"sku":"SKU-1","quantity":100,"by":"warehouse"}`))
	f.Add(uint8(6), []byte(`{"id":"0b6f1c1e-4a8e-4c55-9d8b-3c1d7c3f0a01","after":3,"limit":10,"waitMs":500}`))
	f.Add(uint8(10), []byte(`{"ids":[1,2,3],"source":"inbound"}`))
	f.Add(uint8(12), []byte(`{"user":"alice","status":"order_paid","limit":20,"from":"2026-11-27T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		req := requests[int(which)%len(requests)]()
		if err := Decode(data, req); err != nil {
			var ve *order.ValidationError
			if !errors.As(err, &ve) || ve.Field == "" {
				t.Fatalf("decode error %v does not name a field", err)
			}
			return
		}
		if err := req.Validate(); err != nil {
			var ve *order.ValidationError
			if !errors.As(err, &ve) || ve.Field == "" {
				t.Fatalf("validation error %v does not name a field", err)
			}
			return
		}
		bounded(t, reflect.ValueOf(req), "")
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("accepted %T does not encode: %v", req, err)
		}
		echo := requests[int(which)%len(requests)]()
		if err := Decode(again, echo); err != nil {
			t.Fatalf("accepted %T, encoded as %s, is refused: %v", req, again, err)
		}
		if err := echo.Validate(); err != nil {
			t.Fatalf("accepted %T, encoded as %s, fails validation: %v", req, again, err)
		}
	})
}

// bounded fails t if any string or list in v is longer than an accepted
// request may carry.
func bounded(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			bounded(t, v.Elem(), path)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				bounded(t, v.Field(i), path+"."+v.Type().Field(i).Name)
			}
		}
	case reflect.Slice:
		if v.Len() > maxItems {
			t.Fatalf("%s: %d items accepted", path, v.Len())
		}
		for i := range v.Len() {
			bounded(t, v.Index(i), path)
		}
	case reflect.String:
		if v.Len() > maxAccepted {
			t.Fatalf("%s: %d bytes accepted", path, v.Len())
		}
	}
}

const fuzzOrder = "0b6f1c1e-4a8e-4c55-9d8b-3c1d7c3f0a01"

// FuzzProviderCommand feeds ProviderCommand provider events, as the
// inbound consumer and the webhooks do. An accepted event must be decided
// against a placed and a paid order without panicking, and either apply
// or be refused with a domain error.
func FuzzProviderCommand(f *testing.F) {
	f.Add(true, []byte(`{"id":"evt-1","type":"payment.succeeded","orderId":"`+fuzzOrder+`","provider":"stripe","amount":3000,"currency":"EUR","reference":"pi_1"}`))
	f.Add(true, []byte(`{"id":"evt-2","type":"payment.failed","orderId":"`+fuzzOrder+`","provider":"stripe"}`))
	f.Add(false, []byte(`{"id":"d-1","type":"delivery.in_transit","orderId":"`+fuzzOrder+`","provider":"ninjavan","trackingNumber":"NV1"}`))
	f.Add(false, []byte(`{"id":"d-2","type":"delivery.delivered","orderId":"`+fuzzOrder+`","provider":"ninjavan","occurredAt":"2026-11-27T10:00:00Z"}`))
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	policy := order.Policy{ReservationTTL: 15 * time.Minute, MaxDeliveryAttempts: 2}
	states := providerStates(f, policy, at)
	f.Fuzz(func(t *testing.T, payments bool, data []byte) {
		kind := KindDelivery
		if payments {
			kind = KindPayments
		}
		cmd, err := ProviderCommand(kind, fuzzOrder, data, at, "", false)
		if err != nil {
			var ve *order.ValidationError
			if !errors.As(err, &ve) || ve.Field == "" {
				t.Fatalf("error %v does not name a field", err)
			}
			return
		}
		for _, s := range states {
			e, err := order.Decide(policy, s, cmd)
			if err != nil && !errors.Is(err, order.ErrIllegalTransition) && !errors.Is(err, order.ErrPaymentMismatch) &&
				!errors.Is(err, order.ErrInvalid) && !errors.Is(err, order.ErrAlreadyExists) {
				t.Fatalf("%T on %s: unexpected error %v", cmd, s.Order.Status, err)
			}
			if e != nil {
				_ = order.Evolve(s, *e)
			}
		}
	})
}

// providerStates are an order just placed, one whose stock is held, and
// one paid: where provider events land.
func providerStates(tb testing.TB, p order.Policy, at time.Time) []order.State {
	meta := func(id string) order.Meta { return order.Meta{ID: id, OrderID: fuzzOrder, At: at, By: "fuzz"} }
	var s order.State
	var out []order.State
	for _, c := range []order.Command{
		order.Place{Meta: meta("place"), User: "alice", Currency: "EUR",
			Items:       []order.Item{{SKU: "SKU-1", Quantity: 2, UnitPrice: 1500}},
			Destination: order.Destination{Country: "DE", PostalCode: "10115", Address: "Invalidenstr. 1", PhoneNumber: "+49 30 1234567"}},
		order.RecordStock{Meta: meta("stock"), Held: true},
		order.RecordPayment{Meta: meta("pay"), Type: order.PaymentSucceeded, Amount: 3000, Currency: "EUR", Provider: "sim"},
	} {
		e, err := order.Decide(p, s, c)
		if err != nil || e == nil {
			tb.Fatalf("%T: %v %v", c, e, err)
		}
		s = order.Evolve(s, *e)
		out = append(out, s)
	}
	return out
}

// decodedTypes are what Decode reads: every request and both provider
// events.
var decodedTypes = func() []func() any {
	out := []func() any{func() any { return new(PaymentEvent) }, func() any { return new(DeliveryEvent) }}
	for _, r := range requests {
		out = append(out, func() any { return r() })
	}
	return out
}()

// FuzzFastDecodeAgrees: whatever the fast decoder accepts, the standard
// library accepts too, with the same result; Decode relies on it to read
// with the fast one and fall back to the standard one only to say what is
// wrong.
func FuzzFastDecodeAgrees(f *testing.F) {
	for _, seed := range []string{
		`{"idempotencyKey":"k1","user":"alice","items":[{"sku":"SKU-1","quantity":2,"unitPrice":1250}],"currency":"EUR",` +
			`"destination":{"country":"DE","postalCode":"10115","address":"Invalidenstr. 1","phoneNumber":"+49 30 1234567"}}`,
		`{"user":"a","user":"b"}`, `{"User":"a"}`, `{"user":"\u00e9\ud800\xff"}`, `{"quantity":1e2}`, `{"quantity":2.0}`,
		`{"quantity":18446744073709551616}`, `{"items":null}`, `{"items":[null]}`, `null`, `[]`, `{} {}`, `{"limit":"5"}`,
		`{"id":"evt-1","type":"payment.succeeded","orderId":"` + fuzzOrder + `","provider":"stripe","amount":3000,"currency":"EUR"}`,
		`{"id":"d-2","type":"delivery.delivered","orderId":"` + fuzzOrder + `","provider":"x","occurredAt":"2026-11-27T10:00:00+01:00"}`,
		`{"from":"2026-11-27T00:00:00Z","to":"not a time"}`, `{"minVersion":-1}`, `{"ids":[1,"2"]}`,
	} {
		for i := range decodedTypes {
			f.Add(uint8(i), []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		newValue := decodedTypes[int(which)%len(decodedTypes)]
		got, want := newValue(), newValue()
		if fast.decode(data, got) != nil {
			return // read again by the standard library
		}
		if err := std.decode(data, want); err != nil {
			t.Fatalf("%T: the fast decoder accepts %q, the standard library refuses it: %v", got, data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%T from %q: fast %+v, standard %+v", got, data, got, want)
		}
	})
}

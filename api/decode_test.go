package api

import (
	"errors"
	"testing"
	"time"

	"github.com/oms-project/oms/order"
)

// TestDecodeNamesTheFirstProblem: an unknown key is named before a missing
// field, missing fields in their struct's order, nested ones by path.
func TestDecodeNamesTheFirstProblem(t *testing.T) {
	dest := `"destination":{"country":"DE","postalCode":"1","address":"a","phoneNumber":"1"}`
	cases := []struct{ body, field string }{
		{`{"user":"a","items":[],"currency":"EUR","destination":{},"colour":"red"}`, "colour"},
		{`{"items":[],"currency":"EUR"}`, "user"},
		{`{"user":"a","items":[{"sku":"S","quantity":1,"unitPrice":1,"size":"L"}],"currency":"EUR","destination":{}}`, "items[0].size"},
		{`{"user":"a","items":[{"sku":"S","quantity":1,"unitPrice":1},{"sku":"S","unitPrice":1}],"currency":"EUR",` + dest + `}`, "items[1].quantity"},
		{`{"user":"a","items":[],"currency":"EUR","destination":{"country":"DE"}}`, "destination.postalCode"},
		{`{"user":"a","items":"x","currency":"EUR",` + dest + `}`, "items"},
		{`[1]`, "body"},
		{`{"us\u0065r":"a","items":[],"currency":"EUR","destination":[]}`, "destination"},
		{`{"user":"a","items":[],"currency":"EUR",` + dest + `,"\u00e9":1}`, `"é"`},
	}
	for _, c := range cases {
		var req PlaceOrder
		err := Decode([]byte(c.body), &req)
		var ve *order.ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field {
			t.Errorf("%s: %v, want an error naming %s", c.body, err, c.field)
		}
	}
}

// BenchmarkDecode reads the bodies oms decodes per order: a placement and
// the provider events.
func BenchmarkDecode(b *testing.B) {
	place := []byte(`{"idempotencyKey":"k1","user":"alice","items":[{"sku":"SKU-1","quantity":2,"unitPrice":1250}],
		"currency":"EUR","destination":{"country":"DE","postalCode":"10115","address":"Invalidenstr. 1","phoneNumber":"+49 30 1234567"},
		"source":"app","paymentMethod":"card"}`)
	paid := []byte(`{"id":"evt-1","type":"payment.succeeded","orderId":"` + fuzzOrder + `","provider":"sim","amount":2500,"currency":"EUR","reference":"pi_1"}`)
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	b.Run("placement", func(b *testing.B) {
		for b.Loop() {
			var req PlaceOrder
			if err := Decode(place, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("provider-event", func(b *testing.B) {
		for b.Loop() {
			if _, err := ProviderCommand(KindPayments, fuzzOrder, paid, at, "", false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

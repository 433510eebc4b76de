package store

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/order"
)

// FuzzPlacementProjects is the regression for a placement the API accepted
// and the read model could not store (a user too long for an index key):
// whatever api.Decode and Validate accept, once decided, must be applied
// by the read model and then be found by its ID and by its user.
func FuzzPlacementProjects(f *testing.F) {
	f.Add([]byte(`{"user":"alice","items":[{"sku":"SKU-1","quantity":2,"unitPrice":1250}],"currency":"EUR",
		"destination":{"country":"DE","postalCode":"10115","address":"Invalidenstr. 1","phoneNumber":"+49 30 1234567"},
		"promotionCodes":["BF26","VIP"],"source":"app","notes":"ring twice"}`))
	f.Add([]byte(`{"user":"` + strings.Repeat("u", order.MaxNameLength) + `","items":[{"sku":"A","quantity":1,"unitPrice":1}],
		"currency":"JPY","destination":{"country":"JP","postalCode":"100-0001","address":"x","phoneNumber":"+81 3 1234 5678"}}`))
	db := openDB(f)
	var seq atomic.Uint64
	policy := order.Policy{ReservationTTL: 15 * time.Minute, MaxDeliveryAttempts: 2}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req api.PlaceOrder
		if api.Decode(data, &req) != nil || req.Validate() != nil {
			return
		}
		id := uuid.NewString()
		e, err := order.Decide(policy, order.State{}, req.Command(order.Meta{ID: "place:" + id, OrderID: id, At: t0, By: req.User}))
		if err != nil {
			t.Fatalf("a validated placement is refused when decided: %v", err)
		}
		if _, err := db.ApplyEvents([]AppliedEvent{{Seq: seq.Add(1), Event: *e}}); err != nil {
			t.Fatalf("the read model cannot apply an accepted placement: %v", err)
		}
		if o, ok, err := db.Order(id); err != nil || !ok || o.User != req.User {
			t.Fatalf("order %s not found after it was applied: %v %v", id, ok, err)
		}
		orders, _, err := db.ListOrders(order.Filter{User: req.User, Limit: order.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range orders {
			if o.ID == id {
				return
			}
		}
		if len(orders) < order.MaxPageSize {
			t.Fatalf("order %s of user %q is not listed", id, req.User)
		}
	})
}

// FuzzListOrders pages through a small read model with any filter and any
// cursor. A filter that validates lists only matching orders, or is
// refused for its cursor; a page's next cursor always works.
func FuzzListOrders(f *testing.F) {
	db := openDB(f)
	var batch []AppliedEvent
	for i := range 12 {
		id := uuid.NewSHA1(uuid.NameSpaceOID, []byte{byte(i)}).String()
		user := []string{"alice", "bob", "carol"}[i%3]
		at := t0.Add(time.Duration(i) * time.Minute)
		batch = append(batch, AppliedEvent{Seq: uint64(len(batch) + 1), Event: placed(id, user, at, "SKU-1", "BF26")})
		if i%2 == 0 {
			batch = append(batch, AppliedEvent{Seq: uint64(len(batch) + 1), Event: paid(id, at.Add(time.Second))})
		}
	}
	if _, err := db.ApplyEvents(batch); err != nil {
		f.Fatal(err)
	}
	first, next, err := db.ListOrders(order.Filter{Limit: 5})
	if err != nil || len(first) != 5 || next == "" {
		f.Fatalf("seeding: %d orders, next %q, %v", len(first), next, err)
	}
	f.Add("", "", "", "", next, 5, int64(0), int64(0))
	f.Add("alice", "order_paid", "SKU-1", "BF26", "", 2, t0.UnixNano(), t0.Add(time.Hour).UnixNano())
	f.Add("bob", "", "", "", "AAAAAAAAAAA", 0, int64(0), int64(0))
	f.Fuzz(func(t *testing.T, user, status, sku, promo, cursor string, limit int, from, to int64) {
		fl := order.Filter{User: user, Status: status, SKU: sku, PromotionCode: promo, Cursor: cursor, Limit: limit}
		if from != 0 {
			fl.From = time.Unix(0, from).UTC()
		}
		if to != 0 {
			fl.To = time.Unix(0, to).UTC()
		}
		if fl.Validate() != nil {
			return
		}
		for page := 0; page < 20; page++ {
			orders, next, err := db.ListOrders(fl)
			if errors.Is(err, ErrBadCursor) && page == 0 {
				return
			}
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			for _, o := range orders {
				if !fl.Matches(o) {
					t.Fatalf("page %d lists %s, which %+v does not match", page, o.ID, fl)
				}
			}
			if next == "" {
				return
			}
			fl.Cursor = next
		}
		t.Fatal("more than 20 pages of 12 orders")
	})
}

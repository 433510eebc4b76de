package node_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/credentials"
	"github.com/oms-project/oms/endpoint"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// caller is an HTTP client of one of the node's listeners with a token.
type caller struct {
	h     *harness
	base  string
	token string
}

// as is a caller of listener l with a token for principal p.
func (h *harness) as(l endpoint.Listener, sub string, role auth.Role) caller {
	h.t.Helper()
	return caller{h: h, base: "http://" + h.node.HTTPAddr(l), token: h.token(sub, role, time.Hour, "oms")}
}

func (h *harness) token(sub string, role auth.Role, ttl time.Duration, audience string) string {
	h.t.Helper()
	secret, err := h.node.Credentials().TokenSecret()
	if err != nil {
		h.t.Fatal(err)
	}
	tok, err := auth.Issue(secret, auth.Principal{Subject: sub, Role: role}, ttl, audience, "")
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// do sends a request (body: JSON of v, or the bytes given) with extra
// header pairs and returns the status, headers and body.
func (c caller) do(method, path string, v any, headers ...string) (int, http.Header, []byte) {
	c.h.t.Helper()
	var body io.Reader
	switch b := v.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(b)
	default:
		data, _ := json.Marshal(v)
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(c.h.ctx, method, c.base+path, body)
	if err != nil {
		c.h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

// problem decodes an error reply and checks it is problem+json.
func problem(t *testing.T, status int, hdr http.Header, body []byte) map[string]any {
	t.Helper()
	if ct := hdr.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%d with Content-Type %q, want application/problem+json: %s", status, ct, body)
	}
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil || p["status"] != float64(status) || p["title"] == "" {
		t.Fatalf("problem %s: %v", body, err)
	}
	return p
}

func newOrder(sku string) api.NewOrder {
	return api.NewOrder{Items: []order.Item{{SKU: sku, Quantity: 1, UnitPrice: 1999}}, Currency: "EUR",
		Destination: order.Destination{Country: "DE", PostalCode: "10115", Address: "Invalidenstr. 117, Berlin", PhoneNumber: "+49 30 1234567"}}
}

// orderOf sends a request whose reply is an order.
func (c caller) orderOf(method, path string, v any, headers ...string) order.Order {
	c.h.t.Helper()
	status, _, body := c.do(method, path, v, headers...)
	return decodeOrder(c.h.t, status, body)
}

func decodeOrder(t testing.TB, status int, body []byte) order.Order {
	t.Helper()
	var o order.Order
	if status != http.StatusOK || json.Unmarshal(body, &o) != nil || o.ID == "" {
		t.Fatalf("want an order, got %d %s", status, body)
	}
	return o
}

// TestHTTPCustomersSeeOnlyTheirOwnOrders: a customer places as itself
// (whatever the body says), reads its order with its version as ETag, and
// a retried placement finds the same order; another customer cannot read,
// list, cancel, update, poll or follow it (404, as if it did not exist);
// the customer's token opens nothing on the internal listener.
func TestHTTPCustomersSeeOnlyTheirOwnOrders(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	h.setStock("WEB-1", 100)
	alice, bob := h.as(endpoint.External, "alice", auth.RoleCustomer), h.as(endpoint.External, "bob", auth.RoleCustomer)

	status, hdr, body := alice.do(http.MethodPost, "/v1/orders", newOrder("WEB-1"), "Idempotency-Key", "checkout-42")
	o := decodeOrder(t, status, body)
	if o.User != "alice" || o.CreatedBy != "alice" || hdr.Get("ETag") != strconv.Quote(strconv.FormatUint(o.Version, 10)) {
		t.Fatalf("placed %+v, ETag %q", o, hdr.Get("ETag"))
	}
	_, _, body = alice.do(http.MethodPost, "/v1/orders", newOrder("WEB-1"), "Idempotency-Key", "checkout-42")
	if again := decodeOrder(t, http.StatusOK, body); again.ID != o.ID || again.ID != order.IDFor("alice", "checkout-42") {
		t.Fatalf("retried placement: %s, first %s", again.ID, o.ID)
	}
	got := alice.orderOf(http.MethodGet, "/v1/orders/"+o.ID+"?minVersion="+strconv.FormatUint(o.Version, 10), nil)
	if got.ID != o.ID {
		t.Fatalf("get: %+v", got)
	}
	_, _, body = bob.do(http.MethodPost, "/v1/orders", newOrder("WEB-1"))
	bobs := decodeOrder(t, http.StatusOK, body)

	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/v1/orders/" + o.ID},
		{http.MethodPost, "/v1/orders/" + o.ID + "/cancel"},
		{http.MethodPatch, "/v1/orders/" + o.ID},
		{http.MethodGet, "/v1/orders/" + o.ID + "/changes"},
		{http.MethodGet, "/v1/orders/" + o.ID + "/events"},
	} {
		var v any
		if r.method == http.MethodPatch {
			v = map[string]string{"notes": "mine now"}
		}
		status, hdr, body := bob.do(r.method, r.path, v)
		if p := problem(t, status, hdr, body); status != http.StatusNotFound || p["kind"] != string(api.KindNotFound) {
			t.Fatalf("bob %s %s: %d %s", r.method, r.path, status, body)
		}
	}
	// Lists come from the read model, which may be a moment behind.
	eventually(t, 10*time.Second, "bob lists his order, and only his", func() (bool, string) {
		var page api.OrderPage
		_, _, body := bob.do(http.MethodGet, "/v1/orders?user=alice", nil)
		if err := json.Unmarshal(body, &page); err != nil || len(page.Orders) > 1 {
			t.Fatalf("bob's list: %s", body)
		}
		return len(page.Orders) == 1 && page.Orders[0].ID == bobs.ID, string(body)
	})
	// Alice still has her order, untouched by bob.
	if es := h.events(o.ID); countType(es, order.EventUpdated)+countType(es, order.EventCancelled) != 0 {
		t.Fatalf("bob changed alice's order: %v", es)
	}
	notes := "ring twice"
	updated := alice.orderOf(http.MethodPatch, "/v1/orders/"+o.ID, api.OrderChanges{Notes: &notes})
	if updated.Notes != notes || updated.UpdatedBy[len(updated.UpdatedBy)-1] != "alice" {
		t.Fatalf("update: %+v", updated)
	}
	cancelled := alice.orderOf(http.MethodPost, "/v1/orders/"+o.ID+"/cancel", api.CancelReason{Reason: "ordered twice"})
	if cancelled.Status != order.StatusCancelled || cancelled.CancelReason != order.CancelCustomerRequest {
		t.Fatalf("cancel: %+v", cancelled)
	}
	// A customer's token opens nothing on the internal listener.
	inside := caller{h: h, base: "http://" + h.node.HTTPAddr(endpoint.Internal), token: alice.token}
	if status, hdr, body := inside.do(http.MethodGet, "/v1/orders/"+o.ID, nil); status != http.StatusForbidden {
		t.Fatalf("customer on the internal listener: %d %s", status, body)
	} else {
		problem(t, status, hdr, body)
	}
}

// TestHTTPValidationNamesTheField: a bad field, an unknown one and
// malformed JSON are 400s naming the field, as over NATS.
func TestHTTPValidationNamesTheField(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	alice := h.as(endpoint.External, "alice", auth.RoleCustomer)
	bad := newOrder("WEB-1")
	bad.Items[0].Quantity = 0
	for _, c := range []struct {
		name  string
		body  any
		field string
	}{
		{"quantity", bad, "items[0].quantity"},
		{"unknown field", []byte(`{"items":[{"sku":"A","quantity":1,"unitPrice":1}],"currency":"EUR","destination":{"country":"DE","postalCode":"1","address":"a","phoneNumber":"+49 30 1234567"},"idempotencykey":"x"}`), "idempotencykey"},
		{"malformed", []byte(`{"items":`), "body"},
		{"missing destination", []byte(`{"items":[{"sku":"A","quantity":1,"unitPrice":1}],"currency":"EUR"}`), "destination"},
	} {
		status, hdr, body := alice.do(http.MethodPost, "/v1/orders", c.body)
		p := problem(t, status, hdr, body)
		if status != http.StatusBadRequest || p["kind"] != string(api.KindInvalid) || !strings.Contains(fmt.Sprint(p["field"], p["detail"]), c.field) {
			t.Errorf("%s: %d %s", c.name, status, body)
		}
	}
	if status, hdr, body := alice.do(http.MethodGet, "/v1/orders/not-a-uuid", nil); status != http.StatusBadRequest {
		t.Errorf("bad id: %d %s", status, body)
	} else if p := problem(t, status, hdr, body); p["field"] != "id" {
		t.Errorf("bad id names %v", p["field"])
	}
}

// TestHTTPStaffRoles: support reads every order and changes one only with
// a reason, which the audit trail keeps under the support agent's name;
// stock is the admin's; staff tokens open nothing on the external listener.
func TestHTTPStaffRoles(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	h.setStock("WEB-2", 10)
	alice := h.as(endpoint.External, "alice", auth.RoleCustomer)
	o := alice.orderOf(http.MethodPost, "/v1/orders", newOrder("WEB-2"))
	support := h.as(endpoint.Internal, "carol", auth.RoleSupport)
	admin := h.as(endpoint.Internal, "dave", auth.RoleAdmin)
	if got := support.orderOf(http.MethodGet, "/v1/orders/"+o.ID, nil); got.ID != o.ID {
		t.Fatalf("support get: %+v", got)
	}
	status, hdr, body := support.do(http.MethodPost, "/v1/orders/"+o.ID+"/cancel", nil)
	if p := problem(t, status, hdr, body); status != http.StatusBadRequest || p["field"] != "reason" {
		t.Fatalf("support cancel without a reason: %d %s", status, body)
	}
	c := support.orderOf(http.MethodPost, "/v1/orders/"+o.ID+"/cancel", api.CancelReason{Reason: "customer called"})
	last := c.ChangeHistory[len(c.ChangeHistory)-1]
	if c.Status != order.StatusCancelled || last.Who != "support:carol" || last.Why != "customer called" {
		t.Fatalf("support cancel: %+v", c)
	}
	if status, _, body := support.do(http.MethodPut, "/v1/stock/WEB-2", map[string]int{"quantity": 5}); status != http.StatusForbidden {
		t.Fatalf("support sets stock: %d %s", status, body)
	}
	status, _, body = admin.do(http.MethodPut, "/v1/stock/WEB-2", map[string]int{"quantity": 5})
	var stock map[string]any
	if status != http.StatusOK || json.Unmarshal(body, &stock) != nil || stock["onHand"] != float64(5) {
		t.Fatalf("admin sets stock: %d %s", status, body)
	}
	for _, path := range []string{"/v1/status", "/v1/analytics/summary", "/v1/analytics/promotions", "/v1/cluster", "/v1/orders"} {
		if status, _, body := support.do(http.MethodGet, path, nil); status != http.StatusOK {
			t.Errorf("support GET %s: %d %s", path, status, body)
		}
	}
	outside := caller{h: h, base: "http://" + h.node.HTTPAddr(endpoint.External), token: support.token}
	if status, _, body := outside.do(http.MethodGet, "/v1/orders/"+o.ID, nil); status != http.StatusForbidden {
		t.Fatalf("support on the external listener: %d %s", status, body)
	}
}

// TestHTTPRefusesBadTokens: no token, a malformed one, an expired one,
// one for another audience and one signed with another secret are 401s
// that say how to authenticate.
func TestHTTPRefusesBadTokens(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	other, _ := auth.Issue([]byte(strings.Repeat("x", 40)), auth.Principal{Subject: "alice", Role: auth.RoleCustomer}, time.Hour, "oms", "")
	for name, token := range map[string]string{
		"none":           "",
		"garbage":        "not.a.token",
		"expired":        h.token("alice", auth.RoleCustomer, -2*time.Minute, "oms"),
		"other audience": h.token("alice", auth.RoleCustomer, time.Hour, "someone-else"),
		"other secret":   other,
	} {
		c := caller{h: h, base: "http://" + h.node.HTTPAddr(endpoint.External), token: token}
		status, hdr, body := c.do(http.MethodGet, "/v1/orders", nil)
		p := problem(t, status, hdr, body)
		if status != http.StatusUnauthorized || p["kind"] != string(api.KindUnauthenticated) || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s token: %d %v %s", name, status, hdr, body)
		}
	}
}

// webhook posts a provider event to the external listener, signed with
// secrets at time at (no signature header when secrets is nil).
func (h *harness) webhook(kind, provider string, body []byte, at time.Time, secrets ...[]byte) (int, []byte) {
	h.t.Helper()
	c := caller{h: h, base: "http://" + h.node.HTTPAddr(endpoint.External)}
	var headers []string
	if secrets != nil {
		headers = append(headers, auth.SignatureHeader, auth.SignWebhook(at, body, secrets...))
	}
	status, _, reply := c.do(http.MethodPost, "/webhooks/"+kind+"/"+provider, body, headers...)
	return status, reply
}

func (h *harness) inboundMessages() uint64 { return h.streamMessages(jetstream.StreamInbound) }

// TestWebhooksAreVerified: a signed payment webhook pays the order; a
// forged, stale, unsigned one or one of an unknown provider is refused
// with 401 and stores nothing; a replay within the tolerance is taken as
// a duplicate and applied once; a second secret added to the file (a
// rotation) is honoured without a restart; a delivery webhook completes
// the order.
func TestWebhooksAreVerified(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	h.setStock("WH-1", 10)
	o := h.place(placeReq("k-webhook", order.Item{SKU: "WH-1", Quantity: 1, UnitPrice: 2500}))
	h.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	secrets, err := auth.NewWebhookSecrets(h.node.Credentials().WebhookFile())
	if err != nil {
		t.Fatal(err)
	}
	simpay := secrets.For("simpay")
	pay, _ := json.Marshal(api.PaymentEvent{ProviderEnvelope: api.ProviderEnvelope{ID: "evt_1", Type: order.PaymentSucceeded,
		OrderID: o.ID, Provider: "simpay", OccurredAt: time.Now().UTC()}, Amount: 2500, Currency: "EUR", Reference: "pi_1"})
	before := h.inboundMessages()
	for name, try := range map[string]func() (int, []byte){
		"forged": func() (int, []byte) {
			return h.webhook("payments", "simpay", pay, time.Now(), []byte("not-the-secret-at-all"))
		},
		"stale": func() (int, []byte) {
			return h.webhook("payments", "simpay", pay, time.Now().Add(-6*time.Minute), simpay...)
		},
		"from the future": func() (int, []byte) {
			return h.webhook("payments", "simpay", pay, time.Now().Add(6*time.Minute), simpay...)
		},
		"unsigned":         func() (int, []byte) { return h.webhook("payments", "simpay", pay, time.Now()) },
		"unknown provider": func() (int, []byte) { return h.webhook("payments", "stripe", pay, time.Now(), simpay...) },
		"body changed": func() (int, []byte) {
			c := caller{h: h, base: "http://" + h.node.HTTPAddr(endpoint.External)}
			status, _, body := c.do(http.MethodPost, "/webhooks/payments/simpay", bytes.Replace(pay, []byte("2500"), []byte("1"), 1),
				auth.SignatureHeader, auth.SignWebhook(time.Now(), pay, simpay...))
			return status, body
		},
	} {
		if status, body := try(); status != http.StatusUnauthorized {
			t.Errorf("%s webhook: %d %s", name, status, body)
		}
	}
	if n := h.inboundMessages(); n != before {
		t.Fatalf("refused webhooks stored %d messages", n-before)
	}
	var first, replay httpapiAccepted
	status, body := h.webhook("payments", "simpay", pay, time.Now(), simpay...)
	if status != http.StatusAccepted || json.Unmarshal(body, &first) != nil || first.Duplicate {
		t.Fatalf("signed webhook: %d %s", status, body)
	}
	status, body = h.webhook("payments", "simpay", pay, time.Now(), simpay...)
	if status != http.StatusAccepted || json.Unmarshal(body, &replay) != nil || !replay.Duplicate || replay.Seq != first.Seq {
		t.Fatalf("replayed webhook: %d %s", status, body)
	}
	h.waitOrder(o.ID, statusIs(order.StatusPaid, order.ReservationCommitted), "paid by webhook")
	if n := countType(h.events(o.ID), order.EventPaid); n != 1 {
		t.Fatalf("%d paid events", n)
	}
	// Rotation: the carrier's new secret joins the file; both are honoured.
	f, err := os.OpenFile(h.node.Credentials().WebhookFile(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "simship", "rotated-secret-0123456789abcdef")
	f.Close()
	ship := func(id, kind string, secret []byte) {
		t.Helper()
		b, _ := json.Marshal(api.DeliveryEvent{ProviderEnvelope: api.ProviderEnvelope{ID: id, Type: kind, OrderID: o.ID, Provider: "simship"},
			TrackingNumber: "SIM-1"})
		if status, body := h.webhook("delivery", "simship", b, time.Now(), secret); status != http.StatusAccepted {
			t.Fatalf("delivery webhook %s: %d %s", id, status, body)
		}
	}
	ship("d-1", order.DeliveryInTransit, secrets.For("simship")[0])
	ship("d-2", order.DeliveryDelivered, []byte("rotated-secret-0123456789abcdef"))
	h.waitOrder(o.ID, statusIs(order.StatusCompleted, order.ReservationCommitted), "completed by webhooks")
	// A verified body for another provider is refused.
	if status, body := h.webhook("payments", "simship", pay, time.Now(), secrets.For("simship")...); status != http.StatusBadRequest {
		t.Fatalf("provider mismatch: %d %s", status, body)
	}
}

// httpapiAccepted is the reply to a taken webhook.
type httpapiAccepted struct {
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
}

// sse reads an event stream until it has n events or it ends.
func sse(t *testing.T, ctx context.Context, url, token, lastEventID string, n int) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("events: %d %s", resp.StatusCode, b)
	}
	var ids []uint64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && len(ids) < n {
		if v, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			id, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("event id %q", v)
			}
			ids = append(ids, id)
		}
	}
	return ids
}

// TestEventsResumeAfterDisconnectAndRestart: an order's events stream with
// their stream sequences as ids; a client that reconnects with
// Last-Event-ID gets exactly the events after it, also from a node
// restarted in between.
func TestEventsResumeAfterDisconnectAndRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	h := startNode(t, cfg)
	h.setStock("SSE-1", 10)
	alice := h.as(endpoint.External, "alice", auth.RoleCustomer)
	o := alice.orderOf(http.MethodPost, "/v1/orders", newOrder("SSE-1"))
	h.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	url := func(h *harness) string {
		return "http://" + h.node.HTTPAddr(endpoint.External) + "/v1/orders/" + o.ID + "/events"
	}
	seen := sse(t, h.ctx, url(h), alice.token, "", 2) // placed, stock held
	h.pay(o, "p-sse", order.PaymentSucceeded, 1999)
	h.waitOrder(o.ID, statusIs(order.StatusPaid, order.ReservationCommitted), "paid")
	seen = append(seen, sse(t, h.ctx, url(h), alice.token, strconv.FormatUint(seen[len(seen)-1], 10), 1)...)

	h.stop()
	h2 := startNode(t, cfg)
	h2.ship(o, "d-sse-1", order.DeliveryInTransit)
	h2.ship(o, "d-sse-2", order.DeliveryDelivered)
	h2.waitOrder(o.ID, statusIs(order.StatusCompleted, order.ReservationCommitted), "completed")
	seen = append(seen, sse(t, h2.ctx, url(h2), alice.token, strconv.FormatUint(seen[len(seen)-1], 10), 2)...)
	_, want := h2.history(o.ID)
	if !slices.Equal(seen, want) {
		t.Fatalf("events seen %v, the order's stream %v", seen, want)
	}
}

// TestHTTPLimits: a principal over its rate gets 429 with Retry-After; a
// body over the bound is refused; with the in-flight bound reached (a long
// poll holds it) the next request gets 503 with Retry-After.
func TestHTTPLimits(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.HTTP.Rate, cfg.HTTP.Burst = 1, 3
	cfg.HTTP.MaxBody = 2 << 10
	cfg.MaxInFlight = 1
	h := startNode(t, cfg)
	alice := h.as(endpoint.External, "alice", auth.RoleCustomer)
	var last int
	var hdr http.Header
	for range 5 {
		last, hdr, _ = alice.do(http.MethodGet, "/v1/orders", nil)
	}
	if last != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d %v", last, hdr)
	}
	bob := h.as(endpoint.External, "bob", auth.RoleCustomer)
	big := newOrder("WEB-1")
	big.Notes = strings.Repeat("n", 3<<10)
	if status, _, body := bob.do(http.MethodPost, "/v1/orders", big); status != http.StatusRequestEntityTooLarge {
		t.Fatalf("large body: %d %s", status, body)
	}
	o := h.place(placeReq("k-limit", order.Item{SKU: "WEB-1", Quantity: 1, UnitPrice: 1}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Carol's request may hold the only slot when the long poll
		// arrives: then it is refused at once, and takes the slot again.
		for range 50 {
			_, err := h.c.Changes(h.ctx, api.GetChanges{ID: o.ID, After: o.Version + 100, WaitMs: 6000})
			if api.CodeOf(err) != http.StatusServiceUnavailable {
				return
			}
		}
	}()
	carol := h.as(endpoint.Internal, "carol", auth.RoleSupport)
	// Carol's rate allows a try a second once her burst is spent: give her
	// most of the poll's wait.
	eventually(t, 5*time.Second, "503 while the long poll holds the only slot", func() (bool, string) {
		status, hdr, body := carol.do(http.MethodGet, "/v1/status", nil)
		return status == http.StatusServiceUnavailable && hdr.Get("Retry-After") != "", fmt.Sprint(status, string(body))
	})
	<-done
}

// TestOpenAPIDocumentsEveryRoute: each listener's /openapi.json is a valid
// OpenAPI 3.1 document to an independent validator, it has every route the
// operations declare (and the event stream and the webhooks), and real
// replies match the schemas it gives them.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	h.setStock("DOC-1", 10)
	for _, l := range []endpoint.Listener{endpoint.External, endpoint.Internal} {
		c := caller{h: h, base: "http://" + h.node.HTTPAddr(l)}
		status, _, spec := c.do(http.MethodGet, "/openapi.json", nil)
		if status != http.StatusOK {
			t.Fatalf("openapi.json: %d", status)
		}
		doc, err := libopenapi.NewDocument(spec)
		if err != nil {
			t.Fatal(err)
		}
		v, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			t.Fatalf("validator: %v", errs)
		}
		if ok, verrs := v.ValidateDocument(); !ok {
			for _, e := range verrs {
				t.Errorf("listener %d: %s: %s", l, e.Message, e.Reason)
			}
			t.FailNow()
		}
		var parsed struct {
			OpenAPI string                    `json:"openapi"`
			Paths   map[string]map[string]any `json:"paths"`
		}
		if err := json.Unmarshal(spec, &parsed); err != nil || !strings.HasPrefix(parsed.OpenAPI, "3.1") {
			t.Fatalf("openapi %q: %v", parsed.OpenAPI, err)
		}
		want := map[string]bool{"GET /v1/orders/{id}/events": true}
		if l == endpoint.External {
			want["POST /webhooks/payments/{provider}"], want["POST /webhooks/delivery/{provider}"] = true, true
		}
		for _, op := range h.node.Operations() {
			for _, r := range op.Routes() {
				if r.Listener == l {
					want[r.Method+" "+r.Path] = true
				}
			}
		}
		for route := range want {
			method, path, _ := strings.Cut(route, " ")
			if parsed.Paths[path][strings.ToLower(method)] == nil {
				t.Errorf("listener %d: %s is not in /openapi.json", l, route)
			}
		}
		// A real reply matches its documented schema.
		if l == endpoint.External {
			alice := h.as(l, "alice", auth.RoleCustomer)
			req, _ := http.NewRequest(http.MethodPost, alice.base+"/v1/orders", strings.NewReader(mustJSON(newOrder("DOC-1"))))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+alice.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			req.Body = io.NopCloser(strings.NewReader(mustJSON(newOrder("DOC-1"))))
			if ok, errs := v.ValidateHttpRequestResponse(req, resp); !ok {
				for _, e := range errs {
					t.Errorf("placement against the document: %s: %s", e.Message, e.Reason)
				}
			}
		}
	}
}

func clientOf(nc *nats.Conn) *client.Client { return client.New(nc) }

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestNATSLeastPrivilege: an anonymous client is refused; the payments
// user may publish payment events but not delivery events, order events
// or the JetStream API; the storefront user may place orders but not
// delete a stream; the admin may not write order events nor change or
// delete a pipeline's consumer, but may its own.
func TestNATSLeastPrivilege(t *testing.T) {
	h := startNode(t, testConfig(t.TempDir()))
	if nc, err := nats.Connect(h.node.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("an anonymous client was let in")
	}
	violations := make(chan string, 16)
	as := func(u credentials.User) *nats.Conn {
		t.Helper()
		nc, err := connectAs(h.node, u, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			violations <- err.Error()
		}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	refused := func(nc *nats.Conn, subject string) {
		t.Helper()
		if err := nc.Publish(subject, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		select {
		case v := <-violations:
			if !strings.Contains(v, "Permissions Violation") || !strings.Contains(v, subject) {
				t.Fatalf("publish %s: %s", subject, v)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("publish %s was not refused", subject)
		}
	}
	orders := h.subjectCount(jetstream.StreamOrders, jetstream.OrderEventsPrefix+"forged")
	payments := as(credentials.UserPayments)
	refused(payments, jetstream.DeliveryEventsPrefix+"some-order")
	refused(payments, jetstream.OrderEventsPrefix+"forged")
	refused(payments, "$JS.API.STREAM.DELETE."+jetstream.StreamOrders)
	refused(payments, "$JS.API.STREAM.INFO."+jetstream.StreamOrders)
	storefront := as(credentials.UserStorefront)
	refused(storefront, "$JS.API.STREAM.DELETE."+jetstream.StreamOrders)
	refused(storefront, jetstream.PaymentEventsPrefix+"some-order")
	admin := as(credentials.UserAdmin)
	refused(admin, jetstream.OrderEventsPrefix+"forged")
	// The admin may not change a pipeline's consumer (an update is a
	// create), with or without the filter in the subject, nor delete it.
	refused(admin, "$JS.API.CONSUMER.CREATE."+jetstream.StreamOrders+"."+jetstream.ConsumerReactor)
	refused(admin, "$JS.API.CONSUMER.CREATE."+jetstream.StreamInbound+"."+jetstream.InboundAllConsumerName+".oms.inbound.>")
	refused(admin, "$JS.API.CONSUMER.DELETE."+jetstream.StreamOrders+"."+jetstream.ConsumerReactor)
	// Its own it may.
	ajs, _ := natsjs.New(admin)
	if _, err := ajs.CreateOrUpdateConsumer(h.ctx, jetstream.StreamOrders, natsjs.ConsumerConfig{Durable: "admin-replay",
		FilterSubject: jetstream.OrderEventsPrefix + ">", AckPolicy: natsjs.AckNonePolicy, MemoryStorage: true}); err != nil {
		t.Fatalf("admin creates its own consumer: %v", err)
	}
	if err := ajs.DeleteConsumer(h.ctx, jetstream.StreamOrders, "admin-replay"); err != nil {
		t.Fatalf("admin deletes its own consumer: %v", err)
	}
	if n := h.subjectCount(jetstream.StreamOrders, jetstream.OrderEventsPrefix+"forged"); n != orders {
		t.Fatalf("forged order events stored: %d", n)
	}
	if _, err := h.js.Stream(h.ctx, jetstream.StreamOrders); err != nil {
		t.Fatalf("the order stream is gone: %v", err)
	}
	// What each may do, it can.
	h.setStock("LP-1", 5)
	o, err := clientOf(storefront).PlaceOrder(h.ctx, placeReq("k-storefront", order.Item{SKU: "LP-1", Quantity: 1, UnitPrice: 100}))
	if err != nil {
		t.Fatalf("storefront places: %v", err)
	}
	// Held first, so that the order asks the provider to collect.
	h.waitOrder(o.ID, statusIs(order.StatusReceived, order.ReservationHeld), "held")
	pjs, _ := natsjs.New(payments)
	data := mustJSON(api.PaymentEvent{ProviderEnvelope: api.ProviderEnvelope{ID: "lp-1", Type: order.PaymentSucceeded,
		OrderID: o.ID, Provider: "lp"}, Amount: 100, Currency: "EUR"})
	if _, err := pjs.Publish(h.ctx, jetstream.PaymentEventsPrefix+o.ID, []byte(data)); err != nil {
		t.Fatalf("payments publishes a payment: %v", err)
	}
	h.waitOrder(o.ID, statusIs(order.StatusPaid, order.ReservationCommitted), "paid by the payments user")
	cons, err := pjs.CreateOrUpdateConsumer(h.ctx, jetstream.StreamOutbox, natsjs.ConsumerConfig{Durable: credentials.PaymentsConsumer,
		FilterSubject: jetstream.PaymentRequestsPrefix + ">", AckPolicy: natsjs.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("payments opens its consumer: %v", err)
	}
	m, err := cons.Next(natsjs.FetchMaxWait(5 * time.Second))
	if err != nil || !strings.HasPrefix(m.Subject(), jetstream.PaymentRequestsPrefix) || m.Ack() != nil {
		select {
		case v := <-violations:
			t.Fatalf("payments pulls its requests: %v (%s)", err, v)
		default:
		}
		t.Fatalf("payments pulls its requests: %v", err)
	}
	// A refused request is never answered: bound the wait.
	ctx, cancel := context.WithTimeout(h.ctx, 2*time.Second)
	defer cancel()
	if _, err := pjs.CreateOrUpdateConsumer(ctx, jetstream.StreamOutbox, natsjs.ConsumerConfig{Durable: credentials.PaymentsConsumer,
		FilterSubject: jetstream.DeliveryRequestPrefix + ">", AckPolicy: natsjs.AckExplicitPolicy}); err == nil {
		t.Fatal("payments read the delivery requests")
	}
}

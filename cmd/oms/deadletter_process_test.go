package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// TestDeadLetterTools: a payment that arrives before its order and a
// malformed one are dead-lettered; `oms dlq list` shows both with their
// reasons; once the order exists, `oms dlq retry` sends the payment back
// and it applies (a second retry is refused: it is gone); `oms dlq drop`
// deletes the malformed one; every action is recorded. An order not found
// is tried again before it is dead-lettered (a read may lag), so the test
// shortens the attempts and the backoff.
func TestDeadLetterTools(t *testing.T) {
	p := startProcess(t, t.TempDir(), "--max-attempts", "3", "--retry-base", "20ms", "--retry-max", "100ms")
	_, cl, js := connect(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := order.IDFor("dana", "k-dlq")
	pay, _ := json.Marshal(api.PaymentEvent{ProviderEnvelope: api.ProviderEnvelope{ID: "early", Type: order.PaymentSucceeded,
		OrderID: id, Provider: "psp"}, Amount: 500, Currency: "EUR", Reference: "r"})
	early0 := nats.NewMsg(jetstream.PaymentEventsPrefix + id)
	early0.Data = pay
	early0.Header.Set(api.CorrelationHeader, "checkout-7")
	if _, err := js.PublishMsg(ctx, early0); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, jetstream.PaymentEventsPrefix+id, []byte(`{"id":"bad","type":"payment.succeeded"`)); err != nil {
		t.Fatal(err)
	}
	list := func() []api.DeadLetter {
		var page api.DeadLetterPage
		if err := json.Unmarshal([]byte(omsCLI(t, p, "dlq", "list", "--json")), &page); err != nil {
			t.Fatal(err)
		}
		return page.DeadLetters
	}
	var dls []api.DeadLetter
	eventually(t, 20*time.Second, "two dead letters", func() (bool, string) {
		dls = list()
		return len(dls) == 2, fmt.Sprint(dls)
	})
	var early, bad api.DeadLetter
	for _, d := range dls {
		if d.Source != "inbound" || !strings.HasPrefix(d.Subject, jetstream.InboundPrefix) || d.Reason == "" {
			t.Fatalf("dead letter %+v", d)
		}
		if strings.Contains(d.Reason, "not found") {
			early = d
		} else {
			bad = d
		}
	}
	if early.ID == 0 || bad.ID == 0 || !strings.Contains(bad.Reason, "JSON") {
		t.Fatalf("dead letters %+v", dls)
	}
	if got := early.Headers[api.CorrelationHeader]; len(got) != 1 || got[0] != "checkout-7" {
		t.Fatalf("the early payment's dead letter has headers %v, want its correlation", early.Headers)
	}
	if table := omsCLI(t, p, "dlq", "list"); !strings.Contains(table, "REASON") || !strings.Contains(table, "not found") {
		t.Fatalf("table:\n%s", table)
	}
	if _, err := cl.SetStock(ctx, "DLQ-1", 5); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PlaceOrder(ctx, api.PlaceOrder{IdempotencyKey: "k-dlq", User: "dana", NewOrder: api.NewOrder{Currency: "EUR",
		Items:       []order.Item{{SKU: "DLQ-1", Quantity: 1, UnitPrice: 500}},
		Destination: order.Destination{Country: "DE", PostalCode: "1", Address: "a", PhoneNumber: "+49 30 1234567"}}}); err != nil {
		t.Fatal(err)
	}
	var out api.DeadLetterOutcomes
	if err := json.Unmarshal([]byte(omsCLI(t, p, "dlq", "retry", fmt.Sprint(early.ID))), &out); err != nil ||
		len(out.Outcomes) != 1 || out.Outcomes[0].Action != "retried" || out.Outcomes[0].To != jetstream.PaymentEventsPrefix+id {
		t.Fatalf("retry: %+v %v", out, err)
	}
	eventually(t, 20*time.Second, "the retried payment applied", func() (bool, string) {
		o, err := cl.GetOrder(ctx, id)
		return err == nil && o.Status == order.StatusPaid, fmt.Sprint(o.Status, err)
	})
	// It went back with its correlation.
	inbound, err := js.Stream(ctx, jetstream.StreamInbound)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := inbound.GetLastMsgForSubject(ctx, early.Subject); err != nil || again.Header.Get(api.CorrelationHeader) != "checkout-7" {
		t.Fatalf("the retried payment: %v, headers %v", err, again)
	}
	if err := json.Unmarshal([]byte(omsCLI(t, p, "dlq", "retry", fmt.Sprint(early.ID))), &out); err != nil || out.Outcomes[0].Action != "refused" {
		t.Fatalf("second retry: %+v %v", out, err)
	}
	if err := json.Unmarshal([]byte(omsCLI(t, p, "dlq", "drop", fmt.Sprint(bad.ID))), &out); err != nil || out.Outcomes[0].Action != "dropped" {
		t.Fatalf("drop: %+v %v", out, err)
	}
	if left := list(); len(left) != 0 {
		t.Fatalf("left: %+v", left)
	}
	// Each action is in the dead-letter stream's log.
	s, err := js.Stream(ctx, jetstream.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 { // three actions, no dead letter left
		t.Fatalf("%d messages in the dead-letter stream, want the 3 recorded actions", info.State.Msgs)
	}
}

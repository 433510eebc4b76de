package query

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// maxSKUScan bounds how far a SKU's history is read for one order's stock
// effects: a hot SKU holds every order's reservations.
const maxSKUScan = 10_000

// errScanned ends a bounded SKU scan.
var errScanned = errors.New("scanned enough")

// explain builds an order's causal timeline from the streams alone: its
// events (with the node that appended each and its correlation ID), the
// provider events stored for it, the provider requests its events caused
// (matched by their Nats-Msg-Id, which names the causing event), the
// notifications they sent, and its SKU events. It reads what the
// transport streams still keep; the order's own events are kept forever.
func (q *Queries) explain(ctx context.Context, req api.ExplainOrder) (api.Timeline, error) {
	tl := api.Timeline{OrderID: req.ID, Entries: []api.TimelineEntry{}, ProviderEvents: []api.StoredMessage{}}
	byEvent := map[string]int{} // event ID → entry
	var placed *order.Placed
	var events []order.Event
	err := jetstream.Fold(ctx, q.d.Stream, jetstream.OrderEventsPrefix+req.ID, 0, func(m *natsjs.RawStreamMsg) error {
		e, err := order.DecodeEvent(m.Data)
		if err != nil {
			tl.Notes = append(tl.Notes, fmt.Sprintf("event at sequence %d unreadable: %v", m.Sequence, err))
			return nil
		}
		if e.Placed != nil {
			placed = e.Placed
		}
		byEvent[e.ID] = len(tl.Entries)
		events = append(events, e)
		tl.Entries = append(tl.Entries, api.TimelineEntry{Sequence: m.Sequence, At: e.At, Type: string(e.Type),
			Status: string(e.Status), By: e.By, Node: m.Header.Get(api.NodeHeader), Correlation: e.Correlation,
			Cause: causeOf(e.CauseID), Effects: []api.Effect{}})
		return nil
	})
	if err != nil {
		return tl, err
	}
	if len(tl.Entries) == 0 {
		return tl, fmt.Errorf("order %s: %w", req.ID, order.ErrNotFound)
	}
	js := q.d.JS
	// Provider events, linked to the events they caused.
	if inbound, err := js.Stream(ctx, jetstream.StreamInbound); err == nil {
		err := jetstream.Fold(ctx, inbound, jetstream.InboundPrefix+"*.*."+req.ID, 0, func(m *natsjs.RawStreamMsg) error {
			tok := strings.Split(m.Subject, ".")
			var env api.ProviderEnvelope
			_ = json.Unmarshal(m.Data, &env)
			sm := api.StoredMessage{Stream: jetstream.StreamInbound, Subject: m.Subject, Seq: m.Sequence, At: m.Time, ID: env.ID}
			tl.ProviderEvents = append(tl.ProviderEvents, sm)
			kind := "payment"
			if len(tok) > 3 && tok[3] == "delivery" {
				kind = "delivery"
			}
			for i := range tl.Entries {
				if c := &tl.Entries[i].Cause; c.Source == "provider" && c.ID == kind+":"+env.ID && c.Message == nil {
					c.Message = &sm
				}
			}
			return nil
		})
		if err != nil {
			tl.Notes = append(tl.Notes, "provider events unreadable: "+err.Error())
		}
	}
	// Requests to the providers.
	effect := func(stream, subject string, kindOf func(msgID string) (eventID, kind string)) {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			tl.Notes = append(tl.Notes, stream+" unreadable: "+err.Error())
			return
		}
		err = jetstream.Fold(ctx, s, subject, 0, func(m *natsjs.RawStreamMsg) error {
			eventID, kind := kindOf(m.Header.Get(nats.MsgIdHdr))
			if i, ok := byEvent[eventID]; ok {
				tl.Entries[i].Effects = append(tl.Entries[i].Effects, api.Effect{Kind: kind, Stream: stream,
					Subject: m.Subject, Seq: m.Sequence, At: m.Time})
			}
			return nil
		})
		if err != nil {
			tl.Notes = append(tl.Notes, subject+" unreadable: "+err.Error())
		}
	}
	byMsgID := func(msgID string) (string, string) {
		i := strings.LastIndexByte(msgID, ':')
		if i < 0 {
			return "", ""
		}
		return msgID[:i], msgID[i+1:]
	}
	for _, prefix := range []string{jetstream.PaymentRequestsPrefix, jetstream.DeliveryRequestPrefix} {
		effect(jetstream.StreamOutbox, prefix+req.ID, byMsgID)
	}
	// Notifications are sent, not stored: each event's is known from it.
	for i, e := range events {
		if api.NotificationType(e) != "" {
			tl.Entries[i].Effects = append(tl.Entries[i].Effects, api.Effect{Kind: "notify",
				Subject: jetstream.NotificationsPrefix + req.ID, At: e.At})
		}
	}
	if placed != nil {
		q.stockEffects(ctx, &tl, events, placed)
	}
	tl.Notes = append(tl.Notes, "provider events and requests are kept for the transport retention (--transport-max-age); notifications are not stored")
	return tl, nil
}

// stockEffects adds the order's SKU events to the events that caused them:
// a reservation to the placement, a commit to the payment, a release to
// the cancellation that released the stock.
func (q *Queries) stockEffects(ctx context.Context, tl *api.Timeline, events []order.Event, placed *order.Placed) {
	causeOf := func(t inventory.EventType) int {
		want := map[inventory.EventType][]order.EventType{
			inventory.EventReserved:  {order.EventPlaced},
			inventory.EventRejected:  {order.EventPlaced},
			inventory.EventCommitted: {order.EventPaid},
			inventory.EventReleased:  {order.EventCancelled, order.EventDeliveryAttemptFailed},
		}[t]
		for i := len(events) - 1; i >= 0; i-- {
			if slices.Contains(want, events[i].Type) {
				return i
			}
		}
		return -1
	}
	var skus []string
	for _, it := range placed.Items {
		if !slices.Contains(skus, it.SKU) {
			skus = append(skus, it.SKU)
		}
	}
	since := events[0].At.Add(-time.Minute)
	for _, sku := range skus {
		scanned := 0
		_, err := jetstream.Replay(ctx, q.d.JS, jetstream.ReplayOptions{Stream: jetstream.StreamSKUs,
			Subject: jetstream.SKUEventsPrefix + sku, Since: since}, func(m natsjs.Msg, md *natsjs.MsgMetadata) error {
			if scanned++; scanned > maxSKUScan {
				tl.Notes = append(tl.Notes, fmt.Sprintf("SKU %s: only its first %d events since the placement were searched", sku, maxSKUScan))
				return errScanned
			}
			evs, err := inventory.DecodeEvents(m.Data())
			if err != nil {
				return nil
			}
			for _, ev := range evs {
				if ev.OrderID != tl.OrderID {
					continue
				}
				if i := causeOf(ev.Type); i >= 0 {
					tl.Entries[i].Effects = append(tl.Entries[i].Effects, api.Effect{Kind: string(ev.Type) + " " + sku,
						Stream: jetstream.StreamSKUs, Subject: m.Subject(), Seq: md.Sequence.Stream, At: md.Timestamp})
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, errScanned) {
			tl.Notes = append(tl.Notes, "SKU "+sku+" unreadable: "+err.Error())
		}
	}
}

// causeOf names where a command ID comes from: the reactor's stock
// outcome (stock:), the reservation's expiry (expire:), a provider's event
// (payment:, delivery:) or a request through the API (place:, cancel:,
// update:, an idempotency key).
func causeOf(id string) api.Cause {
	kind, _, _ := strings.Cut(id, ":")
	switch kind {
	case "stock":
		return api.Cause{ID: id, Source: "reactor"}
	case "expire":
		return api.Cause{ID: id, Source: "expiry"}
	case "payment", "delivery":
		return api.Cause{ID: id, Source: "provider"}
	}
	return api.Cause{ID: id, Source: "api"}
}

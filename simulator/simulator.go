// Package simulator is a built-in payment provider, delivery provider and
// shopper, so a single `oms serve` shows orders flowing end to end. The
// providers speak the same subjects a real integration would.
//
// It may import api, auth (to sign webhooks), client, config, credentials
// (the providers' consumer names), jetstream and the domain: what an
// outside integration would use.
package simulator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/auth"
	"github.com/oms-project/oms/client"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/credentials"
	"github.com/oms-project/oms/internal/workers"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// Simulator runs the simulated providers and shopper.
type Simulator struct {
	cfg    config.Simulator
	js     natsjs.JetStream
	client *client.Client
	log    *slog.Logger

	mu   sync.Mutex
	rand *rand.Rand
	// retry paces a request whose event could not be published.
	retry    jetstream.Backoff
	webhooks *Webhooks

	stops  []func()
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Webhooks is where the simulated providers post their events when they
// speak HTTP: the node's external listener, signing with their secrets.
type Webhooks struct {
	// URL is the listener's base, http://127.0.0.1:8080.
	URL     string
	Secrets func(provider string) [][]byte
	Client  *http.Client
}

// Providers' names, as their events and webhook secrets name them.
const (
	PaymentProvider  = "simpay"
	DeliveryProvider = "simship"
)

// Start subscribes the providers to oms's request subjects and, if
// OrdersPerSecond > 0, starts placing orders. With webhooks, the providers
// post their events as signed webhooks instead of publishing them.
func Start(ctx context.Context, nc *nats.Conn, cfg config.Simulator, log *slog.Logger, webhooks ...Webhooks) (*Simulator, error) {
	// An event whose acknowledgement never comes fails after a while and
	// its request is tried again.
	js, err := natsjs.New(nc, natsjs.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Simulator{cfg: cfg, js: js, client: client.New(nc), log: log.With("component", "simulator"),
		rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)), cancel: cancel,
		retry: jetstream.Backoff{Base: 100 * time.Millisecond, Max: 10 * time.Second}}
	if len(webhooks) > 0 {
		s.webhooks = &webhooks[0]
	}
	for _, sub := range []struct {
		name, filter string
		handle       func(context.Context, natsjs.Msg)
	}{
		{credentials.PaymentsConsumer, jetstream.PaymentRequestsPrefix + ">", s.pay},
		{credentials.DeliveryConsumer, jetstream.DeliveryRequestPrefix + ">", s.deliver},
	} {
		cons, err := js.CreateOrUpdateConsumer(ctx, jetstream.StreamOutbox, natsjs.ConsumerConfig{
			Durable: sub.name, FilterSubject: sub.filter, AckPolicy: natsjs.AckExplicitPolicy,
			// A request is held for up to four simulated delays before ack.
			AckWait: 4*cfg.MaxDelay + 5*time.Second, MaxAckPending: 4096, MaxDeliver: -1,
		})
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("simulator consumer %s: %w", sub.name, err)
		}
		handle := sub.handle
		// Each request is handled on a goroutine of its own (it may wait
		// out a simulated delay), a kept one when one is idle.
		kept := workers.New(workers.Idle)
		cc, err := cons.Consume(func(m natsjs.Msg) {
			s.wg.Add(1)
			kept.Go(func() { defer s.wg.Done(); handle(runCtx, m) })
		}, jetstream.ConsumeOptions(s.log, sub.name)...)
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.stops = append(s.stops, cc.Stop)
	}
	if cfg.OrdersPerSecond > 0 {
		s.wg.Add(1)
		go s.shop(runCtx)
	}
	return s, nil
}

// Stop ends the simulation; unacknowledged requests are redelivered later.
func (s *Simulator) Stop() {
	for _, stop := range s.stops {
		stop()
	}
	s.cancel()
	s.wg.Wait()
}

func (s *Simulator) float() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rand.Float64()
}

func (s *Simulator) delay() time.Duration {
	span := s.cfg.MaxDelay - s.cfg.MinDelay
	return s.cfg.MinDelay + time.Duration(s.float()*float64(span))
}

// wait sleeps for a simulated provider delay, or returns false on shutdown.
func (s *Simulator) wait(ctx context.Context) bool {
	t := time.NewTimer(s.delay())
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// emit reports a provider event, echoing the correlation headers of the
// request that caused it, as a provider that supports tracing would.
func (s *Simulator) emit(ctx context.Context, cause natsjs.Msg, subject, id string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	echo := nats.Header{}
	for _, k := range []string{api.CorrelationHeader, api.TraceParentHeader} {
		if v := cause.Headers().Get(k); v != "" {
			echo.Set(k, v)
		}
	}
	if s.webhooks == nil {
		_, err := jetstream.Publish(ctx, s.js, subject, id, data, echo)
		return err
	}
	kind, provider := "payments", PaymentProvider
	if strings.HasPrefix(subject, jetstream.DeliveryEventsPrefix) {
		kind, provider = "delivery", DeliveryProvider
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.webhooks.URL+"/webhooks/"+kind+"/"+provider, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range echo {
		req.Header[k] = v
	}
	req.Header.Set(auth.SignatureHeader, auth.SignWebhook(time.Now(), data, s.webhooks.Secrets(provider)...))
	resp, err := s.webhooks.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("webhook %s: %s: %s", kind, resp.Status, body)
	}
	return nil
}

func (s *Simulator) pay(ctx context.Context, m natsjs.Msg) {
	var req api.PaymentRequest
	if err := json.Unmarshal(m.Data(), &req); err != nil {
		_ = m.Term()
		return
	}
	if req.Type != api.PaymentCollect {
		s.log.Info("refund issued", "order_id", req.OrderID, "amount", req.Amount, "currency", req.Currency)
		_ = m.Ack()
		return
	}
	if !s.wait(ctx) {
		return
	}
	ev := api.PaymentEvent{ProviderEnvelope: api.ProviderEnvelope{ID: "sim-" + req.CausedBy, Type: order.PaymentSucceeded,
		OrderID: req.OrderID, Provider: PaymentProvider, OccurredAt: time.Now().UTC()},
		Amount: req.Amount, Currency: req.Currency, Reference: "SP-" + prefix(req.CausedBy, 12), Method: req.PaymentMethod}
	if s.float() >= s.cfg.PaymentSuccessRate {
		ev.Type = order.PaymentFailed
	}
	if err := s.emit(ctx, m, jetstream.PaymentEventsPrefix+req.OrderID, ev.ID, ev); err != nil {
		s.later(m)
		return
	}
	_ = m.Ack()
}

// later hands a request back for another try, backing off.
func (s *Simulator) later(m natsjs.Msg) {
	failures := 1
	if md, err := m.Metadata(); err == nil {
		failures = int(md.NumDelivered)
	}
	_ = m.NakWithDelay(s.retry.Delay(failures))
}

// maxSimulatedAttempts is how often the simulated courier tries a door.
const maxSimulatedAttempts = 3

func (s *Simulator) deliver(ctx context.Context, m natsjs.Msg) {
	var req api.DeliveryRequest
	if err := json.Unmarshal(m.Data(), &req); err != nil {
		_ = m.Term()
		return
	}
	// IDs are per order, so a repeated request repeats no delivery event.
	base := "simdlv-" + req.OrderID
	tracking := "SIM" + prefix(req.OrderID, 8)
	ev := func(kind, suffix string) api.DeliveryEvent {
		return api.DeliveryEvent{ProviderEnvelope: api.ProviderEnvelope{ID: base + suffix, Type: kind,
			OrderID: req.OrderID, Provider: DeliveryProvider}, TrackingNumber: tracking}
	}
	subject := jetstream.DeliveryEventsPrefix + req.OrderID
	steps := []api.DeliveryEvent{ev(order.DeliveryInTransit, "-transit")}
	delivered := false
	for i := 1; i <= maxSimulatedAttempts && !delivered; i++ {
		if s.float() < s.cfg.DeliveryAttemptFailure {
			steps = append(steps, ev(order.DeliveryAttemptFailed, fmt.Sprintf("-attempt-%d", i)))
			continue
		}
		steps = append(steps, ev(order.DeliveryDelivered, "-delivered"))
		delivered = true
	}
	for _, step := range steps {
		if !s.wait(ctx) {
			return
		}
		step.OccurredAt = time.Now().UTC()
		if err := s.emit(ctx, m, subject, step.ID, step); err != nil {
			s.later(m)
			return
		}
	}
	_ = m.Ack()
}

// SKU names the simulated catalogue's i-th SKU.
func SKU(i int) string { return fmt.Sprintf("SIM-%04d", i) }

// shop places random orders at the configured rate, after stocking the
// simulated catalogue if it is empty.
func (s *Simulator) shop(ctx context.Context) {
	defer s.wg.Done()
	for i := range s.cfg.SKUs {
		v, err := s.client.GetStock(ctx, SKU(i))
		if err == nil && v.OnHand == 0 {
			_, err = s.client.SetStock(ctx, SKU(i), 1_000_000)
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("could not stock the simulated catalogue", "err", err)
		}
	}
	t := time.NewTicker(time.Duration(float64(time.Second) / s.cfg.OrdersPerSecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.client.PlaceOrder(ctx, s.randomOrder()); err != nil && ctx.Err() == nil {
			s.log.Warn("simulated order not placed", "err", err)
		}
	}
}

func (s *Simulator) randomOrder() api.PlaceOrder {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rand
	req := api.PlaceOrder{IdempotencyKey: uuid.NewString(), User: fmt.Sprintf("user-%03d", r.IntN(500)),
		NewOrder: api.NewOrder{Currency: "EUR", Source: []string{"web", "app"}[r.IntN(2)], PaymentMethod: "card",
			Destination: order.Destination{Country: "DE", PostalCode: "10115", Address: "Invalidenstr. 117, Berlin",
				PhoneNumber: "+49 30 1234567"}}}
	if r.IntN(4) == 0 {
		req.PromotionCodes = []string{"BLACKFRIDAY"}
	}
	first := r.IntN(s.cfg.SKUs)
	for i := range 1 + r.IntN(3) {
		sku := SKU((first + i) % s.cfg.SKUs)
		if i > 0 && sku == req.Items[0].SKU {
			break
		}
		req.Items = append(req.Items, order.Item{SKU: sku, Quantity: int64(1 + r.IntN(3)), UnitPrice: int64(500 + r.IntN(9500))})
	}
	return req
}

// prefix returns at most the first n bytes of s.
func prefix(s string, n int) string { return s[:min(n, len(s))] }

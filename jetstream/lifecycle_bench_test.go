package jetstream_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"

	"github.com/oms-project/oms/internal/natstest"
	"github.com/oms-project/oms/jetstream"
)

// BenchmarkPatternLifecycle is the floor the transport and the read model's
// storage set on one whole order, measured rather than added up: an order
// lifecycle with none of oms's own code (no actors, no decisions, no
// documents to decode or index, no JSON), only its messages, each sent
// with the cheapest pattern above that keeps its guarantee:
//
//   - a storefront places an order with a request on a second connection;
//     a worker owning the order (one of 64, as actors are) appends the
//     placement with jetstream.Append (fenced, waited on its future: an
//     actor needs its event's sequence to fence the next) and replies;
//   - a reactor (durable consumer on the order events) reserves stock and
//     appends stock held, then sends the payment request; on payment it
//     commits stock and sends the delivery request; it notifies the
//     customer of four steps (sent, not stored);
//   - the providers (durable consumer on the requests) answer with the
//     payment event, and with shipped and delivered;
//   - an inbound consumer hands each provider event to its order's worker,
//     which appends the order event;
//   - a projection (ordered consumer) writes every order event to a bbolt
//     document in transactions at least 20 ms apart.
//
// That is the contract's count per completed order: 12 stored messages (5
// order events, 2 SKU events, 3 provider events, 2 requests), 4
// notifications, 15 deliveries, the placement's request and reply. It is a
// floor and flatters the pattern: the durable consumers acknowledge every
// 64th message with AckAll without tracking which are done (a real one
// must keep a floor of finished messages), one consumer reads the whole
// inbound stream (oms has one per partition), stock events are not fenced,
// and no payment fails (a cancelled order costs fewer messages). The CPU
// time is the whole process's (server and clients), per order:
//
//	go test ./jetstream -run '^$' -bench PatternLifecycle -benchtime 20000x -count 3
//
// The messages are as large as oms's own (the stored bytes per message of
// `oms bench`, less the subject and headers). Two variants put back, one at
// a time, a pattern oms runs instead of the cheapest: an explicit
// acknowledgement of every message, and one inbound consumer per partition
// (64); one leaves the read model out; one tries a contract change (the
// provider events not stored), one a design change (each event's effects
// run where it was appended, not from a consumer). The rate variants place orders at a steady
// rate for the latency of place→ack.
func BenchmarkPatternLifecycle(b *testing.B) {
	b.Run("max", func(b *testing.B) { runLifecycle(b, lifecycleOptions{}) })
	b.Run("max-ack-each", func(b *testing.B) { runLifecycle(b, lifecycleOptions{ackEach: true}) })
	b.Run("max-inbound-partitions=64", func(b *testing.B) { runLifecycle(b, lifecycleOptions{inboundConsumers: 64}) })
	b.Run("max-no-read-model", func(b *testing.B) { runLifecycle(b, lifecycleOptions{noReadModel: true}) })
	b.Run("max-provider-events-unstored", func(b *testing.B) { runLifecycle(b, lifecycleOptions{unstored: true}) })
	b.Run("max-reactor-in-process", func(b *testing.B) { runLifecycle(b, lifecycleOptions{reactorInProcess: true}) })
	for _, r := range []int{300, 600, 1200, 2400} {
		b.Run("rate="+strconv.Itoa(r), func(b *testing.B) { runLifecycle(b, lifecycleOptions{perSecond: r}) })
	}
}

type lifecycleOptions struct {
	perSecond        int  // 0: as fast as 256 placements in flight go
	ackEach          bool // acknowledge every message (AckExplicit)
	inboundConsumers int  // 0: one consumer of the whole inbound stream
	// unstored: the providers send their events as requests the order's
	// worker answers once it has appended the order event, instead of
	// storing them for an inbound consumer (a contract change: 3 stored
	// messages and 3 deliveries fewer per order).
	unstored bool
	// noReadModel leaves the projection out: the messages alone, to add
	// store.BenchmarkApplyLifecycle (the read model kept exact) to.
	noReadModel bool
	// reactorInProcess runs each event's effects on the order's worker
	// right after its append, instead of from a durable consumer of the
	// order events (a design change: 5 deliveries fewer per order, and
	// nothing yet to run the effects a crash cut short).
	reactorInProcess bool
}

// Data sizes of the messages, from `oms bench` (stored bytes per message
// by stream, less about 80 bytes of subject and headers).
const (
	orderEventData = 650
	skuEventData   = 310
	providerData   = 450
	requestData    = 420
)

// Event kinds, the first byte of a message's data.
const (
	kindPlaced    = 'P'
	kindStockHeld = 'S'
	kindPaid      = 'A'
	kindShipped   = 'H'
	kindDelivered = 'D'
)

type lifecycle struct {
	ctx     context.Context
	js      natsjs.JetStream
	nc      *nats.Conn
	opts    lifecycleOptions
	workers []chan func()
	// effects run the reactor's and the providers' work, which waits for
	// its stored messages, off the consumers' callbacks, by order.
	effects []chan func()
	// last[w] is the last stream sequence of each order worker w owns:
	// what an order actor remembers to fence its next append.
	last []map[string]uint64
	// react, if set, runs an event's effects after its append.
	react func(id string, kind byte)
	errs  atomic.Int64
	err   atomic.Value
}

func (l *lifecycle) fail(err error) {
	if err != nil {
		l.errs.Add(1)
		l.err.CompareAndSwap(nil, err)
	}
}

func (l *lifecycle) owner(id string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % uint32(len(l.workers)))
}

// appendEvent appends an event of kind to order id on the order's worker,
// fenced on the order's last sequence, then runs then.
func (l *lifecycle) appendEvent(id string, kind byte, then func()) {
	w := l.owner(id)
	l.workers[w] <- func() {
		data := payload(kind, orderEventData)
		ack, err := jetstream.Append(l.ctx, l.js, jetstream.OrderEventsPrefix+id, data, l.last[w][id], nil)
		if err != nil {
			l.fail(err)
			return
		}
		l.last[w][id] = ack.Sequence
		if l.react != nil {
			l.react(id, kind)
		}
		if then != nil {
			then()
		}
	}
}

// publish stores a message and waits for it, as an effect is stored before
// its event is acknowledged.
func (l *lifecycle) publish(subject, msgID string, kind byte, size int) {
	_, err := jetstream.Publish(l.ctx, l.js, subject, msgID, payload(kind, size), nil)
	l.fail(err)
}

// payload is size bytes starting with kind.
func payload(kind byte, size int) []byte {
	data := make([]byte, size)
	data[0] = kind
	for i := 1; i < size; i++ {
		data[i] = 'x'
	}
	return data
}

func (l *lifecycle) notify(id string, kind byte) {
	l.fail(l.nc.Publish(jetstream.NotificationsPrefix+id, []byte{kind}))
}

// consume runs handle on each message of a durable consumer of subject
// (all of the stream's if empty), acknowledging every 64th with AckAll, or
// each if the options say so.
func (l *lifecycle) consume(b *testing.B, stream, name, subject string, handle func(natsjs.Msg)) {
	cfg := natsjs.ConsumerConfig{Durable: name, AckPolicy: natsjs.AckAllPolicy, MaxAckPending: 20000,
		FilterSubject: subject}
	if l.opts.ackEach {
		cfg.AckPolicy = natsjs.AckExplicitPolicy
	}
	cons, err := l.js.CreateOrUpdateConsumer(l.ctx, stream, cfg)
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	cc, err := cons.Consume(func(m natsjs.Msg) {
		handle(m)
		if l.opts.ackEach || n.Add(1)%64 == 0 {
			_ = m.Ack()
		}
	}, natsjs.PullMaxMessages(256))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cc.Stop)
}

// effect runs f on the effects worker of order id.
func (l *lifecycle) effect(id string, f func()) { l.effects[l.owner(id)] <- f }

// run starts a worker running the functions sent to it in order.
func run(b *testing.B) chan func() {
	ch := make(chan func(), 1024)
	go func() {
		for f := range ch {
			f()
		}
	}()
	b.Cleanup(func() { close(ch) })
	return ch
}

func lastToken(subject string) string { return subject[strings.LastIndexByte(subject, '.')+1:] }

func runLifecycle(b *testing.B, o lifecycleOptions) {
	// The collector set as the oms binary sets it.
	b.Cleanup(func(prev int) func() { return func() { debug.SetGCPercent(prev) } }(debug.SetGCPercent(400)))
	env := natstest.Start(b, natstest.Options{InProcess: true, Timeout: time.Hour, Partitions: 64})
	l := &lifecycle{ctx: env.Ctx, js: env.JS, nc: env.NC, opts: o}
	placement := payload(kindPlaced, orderEventData)
	for range 64 {
		l.workers, l.effects = append(l.workers, run(b)), append(l.effects, run(b))
		l.last = append(l.last, map[string]uint64{})
	}
	const skus = 1000
	sku := func(id string) string {
		n, _ := strconv.Atoi(id[1:])
		return "K" + strconv.Itoa(n%skus)
	}

	// The storefront's connection, which hears the notifications.
	store, err := nats.Connect(env.Server.ClientURL(), nats.InProcessServer(env.Server))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	var delivered atomic.Int64
	done := make(chan struct{})
	note, err := store.Subscribe(jetstream.NotificationsPrefix+"*", func(m *nats.Msg) {
		if m.Data[0] == kindDelivered && delivered.Add(1) == int64(b.N) {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	_ = note.SetPendingLimits(-1, -1)

	// Placement: the order's worker appends it, then replies.
	place, err := l.nc.Subscribe("floor.place.*", func(m *nats.Msg) {
		l.appendEvent(lastToken(m.Subject), kindPlaced, func() { l.fail(m.Respond([]byte{'k'})) })
	})
	if err != nil {
		b.Fatal(err)
	}
	_ = place.SetPendingLimits(-1, -1)
	defer place.Unsubscribe()

	react := func(id string, kind byte) {
		switch kind {
		case kindPlaced:
			l.effect(id, func() {
				l.publish(jetstream.SKUEventsPrefix+sku(id), id+":reserve", 'R', skuEventData)
				l.appendEvent(id, kindStockHeld, nil)
			})
		case kindStockHeld:
			l.effect(id, func() {
				l.publish(jetstream.PaymentRequestsPrefix+id, id+":pay", kindPaid, requestData)
				l.notify(id, kindStockHeld)
			})
		case kindPaid:
			l.effect(id, func() {
				l.publish(jetstream.SKUEventsPrefix+sku(id), id+":commit", 'C', skuEventData)
				l.publish(jetstream.DeliveryRequestPrefix+id, id+":ship", kindShipped, requestData)
				l.notify(id, kindPaid)
			})
		case kindShipped, kindDelivered:
			l.notify(id, kind)
		}
	}
	if o.reactorInProcess {
		l.react = react
	} else {
		l.consume(b, jetstream.StreamOrders, "floor-reactor", "", func(m natsjs.Msg) { react(lastToken(m.Subject()), m.Data()[0]) })
	}
	l.consume(b, jetstream.StreamOutbox, "floor-providers", "", func(m natsjs.Msg) {
		id := lastToken(m.Subject())
		payment := strings.HasPrefix(m.Subject(), jetstream.PaymentRequestsPrefix)
		l.effect(id, func() {
			send := func(subject, msgID string, kind byte) {
				if !o.unstored {
					l.publish(subject, msgID, kind, providerData)
					return
				}
				_, err := l.nc.Request("floor.provider."+id, payload(kind, providerData), time.Minute)
				l.fail(err)
			}
			if payment {
				send(jetstream.PaymentEventsPrefix+id, id+":paid", kindPaid)
				return
			}
			send(jetstream.DeliveryEventsPrefix+id, id+":shipped", kindShipped)
			send(jetstream.DeliveryEventsPrefix+id, id+":delivered", kindDelivered)
		})
	})
	provider, err := l.nc.Subscribe("floor.provider.*", func(m *nats.Msg) {
		l.appendEvent(lastToken(m.Subject), m.Data[0], func() { l.fail(m.Respond([]byte{'k'})) })
	})
	if err != nil {
		b.Fatal(err)
	}
	_ = provider.SetPendingLimits(-1, -1)
	defer provider.Unsubscribe()
	inbound := func(m natsjs.Msg) { l.appendEvent(lastToken(m.Subject()), m.Data()[0], nil) }
	if o.inboundConsumers == 0 && !o.unstored {
		l.consume(b, jetstream.StreamInbound, "floor-inbound", "", inbound)
	}
	for p := range o.inboundConsumers {
		l.consume(b, jetstream.StreamInbound, "floor-inbound-"+strconv.Itoa(p), jetstream.InboundPartitionSubject(p), inbound)
	}
	if !o.noReadModel {
		stopProjection := project(b, l)
		defer stopProjection()
	}

	var limiter *rate.Limiter
	if o.perSecond > 0 {
		limiter = rate.NewLimiter(rate.Limit(o.perSecond), 1)
	}
	var next atomic.Int64
	var mu sync.Mutex
	acks := make([]time.Duration, 0, b.N)
	traffic0 := clientTraffic(b, env.Server)
	began := time.Now()
	measureAs(b, "cpu-µs/order", func() {
		var wg sync.WaitGroup
		for range 256 {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(b.N) {
						return
					}
					if limiter != nil {
						_ = limiter.Wait(context.Background())
					}
					t0 := time.Now()
					if _, err := store.Request("floor.place.o"+strconv.FormatInt(i, 10), placement, time.Minute); err != nil {
						l.fail(err)
						return
					}
					d := time.Since(t0)
					mu.Lock()
					acks = append(acks, d)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("%d of %d orders delivered; %d errors, first: %v", delivered.Load(), b.N, l.errs.Load(), l.err.Load())
		}
	})
	elapsed := time.Since(began)
	if n := l.errs.Load(); n > 0 {
		b.Fatalf("%d errors, first: %v", n, l.err.Load())
	}
	// The wire per order, counted as oms bench counts it.
	var sent, received int64
	for name, t := range clientTraffic(b, env.Server) {
		sent, received = sent+t.Sent-traffic0[name].Sent, received+t.Received-traffic0[name].Received
	}
	b.ReportMetric(float64(sent)/float64(b.N), "sent/order")
	b.ReportMetric(float64(received)/float64(b.N), "received/order")
	slices.Sort(acks)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "orders/s")
	b.ReportMetric(float64(acks[len(acks)/2].Microseconds())/1000, "ack-p50-ms")
	b.ReportMetric(float64(acks[len(acks)*99/100].Microseconds())/1000, "ack-p99-ms")
}

// project writes every order event to a bbolt document keyed by the
// order's placement sequence, in transactions at least 20 ms apart.
func project(b *testing.B, l *lifecycle) func() {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "read.db"), 0o600, &bolt.Options{NoFreelistSync: true})
	if err != nil {
		b.Fatal(err)
	}
	s, err := l.js.Stream(l.ctx, jetstream.StreamOrders)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := s.OrderedConsumer(l.ctx, natsjs.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	type event struct {
		id   string
		seq  uint64
		data []byte
	}
	var mu sync.Mutex
	var pending []event
	cc, err := cons.Consume(func(m natsjs.Msg) {
		md, err := m.Metadata()
		if err != nil {
			l.fail(err)
			return
		}
		mu.Lock()
		pending = append(pending, event{lastToken(m.Subject()), md.Sequence.Stream, m.Data()})
		mu.Unlock()
	}, natsjs.PullMaxMessages(512))
	if err != nil {
		b.Fatal(err)
	}
	keys := map[string][8]byte{}
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			mu.Lock()
			batch := pending
			pending = nil
			mu.Unlock()
			if len(batch) == 0 {
				continue
			}
			l.fail(db.Update(func(tx *bolt.Tx) error {
				docs, err := tx.CreateBucketIfNotExists([]byte("docs"))
				if err != nil {
					return err
				}
				for _, e := range batch {
					key, ok := keys[e.id]
					if !ok {
						binary.BigEndian.PutUint64(key[:], e.seq)
						keys[e.id] = key
					}
					if err := docs.Put(key[:], e.data); err != nil {
						return fmt.Errorf("document of %s: %w", e.id, err)
					}
				}
				return nil
			}))
		}
	}()
	return func() {
		cc.Stop()
		close(stop)
		<-finished
		_ = db.Close()
	}
}

func clientTraffic(b *testing.B, srv *server.Server) map[string]jetstream.Traffic {
	t, err := jetstream.ClientTraffic(srv)
	if err != nil {
		b.Fatal(err)
	}
	return t
}

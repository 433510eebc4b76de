package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/config"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// floorsBucket keeps, per inbound partition, the stream sequence up to which
// every provider event has been acknowledged.
const floorsBucket = "OMS_INBOUND_FLOORS"

// floorEvery is how often an owner records its partitions' floors. A
// consumer recreated from a floor redelivers at most this much, and
// provider events are idempotent, so a repeat costs time, not correctness.
const floorEvery = 2 * time.Second

// startInbound opens one durable consumer per partition of the inbound
// stream; the node pulls those of the partitions it owns (reconcileInbound).
// Each partition is processed in order; a message that cannot be processed
// goes to the dead-letter stream and never blocks its partition.
//
// The consumers keep their state in memory (replicated like the stream in
// a cluster). As files, the 64 consumers' states were rewritten ten times a
// second each, a tenth of a node's CPU under load. What a restart of every
// server would lose, the acknowledgement floor, is recorded every few
// seconds in a KV bucket, and a consumer that is missing is recreated from
// its partition's floor: nothing is skipped, at most a few seconds repeat.
func (n *Node) startInbound(ctx context.Context) error {
	floors, err := openBucket(ctx, n.js, n.log, natsjs.KeyValueConfig{Bucket: floorsBucket,
		Description: "oms inbound partitions' acknowledgement floors", Replicas: n.cfg.Replicas, Storage: natsjs.FileStorage})
	if err != nil {
		return err
	}
	inbound := make([]natsjs.Consumer, n.cfg.Partitions)
	for p := range n.cfg.Partitions {
		// While a cluster forms, a lookup may find no consumer leader yet.
		err := retry(ctx, n.log, "open inbound consumer", func(ctx context.Context) error {
			cons, err := inboundConsumer(ctx, n.js, floors, p)
			inbound[p] = cons
			return err
		})
		if err != nil {
			return fmt.Errorf("inbound consumer %d: %w", p, err)
		}
	}
	n.pullMu.Lock()
	n.inbound, n.pulling = inbound, map[int]natsjs.ConsumeContext{}
	n.pullMu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.recordFloors(ctx, floors)
	}()
	return nil
}

func floorKey(p int) string { return fmt.Sprintf("p%d", p) }

func putFloor(ctx context.Context, floors natsjs.KeyValue, p int, floor uint64) error {
	_, err := floors.Put(ctx, floorKey(p), []byte(strconv.FormatUint(floor, 10)))
	return err
}

// getFloor returns partition p's recorded floor, 0 if none was recorded.
func getFloor(ctx context.Context, floors natsjs.KeyValue, p int) (uint64, error) {
	e, err := floors.Get(ctx, floorKey(p))
	switch {
	case errors.Is(err, natsjs.ErrKeyNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	}
	floor, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("floor of partition %d: %w", p, err)
	}
	return floor, nil
}

// inboundConsumer returns partition p's consumer, creating it from the
// recorded floor when it is missing. A consumer an earlier version kept in
// a file is replaced by a memory one starting after its own floor.
func inboundConsumer(ctx context.Context, js natsjs.JetStream, floors natsjs.KeyValue, p int) (natsjs.Consumer, error) {
	cfg := natsjs.ConsumerConfig{
		Durable: fmt.Sprintf("oms-inbound-%d", p), FilterSubject: jetstream.InboundPartitionSubject(p),
		AckPolicy: natsjs.AckExplicitPolicy, AckWait: ackWait, MaxAckPending: 64, MaxDeliver: -1,
		MemoryStorage: true,
	}
	var floor uint64
	cons, err := js.Consumer(ctx, jetstream.StreamInbound, cfg.Durable)
	switch {
	case err == nil:
		info := cons.CachedInfo()
		if info.Config.MemoryStorage {
			return cons, nil
		}
		floor = info.AckFloor.Stream
		if err := putFloor(ctx, floors, p, floor); err != nil {
			return nil, err
		}
		if err := js.DeleteConsumer(ctx, jetstream.StreamInbound, cfg.Durable); err != nil && !errors.Is(err, natsjs.ErrConsumerNotFound) {
			return nil, err
		}
	case errors.Is(err, natsjs.ErrConsumerNotFound):
		if floor, err = getFloor(ctx, floors, p); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	if floor > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = natsjs.DeliverByStartSequencePolicy, floor+1
	}
	cons, err = js.CreateConsumer(ctx, jetstream.StreamInbound, cfg)
	if errors.Is(err, natsjs.ErrConsumerExists) {
		// Another node recreated it first (from the same floor or a later one).
		return js.Consumer(ctx, jetstream.StreamInbound, cfg.Durable)
	}
	return cons, err
}

// recordFloors writes the floors of the partitions this node pulls until
// ctx ends, and once more when it does (a graceful stop hands over with an
// exact floor).
func (n *Node) recordFloors(ctx context.Context, floors natsjs.KeyValue) {
	// written holds every partition this node has pulled: by the final
	// record, a stopping node pulls none any more. Any node may write a
	// partition's floor, since it reads it from the shared consumer.
	written := map[int]uint64{}
	record := func(ctx context.Context) {
		for _, p := range n.OwnedPartitions() {
			if _, ok := written[p]; !ok {
				written[p] = 0
			}
		}
		for p := range written {
			n.pullMu.Lock()
			cons := n.inbound[p]
			n.pullMu.Unlock()
			info, err := cons.Info(ctx)
			if err != nil {
				continue
			}
			if f := info.AckFloor.Stream; f > written[p] {
				if err := putFloor(ctx, floors, p, f); err == nil {
					written[p] = f
				}
			}
		}
	}
	t := time.NewTicker(floorEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			record(ctx)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			record(fctx)
			cancel()
			return
		}
	}
}

// reconcileInbound pulls the partitions this node owns and stops pulling
// those it no longer owns. Messages a stopped puller had not acknowledged
// go to the next owner after the acknowledgement deadline.
func (n *Node) reconcileInbound() {
	n.pullMu.Lock()
	defer n.pullMu.Unlock()
	if n.runCtx == nil || n.runCtx.Err() != nil || n.inbound == nil {
		return
	}
	for p, cons := range n.inbound {
		owned := n.members == nil || n.members.ownerOf(p) == n.cfg.NodeName
		cc, pulling := n.pulling[p]
		switch {
		case owned && !pulling:
			ctx := n.runCtx
			c, err := cons.Consume(func(m natsjs.Msg) { n.handleInbound(ctx, m) }, natsjs.PullMaxMessages(32))
			if err != nil {
				n.log.Warn("inbound partition not pulled", "partition", p, "err", err)
				continue
			}
			n.pulling[p] = c
		case !owned && pulling:
			cc.Stop()
			delete(n.pulling, p)
		}
	}
	n.log.Debug("inbound partitions pulled", "count", len(n.pulling))
	if n.members != nil {
		notMine := func(key string) bool { return n.owner(key) != "" }
		if k := n.orders.PassivateWhere(notMine) + n.skus.PassivateWhere(notMine); k > 0 {
			n.log.Info("passivating actors of partitions now owned elsewhere", "actors", k)
		}
	}
}

// stopInbound stops pulling every partition.
func (n *Node) stopInbound() {
	n.pullMu.Lock()
	defer n.pullMu.Unlock()
	for p, cc := range n.pulling {
		cc.Stop()
		delete(n.pulling, p)
	}
}

// OwnedPartitions returns the inbound partitions this node pulls.
func (n *Node) OwnedPartitions() []int {
	n.pullMu.Lock()
	defer n.pullMu.Unlock()
	out := make([]int, 0, len(n.pulling))
	for p := range n.pulling {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// errSubject marks a message on a subject oms does not expect there.
var errSubject = errors.New("unexpected subject")

// inboundCommand decodes a provider event stored at
// oms.inbound.<partition>.<payments|delivery>.<orderId>.
func inboundCommand(subject string, data []byte, received time.Time) (order.Command, error) {
	tok := strings.Split(subject, ".")
	if len(tok) != 5 {
		return nil, fmt.Errorf("%w: %s", errSubject, subject)
	}
	kind, orderID := tok[3], tok[4]
	var cmd interface {
		order.Command
		Validate() error
	}
	switch kind {
	case "payments":
		var ev api.PaymentEvent
		meta, err := providerMeta(data, &ev, &ev.ProviderEnvelope, "payment", orderID, received)
		if err != nil {
			return nil, err
		}
		cmd = order.RecordPayment{Meta: meta, Type: ev.Type, Amount: ev.Amount, Currency: ev.Currency,
			Provider: ev.Provider, Reference: ev.Reference, Method: ev.Method}
	case "delivery":
		var ev api.DeliveryEvent
		meta, err := providerMeta(data, &ev, &ev.ProviderEnvelope, "delivery", orderID, received)
		if err != nil {
			return nil, err
		}
		cmd = order.RecordDelivery{Meta: meta, Type: ev.Type, Provider: ev.Provider, TrackingNumber: ev.TrackingNumber}
	default:
		return nil, fmt.Errorf("%w: %s", errSubject, subject)
	}
	return cmd, cmd.Validate()
}

// providerMeta decodes a provider event into ev and checks the fields every
// provider event carries: its ID, and an order ID that matches the subject.
func providerMeta(data []byte, ev any, env *api.ProviderEnvelope, kind, orderID string, received time.Time) (order.Meta, error) {
	if err := json.Unmarshal(data, ev); err != nil {
		return order.Meta{}, &order.ValidationError{Field: "body", Message: "invalid JSON: " + err.Error()}
	}
	if env.ID == "" {
		return order.Meta{}, &order.ValidationError{Field: "id", Message: "is required"}
	}
	if env.OrderID != orderID {
		return order.Meta{}, &order.ValidationError{Field: "orderId", Message: "does not match the subject's order " + orderID}
	}
	at := env.OccurredAt
	if at.IsZero() {
		at = received
	}
	return order.Meta{ID: kind + ":" + env.ID, OrderID: orderID, At: at, By: kind + ":" + env.Provider}, nil
}

func (n *Node) handleInbound(ctx context.Context, m natsjs.Msg) {
	received := time.Now().UTC()
	if md, err := m.Metadata(); err == nil {
		received = md.Timestamp.UTC()
	}
	cmd, err := inboundCommand(m.Subject(), m.Data(), received)
	if err != nil {
		n.deadLetter(ctx, "inbound", m, err)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	_, err = n.Order(rctx, cmd)
	cancel()
	switch {
	case err == nil:
		_ = m.Ack()
	case errors.Is(err, order.ErrIllegalTransition), errors.Is(err, order.ErrPaymentMismatch):
		// Refused and recorded in the order's stream (order.rejected).
		n.log.Info("provider event refused", "order_id", cmd.Target(), "reason", err)
		_ = m.Ack()
	case errors.Is(err, order.ErrNotFound), errors.Is(err, order.ErrInvalid), errors.Is(err, order.ErrIdempotencyConflict):
		n.deadLetter(ctx, "inbound", m, err)
	case ctx.Err() != nil:
		// Shutting down: leave it for redelivery.
	default:
		md, _ := m.Metadata()
		n.log.Warn("provider event not applied; will retry", "order_id", cmd.Target(), "err", err)
		_ = m.NakWithDelay(retryDelay(md))
	}
}

// startTimers consumes fired reservation timers.
func (n *Node) startTimers(ctx context.Context) error {
	cons, err := n.js.CreateOrUpdateConsumer(ctx, jetstream.StreamTimers, natsjs.ConsumerConfig{
		Durable: "oms-timers", FilterSubject: jetstream.TimerFiredPrefix + ">",
		AckPolicy: natsjs.AckExplicitPolicy, AckWait: ackWait, MaxAckPending: 256, MaxDeliver: -1,
	})
	if err != nil {
		return fmt.Errorf("timer consumer: %w", err)
	}
	cc, err := cons.Consume(func(m natsjs.Msg) {
		id := strings.TrimPrefix(m.Subject(), jetstream.TimerFiredPrefix)
		if n.expirySettled(id) {
			_ = m.Ack()
			return
		}
		rctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
		_, err := n.Order(rctx, order.ExpireReservation{Meta: order.Meta{ID: "expire:" + id, OrderID: id, At: now(), By: "system"}})
		cancel()
		switch {
		case err == nil:
			_ = m.Ack()
		case errors.Is(err, order.ErrNotFound):
			n.deadLetter(ctx, "timers", m, err)
		case ctx.Err() == nil:
			md, _ := m.Metadata()
			_ = m.NakWithDelay(retryDelay(md))
		}
	}, natsjs.PullMaxMessages(256))
	if err != nil {
		return err
	}
	n.stopConsumers = append(n.stopConsumers, cc.Stop)
	return nil
}

// expirySettled reports whether this node's read model already shows that
// order id can no longer expire. Every order's timer fires a reservation TTL
// after placement, long after most were paid and their actors passivated;
// answering those from the read model spares an activation (snapshot and
// stream reads) per order. The read model may lag, never lead: an order it
// does not know or still shows waiting for payment goes to its actor, which
// decides.
func (n *Node) expirySettled(id string) bool {
	if !n.cfg.Has(config.RoleQuery) {
		return false
	}
	o, ok, err := n.db.Order(id)
	return err == nil && ok && !o.ExpiryApplies()
}

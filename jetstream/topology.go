// Package jetstream wraps NATS JetStream for oms: the streams and durable
// consumers the system runs on, the fenced append that makes the stream the
// single source of truth, reading a subject's history, the consumer runtime
// every pipeline runs on (timeouts, the retry policy, dead letters), replay,
// and the embedded server.
//
// It imports nothing of oms: what a message means is its caller's business.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Stream names.
const (
	StreamOrders     = "OMS_ORDERS"
	StreamSKUs       = "OMS_SKUS"
	StreamInbound    = "OMS_INBOUND"
	StreamOutbox     = "OMS_OUTBOX"
	StreamDeadLetter = "OMS_DEADLETTER"
)

// Subject prefixes and patterns of the public contract.
const (
	OrderEventsPrefix     = "oms.events.order."
	SKUEventsPrefix       = "oms.events.sku."
	PaymentEventsPrefix   = "payments.events."
	DeliveryEventsPrefix  = "delivery.events."
	PaymentRequestsPrefix = "payments.requests."
	DeliveryRequestPrefix = "delivery.requests."
	NotificationsPrefix   = "notifications."
	InboundPrefix         = "oms.inbound."
	DeadLetterPrefix      = "oms.deadletter."
)

// PartitionOf maps an order ID (or SKU) to one of n partitions. It is the
// same FNV-1a hash the NATS server's partition() subject transform uses, so
// the inbound stream and this code agree on where a message belongs.
func PartitionOf(key string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// Topology describes the streams for one deployment.
type Topology struct {
	Partitions int
	Replicas   int
	// DuplicateWindow bounds how long Nats-Msg-Id de-duplication remembers
	// an ID on the streams whose messages carry one (provider events,
	// requests, dead letters); retries of one publish happen well inside
	// it. The fenced streams keep FencedDuplicateWindow.
	DuplicateWindow time.Duration
	// Retention for the transport streams (inbound, outbox, dead
	// letters). Order and SKU events are kept forever: they are the truth.
	TransportMaxAge time.Duration
}

// FencedDuplicateWindow is the duplicate window of the order and SKU
// streams, the shortest the server accepts (none is not a setting: it
// means its default of 2 minutes). Only Append writes them, fenced and
// without a Nats-Msg-Id (the credentials let no one else publish there),
// so no window would ever hold an ID. Yet whenever the server opens a
// stream (each start, a replica's replay) it reads every message stored
// within the window to look for IDs: after a peak of 8,000 events/s a
// 2-minute window is a million messages read before the stream serves.
const FencedDuplicateWindow = 100 * time.Millisecond

// Configs returns the stream configurations of the topology.
func (t Topology) Configs() []natsjs.StreamConfig {
	base := func(name string, subjects ...string) natsjs.StreamConfig {
		// Direct gets may be answered by any replica, a lagging one too.
		// An actor catching up after a fenced append must read what the
		// leader has, so they are only used on a single server.
		return natsjs.StreamConfig{Name: name, Subjects: subjects, Storage: natsjs.FileStorage,
			Replicas: t.Replicas, Duplicates: t.DuplicateWindow, AllowDirect: t.Replicas == 1,
			Discard: natsjs.DiscardOld}
	}
	orders := base(StreamOrders, OrderEventsPrefix+"*")
	orders.Description = "order events: the source of truth, one subject per order"
	skus := base(StreamSKUs, SKUEventsPrefix+"*")
	skus.Description = "inventory events, one subject per SKU"
	orders.Duplicates, skus.Duplicates = FencedDuplicateWindow, FencedDuplicateWindow
	inbound := base(StreamInbound, PaymentEventsPrefix+"*", DeliveryEventsPrefix+"*")
	inbound.Description = "payment and delivery provider events, stored by order partition"
	inbound.MaxAge = t.TransportMaxAge
	// Store each provider event under its order's partition so one consumer
	// per partition can pull exactly its orders.
	inbound.SubjectTransform = &natsjs.SubjectTransformConfig{
		Source:      "*.events.*",
		Destination: InboundPrefix + "{{partition(" + strconv.Itoa(t.Partitions) + ",2)}}.{{wildcard(1)}}.{{wildcard(2)}}",
	}
	// Customer notifications (NotificationsPrefix) are not stored: they
	// repeat the order events, which are.
	outbox := base(StreamOutbox, PaymentRequestsPrefix+"*", DeliveryRequestPrefix+"*")
	outbox.Description = "requests to the payment and delivery providers"
	outbox.MaxAge = t.TransportMaxAge
	dead := base(StreamDeadLetter, DeadLetterPrefix+">")
	dead.Description = "messages that could not be processed, with the reason"
	dead.MaxAge = 30 * 24 * time.Hour
	return []natsjs.StreamConfig{orders, skus, inbound, outbox, dead}
}

// ErrPartitionsChanged is returned by Ensure when the inbound stream
// spreads provider events over another number of partitions than the
// topology's. Changing it would leave the events already stored under a
// partition no consumer pulls any more.
var ErrPartitionsChanged = errors.New("the partition count is fixed for the life of the data")

// Ensure creates the streams of the topology that are missing and updates
// those whose configuration changed. Several nodes of a cluster start at
// once, so a stream another node created meanwhile is not an error. It
// never changes the partition count of an existing inbound stream
// (ErrPartitionsChanged).
func Ensure(ctx context.Context, js natsjs.JetStream, t Topology) error {
	for _, cfg := range t.Configs() {
		s, err := js.Stream(ctx, cfg.Name)
		switch {
		case errors.Is(err, natsjs.ErrStreamNotFound):
			if _, err := js.CreateStream(ctx, cfg); err != nil && !errors.Is(err, natsjs.ErrStreamNameAlreadyInUse) {
				return fmt.Errorf("create stream %s: %w", cfg.Name, err)
			}
		case err != nil:
			return fmt.Errorf("stream %s: %w", cfg.Name, err)
		case cfg.Name == StreamInbound && changesPartitions(s.CachedInfo().Config, t.Partitions):
			have := partitionsOf(s.CachedInfo().Config)
			return fmt.Errorf("partitions: the data has %d, this node is configured with %d (start it with --partitions %d): %w",
				have, t.Partitions, have, ErrPartitionsChanged)
		case !sameStream(s.CachedInfo().Config, cfg):
			if _, err := js.UpdateStream(ctx, cfg); err != nil {
				return fmt.Errorf("update stream %s: %w", cfg.Name, err)
			}
		}
	}
	return nil
}

// changesPartitions tells whether the inbound stream cfg spreads its
// events over partitions other than n. One without a transform has none
// to keep.
func changesPartitions(cfg natsjs.StreamConfig, n int) bool {
	have := partitionsOf(cfg)
	return have != 0 && have != n
}

// partitionsOf reads the partition count from an inbound stream's subject
// transform, as Configs writes it ("…{{partition(P,2)}}…"); 0 if it has none.
func partitionsOf(cfg natsjs.StreamConfig) int {
	if cfg.SubjectTransform == nil {
		return 0
	}
	d := cfg.SubjectTransform.Destination
	i := strings.Index(d, "partition(")
	if i < 0 {
		return 0
	}
	d = d[i+len("partition("):]
	j := strings.IndexByte(d, ',')
	if j < 0 {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(d[:j]))
	if err != nil {
		return 0
	}
	return n
}

// sameStream compares the settings oms chooses (the server fills in others).
func sameStream(have, want natsjs.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Replicas == want.Replicas &&
		have.MaxAge == want.MaxAge && have.Duplicates == want.Duplicates &&
		have.AllowDirect == want.AllowDirect && have.AllowMsgSchedules == want.AllowMsgSchedules &&
		have.AllowRollup == want.AllowRollup && reflect.DeepEqual(have.SubjectTransform, want.SubjectTransform) &&
		have.Description == want.Description
}

// InboundPartitionSubject is the stored subject filter of one partition's
// provider events.
func InboundPartitionSubject(p int) string { return InboundPrefix + strconv.Itoa(p) + ".>" }

// ConsumerReactor is the durable consumer the reactor pulled every order
// event from before effects ran where their event was appended: a node
// retires it on start (its floor tells which effects may not have run).
const ConsumerReactor = "oms-reactor"

// InboundConsumerName is the durable consumer of inbound partition p.
func InboundConsumerName(p int) string { return fmt.Sprintf("oms-inbound-%d", p) }

// InboundAllConsumerName is the durable consumer of every inbound
// partition at once, which a standalone node pulls instead of one consumer
// per partition (InboundAllConsumer).
const InboundAllConsumerName = "oms-inbound"

// ConsumerLimits are what a durable consumer may have outstanding.
type ConsumerLimits struct {
	AckWait       time.Duration
	MaxAckPending int
}

// InboundConsumer is the configuration of inbound partition p's consumer.
// Its state is kept in memory (replicated like the stream in a cluster):
// as files, 64 consumers' states were rewritten ten times a second each, a
// tenth of a node's CPU under load. A consumer lost with every server is
// recreated to start after its partition's recorded floor (startAfter).
func InboundConsumer(p int, l ConsumerLimits, startAfter uint64) natsjs.ConsumerConfig {
	cfg := natsjs.ConsumerConfig{Durable: InboundConsumerName(p), FilterSubject: InboundPartitionSubject(p),
		AckPolicy: natsjs.AckExplicitPolicy, AckWait: l.AckWait, MaxAckPending: l.MaxAckPending, MaxDeliver: -1,
		MemoryStorage: true}
	return StartAfter(cfg, startAfter)
}

// InboundAllConsumer is the configuration of the consumer of every inbound
// partition (InboundAllConsumerName), kept in memory like the partitions'
// own, with as many messages outstanding as the partitions' consumers it
// stands in for. A standalone node owns every partition and can have no
// other node to hand one over to, so it pulls them through one consumer:
// with one consumer per partition the server walks, for each of them, past
// the other partitions' messages to find its own next one (in oms bench, one
// consumer cost a median 8% less CPU per order than 64, eight pairs).
func InboundAllConsumer(l ConsumerLimits, partitions int, startAfter uint64) natsjs.ConsumerConfig {
	cfg := natsjs.ConsumerConfig{Durable: InboundAllConsumerName, FilterSubject: InboundPrefix + ">",
		AckPolicy: natsjs.AckExplicitPolicy, AckWait: l.AckWait, MaxAckPending: l.MaxAckPending * partitions,
		MaxDeliver: -1, MemoryStorage: true}
	return StartAfter(cfg, startAfter)
}

// OpenBucket returns the KV bucket cfg names, creating it if it is
// missing. In a forming cluster it retries, pacing with b, until JetStream
// answers; waiting, if not nil, hears of each failed try.
func OpenBucket(ctx context.Context, js natsjs.JetStream, b Backoff, cfg natsjs.KeyValueConfig, waiting func(error)) (natsjs.KeyValue, error) {
	var kv natsjs.KeyValue
	err := b.Retry(ctx, "open bucket "+cfg.Bucket, 2*time.Second, func(ctx context.Context) error {
		var err error
		if kv, err = js.KeyValue(ctx, cfg.Bucket); err == nil {
			return nil
		}
		kv, err = js.CreateKeyValue(ctx, cfg)
		return err
	}, waiting)
	return kv, err
}

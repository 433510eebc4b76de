// Package jetstream wraps NATS JetStream for oms: the streams and consumers
// the system runs on, the fenced append that makes the stream the single
// source of truth, tail reads for actor activation, and the dead-letter stream.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Stream names.
const (
	StreamOrders     = "OMS_ORDERS"
	StreamSKUs       = "OMS_SKUS"
	StreamInbound    = "OMS_INBOUND"
	StreamOutbox     = "OMS_OUTBOX"
	StreamTimers     = "OMS_TIMERS"
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
	TimerSchedulePrefix   = "oms.timers.schedule."
	TimerFiredPrefix      = "oms.timers.fired."
	DeadLetterPrefix      = "oms.deadletter."
)

// Header names used on our messages.
const (
	HeaderMsgID           = "Nats-Msg-Id"
	HeaderExpectedLastSeq = "Nats-Expected-Last-Subject-Sequence"
	HeaderSchedule        = "Nats-Schedule"
	HeaderScheduleTarget  = "Nats-Schedule-Target"
	HeaderReason          = "Oms-Dead-Letter-Reason"
	HeaderOrigSubject     = "Oms-Original-Subject"
	HeaderOrigStream      = "Oms-Original-Stream"
	HeaderOrigSeq         = "Oms-Original-Sequence"
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
	// an ID; retries of one append happen well inside it.
	DuplicateWindow time.Duration
	// Retention for the transport streams (inbound, outbox, timers, dead
	// letters). Order and SKU events are kept forever: they are the truth.
	TransportMaxAge time.Duration
}

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
	inbound := base(StreamInbound, PaymentEventsPrefix+"*", DeliveryEventsPrefix+"*")
	inbound.Description = "payment and delivery provider events, stored by order partition"
	inbound.MaxAge = t.TransportMaxAge
	// Store each provider event under its order's partition so one consumer
	// per partition can pull exactly its orders.
	inbound.SubjectTransform = &natsjs.SubjectTransformConfig{
		Source:      "*.events.*",
		Destination: InboundPrefix + "{{partition(" + strconv.Itoa(t.Partitions) + ",2)}}.{{wildcard(1)}}.{{wildcard(2)}}",
	}
	outbox := base(StreamOutbox, PaymentRequestsPrefix+"*", DeliveryRequestPrefix+"*", NotificationsPrefix+"*")
	outbox.Description = "requests to providers and customer notifications"
	outbox.MaxAge = t.TransportMaxAge
	timers := base(StreamTimers, "oms.timers.>")
	timers.Description = "durable timers (reservation expiry) as message schedules"
	timers.AllowMsgSchedules = true
	timers.AllowRollup = true
	timers.MaxAge = t.TransportMaxAge
	dead := base(StreamDeadLetter, DeadLetterPrefix+">")
	dead.Description = "messages that could not be processed, with the reason"
	dead.MaxAge = 30 * 24 * time.Hour
	return []natsjs.StreamConfig{orders, skus, inbound, outbox, timers, dead}
}

// Ensure creates the streams of the topology that are missing and updates
// those whose configuration changed. Several nodes of a cluster start at
// once, so a stream another node created meanwhile is not an error.
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
		case !sameStream(s.CachedInfo().Config, cfg):
			if _, err := js.UpdateStream(ctx, cfg); err != nil {
				return fmt.Errorf("update stream %s: %w", cfg.Name, err)
			}
		}
	}
	return nil
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

// ErrWrongSequence is returned by Append when the subject has moved past the
// expected sequence: another writer (or an earlier try of ours) appended.
var ErrWrongSequence = errors.New("wrong last subject sequence")

// Append publishes data to subject only if the subject's last sequence is
// expectedLast (0: the subject is empty). msgID de-duplicates retries.
func Append(ctx context.Context, js natsjs.JetStream, subject, msgID string, data []byte, expectedLast uint64) (*natsjs.PubAck, error) {
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(HeaderMsgID, msgID)
	m.Header.Set(HeaderExpectedLastSeq, strconv.FormatUint(expectedLast, 10))
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		var apiErr *natsjs.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == natsjs.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == natsjs.JSErrCodeStreamWrongLastSequenceConstant) {
			return nil, fmt.Errorf("append to %s after %d: %w", subject, expectedLast, ErrWrongSequence)
		}
		return nil, fmt.Errorf("append to %s: %w", subject, err)
	}
	return ack, nil
}

// Publish sends data to a stream-captured subject with a Nats-Msg-Id so a
// retried side effect is stored once.
func Publish(ctx context.Context, js natsjs.JetStream, subject, msgID string, data []byte) error {
	if _, err := js.PublishMsg(ctx, idempotentMsg(subject, msgID, data)); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}

func idempotentMsg(subject, msgID string, data []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(HeaderMsgID, msgID)
	return m
}

func timerMsg(key string, at time.Time, data []byte) *nats.Msg {
	m := nats.NewMsg(TimerSchedulePrefix + key)
	m.Data = data
	m.Header.Set(HeaderSchedule, "@at "+at.UTC().Format(time.RFC3339Nano))
	m.Header.Set(HeaderScheduleTarget, TimerFiredPrefix+key)
	return m
}

// Outbox sends the messages one event causes without waiting for each in
// turn: they are published asynchronously and Wait collects every
// acknowledgement at once, so a handful of side effects cost one round
// trip instead of one each. It is used by one goroutine.
type Outbox struct {
	js      natsjs.JetStream
	futures []natsjs.PubAckFuture
	err     error
}

// NewOutbox returns an empty outbox publishing through js.
func NewOutbox(js natsjs.JetStream) *Outbox { return &Outbox{js: js} }

// Publish queues what Publish sends.
func (o *Outbox) Publish(subject, msgID string, data []byte) {
	o.send(idempotentMsg(subject, msgID, data))
}

// Schedule queues a durable timer: at time at the server copies data to
// TimerFiredPrefix+key. Re-arming the same key replaces the earlier timer.
func (o *Outbox) Schedule(key string, at time.Time, data []byte) { o.send(timerMsg(key, at, data)) }

func (o *Outbox) send(m *nats.Msg) {
	if o.err != nil {
		return
	}
	f, err := o.js.PublishMsgAsync(m)
	if err != nil {
		o.err = fmt.Errorf("publish %s: %w", m.Subject, err)
		return
	}
	o.futures = append(o.futures, f)
}

// Wait returns once every queued message is stored, or with the first
// failure; the outbox is empty afterwards either way. A failed message may
// be sent again: its Nats-Msg-Id stores it once.
func (o *Outbox) Wait(ctx context.Context) error {
	err := o.err
	for _, f := range o.futures {
		if err != nil {
			break
		}
		select {
		case <-f.Ok():
		case e := <-f.Err():
			err = fmt.Errorf("publish %s: %w", f.Msg().Subject, e)
		case <-ctx.Done():
			err = fmt.Errorf("publish %s: %w", f.Msg().Subject, ctx.Err())
		}
	}
	clear(o.futures)
	o.futures, o.err = o.futures[:0], nil
	return err
}

// Tail returns the messages of subject with sequence greater than after, in
// order. Activation uses it to catch up from a snapshot.
func Tail(ctx context.Context, stream natsjs.Stream, subject string, after uint64) ([]*natsjs.RawStreamMsg, error) {
	return TailN(ctx, stream, subject, after, 0)
}

// TailN is Tail returning at most limit messages (0: all).
func TailN(ctx context.Context, stream natsjs.Stream, subject string, after uint64, limit int) ([]*natsjs.RawStreamMsg, error) {
	var out []*natsjs.RawStreamMsg
	next := after + 1
	for limit == 0 || len(out) < limit {
		msg, err := stream.GetMsg(ctx, next, natsjs.WithGetMsgSubject(subject))
		if errors.Is(err, natsjs.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s from %d: %w", subject, next, err)
		}
		out = append(out, msg)
		next = msg.Sequence + 1
	}
	return out, nil
}

// LastSeq returns the sequence of subject's last message (0: none).
func LastSeq(ctx context.Context, stream natsjs.Stream, subject string) (uint64, error) {
	m, err := stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, natsjs.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last of %s: %w", subject, err)
	}
	return m.Sequence, nil
}

// DeadLetter stores a message that could not be processed, with the reason,
// so nothing is lost and nothing blocks its partition.
func DeadLetter(ctx context.Context, js natsjs.JetStream, source string, msg natsjs.Msg, reason error) error {
	m := nats.NewMsg(DeadLetterPrefix + source)
	m.Data = msg.Data()
	m.Header.Set(HeaderReason, reason.Error())
	m.Header.Set(HeaderOrigSubject, msg.Subject())
	if md, err := msg.Metadata(); err == nil {
		m.Header.Set(HeaderOrigStream, md.Stream)
		m.Header.Set(HeaderOrigSeq, strconv.FormatUint(md.Sequence.Stream, 10))
		m.Header.Set(HeaderMsgID, md.Stream+":"+strconv.FormatUint(md.Sequence.Stream, 10))
	}
	if _, err := js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("dead-letter %s: %w", msg.Subject(), err)
	}
	return nil
}

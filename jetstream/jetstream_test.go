package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/internal/natstest"
	"github.com/oms-project/oms/jetstream"
)

func startJS(t *testing.T, partitions int) (natsjs.JetStream, context.Context) {
	t.Helper()
	env := natstest.Start(t, natstest.Options{Partitions: partitions, Timeout: 30 * time.Second})
	return env.JS, env.Ctx
}

// subjectSeqs returns the stream sequences of subject's messages after seq.
func subjectSeqs(t *testing.T, ctx context.Context, s natsjs.Stream, subject string, after uint64) []uint64 {
	t.Helper()
	var out []uint64
	if err := jetstream.Fold(ctx, s, subject, after, func(m *natsjs.RawStreamMsg) error {
		out = append(out, m.Sequence)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAppendIsFenced: a writer holding a stale sequence is refused by the
// server, and so is a retry whose first try was stored (its ack lost): the
// fence alone keeps it from being stored twice, no message ID needed.
func TestAppendIsFenced(t *testing.T) {
	js, ctx := startJS(t, 4)
	subj := jetstream.OrderEventsPrefix + "o1"
	a1, err := jetstream.Append(ctx, js, subj, []byte(`{"id":"e1"}`), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A second writer that believes the subject is empty is refused.
	if _, err := jetstream.Append(ctx, js, subj, []byte(`{"id":"e-other"}`), 0, nil); !errors.Is(err, jetstream.ErrWrongSequence) {
		t.Fatalf("stale writer: got %v, want jetstream.ErrWrongSequence", err)
	}
	a2, err := jetstream.Append(ctx, js, subj, []byte(`{"id":"e2"}`), a1.Sequence, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A retry of e2 whose ack was lost: refused, not stored again.
	if dup, err := jetstream.Append(ctx, js, subj, []byte(`{"id":"e2"}`), a1.Sequence, nil); !errors.Is(err, jetstream.ErrWrongSequence) {
		t.Fatalf("retried append: got %+v, %v, want jetstream.ErrWrongSequence", dup, err)
	}
	s, _ := js.Stream(ctx, jetstream.StreamOrders)
	if seqs := subjectSeqs(t, ctx, s, subj, 0); len(seqs) != 2 || seqs[1] != a2.Sequence {
		t.Fatalf("history: %v", seqs)
	}
	if rest := subjectSeqs(t, ctx, s, subj, a1.Sequence); len(rest) != 1 {
		t.Fatalf("history after %d: %v", a1.Sequence, rest)
	}
}

// TestInboundPartitionMatchesPartitionOf: the server files each provider
// event under the partition jetstream.PartitionOf computes for its order.
func TestInboundPartitionMatchesPartitionOf(t *testing.T) {
	const parts = 7
	js, ctx := startJS(t, parts)
	for i := range 50 {
		id := fmt.Sprintf("order-%d", i)
		prefix := jetstream.PaymentEventsPrefix
		if i%2 == 1 {
			prefix = jetstream.DeliveryEventsPrefix
		}
		if _, err := js.Publish(ctx, prefix+id, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := js.Stream(ctx, jetstream.StreamInbound)
	for seq := uint64(1); seq <= 50; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		tok := strings.Split(m.Subject, ".")
		p, _ := strconv.Atoi(tok[2])
		if want := jetstream.PartitionOf(tok[4], parts); p != want {
			t.Fatalf("%s filed under partition %d, jetstream.PartitionOf says %d", m.Subject, p, want)
		}
	}
}

// TestPartitionCountIsKept: Ensure refuses a topology with another
// partition count than the inbound stream's (the events stored under the
// old count would no longer be pulled), naming both, and leaves the stream
// as it was; the same count is accepted, and a stream without partitions
// (none to keep) gets them.
func TestPartitionCountIsKept(t *testing.T) {
	js, ctx := startJS(t, 4)
	topo := func(p int) jetstream.Topology {
		return jetstream.Topology{Partitions: p, Replicas: 1, DuplicateWindow: time.Minute, TransportMaxAge: time.Hour}
	}
	transform := func() string {
		t.Helper()
		s, err := js.Stream(ctx, jetstream.StreamInbound)
		if err != nil {
			t.Fatal(err)
		}
		if tr := s.CachedInfo().Config.SubjectTransform; tr != nil {
			return tr.Destination
		}
		return ""
	}
	before := transform()
	err := jetstream.Ensure(ctx, js, topo(8))
	if !errors.Is(err, jetstream.ErrPartitionsChanged) || !strings.Contains(err.Error(), "the data has 4") ||
		!strings.Contains(err.Error(), "configured with 8") {
		t.Fatalf("Ensure with 8 partitions over 4: %v", err)
	}
	if after := transform(); after != before {
		t.Fatalf("inbound transform changed from %q to %q", before, after)
	}
	if err := jetstream.Ensure(ctx, js, topo(4)); err != nil {
		t.Fatalf("Ensure with the same count: %v", err)
	}
	s, err := js.Stream(ctx, jetstream.StreamInbound)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.SubjectTransform = nil
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := jetstream.Ensure(ctx, js, topo(8)); err != nil {
		t.Fatalf("Ensure over a stream without partitions: %v", err)
	}
	if got := transform(); !strings.Contains(got, "partition(8,") {
		t.Fatalf("inbound transform %q, want 8 partitions", got)
	}
}

// TestFencedStreamsKeepTheShortestDuplicateWindow: the order and SKU
// streams, which no ID-carrying message reaches, keep the server's
// shortest duplicate window (a node's start reads every message stored
// within it); the streams whose messages carry a Nats-Msg-Id keep the
// topology's. A store made with the older 2-minute window is updated.
func TestFencedStreamsKeepTheShortestDuplicateWindow(t *testing.T) {
	js, ctx := startJS(t, 4)
	topo := jetstream.Topology{Partitions: 4, Replicas: 1, DuplicateWindow: 90 * time.Second, TransportMaxAge: time.Hour}
	window := func(name string) time.Duration {
		t.Helper()
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config.Duplicates
	}
	s, err := js.Stream(ctx, jetstream.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	older := s.CachedInfo().Config
	older.Duplicates = 2 * time.Minute
	if _, err := js.UpdateStream(ctx, older); err != nil {
		t.Fatal(err)
	}
	if err := jetstream.Ensure(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{jetstream.StreamOrders, jetstream.StreamSKUs} {
		if got := window(name); got != jetstream.FencedDuplicateWindow {
			t.Errorf("%s duplicate window %s, want %s", name, got, jetstream.FencedDuplicateWindow)
		}
	}
	for _, name := range []string{jetstream.StreamInbound, jetstream.StreamOutbox, jetstream.StreamDeadLetter} {
		if got := window(name); got != topo.DuplicateWindow {
			t.Errorf("%s duplicate window %s, want the topology's %s", name, got, topo.DuplicateWindow)
		}
	}
}

// BenchmarkAppend is the append path: one fenced, de-duplicated append to
// a file-backed stream, each to its own order subject.
func BenchmarkAppend(b *testing.B) {
	js, ctx := startJSForBench(b)
	data := []byte(`{"id":"x","type":"order.placed","v":1,"status":"order_received"}`)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := jetstream.Append(ctx, js, jetstream.OrderEventsPrefix+"o"+strconv.Itoa(i), data, 0, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func startJSForBench(b *testing.B) (natsjs.JetStream, context.Context) {
	b.Helper()
	env := natstest.Start(b, natstest.Options{InProcess: true, Timeout: time.Hour})
	return env.JS, env.Ctx
}

// TestOutbox: queued messages are stored once each when Wait returns, a
// repeated batch (a retried side effect) adds nothing, and a message no
// stream captures makes Wait fail, after which the outbox is usable again.
// Notes are sent, not stored, once the stored messages are, each time
// (a listener drops a repeat by its ID), and never when Wait fails.
func TestOutbox(t *testing.T) {
	js, ctx := startJS(t, 4)
	heard := make(chan *nats.Msg, 16)
	sub, err := js.Conn().ChanSubscribe(jetstream.NotificationsPrefix+"*", heard)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	out := jetstream.NewOutbox(js)
	send := func() {
		out.Notify(jetstream.NotificationsPrefix+"o1", []byte(`{"n":1}`), nats.Header{"Oms-Correlation-Id": []string{"c1"}})
		out.Publish(jetstream.DeliveryRequestPrefix+"o1", "e1:delivery", []byte(`{"n":1}`), nil)
		out.Publish(jetstream.PaymentRequestsPrefix+"o1", "e1:payment", []byte(`{"n":2}`), nil)
	}
	hear := func(subject string) {
		t.Helper()
		select {
		case m := <-heard:
			if m.Subject != subject || (subject == jetstream.NotificationsPrefix+"o1" && m.Header.Get("Oms-Correlation-Id") != "c1") {
				t.Fatalf("heard %s %v, want %s", m.Subject, m.Header, subject)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no note on %s", subject)
		}
	}
	for range 2 {
		send()
		if err := out.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		hear(jetstream.NotificationsPrefix + "o1")
	}
	count := func(stream, subject string) uint64 {
		t.Helper()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx, natsjs.WithSubjectFilter(subject))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects[subject]
	}
	if n := count(jetstream.StreamOutbox, jetstream.DeliveryRequestPrefix+"o1"); n != 1 {
		t.Fatalf("delivery requests stored %d times, want 1", n)
	}
	if n := count(jetstream.StreamOutbox, jetstream.PaymentRequestsPrefix+"o1"); n != 1 {
		t.Fatalf("payment requests stored %d times, want 1", n)
	}
	if _, err := js.StreamNameBySubject(ctx, jetstream.NotificationsPrefix+"o1"); err == nil {
		t.Fatal("a stream captures the notifications")
	}
	out.Notify(jetstream.NotificationsPrefix+"o3", []byte(`{}`), nil)
	out.Publish("nobody.captures.this", "x", []byte(`{}`), nil)
	if err := out.Wait(ctx); err == nil || !strings.Contains(err.Error(), "nobody.captures.this") {
		t.Fatalf("uncaptured subject: got %v, want an error naming it", err)
	}
	out.Notify(jetstream.NotificationsPrefix+"o2", []byte(`{}`), nil)
	out.Publish(jetstream.PaymentRequestsPrefix+"o2", "e2:payment", []byte(`{}`), nil)
	if err := out.Wait(ctx); err != nil {
		t.Fatalf("outbox after a failure: %v", err)
	}
	hear(jetstream.NotificationsPrefix + "o2") // not o3, whose effects failed
}

// BenchmarkStoredMessage is the unit of work the order lifecycle repeats:
// one message published with a Nats-Msg-Id to a file-backed stream (in
// windows of 64, as the reactor's outbox does), delivered to a durable
// consumer and acknowledged. cpu-µs/msg is the process's CPU time per
// message (server and client), so `oms bench`'s stored messages per order
// times it is the floor the transport alone sets on CPU per order.
func BenchmarkStoredMessage(b *testing.B) {
	js, ctx := startJSForBench(b)
	cons, err := js.CreateOrUpdateConsumer(ctx, jetstream.StreamOutbox, natsjs.ConsumerConfig{Durable: "bench",
		AckPolicy: natsjs.AckExplicitPolicy, MaxAckPending: 4096})
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(strings.Repeat("x", 300))
	consumed := make(chan struct{}, 1)
	var got atomic.Int64
	want := int64(b.N)
	cc, err := cons.Consume(func(m natsjs.Msg) {
		_ = m.Ack()
		if got.Add(1) == want {
			consumed <- struct{}{}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	out := jetstream.NewOutbox(js)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		out.Publish(jetstream.PaymentRequestsPrefix+strconv.Itoa(i), "b"+strconv.Itoa(i), data, nil)
		if i%64 == 63 || i == b.N-1 {
			if err := out.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	select {
	case <-consumed:
	case <-time.After(time.Minute):
		b.Fatalf("consumed %d of %d", got.Load(), want)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

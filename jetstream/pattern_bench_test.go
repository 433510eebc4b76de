package jetstream_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/jetstream"
)

// The benchmarks below measure, one by one, the JetStream patterns an
// order's lifecycle is made of, with the CPU time of the whole process
// (server and client, in process as a node runs them) per message:
// cpu-µs/msg. With the counts `oms bench` prints per order (stored
// messages by stream, deliveries, acknowledgements) they give the floor
// the transport sets on an order's CPU cost, pattern by pattern:
//
//	go test ./jetstream -run '^$' -bench Pattern -benchtime 20000x -count 3

// BenchmarkPatternPublish is how oms stores messages: an actor's fenced
// append, waited for (one writer, and 64 at once as under load) as a
// request (fenced-sync, with a Nats-Msg-Id and without) and as
// jetstream.Append sends it (asynchronously, waiting on the future; with
// no Nats-Msg-Id since the eleventh round, and with one as before), the
// reactor's asynchronous publishes waited for together (the 1 or 2
// messages one event causes, and a window of 64), the same fenced appends
// as fast batches (the cheapest way the server offers to store them), a
// notification (sent, not stored), and the expiry timer oms used to arm
// per order (a message schedule).
func BenchmarkPatternPublish(b *testing.B) {
	data := []byte(strings.Repeat("x", 300))
	fenced := func(writers int, msgID bool) func(b *testing.B) {
		return func(b *testing.B) {
			js, ctx := startJSForBench(b)
			measure(b, func() {
				share(b, writers, 1, func(i, _ int64) error {
					s := strconv.FormatInt(i, 10)
					m := nats.NewMsg(jetstream.OrderEventsPrefix + "o" + s)
					m.Data = data
					opts := []natsjs.PublishOpt{natsjs.WithExpectLastSequencePerSubject(0)}
					if msgID {
						opts = append(opts, natsjs.WithMsgID("m"+s))
					}
					_, err := js.PublishMsg(ctx, m, opts...)
					return err
				})
			})
		}
	}
	// jetstream.Append: the same fenced append, sent asynchronously and
	// waited for on its future; withID adds the Nats-Msg-Id it sent until
	// the eleventh round, which the fence makes redundant.
	appends := func(writers int, withID bool) func(b *testing.B) {
		return func(b *testing.B) {
			js, ctx := startJSForBench(b)
			measure(b, func() {
				share(b, writers, 1, func(i, _ int64) error {
					s := strconv.FormatInt(i, 10)
					if !withID {
						_, err := jetstream.Append(ctx, js, jetstream.OrderEventsPrefix+"o"+s, data, 0, nil)
						return err
					}
					m := nats.NewMsg(jetstream.OrderEventsPrefix + "o" + s)
					m.Data = data
					f, err := js.PublishMsgAsync(m, natsjs.WithMsgID("m"+s), natsjs.WithExpectLastSequencePerSubject(0))
					if err != nil {
						return err
					}
					select {
					case <-f.Ok():
						return nil
					case err := <-f.Err():
						return err
					case <-ctx.Done():
						return ctx.Err()
					}
				})
			})
		}
	}
	b.Run("append/writers=1", appends(1, false))
	b.Run("append/writers=64", appends(64, false))
	b.Run("append-with-msgid/writers=64", appends(64, true))
	b.Run("fenced-sync/writers=1", fenced(1, true))
	b.Run("fenced-sync/writers=64", fenced(64, true))
	b.Run("fenced-sync-no-msgid/writers=64", fenced(64, false))
	// Fast-batch publishing (ADR-50, nats-server 2.14+; nats.go v1.55 has
	// no client for it, so it is spoken here on the wire): the same fenced
	// appends, size to a batch, from 1 and from 16 publishers, each waiting
	// for its batch's commit. In "gap: ok" mode a refused fence is reported
	// for its batch sequence and the batch goes on, which is what a node
	// funnelling its actors' appends into one batch would need.
	b.Run("fast-batch-fenced/publishers=1/size=64", fastBatch(1, 64, data))
	b.Run("fast-batch-fenced/publishers=16/size=4", fastBatch(16, 4, data))
	b.Run("fast-batch-fenced/publishers=16/size=64", fastBatch(16, 64, data))
	// Atomic batches (ADR-50): a committed batch is stored contiguously,
	// so each message's stream sequence follows from the commit's PubAck,
	// which is what an actor needs to fence its next append.
	b.Run("atomic-batch-fenced/publishers=1/size=64", atomicBatch(1, 64, data))
	b.Run("atomic-batch-fenced/publishers=4/size=16", atomicBatch(4, 16, data))
	// 64 reactor workers, each waiting for its event's messages.
	window := func(size int) func(b *testing.B) {
		return func(b *testing.B) {
			js, ctx := startJSForBench(b)
			measure(b, func() {
				share(b, 64, size, func(first, last int64) error {
					out := jetstream.NewOutbox(js)
					for i := first; i < last; i++ {
						s := strconv.FormatInt(i, 10)
						out.Publish(jetstream.PaymentRequestsPrefix+s, "e"+s, data, nil)
					}
					return out.Wait(ctx)
				})
			})
		}
	}
	b.Run("async-with-msgid/window=1", window(1))
	b.Run("async-with-msgid/window=3", window(3))
	b.Run("async-with-msgid/window=64", window(64))
	// A customer notification: sent, not stored, to one listener, from the
	// reactor's 64 workers (each sends its event's after the stored ones).
	b.Run("notify-unstored", func(b *testing.B) {
		js, _ := startJSForBench(b)
		var heard atomic.Int64
		done := make(chan struct{})
		sub, err := js.Conn().Subscribe(jetstream.NotificationsPrefix+"*", func(*nats.Msg) {
			if heard.Add(1) == int64(b.N) {
				close(done)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Unsubscribe()
		_ = sub.SetPendingLimits(-1, -1)
		measure(b, func() {
			share(b, 64, 1, func(i, _ int64) error {
				out := jetstream.NewOutbox(js)
				out.Notify(jetstream.NotificationsPrefix+strconv.FormatInt(i, 10), data, nil)
				return out.Wait(context.Background())
			})
			select {
			case <-done:
			case <-time.After(time.Minute):
				b.Fatalf("heard %d of %d", heard.Load(), b.N)
			}
		})
	})
	// The expiry timer oms armed per order until the expiry sweep replaced
	// it, kept to show what that saved.
	b.Run("schedule/window=1", func(b *testing.B) {
		js, ctx := startJSForBench(b)
		if _, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: "TIMERS", Subjects: []string{"timers.>"},
			Storage: natsjs.FileStorage, AllowMsgSchedules: true, AllowRollup: true}); err != nil {
			b.Fatal(err)
		}
		at := time.Now().Add(time.Hour).Truncate(time.Second)
		measure(b, func() {
			share(b, 64, 1, func(i, _ int64) error {
				s := strconv.FormatInt(i, 10)
				m := nats.NewMsg("timers.schedule.o" + s)
				m.Data = data
				_, err := js.PublishMsg(ctx, m, natsjs.WithScheduleAt(at), natsjs.WithScheduleTarget("timers.fired.o"+s))
				return err
			})
		})
	})
}

// fastBatch measures fenced appends sent as fast batches: publishers
// goroutines each send size messages (to an order subject each, expecting
// it empty, with a Nats-Msg-Id) under one batch ID and wait for the
// batch's PubAck, which carries the stream sequence of its last message
// only: the server does not say where each message of a batch landed.
func fastBatch(publishers, size int, data []byte) func(b *testing.B) {
	return func(b *testing.B) {
		js, ctx := startJSForBench(b)
		allowOnOrders(b, js, ctx, func(cfg *natsjs.StreamConfig) { cfg.AllowBatchPublish = true })
		nc := js.Conn()
		measure(b, func() {
			var batchID atomic.Int64
			share(b, publishers, size, func(first, last int64) error {
				inbox := nats.NewInbox()
				replies := make(chan *nats.Msg, 2*size+2)
				sub, err := nc.ChanSubscribe(inbox+".>", replies)
				if err != nil {
					return err
				}
				defer sub.Unsubscribe()
				id := "b" + strconv.FormatInt(batchID.Add(1), 10)
				for i := first; i < last; i++ {
					seq, op := i-first+1, 1
					switch {
					case i == last-1:
						op = 2 // commit
					case seq == 1:
						op = 0 // start
					}
					n := strconv.FormatInt(i, 10)
					m := nats.NewMsg(jetstream.OrderEventsPrefix + "o" + n)
					m.Data = data
					m.Header.Set(natsjs.ExpectedLastSubjSeqHeader, "0")
					m.Header.Set(natsjs.MsgIDHeader, "m"+n)
					m.Reply = inbox + "." + id + ".500.ok." + strconv.FormatInt(seq, 10) + "." + strconv.Itoa(op) + ".$FI"
					if err := nc.PublishMsg(m); err != nil {
						return err
					}
				}
				for {
					select {
					case r := <-replies:
						switch {
						case strings.Contains(string(r.Data), `"type":"err"`):
							return errors.New(string(r.Data))
						case strings.Contains(string(r.Data), `"stream"`):
							if strings.Contains(string(r.Data), `"error"`) {
								return errors.New(string(r.Data))
							}
							return nil
						}
					case <-time.After(time.Minute):
						return errors.New("no commit acknowledgement for batch " + id)
					}
				}
			})
		})
	}
}

// atomicBatch measures fenced appends sent as atomic batches: publishers
// goroutines each send size messages (to an order subject each, expecting
// it empty, with a Nats-Msg-Id) under one batch ID, the last one with the
// commit header as a request answered by the batch's PubAck.
func atomicBatch(publishers, size int, data []byte) func(b *testing.B) {
	return func(b *testing.B) {
		js, ctx := startJSForBench(b)
		allowOnOrders(b, js, ctx, func(cfg *natsjs.StreamConfig) { cfg.AllowAtomicPublish = true })
		nc := js.Conn()
		measure(b, func() {
			var batchID atomic.Int64
			share(b, publishers, size, func(first, last int64) error {
				id := "a" + strconv.FormatInt(batchID.Add(1), 10)
				for i := first; i < last; i++ {
					n := strconv.FormatInt(i, 10)
					m := nats.NewMsg(jetstream.OrderEventsPrefix + "o" + n)
					m.Data = data
					m.Header.Set(natsjs.ExpectedLastSubjSeqHeader, "0")
					m.Header.Set(natsjs.MsgIDHeader, "m"+n)
					m.Header.Set("Nats-Batch-Id", id)
					m.Header.Set("Nats-Batch-Sequence", strconv.FormatInt(i-first+1, 10))
					if i < last-1 {
						if err := nc.PublishMsg(m); err != nil {
							return err
						}
						continue
					}
					m.Header.Set("Nats-Batch-Commit", "1")
					r, err := nc.RequestMsg(m, time.Minute)
					if err != nil {
						return err
					}
					if strings.Contains(string(r.Data), `"error"`) {
						return errors.New(string(r.Data))
					}
				}
				return nil
			})
		})
	}
}

// allowOnOrders turns on a publishing mode of the order stream.
func allowOnOrders(b *testing.B, js natsjs.JetStream, ctx context.Context, allow func(*natsjs.StreamConfig)) {
	s, err := js.Stream(ctx, jetstream.StreamOrders)
	if err != nil {
		b.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	allow(&cfg)
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		b.Fatal(err)
	}
}

// share runs b.N messages' work on workers goroutines, handing each the
// next size of them ([first, last)) until none is left.
func share(b *testing.B, workers, size int, work func(first, last int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				first := next.Add(int64(size)) - int64(size)
				if first >= int64(b.N) {
					return
				}
				if err := work(first, min(first+int64(size), int64(b.N))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkPatternConsume is how oms reads stored messages: a durable pull
// consumer acknowledging each message (every pipeline: reactor, inbound
// partitions, timers, the providers), the same acknowledging every 64th
// with AckAll, and an ordered consumer with no acknowledgements (the
// projection, replays). The messages are stored before the clock starts.
func BenchmarkPatternConsume(b *testing.B) {
	data := []byte(strings.Repeat("x", 300))
	prepare := func(b *testing.B) (natsjs.JetStream, context.Context) {
		js, ctx := startJSForBench(b)
		out := jetstream.NewOutbox(js)
		for i := range b.N {
			s := strconv.Itoa(i)
			out.Publish(jetstream.PaymentRequestsPrefix+s, "p"+s, data, nil)
			if i%256 == 255 || i == b.N-1 {
				if err := out.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		return js, ctx
	}
	consume := func(b *testing.B, cons natsjs.Consumer, ack func(m natsjs.Msg, n int64)) {
		done := make(chan struct{})
		var got atomic.Int64
		measure(b, func() {
			cc, err := cons.Consume(func(m natsjs.Msg) {
				n := got.Add(1)
				ack(m, n)
				if n == int64(b.N) {
					close(done)
				}
			}, natsjs.PullMaxMessages(256))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Stop()
			select {
			case <-done:
			case <-time.After(5 * time.Minute):
				b.Fatalf("consumed %d of %d", got.Load(), b.N)
			}
		})
	}
	durable := func(b *testing.B, name string, policy natsjs.AckPolicy) natsjs.Consumer {
		js, ctx := prepare(b)
		cons, err := js.CreateOrUpdateConsumer(ctx, jetstream.StreamOutbox, natsjs.ConsumerConfig{Durable: name,
			AckPolicy: policy, MaxAckPending: 1024})
		if err != nil {
			b.Fatal(err)
		}
		return cons
	}
	b.Run("pull-ack-each", func(b *testing.B) {
		consume(b, durable(b, "each", natsjs.AckExplicitPolicy), func(m natsjs.Msg, _ int64) { _ = m.Ack() })
	})
	b.Run("pull-ackall-every-64", func(b *testing.B) {
		consume(b, durable(b, "all", natsjs.AckAllPolicy), func(m natsjs.Msg, n int64) {
			if n%64 == 0 || n == int64(b.N) {
				_ = m.Ack()
			}
		})
	})
	b.Run("ordered", func(b *testing.B) {
		js, ctx := prepare(b)
		s, err := js.Stream(ctx, jetstream.StreamOutbox)
		if err != nil {
			b.Fatal(err)
		}
		cons, err := s.OrderedConsumer(ctx, natsjs.OrderedConsumerConfig{})
		if err != nil {
			b.Fatal(err)
		}
		consume(b, cons, func(natsjs.Msg, int64) {})
	})
}

// measure runs work with the clock on and reports the process's CPU time
// per message.
func measure(b *testing.B, work func()) { measureAs(b, "cpu-µs/msg", work) }

// measureAs runs work with the clock on and reports the process's CPU time
// per b.N as unit.
func measureAs(b *testing.B, unit string, work func()) {
	b.Helper()
	cpu0 := cpuTime()
	b.ResetTimer()
	work()
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), unit)
}

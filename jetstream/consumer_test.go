package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/internal/natstest"
	"github.com/oms-project/oms/internal/poll"
	"github.com/oms-project/oms/jetstream"
)

var errPermanent = errors.New("permanent")

// pipelineOn runs handle on a fresh durable consumer of the outbox stream's
// payment requests.
func pipelineOn(t *testing.T, env *natstest.Env, name string, workers int, handle jetstream.Handler) {
	t.Helper()
	pipelineLogging(t, env, name, workers, handle, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func pipelineLogging(t *testing.T, env *natstest.Env, name string, workers int, handle jetstream.Handler, log *slog.Logger) {
	t.Helper()
	pipelineFor(t, env, natsjs.ConsumerConfig{Durable: name, FilterSubject: jetstream.PaymentRequestsPrefix + ">",
		AckPolicy: natsjs.AckExplicitPolicy, AckWait: 5 * time.Second, MaxDeliver: -1}, workers, handle, log)
}

func pipelineFor(t *testing.T, env *natstest.Env, cfg natsjs.ConsumerConfig, workers int, handle jetstream.Handler, log *slog.Logger) {
	t.Helper()
	name := cfg.Durable
	cons, err := env.JS.CreateOrUpdateConsumer(env.Ctx, jetstream.StreamOutbox, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &jetstream.Pipeline{Name: name, Handle: handle, JS: env.JS, Log: log,
		Timeout: time.Second, MaxAttempts: 3, Backoff: jetstream.Backoff{Base: time.Millisecond, Max: 10 * time.Millisecond},
		Retryable: func(err error) bool { return !errors.Is(err, errPermanent) }, Workers: workers,
		Key: func(m jetstream.Msg) string { return strings.TrimPrefix(m.Subject(), jetstream.PaymentRequestsPrefix) }}
	stop, err := p.Consume(cons)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
}

func deadLetters(t *testing.T, env *natstest.Env, source string) []*natsjs.RawStreamMsg {
	t.Helper()
	s, err := env.JS.Stream(env.Ctx, jetstream.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	var out []*natsjs.RawStreamMsg
	if err := jetstream.Fold(env.Ctx, s, jetstream.DeadLetterPrefix+source, 0, func(m *natsjs.RawStreamMsg) error {
		out = append(out, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPipelineLogsWhatStopsItsConsumer: what nats.go reports about a
// running Consume (here, its consumer deleted under it) is logged with the
// pipeline's name, not dropped.
func TestPipelineLogsWhatStopsItsConsumer(t *testing.T) {
	env := natstest.Start(t, natstest.Options{})
	log, logged := capturedLog()
	pipelineLogging(t, env, "watched", 0, func(context.Context, jetstream.Msg) error { return nil }, log)
	// The server tells the pull requests waiting at a consumer it deletes.
	waitingPulls(t, env, "watched", 1)
	if err := env.JS.DeleteConsumer(env.Ctx, jetstream.StreamOutbox, "watched"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the deleted consumer in the log", func() (bool, string) {
		text := logged()
		return strings.Contains(text, "watched: consume") && strings.Contains(text, "level=WARN") &&
			strings.Contains(strings.ToLower(text), "consumer deleted"), text
	})
}

// TestPipelineOpensItsDeletedConsumerAgain: a durable consumer deleted
// under a running pipeline is opened again after its recorded floor and
// pulled: what comes after is handled, what was handled before is not
// handled again (from the stream's start it would be), and the log says so.
func TestPipelineOpensItsDeletedConsumerAgain(t *testing.T) {
	env := natstest.Start(t, natstest.Options{})
	log, logged := capturedLog()
	var mu sync.Mutex // guards handled
	backoff := jetstream.Backoff{Base: time.Millisecond, Max: 50 * time.Millisecond}
	floors, err := jetstream.OpenFloors(env.Ctx, env.JS, backoff, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := natsjs.ConsumerConfig{Durable: "kept", FilterSubject: jetstream.PaymentRequestsPrefix + ">",
		AckPolicy: natsjs.AckExplicitPolicy, AckWait: 5 * time.Second, MaxDeliver: -1}
	open := func(ctx context.Context) (natsjs.Consumer, error) {
		return jetstream.OpenDurable(ctx, env.JS, floors, "kept", jetstream.StreamOutbox, cfg)
	}
	handled := map[string]int{}
	p := &jetstream.Pipeline{Name: "kept", JS: env.JS, Log: log, Timeout: time.Second, MaxAttempts: 3, Backoff: backoff,
		Handle: func(_ context.Context, m jetstream.Msg) error {
			mu.Lock()
			defer mu.Unlock()
			handled[m.Subject()]++
			return nil
		}}
	cons, err := open(env.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := p.ConsumeDurable(cons, open)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := env.JS.Publish(env.Ctx, jetstream.PaymentRequestsPrefix+strconv.Itoa(i), []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	allHandled := func(n int) {
		t.Helper()
		poll.Until(t, 20*time.Second, fmt.Sprintf("%d messages handled once each", n), func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			for i := range n {
				if c := handled[jetstream.PaymentRequestsPrefix+strconv.Itoa(i)]; c != 1 {
					return false, fmt.Sprintf("message %d handled %d times (%d subjects)", i, c, len(handled))
				}
			}
			return len(handled) == n, fmt.Sprintf("%d subjects handled", len(handled))
		})
	}
	publish(0, 10)
	allHandled(10)
	// What the node's recorder does: the consumer's acknowledgement floor.
	poll.Until(t, 10*time.Second, "every message acknowledged", func() (bool, string) {
		c, err := env.JS.Consumer(env.Ctx, jetstream.StreamOutbox, "kept")
		if err != nil {
			return false, err.Error()
		}
		return c.CachedInfo().NumAckPending == 0 && c.CachedInfo().AckFloor.Stream > 0, "pending"
	})
	c, err := env.JS.Consumer(env.Ctx, jetstream.StreamOutbox, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if err := floors.Put(env.Ctx, "kept", c.CachedInfo().AckFloor.Stream); err != nil {
		t.Fatal(err)
	}
	waitingPulls(t, env, "kept", 1)
	if err := env.JS.DeleteConsumer(env.Ctx, jetstream.StreamOutbox, "kept"); err != nil {
		t.Fatal(err)
	}
	publish(10, 20)
	allHandled(20)
	poll.Until(t, 10*time.Second, "the consumer opened again, in the log", func() (bool, string) {
		text := logged()
		return strings.Contains(text, "kept: consumer was deleted; opened again and pulling"), text
	})
}

// TestPipelinePullsAgainWhenItsPullIsDropped: the server drops, without a
// word, a pull request that asks for heartbeats when the consumer has no
// room for it (here MaxWaiting 1, taken by another client); the pipeline
// notices the missing heartbeats and pulls again within seconds, where
// nats.go's defaults would wait 30 s (what paused the reactor under load).
func TestPipelinePullsAgainWhenItsPullIsDropped(t *testing.T) {
	env := natstest.Start(t, natstest.Options{})
	cfg := natsjs.ConsumerConfig{Durable: "crowded", FilterSubject: jetstream.PaymentRequestsPrefix + ">",
		AckPolicy: natsjs.AckExplicitPolicy, AckWait: 5 * time.Second, MaxDeliver: -1, MaxWaiting: 1}
	cons, err := env.JS.CreateOrUpdateConsumer(env.Ctx, jetstream.StreamOutbox, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Another client's pull takes the only place.
	other, err := cons.Fetch(1, natsjs.FetchMaxWait(8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	waitingPulls(t, env, "crowded", 1)
	var handled atomic.Int64
	pipelineFor(t, env, cfg, 0, func(context.Context, jetstream.Msg) error {
		handled.Add(1)
		return nil
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// A pull without heartbeats sent after the pipeline's on the same
	// connection is refused out loud: by then the server has dropped the
	// pipeline's.
	probe, err := env.JS.Conn().Request("$JS.API.CONSUMER.MSG.NEXT."+jetstream.StreamOutbox+".crowded",
		[]byte(`{"batch":1,"expires":1000000000}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if probe.Header.Get("Status") != "409" {
		t.Fatalf("a pull beyond MaxWaiting: %v %q", probe.Header, probe.Data)
	}
	// The first message goes to the other client's pull, which then ends.
	if _, err := env.JS.Publish(env.Ctx, jetstream.PaymentRequestsPrefix+"1", []byte("1")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-other.Messages():
		if m == nil {
			t.Fatalf("the other client's pull ended without the message: %v", other.Error())
		}
		_ = m.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("the other client's pull got nothing")
	}
	if handled.Load() != 0 {
		t.Fatal("the pipeline's pull was not dropped: the test proves nothing")
	}
	if _, err := env.JS.Publish(env.Ctx, jetstream.PaymentRequestsPrefix+"2", []byte("2")); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the pipeline pulling again and handling the second message", func() (bool, string) {
		return handled.Load() == 1, fmt.Sprintf("%d handled", handled.Load())
	})
}

// waitingPulls waits until the outbox consumer name has want pull
// requests waiting at the server.
func waitingPulls(t *testing.T, env *natstest.Env, name string, want int) {
	t.Helper()
	poll.Until(t, 10*time.Second, fmt.Sprintf("%d pull request(s) waiting at %s", want, name), func() (bool, string) {
		cons, err := env.JS.Consumer(env.Ctx, jetstream.StreamOutbox, name)
		if err != nil {
			return false, err.Error()
		}
		ci, err := cons.Info(env.Ctx)
		if err != nil {
			return false, err.Error()
		}
		return ci.NumWaiting == want, fmt.Sprintf("%d waiting", ci.NumWaiting)
	})
}

// capturedLog is a logger whose lines the returned func reads.
func capturedLog() (*slog.Logger, func() string) {
	var mu sync.Mutex
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(b)
	}), nil))
	return log, func() string {
		mu.Lock()
		defer mu.Unlock()
		return logged.String()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestPipelineDeadLettersWhatCannotBeProcessed: a message whose handler
// keeps failing is tried MaxAttempts times and dead-lettered; a permanent
// error and a panic are dead-lettered at once, the panic with its stack;
// and the messages behind them are processed all the same. A dead letter
// keeps its message's own headers, and none the server would act on.
func TestPipelineDeadLettersWhatCannotBeProcessed(t *testing.T) {
	env := natstest.Start(t, natstest.Options{})
	var tries sync.Map
	var ok atomic.Int64
	pipelineOn(t, env, "poison", 0, func(_ context.Context, m jetstream.Msg) error {
		n, _ := tries.LoadOrStore(m.Subject(), new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		switch string(m.Data()) {
		case "flaky":
			return errors.New("still failing")
		case "permanent":
			return fmt.Errorf("refused: %w", errPermanent)
		case "panic":
			var p *struct{ x int }
			return fmt.Errorf("%d", p.x)
		}
		ok.Add(1)
		return nil
	})
	for i, body := range []string{"flaky", "permanent", "panic", "fine", "fine"} {
		m := nats.NewMsg(jetstream.PaymentRequestsPrefix + strconv.Itoa(i))
		m.Data = []byte(body)
		if body == "permanent" {
			m.Header.Set(api.CorrelationHeader, "corr-1")
			m.Header.Set(nats.MsgIdHdr, "perm-1")
			m.Header.Set(nats.ExpectedLastSubjSeqHdr, "0")
		}
		if _, err := env.JS.PublishMsg(env.Ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 20*time.Second, "three dead letters and two processed", func() (bool, string) {
		n := len(deadLetters(t, env, "poison"))
		return n == 3 && ok.Load() == 2, fmt.Sprintf("%d dead letters, %d processed", n, ok.Load())
	})
	reasons := map[string]string{}
	for _, m := range deadLetters(t, env, "poison") {
		reasons[string(m.Data)] = m.Header.Get(jetstream.HeaderReason)
		if string(m.Data) != "permanent" {
			continue
		}
		if m.Header.Get(jetstream.HeaderOrigMsgID) != "perm-1" || m.Header.Get(nats.MsgIdHdr) == "perm-1" ||
			m.Header.Get(nats.ExpectedLastSubjSeqHdr) != "" {
			t.Errorf("permanent: headers %v, want its message ID kept aside and no server control of its own", m.Header)
		}
		if got := jetstream.OriginalHeaders(m.Header); fmt.Sprint(got) != fmt.Sprint(nats.Header{api.CorrelationHeader: {"corr-1"}}) {
			t.Errorf("permanent: original headers %v, want its correlation only", got)
		}
	}
	if !strings.Contains(reasons["flaky"], "failed 3 times") {
		t.Errorf("flaky: reason %q", reasons["flaky"])
	}
	if !strings.Contains(reasons["panic"], "nil pointer") || !strings.Contains(reasons["panic"], "consumer_test.go") {
		t.Errorf("panic: reason %q, want the panic and its stack", reasons["panic"])
	}
	for subject, want := range map[string]int64{"0": 3, "1": 1, "2": 1} {
		n, _ := tries.Load(jetstream.PaymentRequestsPrefix + subject)
		if got := n.(*atomic.Int64).Load(); got != want {
			t.Errorf("message %s tried %d times, want %d", subject, got, want)
		}
	}
}

// TestPipelineWorkersKeepOrderPerKey: with several workers, the messages of
// one key are handled one at a time in stream order.
func TestPipelineWorkersKeepOrderPerKey(t *testing.T) {
	env := natstest.Start(t, natstest.Options{})
	var mu sync.Mutex
	seen := map[string][]int{}
	busy := map[string]bool{}
	overlap := atomic.Bool{}
	var done atomic.Int64
	pipelineOn(t, env, "ordered", 4, func(_ context.Context, m jetstream.Msg) error {
		key := m.Subject()
		mu.Lock()
		if busy[key] {
			overlap.Store(true)
		}
		busy[key] = true
		mu.Unlock()
		time.Sleep(100 * time.Microsecond)
		n, _ := strconv.Atoi(string(m.Data()))
		mu.Lock()
		busy[key] = false
		seen[key] = append(seen[key], n)
		mu.Unlock()
		done.Add(1)
		return nil
	})
	const keys, per = 8, 25
	for i := range per {
		for k := range keys {
			if _, err := env.JS.PublishAsync(jetstream.PaymentRequestsPrefix+strconv.Itoa(k), []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	<-env.JS.PublishAsyncComplete()
	poll.Until(t, 20*time.Second, "every message handled", func() (bool, string) {
		return done.Load() == keys*per, fmt.Sprint(done.Load())
	})
	if overlap.Load() {
		t.Fatal("two messages of one key were handled at once")
	}
	for key, ns := range seen {
		for i, n := range ns {
			if n != i {
				t.Fatalf("%s handled out of order: %v", key, ns)
			}
		}
	}
}

// TestBackoffGrowsWithinBounds: each delay lies in the upper half of the
// doubled base, capped at Max.
func TestBackoffGrowsWithinBounds(t *testing.T) {
	b := jetstream.Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	for failures, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		for range 100 {
			if d := b.Delay(failures); d < want/2 || d > want {
				t.Fatalf("after %d failures: %s, want within [%s, %s]", failures, d, want/2, want)
			}
		}
	}
}

// TestPipelineKeepsALongHandlerItsMessage: a handler that takes longer
// than the consumer's ack wait (waiting out an election, within its own
// timeout) keeps its message: the pipeline tells the server it is still at
// work, so the message is not delivered again meanwhile.
func TestPipelineKeepsALongHandlerItsMessage(t *testing.T) {
	env := natstest.Start(t, natstest.Options{})
	const ackWait = 600 * time.Millisecond
	cons, err := env.JS.CreateOrUpdateConsumer(env.Ctx, jetstream.StreamOutbox, natsjs.ConsumerConfig{Durable: "slow",
		FilterSubject: jetstream.PaymentRequestsPrefix + ">", AckPolicy: natsjs.AckExplicitPolicy, AckWait: ackWait, MaxDeliver: -1})
	if err != nil {
		t.Fatal(err)
	}
	var calls, handled atomic.Int64
	for _, workers := range []int{0, 2} {
		calls.Store(0)
		handled.Store(0)
		p := &jetstream.Pipeline{Name: "slow", JS: env.JS, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Timeout: 10 * ackWait, MaxAttempts: 3, Backoff: jetstream.Backoff{Base: time.Millisecond, Max: 10 * time.Millisecond},
			Workers: workers, AckWait: ackWait,
			Handle: func(ctx context.Context, m jetstream.Msg) error {
				calls.Add(1)
				select { // four ack waits
				case <-time.After(4 * ackWait):
				case <-ctx.Done():
					return ctx.Err()
				}
				handled.Add(1)
				return nil
			}}
		stop, err := p.Consume(cons)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.JS.Publish(env.Ctx, jetstream.PaymentRequestsPrefix+"slow-"+strconv.Itoa(workers), []byte("{}")); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 20*ackWait, "the slow message handled", func() (bool, string) {
			return handled.Load() >= 1, fmt.Sprint(handled.Load())
		})
		// Anything delivered again would be at work by now (and counted).
		info, err := cons.Info(env.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		stop()
		if calls.Load() != 1 || info.NumRedelivered != 0 {
			t.Fatalf("workers=%d: handler called %d times, %d redelivered, want once", workers, calls.Load(), info.NumRedelivered)
		}
	}
}

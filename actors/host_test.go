package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oms-project/oms/internal/poll"
)

// counter counts the messages it handled and how often it was passivated.
type counter struct {
	handled     *atomic.Int64
	passivated  *atomic.Int64
	concurrent  atomic.Int32
	overlapSeen *atomic.Bool
}

func (c *counter) Handle(_ context.Context, msg any) any {
	if c.concurrent.Add(1) > 1 {
		c.overlapSeen.Store(true)
	}
	defer c.concurrent.Add(-1)
	c.handled.Add(1)
	return msg
}

func (c *counter) Passivate() { c.passivated.Add(1) }

// TestPassivationLosesNoMessage hammers a few keys while their actors
// passivate after 1ms idle: every request gets its reply, each actor
// handles one message at a time, and actors really were passivated.
func TestPassivationLosesNoMessage(t *testing.T) {
	sys := NewSystem(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer sys.Shutdown()
	var handled, passivated atomic.Int64
	var overlap atomic.Bool
	h := NewHost(sys, func(string) Handler {
		return &counter{handled: &handled, passivated: &passivated, overlapSeen: &overlap}
	}, HostOptions{Idle: time.Millisecond, Mailbox: 16, MaxBatch: 256})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys := []string{"a", "b", "c", "d"}
	const perWorker = 150
	// Two rounds, and between them every actor passivates: the second
	// round's requests race activations against passivations still
	// finishing, and (through the pauses) more passivations as it goes.
	for round := range 2 {
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWorker {
					r, err := h.Request(ctx, keys[(w+i)%len(keys)], i)
					if err != nil || r.(int) != i {
						t.Errorf("request %d: %v %v", i, r, err)
						return
					}
					if i%50 == 0 {
						time.Sleep(3 * time.Millisecond) // give actors a chance to go idle
					}
				}
			}()
		}
		wg.Wait()
		if round == 0 {
			poll.Until(t, 10*time.Second, "every idle actor passivated", func() (bool, string) {
				act, pas := h.Stats()
				return pas >= act, fmt.Sprintf("activations %d passivations %d", act, pas)
			})
		}
	}
	if got := handled.Load(); got != 2*16*perWorker {
		t.Fatalf("handled %d of %d", got, 2*16*perWorker)
	}
	if overlap.Load() {
		t.Fatal("an actor handled two messages at once")
	}
	act, pas := h.Stats()
	if pas < int64(len(keys)) || act <= int64(len(keys)) {
		t.Fatalf("activations %d passivations %d: actors were not passivated and activated again", act, pas)
	}
	h.Stop()
	if _, err := h.Request(ctx, "a", 1); err != ErrStopped {
		t.Fatalf("request after stop: %v", err)
	}
}

func TestRequestHonoursContext(t *testing.T) {
	sys := NewSystem(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer sys.Shutdown()
	block := make(chan struct{})
	h := NewHost(sys, func(string) Handler { return blocking{block} }, HostOptions{Idle: time.Minute, Mailbox: 4, MaxBatch: 256})
	defer func() { close(block); h.Stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.Request(ctx, "k", 1); err != context.DeadlineExceeded {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
}

type blocking struct{ ch chan struct{} }

func (b blocking) Handle(context.Context, any) any { <-b.ch; return nil }
func (b blocking) Passivate()                      {}

func TestFullMailboxAnswersBusy(t *testing.T) {
	sys := NewSystem(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer sys.Shutdown()
	block := make(chan struct{})
	h := NewHost(sys, func(string) Handler { return blocking{block} }, HostOptions{Idle: time.Minute, Mailbox: 2, MaxBatch: 256})
	defer func() { close(block); h.Stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	results := make(chan error, 8)
	for range 8 {
		go func() { _, err := h.Request(ctx, "k", 1); results <- err }()
	}
	busy := 0
	for range 5 { // the first three are queued (one handled, two waiting)
		if err := <-results; errors.Is(err, ErrBusy) {
			busy++
		}
	}
	if busy != 5 {
		t.Fatalf("%d of 5 over-limit requests answered busy", busy)
	}
}

type echo struct{}

func (echo) Handle(_ context.Context, msg any) any { return msg }
func (echo) Passivate()                            {}

// BenchmarkActorRequest is the actor path: one request-reply to a live
// actor through the host.
func BenchmarkActorRequest(b *testing.B) {
	sys := NewSystem(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer sys.Shutdown()
	h := NewHost(sys, func(string) Handler { return echo{} }, HostOptions{Idle: time.Minute, Mailbox: 1024, MaxBatch: 256})
	defer h.Stop()
	ctx := context.Background()
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := h.Request(ctx, keys[i%len(keys)], i); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// batcher is a BatchHandler that takes a little while per batch, as an
// append does, and records the batch sizes it saw. It panics on "boom".
type batcher struct {
	stats      *batchStats
	concurrent atomic.Int32
}

type batchStats struct {
	mu       sync.Mutex
	requests int
	largest  int
	overlap  bool
	begun    chan struct{} // if set, signalled as a batch begins
}

func (b *batcher) Handle(ctx context.Context, msg any) any { return b.HandleBatch(ctx, []any{msg})[0] }
func (b *batcher) HandleBatch(_ context.Context, msgs []any) []any {
	if b.concurrent.Add(1) > 1 {
		b.stats.mu.Lock()
		b.stats.overlap = true
		b.stats.mu.Unlock()
	}
	defer b.concurrent.Add(-1)
	b.stats.mu.Lock()
	begun := b.stats.begun
	b.stats.mu.Unlock()
	select {
	case begun <- struct{}{}:
	default:
	}
	time.Sleep(time.Millisecond) // what an append takes, so requests queue meanwhile
	for _, m := range msgs {
		if m == "boom" {
			panic("boom")
		}
	}
	b.stats.mu.Lock()
	b.stats.requests += len(msgs)
	b.stats.largest = max(b.stats.largest, len(msgs))
	b.stats.mu.Unlock()
	return msgs
}
func (b *batcher) Passivate() {}

// TestBatchesGatherQueuedRequests: requests that queue while a batch is
// handled form the next batch; every request still gets its own reply, one
// batch runs at a time, and none is lost to passivation or to Stop.
func TestBatchesGatherQueuedRequests(t *testing.T) {
	sys := NewSystem(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer sys.Shutdown()
	stats := &batchStats{}
	const maxBatch = 256
	h := NewHost(sys, func(string) Handler { return &batcher{stats: stats} }, HostOptions{Idle: time.Millisecond, Mailbox: 4096, MaxBatch: maxBatch})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	const workers, perWorker = 64, 50
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				v := w*perWorker + i
				r, err := h.Request(ctx, "hot", v)
				if err != nil || r.(int) != v {
					t.Errorf("request %d: %v %v", v, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	stats.mu.Lock()
	requests, largest, overlap := stats.requests, stats.largest, stats.overlap
	stats.mu.Unlock()
	if requests != workers*perWorker {
		t.Fatalf("batches carried %d requests, want %d", requests, workers*perWorker)
	}
	if largest < 2 || largest > maxBatch {
		t.Fatalf("largest batch %d: want between 2 and %d", largest, maxBatch)
	}
	if overlap {
		t.Fatal("two batches of one actor ran at once")
	}
	// Requests in flight when the host stops are answered, not dropped:
	// Stop comes while a batch is being handled and others wait behind it.
	begun := make(chan struct{}, 1)
	stats.mu.Lock()
	stats.begun = begun
	stats.mu.Unlock()
	results := make(chan error, 100)
	for i := range 100 {
		go func() { _, err := h.Request(ctx, "hot", i); results <- err }()
	}
	select {
	case <-begun:
	case <-ctx.Done():
		t.Fatal("no batch began")
	}
	h.Stop()
	for range 100 {
		if err := <-results; err != nil && !errors.Is(err, ErrStopped) {
			t.Fatalf("request around stop: %v", err)
		}
	}
}

// TestPanicAnswersTheBatch: a handler that panics answers the requests of
// its batch with ErrPanicked at once, and the actor goes on with a fresh
// handler.
func TestPanicAnswersTheBatch(t *testing.T) {
	sys := NewSystem(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer sys.Shutdown()
	var made atomic.Int32
	h := NewHost(sys, func(string) Handler { made.Add(1); return &batcher{stats: &batchStats{}} }, HostOptions{Idle: time.Minute, Mailbox: 64, MaxBatch: 256})
	defer h.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.Request(ctx, "k", "boom"); !errors.Is(err, ErrPanicked) {
		t.Fatalf("panicking request: got %v, want ErrPanicked", err)
	}
	if r, err := h.Request(ctx, "k", 7); err != nil || r.(int) != 7 {
		t.Fatalf("request after the panic: %v %v", r, err)
	}
	if made.Load() < 2 {
		t.Fatalf("%d handlers made: the actor did not restart with a fresh one", made.Load())
	}
}

// TestRepeatedPanicsKeepTheActorServing: however often a handler panics,
// each request is answered at once and the next one finds a working actor
// (protoactor's supervisor, which stops an actor after ten restarts in ten
// seconds, never sees the panic).
func TestRepeatedPanicsKeepTheActorServing(t *testing.T) {
	sys := NewSystem(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer sys.Shutdown()
	h := NewHost(sys, func(string) Handler { return &batcher{stats: &batchStats{}} }, HostOptions{Idle: time.Minute, Mailbox: 64, MaxBatch: 256})
	defer h.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 15 {
		if _, err := h.Request(ctx, "k", "boom"); !errors.Is(err, ErrPanicked) {
			t.Fatalf("panicking request %d: %v", i, err)
		}
	}
	if r, err := h.Request(ctx, "k", 7); err != nil || r.(int) != 7 {
		t.Fatalf("request after the panics: %v %v", r, err)
	}
}

// ender ends when it is sent "end", and starts again on anything else.
type ender struct{ ended bool }

func (e *ender) Handle(_ context.Context, msg any) any { e.ended = msg == "end"; return msg }
func (e *ender) Passivate()                            {}
func (e *ender) Ended() bool                           { return e.ended }

// TestEndedActorsPassivateSooner: an actor whose handler has ended is
// passivated after EndedIdle, one that has not stays for Idle, and one
// that ended and was asked again is active until it ends again.
func TestEndedActorsPassivateSooner(t *testing.T) {
	sys := NewSystem(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer sys.Shutdown()
	h := NewHost(sys, func(string) Handler { return &ender{} }, HostOptions{Idle: time.Hour, EndedIdle: 20 * time.Millisecond, Mailbox: 16})
	defer h.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range []struct{ key, msg string }{{"open", "go on"}, {"ended", "end"}, {"reopened", "end"}, {"reopened", "go on"}} {
		if _, err := h.Request(ctx, r.key, r.msg); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 10*time.Second, "the ended actor passivated", func() (bool, string) {
		_, pas := h.Stats()
		return pas == 1, fmt.Sprintf("passivations %d, active %d", pas, h.Active())
	})
	// The sweep runs every EndedIdle/4: twenty more sweeps leave the
	// other two where they are.
	time.Sleep(400 * time.Millisecond)
	if act, pas := h.Stats(); pas != 1 || h.Active() != 2 || act != 3 {
		t.Fatalf("activations %d, passivations %d, active %d: want 3, 1, 2", act, pas, h.Active())
	}
	// A request to the passivated actor activates it again.
	if r, err := h.Request(ctx, "ended", "go on"); err != nil || r != "go on" {
		t.Fatalf("request to a passivated ended actor: %v %v", r, err)
	}
	if act, _ := h.Stats(); act != 4 {
		t.Fatalf("activations %d, want 4", act)
	}
}

package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oms-project/oms/internal/natstest"
	"github.com/oms-project/oms/internal/poll"
	"github.com/oms-project/oms/jetstream"
)

// gatedHandler handles a message once the test releases its subject, with
// the error the release carries.
type gatedHandler struct {
	mu       sync.Mutex
	gates    map[string]chan error
	attempts map[string]int
}

func (g *gatedHandler) gate(subject string) chan error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gates[subject] == nil {
		g.gates[subject] = make(chan error, 8)
	}
	return g.gates[subject]
}

func (g *gatedHandler) handle(ctx context.Context, m jetstream.Msg) error {
	g.mu.Lock()
	g.attempts[m.Subject()]++
	g.mu.Unlock()
	select {
	case err := <-g.gate(m.Subject()):
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gatedHandler) tries(subject string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.attempts[subject]
}

// TestQueueFloorHoldsBelowWhatMayNotHaveRun: the settled floor stays below
// an append still in flight (acknowledgements come out of order), below
// an event whose effects have not run or are being retried, and at an
// append whose outcome is unknown until it is resolved; a message that
// keeps failing is dead-lettered, which settles it; a stop leaves what did
// not run under the floor. What the node records (Settled) lists the
// events still running instead of holding the floor below them.
func TestQueueFloorHoldsBelowWhatMayNotHaveRun(t *testing.T) {
	env := natstest.Start(t, natstest.Options{})
	g := &gatedHandler{gates: map[string]chan error{}, attempts: map[string]int{}}
	p := &jetstream.Pipeline{Name: "queue-test", Handle: g.handle, JS: env.JS, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Timeout: 10 * time.Second, MaxAttempts: 2, Backoff: jetstream.Backoff{Base: time.Millisecond, Max: time.Millisecond},
		Workers: 4, Key: func(m jetstream.Msg) string { return m.Subject() }}
	q := p.Queue(jetstream.StreamOrders, 10)
	floor := func(want uint64, what string) {
		t.Helper()
		poll.Until(t, 10*time.Second, what, func() (bool, string) {
			got := q.Floor()
			return got == want, fmt.Sprintf("floor %d, want %d", got, want)
		})
	}
	floor(10, "the floor where the stream ended")
	// What the node records: the floor without the events still running,
	// and those events listed.
	settled := func(wantFloor uint64, want []uint64) {
		t.Helper()
		got, unsettled := q.Settled()
		if got != wantFloor || fmt.Sprint(unsettled) != fmt.Sprint(want) {
			t.Fatalf("recorded floor %d with %v unsettled, want %d with %v", got, unsettled, wantFloor, want)
		}
	}

	first, second := q.Sending(), q.Sending()
	q.Stored(second, "b", []byte("b"), nil, 12, nil) // acknowledged first
	floor(10, "below the append still in flight")
	settled(10, nil) // 12 is above the append in flight: run again anyway
	q.Stored(first, "a", []byte("a"), nil, 11, nil)
	floor(10, "below both events while their effects run")
	settled(12, []uint64{11, 12})
	g.gate("a") <- nil
	floor(11, "below the event still running")
	settled(12, []uint64{12})
	g.gate("b") <- errors.New("provider down") // retried, then runs
	g.gate("b") <- nil
	floor(12, "once the retried event ran")
	if n := g.tries("b"); n != 2 {
		t.Fatalf("b tried %d times, want 2", n)
	}

	// Outcome unknown: the floor stays at the mark until resolved.
	lost := q.Sending()
	later := q.Sending()
	q.Stored(later, "d", []byte("d"), nil, 14, nil)
	g.gate("d") <- nil
	tries := 0
	q.Unknown(lost, 0, func(context.Context) error {
		if tries++; tries == 1 {
			return errors.New("stream does not answer")
		}
		q.Push("c", []byte("c"), nil, 13, nil) // it was stored
		return nil
	})
	q.Resolve(env.Ctx)
	floor(12, "at the unknown append while it cannot be resolved")
	settled(12, nil)
	q.Resolve(env.Ctx)
	floor(12, "below the found append while its effects run")
	g.gate("c") <- nil
	floor(14, "once the found append ran")

	// Failing every attempt: dead-lettered, and so settled.
	poisoned := q.Sending()
	q.Stored(poisoned, "e", []byte("e"), nil, 15, nil)
	g.gate("e") <- errors.New("refused")
	g.gate("e") <- errors.New("refused again")
	floor(15, "once the failing event is dead-lettered")
	poll.Until(t, 10*time.Second, "its dead letter", func() (bool, string) {
		n := len(deadLetters(t, env, "queue-test"))
		return n == 1, fmt.Sprintf("%d dead letters", n)
	})
	if dl := deadLetters(t, env, "queue-test")[0]; !strings.Contains(dl.Header.Get(jetstream.HeaderReason), "failed 2 times") ||
		dl.Header.Get(jetstream.HeaderOrigSeq) != "15" {
		t.Fatalf("dead letter headers %v", dl.Header)
	}

	// Stopped with an event unrun: it stays under the floor.
	stuck := q.Sending()
	q.Stored(stuck, "f", []byte("f"), nil, 16, nil)
	q.Stop(50 * time.Millisecond)
	if got := q.Floor(); got != 15 {
		t.Fatalf("floor %d after a stop with event 16 unrun, want 15", got)
	}
	settled(16, []uint64{16})
}

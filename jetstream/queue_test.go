package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
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
	q := p.Queue(jetstream.StreamOrders, 10, 1024)
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

// TestQueueFullReadsBackFromTheStream: past its bound the queue keeps
// what it is handed by sequence only and reads it back from the stream as
// room frees up. Every event runs once, each order's in order; those read
// back come without what the actor carried; the floor stays below the
// spilled ones; one deleted from the stream meanwhile is passed over; an
// event acknowledged late, below where the reading back has got to, runs
// from memory; and the queue never holds more than its bound.
func TestQueueFullReadsBackFromTheStream(t *testing.T) {
	env := natstest.Start(t, natstest.Options{})
	const bound, orders, perOrder = 4, 6, 4
	var mu sync.Mutex
	ran := map[string][]string{} // order: the data of its events, as run
	carried, most := 0, 0
	release := make(chan struct{})
	var q *jetstream.Queue
	p := &jetstream.Pipeline{Name: "spill-test", JS: env.JS, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Timeout: 10 * time.Second, MaxAttempts: 3, Backoff: jetstream.Backoff{Base: time.Millisecond, Max: time.Millisecond},
		Workers: 3, Key: func(m jetstream.Msg) string { return m.Subject() },
		Handle: func(ctx context.Context, m jetstream.Msg) error {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			spilled, _ := q.Spilled()
			most = max(most, q.Len()-spilled)
			ran[m.Subject()] = append(ran[m.Subject()], string(m.Data()))
			if c, ok := m.(jetstream.Carrier); ok && c.Carried() != nil {
				carried++
			}
			return nil
		}}
	q = p.Queue(jetstream.StreamOrders, 0, bound)
	t.Cleanup(func() { q.Stop(0) })

	stream, err := env.JS.Stream(env.Ctx, jetstream.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	appendEvent := func(o, i int) (string, string, uint64) {
		t.Helper()
		subject, data := fmt.Sprintf("%sspill-%d", jetstream.OrderEventsPrefix, o), fmt.Sprintf("e%d", i)
		ack, err := env.JS.Publish(env.Ctx, subject, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		return subject, data, ack.Sequence
	}
	// An append acknowledged late: sent and stored first, handed over once
	// events after it are spilled. Then appended in turn, handed over as
	// stored: the first bound held, the rest spilled while nothing runs.
	// The event that fills the queue is acknowledged before the one stored
	// just below it, which is the first spilled: reading back from there
	// must pass over it.
	late := q.Sending()
	lateSubject, lateData, lateSeq := appendEvent(orders, 0)
	var deleted, last, firstSpilled uint64
	for i := range perOrder {
		for o := range orders {
			if o == bound-1 && i == 0 {
				early, late := q.Sending(), q.Sending()
				subjectA, dataA, seqA := appendEvent(0, 100)
				subjectB, dataB, seqB := appendEvent(o, 0)
				q.Stored(late, subjectB, []byte(dataB), nil, seqB, "carried") // fills the queue
				q.Stored(early, subjectA, []byte(dataA), nil, seqA, "carried")
				firstSpilled = seqA
				continue
			}
			subject, data, seq := appendEvent(o, i)
			q.Stored(q.Sending(), subject, []byte(data), nil, seq, "carried")
			last = seq
			if o == 2 && i == 3 {
				deleted = seq
			}
		}
	}
	// Stored below where reading back starts, it cannot be read back: it
	// is held, past the bound.
	q.Stored(late, lateSubject, []byte(lateData), nil, lateSeq, "carried")
	total := orders*perOrder + 2
	if got, spilled := q.Len(), first(q.Spilled()); got != total || spilled != total-bound-1 {
		t.Fatalf("queue has %d (%d spilled), want %d (%d spilled)", got, spilled, total, total-bound-1)
	}
	// What the node records: below the first spilled, which has not run,
	// with the held ones below it listed.
	if floor, unsettled := q.Settled(); floor != firstSpilled-1 || len(unsettled) != bound {
		t.Fatalf("recorded floor %d with %v unsettled, events spilled from %d", floor, unsettled, firstSpilled)
	}
	// What reads events back for the queue waits for room.
	full, cancel := context.WithTimeout(env.Ctx, 50*time.Millisecond)
	defer cancel()
	if err := q.Room(full); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("room in a full queue: %v", err)
	}
	if err := stream.DeleteMsg(env.Ctx, deleted); err != nil {
		t.Fatal(err)
	}
	close(release)
	poll.Until(t, 10*time.Second, "every event run", func() (bool, string) {
		return q.Len() == 0, fmt.Sprintf("%d pending, %d spilled", q.Len(), first(q.Spilled()))
	})
	if _, readBack := q.Spilled(); readBack != uint64(total-bound-2) {
		t.Errorf("%d events read back, want %d: those spilled but the one deleted", readBack, total-bound-2)
	}
	if err := q.Room(env.Ctx); err != nil {
		t.Fatalf("room in an empty queue: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	for o := range orders {
		want := []string{"e0", "e1", "e2", "e3"}
		switch o {
		case 0:
			want = []string{"e0", "e100", "e1", "e2", "e3"}
		case 2:
			want = want[:3] // its last event deleted before it was read back
		}
		if got := ran[fmt.Sprintf("%sspill-%d", jetstream.OrderEventsPrefix, o)]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("order %d ran %v, want %v", o, got, want)
		}
	}
	if got := ran[lateSubject]; fmt.Sprint(got) != "[e0]" {
		t.Errorf("the late event ran %v, want once", got)
	}
	if carried != bound+1 {
		t.Errorf("%d events ran with what the actor carried, want %d: those held and the late one", carried, bound+1)
	}
	if most > bound+1 {
		t.Errorf("the queue held %d events at once, bound %d (and one acknowledged late)", most, bound)
	}
	if floor := q.Floor(); floor != last {
		t.Errorf("floor %d once everything ran, want %d", floor, last)
	}
}

func first[A, B any](a A, _ B) A { return a }

// TestQueueKeepsAKeysMessagesInOrderAcrossRetries: a message to be tried
// again after a delay holds its key's later messages until it is handled
// or dead-lettered, while other keys' messages run meanwhile.
func TestQueueKeepsAKeysMessagesInOrderAcrossRetries(t *testing.T) {
	env := natstest.Start(t, natstest.Options{})
	var mu sync.Mutex
	var ran []string
	tries := map[string]int{}
	p := &jetstream.Pipeline{Name: "order-test", JS: env.JS, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Timeout: 10 * time.Second, MaxAttempts: 3, Backoff: jetstream.Backoff{Base: 100 * time.Millisecond, Max: 100 * time.Millisecond},
		Workers: 1, Key: func(m jetstream.Msg) string { return m.Subject() },
		Handle: func(_ context.Context, m jetstream.Msg) error {
			mu.Lock()
			defer mu.Unlock()
			name := string(m.Data())
			tries[name]++
			ran = append(ran, fmt.Sprintf("%s#%d", name, tries[name]))
			switch {
			case name == "a1" && tries[name] == 1:
				return errors.New("provider down") // runs on the second try
			case name == "c1":
				return errors.New("refused") // dead-lettered on the third
			}
			return nil
		}}
	q := p.Queue(jetstream.StreamOrders, 0, 1024)
	t.Cleanup(func() { q.Stop(0) })
	for i, m := range []struct{ key, name string }{{"a", "a1"}, {"a", "a2"}, {"b", "b1"}, {"c", "c1"}, {"c", "c2"}, {"a", "a3"}} {
		q.Push(m.key, []byte(m.name), nil, uint64(i+1), nil)
	}
	poll.Until(t, 10*time.Second, "every message settled", func() (bool, string) {
		return q.Len() == 0, fmt.Sprintf("%d pending", q.Len())
	})
	mu.Lock()
	defer mu.Unlock()
	// Each key's messages in order; b1 ran while a1 and c1 waited.
	byKey := map[byte][]string{}
	for _, r := range ran {
		byKey[r[0]] = append(byKey[r[0]], r)
	}
	want := map[byte][]string{'a': {"a1#1", "a1#2", "a2#1", "a3#1"}, 'b': {"b1#1"}, 'c': {"c1#1", "c1#2", "c1#3", "c2#1"}}
	if fmt.Sprint(byKey) != fmt.Sprint(want) {
		t.Fatalf("ran %v, want by key %v", ran, want)
	}
	if i := slices.Index(ran, "b1#1"); i < 0 || i > slices.Index(ran, "a1#2") {
		t.Fatalf("ran %v: b1 waited for a1's retry", ran)
	}
}

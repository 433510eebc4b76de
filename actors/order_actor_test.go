package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/internal/poll"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// orderDeps is skuDeps with the order stream and the test policy: what an
// order actor needs.
func orderDeps(t *testing.T) (*Deps, context.Context) {
	t.Helper()
	d, ctx := skuDeps(t)
	orders, err := d.JS.Stream(ctx, jetstream.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	d.Orders, d.Policy = orders, policy
	return d, ctx
}

// askOrder sends msg to the test order's actor at h and returns its reply.
func askOrder(t *testing.T, ctx context.Context, h *Host, msg any) OrderResult {
	t.Helper()
	r, err := h.Request(ctx, snapshotOrder, msg)
	if err != nil {
		t.Fatal(err)
	}
	return r.(OrderResult)
}

// storedEvents counts the test order's events in the stream.
func storedEvents(t *testing.T, ctx context.Context, d *Deps) int {
	t.Helper()
	var n int
	if err := jetstream.Fold(ctx, d.Orders, jetstream.OrderEventsPrefix+snapshotOrder, 0, func(*natsjs.RawStreamMsg) error {
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// appendDecided decides c on s, appends the event to the test order's
// subject fenced on last, as another writer would, and moves s and last on.
func appendDecided(t *testing.T, ctx context.Context, d *Deps, s *order.State, last *uint64, c order.Command) order.Event {
	t.Helper()
	e, err := order.Decide(policy, *s, c)
	if err != nil {
		t.Fatal(err)
	}
	*s = order.Evolve(*s, *e)
	data, _ := json.Marshal(e)
	ack, err := jetstream.Append(ctx, d.JS, jetstream.OrderEventsPrefix+snapshotOrder, data, *last, nil)
	if err != nil {
		t.Fatal(err)
	}
	*last = ack.Sequence
	return *e
}

// TestOrderActorReadsPastItsCache: an order actor that answered not found
// (its order placed on another node meanwhile, as around a partition
// handover), or that holds a state older than the event a caller handles,
// reads the stream again instead of answering from its cache.
func TestOrderActorReadsPastItsCache(t *testing.T) {
	d, ctx := orderDeps(t)
	h := NewHost(NewSystem(d.Log), NewOrderHandler(d), HostOptions{Idle: time.Minute, Mailbox: 16, MaxBatch: 16})
	get := func(atLeast uint64) OrderResult { t.Helper(); return askOrder(t, ctx, h, GetOrder{AtLeast: atLeast}) }
	if r := get(0); !errors.Is(r.Err, order.ErrNotFound) {
		t.Fatalf("before the placement: %+v", r)
	}
	// Another node's actor places the order and holds its stock.
	var s order.State
	var last uint64
	for _, c := range orderCommands()[:2] {
		e := appendDecided(t, ctx, d, &s, &last, c)
		if e.Type == order.EventPlaced {
			if r := get(0); r.Err != nil || r.Order.Status != order.StatusReceived {
				t.Fatalf("after the placement elsewhere: %+v", r)
			}
		}
	}
	if r := get(last); r.Err != nil || r.Order.Version != last || r.Order.Reservation != order.ReservationHeld {
		t.Fatalf("at least %d: %+v", last, r)
	}
	if r := get(last + 100); !errors.Is(r.Err, api.ErrUnavailable) {
		t.Fatalf("at least a sequence the stream has not reached: %+v, want unavailable", r)
	}
}

// TestRetryOfAStoredCommandIsNotStoredTwice: a command stored once (by an
// earlier owner of the order, or an earlier try whose acknowledgement was
// lost) and asked again of an actor that has not seen it is refused by
// the fence, caught up on and answered as done, and the stream holds it
// once. Appends carry no Nats-Msg-Id: this is the fence's work alone.
func TestRetryOfAStoredCommandIsNotStoredTwice(t *testing.T) {
	d, ctx := orderDeps(t)
	opts := HostOptions{Idle: time.Minute, Mailbox: 16, MaxBatch: 16}
	first := NewHost(NewSystem(d.Log), NewOrderHandler(d), opts)
	second := NewHost(NewSystem(d.Log), NewOrderHandler(d), opts)
	cmds := orderCommands()
	ask := func(h *Host, msg any) OrderResult { t.Helper(); return askOrder(t, ctx, h, msg) }
	if r := ask(first, OrderCommand{Cmd: cmds[0]}); r.Err != nil || !r.Appended {
		t.Fatalf("place: %+v", r)
	}
	// The second owner reads the order as placed, then the first stores
	// the stock's hold: the second's state is now one event behind.
	if r := ask(second, GetOrder{}); r.Err != nil || r.Order.Version != 1 {
		t.Fatalf("second owner's read: %+v", r)
	}
	held := ask(first, OrderCommand{Cmd: cmds[1]})
	if held.Err != nil || !held.Appended {
		t.Fatalf("stock held: %+v", held)
	}
	// The same command again, at the owner that has not seen it.
	again := ask(second, OrderCommand{Cmd: cmds[1]})
	if again.Err != nil || again.Appended || again.Order.Version != held.Order.Version ||
		again.Order.Reservation != order.ReservationHeld {
		t.Fatalf("retried command: %+v, want the stored result %+v", again, held.Order)
	}
	// And a place repeated at an actor that starts empty: the fast path
	// assumes an empty subject, the fence corrects it.
	third := NewHost(NewSystem(d.Log), NewOrderHandler(d), opts)
	if r := ask(third, OrderCommand{Cmd: cmds[0]}); r.Err != nil || r.Appended || r.Order.Version != held.Order.Version {
		t.Fatalf("repeated place: %+v", r)
	}
	if stored := storedEvents(t, ctx, d); stored != 2 {
		t.Fatalf("stored %d events, want 2 (placed, stock held)", stored)
	}
}

// TestRefusalIsGivenOnlyOnceVerified: an order or SKU actor refuses a
// command only after checking the stream holds nothing it has not seen.
// When the stream does not answer (a leader election), the refusal, which
// a stale cache could have got wrong and a pipeline would dead-letter, is
// answered as unavailable, to be tried again.
func TestRefusalIsGivenOnlyOnceVerified(t *testing.T) {
	d, ctx := orderDeps(t)
	opts := HostOptions{Idle: time.Minute, Mailbox: 16, MaxBatch: 16}
	orders := NewHost(NewSystem(d.Log), NewOrderHandler(d), opts)
	skus := NewHost(NewSystem(d.Log), NewSKUHandler(d), opts)
	cmds := orderCommands()
	// The stock's outcome again under the same command ID, but different.
	conflict := cmds[1].(order.RecordStock)
	conflict.Held, conflict.Detail = false, "SKU-1: 2 requested, 0 available"
	ask := func(msg any) OrderResult { t.Helper(); return askOrder(t, ctx, orders, msg) }
	for _, c := range cmds[:2] {
		if r := ask(OrderCommand{Cmd: c}); r.Err != nil {
			t.Fatalf("%T: %v", c, r.Err)
		}
	}
	commit := inventory.Commit{SKU: "SKU-1", OrderID: "never-reserved", At: time.Now()}
	skuRequest(t, ctx, skus, "SKU-1", inventory.SetStock{ID: "count-1", SKU: "SKU-1", Quantity: 5, At: time.Now()})
	if r := ask(OrderCommand{Cmd: conflict}); !errors.Is(r.Err, order.ErrIdempotencyConflict) {
		t.Fatalf("a second stock outcome: %v, want an idempotency conflict", r.Err)
	}
	if r := skuRequest(t, ctx, skus, "SKU-1", commit); !errors.Is(r.Err, inventory.ErrNoReservation) {
		t.Fatalf("commit without a hold: %v, want no reservation", r.Err)
	}
	// The stream stops answering; both actors keep their state in memory.
	d.JS.Conn().Close()
	r := ask(OrderCommand{Cmd: conflict})
	if !errors.Is(r.Err, api.ErrUnavailable) || errors.Is(r.Err, order.ErrIdempotencyConflict) || !api.Retryable(r.Err) {
		t.Fatalf("unverifiable order refusal: %v, want unavailable", r.Err)
	}
	s := skuRequest(t, ctx, skus, "SKU-1", commit)
	if !errors.Is(s.Err, api.ErrUnavailable) || errors.Is(s.Err, inventory.ErrNoReservation) || !api.Retryable(s.Err) {
		t.Fatalf("unverifiable SKU refusal: %v, want unavailable", s.Err)
	}
	// A read still answers from memory.
	if g, err := skus.Request(ctx, "SKU-1", GetStock{}); err != nil || g.(SKUResult).Err != nil || g.(SKUResult).Stock.OnHand != 5 {
		t.Fatalf("stock read without the stream: %+v %v", g, err)
	}
}

// TestAppendWaitsForAStreamLeader: an append that no stream answers (its
// leader being elected, after the leader's node was lost) is tried again
// until one does, within the request's deadline, instead of failing the
// placement at once; past the deadline the caller is told to try again.
func TestAppendWaitsForAStreamLeader(t *testing.T) {
	d, ctx := orderDeps(t)
	h := NewHost(NewSystem(d.Log), NewOrderHandler(d), HostOptions{Idle: time.Minute, Mailbox: 16, MaxBatch: 16})
	cmds := orderCommands()
	ask := func(ctx context.Context, c order.Command) error {
		r, err := h.Request(ctx, snapshotOrder, OrderCommand{Cmd: c})
		if err == nil {
			err = r.(OrderResult).Err
		}
		return err
	}
	info, err := d.Orders.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Without the stream no server answers its subjects, as in an election.
	if err := d.JS.DeleteStream(ctx, jetstream.StreamOrders); err != nil {
		t.Fatal(err)
	}
	sent := d.JS.Conn().Stats().OutMsgs
	done := make(chan error, 1)
	go func() { done <- ask(ctx, cmds[0]) }()
	// nats.go itself sends a publish that no one answered twice more,
	// 250 ms apart: the leader appears only after more tries than that
	// (the actor waits, it did not fail), or when the placement gave up.
	var failed error
	poll.Until(t, 10*time.Second, "more tries than nats.go makes", func() (bool, string) {
		select {
		case failed = <-done:
			return true, ""
		default:
		}
		n := d.JS.Conn().Stats().OutMsgs - sent
		return n > 3, fmt.Sprint(n, " tries")
	})
	if failed != nil {
		t.Fatalf("placement with no stream leader failed before its deadline: %v", failed)
	}
	if _, err := d.JS.CreateStream(ctx, info.Config); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("placement across the election: %v", err)
	}
	if stored := storedEvents(t, ctx, d); stored != 1 {
		t.Fatalf("stored %d events, want the placement once", stored)
	}
	// A leader that does not come back within the request's deadline.
	if err := d.JS.DeleteStream(ctx, jetstream.StreamOrders); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := ask(short, cmds[1]); err == nil || !api.Retryable(err) {
		t.Fatalf("an append with no stream leader past its deadline: %v, want a retryable failure", err)
	}
}

// TestAppendWhoseAckWasLostIsLookedFor: an append whose acknowledgement
// was lost is looked for where its fence would have put it, the subject's
// first message after the sequence it was fenced on. Found there (its
// bytes, this node's name), it is handed to the effects; another writer's
// message there, or none, means it was not stored, and nothing is handed.
func TestAppendWhoseAckWasLostIsLookedFor(t *testing.T) {
	d, ctx := orderDeps(t)
	d.Node = "n-here"
	var mu sync.Mutex
	var handed []uint64
	p := &jetstream.Pipeline{Name: "lost-ack", JS: d.JS, Log: d.Log, Timeout: time.Second, MaxAttempts: 1,
		Backoff: jetstream.Backoff{Base: time.Millisecond, Max: time.Millisecond},
		Handle: func(_ context.Context, m jetstream.Msg) error {
			md, _ := m.Metadata()
			mu.Lock()
			handed = append(handed, md.Sequence.Stream)
			mu.Unlock()
			return nil
		}}
	q := p.Queue(jetstream.StreamOrders, 0, 1024)
	t.Cleanup(func() { q.Stop(0) })
	d.Effects = q
	subject := jetstream.OrderEventsPrefix + snapshotOrder
	stored := func(data []byte, after uint64, node string) uint64 {
		t.Helper()
		ack, err := jetstream.Append(ctx, d.JS, subject, data, after, nats.Header{api.NodeHeader: []string{node}})
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	look := func(data []byte, after uint64, want []uint64) {
		t.Helper()
		if err := d.storedAfter(subject, data, after)(ctx); err != nil {
			t.Fatal(err)
		}
		q.Stop(time.Second) // waits for what was handed over
		q = p.Queue(jetstream.StreamOrders, 0, 1024)
		d.Effects = q
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(handed) != fmt.Sprint(want) {
			t.Fatalf("handed over %v, want %v", handed, want)
		}
	}
	ours := stored([]byte(`{"ours":1}`), 0, "n-here")
	look([]byte(`{"ours":1}`), 0, []uint64{ours})
	theirs := stored([]byte(`{"theirs":1}`), ours, "n-there")
	look([]byte(`{"ours":2}`), ours, []uint64{ours})
	look([]byte(`{"ours":3}`), theirs, []uint64{ours})
	// The same bytes from another node are not this node's append.
	stored([]byte(`{"ours":4}`), theirs, "n-there")
	look([]byte(`{"ours":4}`), theirs, []uint64{ours})
}

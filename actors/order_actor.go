package actors

import (
	"context"
	"errors"
	"fmt"

	json "github.com/goccy/go-json"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
	"github.com/oms-project/oms/store"
)

// OrderCommand asks an order actor to decide a command.
type OrderCommand struct{ Cmd order.Command }

// GetOrder asks an order actor for its current state, including at least
// the event at stream sequence AtLeast (0: whatever it has). The reactor
// asks for the state after the event it handles: another node may have
// owned the order meanwhile, and the actor's cached state be older.
type GetOrder struct{ AtLeast uint64 }

// OrderResult is an order actor's reply. Err may be set together with Order
// (a refused inbound event was recorded).
type OrderResult struct {
	Order order.Order
	Err   error
	// Appended is true when this request appended an event.
	Appended bool
}

// NewOrderHandler returns the Handler factory for order actors.
func NewOrderHandler(d *Deps) func(key string) Handler {
	return func(id string) Handler {
		return &orderActor{id: id, d: d}
	}
}

// orderActor holds one order in memory while it is active. It keeps no
// per-actor logger or derived strings: thousands are active at once, and
// each byte here is multiplied by them.
type orderActor struct {
	id string
	d  *Deps

	state   order.State
	seq     uint64
	loaded  bool
	unsaved int
	// lastRead is set when the state after the last event was read at that
	// event's sequence (what the reactor does to run the effects of an event
	// read back from the stream), or handed over with the event to its
	// effects.
	lastRead bool
	// unconfirmed is set while the state is a snapshot's after which the
	// stream showed nothing: the subject may hold less than the snapshot
	// (a restored copy, a purge), which only an append's fence would
	// otherwise reveal. An answer that appends nothing (a read, a command
	// already applied) first checks the subject's end, once.
	unconfirmed bool
}

// Ended reports whether the order has ended and the effects of its last
// event were handed it or have read it: nothing the node runs asks for it
// any more, and a late request (a customer's repeated command, an event
// read back from the stream) activates it again from its snapshot and the
// stream.
func (a *orderActor) Ended() bool { return a.lastRead && a.state.Order.Status.Terminal() }

func (a *orderActor) Handle(ctx context.Context, msg any) any {
	switch m := msg.(type) {
	case OrderCommand:
		return a.execute(ctx, m.Cmd)
	case GetOrder:
		if err := a.load(ctx); err != nil {
			return OrderResult{Err: err}
		}
		if a.unconfirmed || a.seq < m.AtLeast || !a.state.Exists() {
			// Not found, like a command's refusal, is verified: the order
			// may have been placed on another node meanwhile.
			if _, err := a.confirm(ctx); err != nil {
				return OrderResult{Err: err}
			}
		}
		if a.seq < m.AtLeast {
			return OrderResult{Err: fmt.Errorf("order %s: read up to %d, want %d: %w", a.id, a.seq, m.AtLeast, api.ErrUnavailable)}
		}
		if !a.state.Exists() {
			return OrderResult{Err: fmt.Errorf("order %s: %w", a.id, order.ErrNotFound)}
		}
		if m.AtLeast == a.seq {
			a.lastRead = true
		}
		return OrderResult{Order: a.view()}
	}
	return OrderResult{Err: fmt.Errorf("order actor: unknown message %T", msg)}
}

func (a *orderActor) execute(ctx context.Context, cmd order.Command) OrderResult {
	if !a.loaded {
		_, isPlace := cmd.(order.Place)
		if isPlace && !a.hasSnapshot() {
			// A new order: assume its subject is empty and let the fenced
			// append prove it, saving a read on the hot path.
			a.loaded = true
		} else if err := a.load(ctx); err != nil {
			return OrderResult{Err: err}
		}
	}
	verified := false
	for attempt := range a.d.FencedAttempts {
		e, derr := order.Decide(a.d.Policy, a.state, cmd)
		if e == nil && derr == nil && a.unconfirmed {
			// Already applied, says a snapshot the stream may not hold.
			if _, err := a.confirm(ctx); err != nil {
				return OrderResult{Err: err}
			}
			continue
		}
		if e == nil {
			if derr != nil {
				// An append is fenced, a refusal is not: before refusing,
				// make sure no other node moved the order meanwhile (it
				// may have owned the partition for a while). A refusal
				// that cannot be checked is not given, as at a SKU.
				if !verified {
					verified = true
					moved, err := a.confirm(ctx)
					switch {
					case err != nil && !moved:
						return OrderResult{Err: unverified(derr, err)}
					case err != nil:
						return OrderResult{Err: err}
					case moved:
						continue
					}
				}
				return OrderResult{Err: derr}
			}
			return OrderResult{Order: a.view()}
		}
		data, err := json.Marshal(e)
		if err != nil {
			return OrderResult{Err: fmt.Errorf("encode %s: %w", e.Type, err)}
		}
		// Applied as soon as it is stored, so that its effects start from the
		// order it left, which they then need not ask this actor for.
		_, err = a.d.append(ctx, jetstream.StreamOrders, jetstream.OrderEventsPrefix+a.id, data, a.seq, string(e.Type), e.Correlation,
			func(seq uint64) any {
				a.apply(*e, seq)
				// Handed to its effects with the event, the order is not read
				// again for them: an ended one may leave memory.
				a.lastRead = a.d.Effects != nil
				return &order.Appended{Event: *e, Order: a.view()}
			})
		if errors.Is(err, jetstream.ErrWrongSequence) {
			// Another writer, or an earlier try of ours whose ack was lost,
			// moved the subject: catch up and decide again (a command
			// already applied then decides nothing).
			a.d.Log.Debug("append fenced; catching up", "order_id", a.id, "correlation_id", e.Correlation, "expected", a.seq)
			a.d.Fenced.Wait(ctx, attempt+1)
			if err := a.resync(ctx); err != nil {
				return OrderResult{Err: err}
			}
			continue
		}
		if err != nil {
			return OrderResult{Err: err}
		}
		a.unconfirmed = false // the fence matched
		return OrderResult{Order: a.view(), Err: derr, Appended: true}
	}
	return OrderResult{Err: fmt.Errorf("order %s: gave up after %d fenced appends: %w", a.id, a.d.FencedAttempts, api.ErrUnavailable)}
}

// stale reports whether the stream holds events this actor has not seen;
// err says the stream did not answer.
func (a *orderActor) stale(ctx context.Context) (bool, error) {
	last, err := jetstream.LastSeq(ctx, a.d.Orders, jetstream.OrderEventsPrefix+a.id)
	return last != a.seq, err
}

func (a *orderActor) apply(e order.Event, seq uint64) {
	a.state = order.Evolve(a.state, e)
	a.seq = seq
	a.lastRead = false
	a.state.Order.Version = seq
	a.unsaved++
	if a.unsaved >= a.d.SnapshotEvery || (a.state.Order.Status.Terminal() && a.unsaved >= a.snapshotWorth()) {
		a.snapshot()
	}
}

// shortHistory is how many unsaved events an order may have and still not
// be worth a snapshot when it ends or passivates: an activation reads the
// subject's tail after the snapshot in one fetch anyway, so replaying a
// few events costs about what reading a snapshot does, while writing one
// rewrites a random bbolt page (and its branches) for every order. Most
// orders end with 3 to 6 events.
const shortHistory = 16

// snapshotWorth is the unsaved events from which a snapshot is written
// when the order ends or its actor passivates.
func (a *orderActor) snapshotWorth() int { return min(a.d.SnapshotEvery, shortHistory) }

func (a *orderActor) hasSnapshot() bool {
	_, _, ok, _ := a.d.DB.LoadSnapshot(store.KindOrder, a.id)
	return ok
}

// load restores state from the local snapshot, then the stream's tail.
func (a *orderActor) load(ctx context.Context) error {
	if a.loaded {
		return nil
	}
	data, seq, ok, err := a.d.DB.LoadSnapshot(store.KindOrder, a.id)
	fromSnapshot := false
	if err != nil {
		a.d.Log.Warn("snapshot unreadable; replaying from the stream", "order_id", a.id, "err", err)
	} else if ok {
		if s, ok := orderSnapshot(a.id, data); ok {
			a.state, a.seq, fromSnapshot = s, seq, true
		}
	}
	if err := a.catchUp(ctx); err != nil {
		return err
	}
	a.loaded = true
	a.unconfirmed = fromSnapshot && a.seq == seq
	return nil
}

// confirm checks that the subject ends where the state does and, when it
// does not, catches up (or, if the subject holds less, replays it): moved
// says so. An error with moved false is the check's own (the stream did
// not answer); with moved true, the catching up's.
func (a *orderActor) confirm(ctx context.Context) (moved bool, err error) {
	stale, err := a.stale(ctx)
	if err != nil {
		return false, err
	}
	a.unconfirmed = false
	if !stale {
		return false, nil
	}
	return true, a.resync(ctx)
}

// resync catches up once the stream has said it disagrees with this
// actor (a fenced append, a stale check). Finding nothing after what the
// actor has seen then means the subject holds less than that: the state
// came from a snapshot of events the stream no longer has (its store was
// restored from an older copy, or the subject purged). The stream is the
// truth, so the snapshot is forgotten and the subject replayed from its
// start; without this the actor could never append again.
func (a *orderActor) resync(ctx context.Context) error {
	seen := a.seq
	if err := a.catchUp(ctx); err != nil || a.seq != seen || seen == 0 {
		return err
	}
	a.d.Log.Warn("order state ahead of its stream; replaying the subject from its start", "order_id", a.id, "seen", seen)
	if err := a.d.DB.DeleteSnapshot(store.KindOrder, a.id); err != nil {
		return fmt.Errorf("order %s: %w", a.id, err)
	}
	a.state, a.seq, a.unsaved, a.lastRead, a.unconfirmed = order.State{}, 0, 0, false, false
	return a.catchUp(ctx)
}

func (a *orderActor) catchUp(ctx context.Context) error {
	err := OrderHistory(ctx, a.d.Orders, a.id, a.seq, func(seq uint64, e order.Event) error {
		a.apply(e, seq)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load order %s: %w", a.id, err)
	}
	return nil
}

// view returns the order for a caller to read while the actor goes on.
// It shares the slices and maps of the actor's state without copying them:
// order.Evolve never writes into them in place (it appends past their
// length and copies a map it changes), so what the caller holds does not
// change under it. Copying the change history took 1% of a node's CPU.
func (a *orderActor) view() order.Order {
	return a.state.Order
}

func (a *orderActor) snapshot() {
	if a.unsaved == 0 || !a.state.Exists() {
		return
	}
	data, err := json.Marshal(a.state)
	if err != nil {
		return
	}
	a.d.Snapshots.Put(store.Snapshot{Kind: store.KindOrder, Key: a.id, Seq: a.seq, Data: data})
	a.unsaved = 0
}

func (a *orderActor) Passivate() {
	if a.unsaved >= a.snapshotWorth() {
		a.snapshot()
	}
}

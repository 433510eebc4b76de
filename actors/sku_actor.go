package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	json "github.com/goccy/go-json"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/store"
)

// SKUCommand asks a SKU actor to decide an inventory command.
type SKUCommand struct{ Cmd any }

// GetStock asks a SKU actor for its stock.
type GetStock struct{}

// SKUResult is a SKU actor's reply. Hold is the state of the order's hold
// after the command (for Reserve, Commit and Release).
type SKUResult struct {
	Stock inventory.View
	Hold  inventory.Hold
	Err   error
}

// NewSKUHandler returns the Handler factory for SKU actors.
func NewSKUHandler(d *Deps) func(key string) Handler {
	return func(sku string) Handler {
		return &skuActor{sku: sku, subject: jetstream.SKUEventsPrefix + sku, d: d, log: d.Log.With("sku", sku)}
	}
}

type skuActor struct {
	sku     string
	subject string
	d       *Deps
	log     *slog.Logger

	stock   inventory.Stock
	seq     uint64
	loaded  bool
	unsaved int
}

func (a *skuActor) Handle(ctx context.Context, msg any) any {
	return a.HandleBatch(ctx, []any{msg})[0]
}

// HandleBatch decides every command of the batch in order against the
// state the ones before it left, and appends all resulting events as one
// message, fenced on the sequence the actor has seen. A hot SKU so commits
// as many reservations per round trip to the stream as queued during the
// previous one. The decisions are applied to the actor's state as they are
// made; if the append does not go through, that state is thrown away and
// reloaded from the stream, which is the truth, before deciding again.
func (a *skuActor) HandleBatch(ctx context.Context, msgs []any) []any {
	replies := make([]any, len(msgs))
	errs := make([]error, len(msgs))
	fail := func(err error) []any {
		for i := range replies {
			replies[i] = SKUResult{Err: err}
		}
		return replies
	}
	// A read answers from memory, which another writer (a second owner
	// around a node loss) may have moved past: check the stream's last
	// sequence first, as a refusal does.
	fresh := !slices.ContainsFunc(msgs, func(m any) bool { _, ok := m.(GetStock); return ok })
	verified := false
attempts:
	for attempt := range a.d.FencedAttempts {
		if err := a.load(ctx); err != nil {
			return fail(err)
		}
		if !fresh {
			fresh = true
			// A check that gets no answer leaves the read to memory.
			if stale, _ := a.stale(ctx); stale {
				if err := a.reload(ctx); err != nil {
					return fail(err)
				}
				continue
			}
		}
		var events []inventory.Event
		refused := false
		for i, msg := range msgs {
			errs[i] = nil
			switch m := msg.(type) {
			case GetStock:
			case SKUCommand:
				e, err := inventory.Decide(a.stock, m.Cmd)
				if err != nil {
					errs[i], refused = err, true
					continue
				}
				if e != nil {
					a.stock = inventory.Evolve(a.stock, *e)
					events = append(events, *e)
				}
			default:
				errs[i] = fmt.Errorf("sku actor: unknown message %T", msg)
			}
		}
		// Appends are fenced, refusals are not: before refusing, make sure
		// no other node moved the SKU meanwhile. A refusal that cannot be
		// checked is not given (the stream is electing a leader): from a
		// cache another node moved past it could be wrong, and a pipeline
		// would dead-letter the event it refuses; it is answered as
		// unavailable, to be tried again, while the other commands of the
		// batch go on (their append is fenced).
		if refused && !verified {
			verified = true
			stale, err := a.stale(ctx)
			if stale {
				if err := a.reload(ctx); err != nil {
					return fail(err)
				}
				continue
			}
			if err != nil {
				for i := range errs {
					if errs[i] != nil {
						errs[i] = unverified(errs[i], err)
					}
				}
			}
		}
		if len(events) > 0 {
			data, err := inventory.EncodeEvents(events)
			if err != nil {
				a.reset()
				return fail(err)
			}
			ack, err := a.d.append(ctx, jetstream.StreamSKUs, a.subject, data, a.seq, "", "", nil)
			switch {
			case errors.Is(err, jetstream.ErrWrongSequence):
				a.d.Fenced.Wait(ctx, attempt+1)
				if err := a.reload(ctx); err != nil {
					return fail(err)
				}
				continue attempts
			case err != nil:
				a.reset()
				return fail(err)
			}
			a.seq, a.stock.Version = ack.Sequence, ack.Sequence
			a.unsaved += len(events)
			a.maybeSnapshot()
		}
		view := a.view()
		for i, msg := range msgs {
			r := SKUResult{Stock: view, Err: errs[i]}
			if m, ok := msg.(SKUCommand); ok {
				r.Hold = a.stock.Holds[orderOf(m.Cmd)]
			}
			replies[i] = r
		}
		return replies
	}
	return fail(fmt.Errorf("sku %s: gave up after %d fenced appends: %w", a.sku, a.d.FencedAttempts, api.ErrUnavailable))
}

func orderOf(cmd any) string {
	switch c := cmd.(type) {
	case inventory.Reserve:
		return c.OrderID
	case inventory.Commit:
		return c.OrderID
	case inventory.Release:
		return c.OrderID
	}
	return ""
}

// stale reports whether the stream holds events this actor has not seen;
// err says the stream did not answer (stale is then false).
func (a *skuActor) stale(ctx context.Context) (bool, error) {
	last, err := jetstream.LastSeq(ctx, a.d.SKUs, a.subject)
	return err == nil && last != a.seq, err
}

// reload throws the state away and loads it again from the snapshot and
// the stream, once the stream has said it disagrees with it. Coming back
// at the very sequence it was thrown away at means the subject holds less
// than the actor had seen: the snapshot is of events the stream no longer
// has (its store was restored from an older copy, or the subject purged).
// The stream is the truth, so the snapshot is forgotten and the subject
// replayed from its start; without this the SKU could never append again.
func (a *skuActor) reload(ctx context.Context) error {
	seen := a.seq
	a.reset()
	if err := a.load(ctx); err != nil || a.seq != seen || seen == 0 {
		return err
	}
	a.log.Warn("sku state ahead of its stream; replaying the subject from its start", "seen", seen)
	if err := a.d.DB.DeleteSnapshot(store.KindSKU, a.sku); err != nil {
		return fmt.Errorf("sku %s: %w", a.sku, err)
	}
	a.reset()
	return a.load(ctx)
}

// reset drops the in-memory state; the next request reloads it from the
// snapshot and the stream.
func (a *skuActor) reset() {
	a.stock, a.seq, a.loaded, a.unsaved = inventory.Stock{}, 0, false, 0
}

func (a *skuActor) view() inventory.View {
	v := a.stock.View()
	v.SKU = a.sku
	return v
}

func (a *skuActor) apply(e inventory.Event, seq uint64) {
	a.stock = inventory.Evolve(a.stock, e)
	a.seq = seq
	a.stock.Version = seq
	a.unsaved++
	a.maybeSnapshot()
}

// maybeSnapshot queues a snapshot when enough events have passed. A SKU's
// state grows with its holds, so a busy SKU snapshots in proportion to its
// size: every snapshot then costs a bounded amount per event instead of the
// whole map every few hundred events.
func (a *skuActor) maybeSnapshot() {
	if a.unsaved >= max(a.d.SnapshotEvery, len(a.stock.Holds)/8) {
		a.snapshot()
	}
}

func (a *skuActor) load(ctx context.Context) error {
	if a.loaded {
		return nil
	}
	data, seq, ok, err := a.d.DB.LoadSnapshot(store.KindSKU, a.sku)
	if err != nil {
		a.log.Warn("snapshot unreadable; replaying from the stream", "err", err)
	} else if ok {
		if s, ok := skuSnapshot(a.sku, data); ok {
			a.stock, a.seq = s, seq
		}
	}
	if err := a.catchUp(ctx); err != nil {
		return err
	}
	a.loaded = true
	return nil
}

func (a *skuActor) catchUp(ctx context.Context) error {
	err := SKUHistory(ctx, a.d.SKUs, a.sku, a.seq, func(seq uint64, e inventory.Event) error {
		a.apply(e, seq)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load sku %s: %w", a.sku, err)
	}
	return nil
}

func (a *skuActor) snapshot() {
	if a.unsaved == 0 {
		return
	}
	data, err := json.Marshal(a.stock)
	if err != nil {
		return
	}
	a.d.Snapshots.Put(store.Snapshot{Kind: store.KindSKU, Key: a.sku, Seq: a.seq, Data: data})
	a.unsaved = 0
}

func (a *skuActor) Passivate() { a.snapshot() }

package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	json "github.com/goccy/go-json"

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
	if err := a.load(ctx); err != nil {
		return SKUResult{Err: err}
	}
	switch m := msg.(type) {
	case GetStock:
		return SKUResult{Stock: a.view()}
	case SKUCommand:
		return a.execute(ctx, m.Cmd)
	}
	return SKUResult{Err: fmt.Errorf("sku actor: unknown message %T", msg)}
}

func (a *skuActor) execute(ctx context.Context, cmd any) SKUResult {
	orderID := ""
	switch c := cmd.(type) {
	case inventory.Reserve:
		orderID = c.OrderID
	case inventory.Commit:
		orderID = c.OrderID
	case inventory.Release:
		orderID = c.OrderID
	}
	verified := false
	for attempt := range maxAppendAttempts {
		e, err := inventory.Decide(a.stock, cmd)
		if err != nil {
			// Refusals are not fenced: check no other node moved the SKU.
			if !verified {
				verified = true
				if last, lerr := jetstream.LastSeq(ctx, a.d.SKUs, a.subject); lerr == nil && last != a.seq {
					if err := a.catchUp(ctx); err != nil {
						return SKUResult{Err: err}
					}
					continue
				}
			}
			return SKUResult{Stock: a.view(), Err: err}
		}
		if e != nil {
			data, err := json.Marshal(e)
			if err != nil {
				return SKUResult{Err: err}
			}
			ack, err := jetstream.Append(ctx, a.d.JS, a.subject, e.ID, data, a.seq)
			if errors.Is(err, jetstream.ErrWrongSequence) || (err == nil && ack.Duplicate) {
				fencedBackoff(ctx, attempt)
				if err := a.catchUp(ctx); err != nil {
					return SKUResult{Err: err}
				}
				continue
			}
			if err != nil {
				return SKUResult{Err: err}
			}
			a.apply(*e, ack.Sequence)
		}
		return SKUResult{Stock: a.view(), Hold: a.stock.Holds[orderID]}
	}
	return SKUResult{Err: fmt.Errorf("sku %s: gave up after %d fenced appends", a.sku, maxAppendAttempts)}
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
	// A SKU's state grows with its holds, so a busy SKU snapshots in
	// proportion to its size: every snapshot then costs a bounded amount
	// per event instead of the whole map every few hundred events.
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
		var s inventory.Stock
		if err := json.Unmarshal(data, &s); err == nil {
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
	msgs, err := jetstream.Tail(ctx, a.d.SKUs, a.subject, a.seq)
	if err != nil {
		return fmt.Errorf("load sku %s: %w", a.sku, err)
	}
	for _, m := range msgs {
		var e inventory.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			return fmt.Errorf("sku %s event at %d is unreadable: %w", a.sku, m.Sequence, err)
		}
		a.apply(e, m.Sequence)
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

package chaos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/oms-project/oms/api"
	"github.com/oms-project/oms/inventory"
	"github.com/oms-project/oms/jetstream"
	"github.com/oms-project/oms/order"
)

// The invariants, in the order the table shows them.
const (
	InvFinal     = "acked orders final"
	InvOnce      = "causes applied once"
	InvReserved  = "reserved <= on hand"
	InvConserved = "stock conserved"
	InvSettled   = "stock settled"
	InvMoney     = "money conserved"
)

// Invariants lists them in table order.
var Invariants = []string{InvFinal, InvOnce, InvReserved, InvConserved, InvSettled, InvMoney}

// Checker verifies the system's invariants from the streams alone: the
// order events, the SKU events and the provider events, never a node's
// answer. It reads each stream once, incrementally, so it can be asked
// again and again while the system settles.
type Checker struct {
	js  natsjs.JetStream
	pos map[string]uint64 // stream → last sequence folded

	orders   map[string]*orderFacts
	skus     map[string]*skuFacts
	payments map[string]bool // provider event IDs already counted
	// collected is what the payment provider reported it took, by order
	// and currency.
	collected map[string]map[string]int64
	// broken holds the first violation of each safety invariant: one
	// that no amount of waiting can repair.
	broken map[string]string
}

type orderFacts struct {
	causes   map[string]bool
	status   order.Status
	currency string
	total    int64
	items    []order.Item
	refunds  map[string]int64
	// keepsGoods: cancelled after the goods left (delivery failed), so
	// its committed stock is not given back.
	keepsGoods bool
}

type skuFacts struct {
	onHand, reserved int64
	holds            map[string]hold
	sets, committed  int64 // what stock_set added, what commits took
	returned         int64 // committed goods given back
}

type hold struct {
	qty   int64
	state inventory.HoldState
}

// NewChecker reads the streams through js.
func NewChecker(js natsjs.JetStream) *Checker {
	return &Checker{js: js, pos: map[string]uint64{}, orders: map[string]*orderFacts{},
		skus: map[string]*skuFacts{}, payments: map[string]bool{}, collected: map[string]map[string]int64{},
		broken: map[string]string{}}
}

// Verdict is one invariant's outcome: OK, or the first example of it
// failing.
type Verdict struct {
	OK     bool
	Detail string
}

// Check folds what the streams gained since the last call and evaluates
// every invariant for the acknowledged orders.
func (c *Checker) Check(ctx context.Context, acked []string) (map[string]Verdict, error) {
	if err := c.read(ctx); err != nil {
		return nil, err
	}
	out := map[string]Verdict{}
	for _, inv := range []string{InvOnce, InvReserved, InvConserved} {
		out[inv] = Verdict{OK: c.broken[inv] == "", Detail: c.broken[inv]}
	}
	out[InvFinal] = c.final(acked)
	out[InvSettled] = c.settled()
	out[InvMoney] = c.money()
	return out, nil
}

// Until checks again every interval until every invariant holds or limit
// passes, and returns the last verdicts: a system that settles passes, one
// that does not within limit fails with what is still wrong.
func (c *Checker) Until(ctx context.Context, acked []string, limit, interval time.Duration) (map[string]Verdict, error) {
	deadline := time.Now().Add(limit)
	for {
		v, err := c.Check(ctx, acked)
		if err == nil && allOK(v) {
			return v, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("streams unreadable for %s: %w", limit, err)
			}
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(interval):
		}
	}
}

func allOK(v map[string]Verdict) bool {
	for _, inv := range Invariants {
		if !v[inv].OK {
			return false
		}
	}
	return true
}

// DeadLetters is how many messages the dead-letter stream holds (0 when
// it cannot be read).
func (c *Checker) DeadLetters(ctx context.Context) uint64 {
	s, err := c.js.Stream(ctx, jetstream.StreamDeadLetter)
	if err != nil {
		return 0
	}
	return s.CachedInfo().State.Msgs
}

// Orders is how many orders the streams hold.
func (c *Checker) Orders() int { return len(c.orders) }

func (c *Checker) read(ctx context.Context) error {
	for _, s := range []struct {
		stream string
		fold   func(subject string, data []byte)
	}{
		{jetstream.StreamOrders, c.foldOrder},
		{jetstream.StreamSKUs, c.foldSKU},
		{jetstream.StreamInbound, c.foldProvider},
	} {
		last, err := readStream(ctx, c.js, s.stream, c.pos[s.stream], s.fold)
		c.pos[s.stream] = last
		if err != nil {
			return err
		}
	}
	return nil
}

// readStream calls fold with each message of stream after sequence from,
// up to the last one it had when asked, and returns the last folded.
func readStream(ctx context.Context, js natsjs.JetStream, name string, from uint64, fold func(string, []byte)) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return from, err
	}
	last := s.CachedInfo().State.LastSeq
	if last <= from {
		return from, nil
	}
	cons, err := s.OrderedConsumer(ctx, natsjs.OrderedConsumerConfig{
		DeliverPolicy: natsjs.DeliverByStartSequencePolicy, OptStartSeq: from + 1})
	if err != nil {
		return from, err
	}
	for from < last {
		// As many as remain, so that the last batch returns at once
		// (fewer only where messages were deleted: then it waits).
		batch, err := cons.Fetch(int(min(last-from, 1000)), natsjs.FetchMaxWait(2*time.Second))
		if err != nil {
			return from, err
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			if md.Sequence.Stream > from {
				fold(m.Subject(), m.Data())
				from = md.Sequence.Stream
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, natsjs.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return from, err
		}
		if ctx.Err() != nil {
			return from, ctx.Err()
		}
	}
	return from, nil
}

func (c *Checker) breaks(inv, format string, args ...any) {
	if c.broken[inv] == "" {
		c.broken[inv] = fmt.Sprintf(format, args...)
	}
}

func (c *Checker) foldOrder(subject string, data []byte) {
	id := strings.TrimPrefix(subject, jetstream.OrderEventsPrefix)
	e, err := order.DecodeEvent(data)
	if err != nil {
		c.breaks(InvOnce, "order %s: %v", id, err)
		return
	}
	o := c.orders[id]
	if o == nil {
		o = &orderFacts{causes: map[string]bool{}, refunds: map[string]int64{}}
		c.orders[id] = o
	}
	if o.causes[e.CauseID] {
		c.breaks(InvOnce, "order %s applied cause %s twice", id, e.CauseID)
	}
	o.causes[e.CauseID] = true
	o.status = e.Status
	if e.Placed != nil {
		o.currency, o.total, o.items = e.Placed.Currency, e.Placed.Total, e.Placed.Items
	}
	owe := func(amount int64, currency string) {
		if currency == "" {
			currency = o.currency
		}
		if amount != 0 {
			o.refunds[currency] += amount
		}
	}
	if e.Cancel != nil {
		owe(e.Cancel.RefundDue, e.Cancel.RefundCurrency)
		o.keepsGoods = !e.Cancel.ReleaseStock
	}
	if e.Rejected != nil {
		owe(e.Rejected.RefundDue, e.Rejected.RefundCurrency)
	}
}

// foldSKU replays the SKU events with its own bookkeeping of holds and
// checks the totals each event stores against it.
func (c *Checker) foldSKU(subject string, data []byte) {
	sku := strings.TrimPrefix(subject, jetstream.SKUEventsPrefix)
	events, err := inventory.DecodeEvents(data)
	if err != nil {
		c.breaks(InvConserved, "sku %s: %v", sku, err)
		return
	}
	s := c.skus[sku]
	if s == nil {
		s = &skuFacts{holds: map[string]hold{}}
		c.skus[sku] = s
	}
	for _, e := range events {
		if e.Reserved < 0 || e.Reserved > e.OnHand {
			c.breaks(InvReserved, "sku %s: %s leaves %d reserved of %d on hand", sku, e.Type, e.Reserved, e.OnHand)
		}
		onHand, reserved := s.onHand, s.reserved
		h, held := s.holds[e.OrderID]
		switch e.Type {
		case inventory.EventStockSet:
			s.sets += e.OnHand - onHand
			onHand = e.OnHand
		case inventory.EventReserved:
			if held {
				c.breaks(InvConserved, "sku %s: order %s reserved again (its hold is %s)", sku, e.OrderID, h.state)
			}
			reserved += e.Quantity
			s.holds[e.OrderID] = hold{qty: e.Quantity, state: inventory.HoldReserved}
		case inventory.EventRejected:
			if !held {
				s.holds[e.OrderID] = hold{qty: e.Quantity, state: inventory.HoldRejected}
			}
		case inventory.EventCommitted:
			if !held || h.state != inventory.HoldReserved || h.qty != e.Quantity {
				c.breaks(InvConserved, "sku %s: order %s committed %d without a reservation of it (hold %+v)", sku, e.OrderID, e.Quantity, h)
			}
			onHand, reserved = onHand-h.qty, reserved-h.qty
			s.committed += h.qty
			s.holds[e.OrderID] = hold{qty: h.qty, state: inventory.HoldCommitted}
		case inventory.EventReleased:
			switch {
			case held && h.state == inventory.HoldReserved:
				reserved -= h.qty
			case held && h.state == inventory.HoldCommitted:
				onHand += h.qty
				s.returned += h.qty
			}
			s.holds[e.OrderID] = hold{qty: h.qty, state: inventory.HoldReleased}
		}
		if e.OnHand != onHand || e.Reserved != reserved {
			c.breaks(InvConserved, "sku %s: %s for order %s stores on hand %d, reserved %d; the events before it give %d, %d",
				sku, e.Type, e.OrderID, e.OnHand, e.Reserved, onHand, reserved)
		}
		s.onHand, s.reserved = e.OnHand, e.Reserved
		if s.onHand != s.sets-s.committed+s.returned {
			c.breaks(InvConserved, "sku %s: on hand %d, but sets %d - committed %d + returned %d = %d", sku, s.onHand,
				s.sets, s.committed, s.returned, s.sets-s.committed+s.returned)
		}
	}
}

// foldProvider counts what the payment provider reported collecting, once
// per provider event ID, as the orders apply it.
func (c *Checker) foldProvider(subject string, data []byte) {
	// oms.inbound.<partition>.payments.<order>
	parts := strings.Split(strings.TrimPrefix(subject, jetstream.InboundPrefix), ".")
	if len(parts) != 3 || parts[1] != api.KindPayments {
		return
	}
	var ev api.PaymentEvent
	if json.Unmarshal(data, &ev) != nil || c.payments[ev.ID] {
		return
	}
	c.payments[ev.ID] = true
	if ev.Type != order.PaymentSucceeded {
		return
	}
	if c.collected[parts[2]] == nil {
		c.collected[parts[2]] = map[string]int64{}
	}
	c.collected[parts[2]][ev.Currency] += ev.Amount
}

func (c *Checker) final(acked []string) Verdict {
	var open []string
	for _, id := range acked {
		o := c.orders[id]
		switch {
		case o == nil:
			return Verdict{Detail: "acknowledged order " + id + " is not in the stream"}
		case !o.status.Terminal():
			open = append(open, id+" "+string(o.status))
		}
	}
	if len(open) > 0 {
		return Verdict{Detail: fmt.Sprintf("%d of %d not final, e.g. %s", len(open), len(acked), open[0])}
	}
	return Verdict{OK: true, Detail: fmt.Sprintf("%d acknowledged", len(acked))}
}

// settled: a completed order's lines are sold (committed) once, and a
// cancelled order holds nothing (but the goods that left with a courier
// who failed to deliver them); orders not final yet are left out.
func (c *Checker) settled() Verdict {
	for _, id := range slices.Sorted(maps.Keys(c.orders)) {
		o := c.orders[id]
		switch o.status {
		case order.StatusCompleted:
			for _, it := range o.items {
				if h := c.skus[it.SKU].holdOf(id); h.state != inventory.HoldCommitted || h.qty != it.Quantity {
					return Verdict{Detail: fmt.Sprintf("completed order %s: %s hold is %+v, not %d committed", id, it.SKU, h, it.Quantity)}
				}
			}
		case order.StatusCancelled:
			for _, it := range o.items {
				h := c.skus[it.SKU].holdOf(id)
				if h.state == inventory.HoldReserved || h.state == inventory.HoldCommitted && !o.keepsGoods {
					return Verdict{Detail: fmt.Sprintf("cancelled order %s still holds %d %s (%s)", id, h.qty, it.SKU, h.state)}
				}
			}
		}
	}
	return Verdict{OK: true}
}

func (s *skuFacts) holdOf(id string) hold {
	if s == nil {
		return hold{}
	}
	return s.holds[id]
}

// money: for every final order, what the provider collected in each
// currency is the completed order's total plus what is due back.
func (c *Checker) money() Verdict {
	for _, id := range slices.Sorted(maps.Keys(c.orders)) {
		o := c.orders[id]
		if !o.status.Terminal() {
			continue
		}
		want := maps.Clone(o.refunds)
		if o.status == order.StatusCompleted {
			want[o.currency] += o.total
		}
		got := c.collected[id]
		for _, cur := range slices.Sorted(maps.Keys(merge(want, got))) {
			if got[cur] != want[cur] {
				return Verdict{Detail: fmt.Sprintf("order %s (%s): collected %d %s, revenue + refunds due %d",
					id, o.status, got[cur], cur, want[cur])}
			}
		}
	}
	return Verdict{OK: true}
}

func merge(a, b map[string]int64) map[string]int64 {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]int64{}
	}
	maps.Copy(out, b)
	return out
}
